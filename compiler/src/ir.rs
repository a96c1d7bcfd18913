//! The IR: the checked, enriched, fully defaulted infrastructure. Plain data;
//! source spans live beside the values in [`Provenance`], never inside them.

use anklume_schema::{Span, Value};

/// Facts about the host gathered by the CLI before compiling.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostFacts {
    /// `/etc/anklume/vm_nested`: `Some(true)` when the file says true,
    /// `Some(false)` for any other content, `None` when missing.
    pub vm_nested: Option<bool>,
    /// `/etc/anklume/yolo` says true.
    pub yolo: bool,
    /// `/etc/anklume/absolute_level` as an integer, when present and valid.
    pub absolute_level: Option<i64>,
    /// Host CPU count, when known.
    pub cpu: Option<f64>,
    /// Host memory in bytes, when known.
    pub memory: Option<u64>,
    /// Host interface networks (name, network address, prefix length).
    pub interfaces: Vec<HostNet>,
    /// `ANKLUME_SKIP_HOST_SUBNET_CHECK=1`.
    pub skip_subnet_check: bool,
}

/// One IPv4 network on a host interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNet {
    /// Interface name.
    pub ifname: String,
    /// Address (any address of the network; host bits are cleared when used).
    pub addr: [u8; 4],
    /// Prefix length.
    pub prefix: u8,
}

/// The compiled infrastructure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ir {
    /// `project_name`.
    pub project_name: Option<String>,
    /// `global.addressing` as written (addressing mode), else `None`.
    pub addressing_raw: Option<Value>,
    /// `global.base_subnet` (legacy mode only).
    pub base_subnet: Option<String>,
    /// `global.default_os_image`.
    pub default_os_image: Option<String>,
    /// `global.default_connection`.
    pub default_connection: Option<String>,
    /// `global.default_user`.
    pub default_user: Option<String>,
    /// `vm` when the firewall runs in a VM, else `host`.
    pub firewall_mode: String,
    /// Incus name prefix from the nesting level (`""` or `NNN-`).
    pub prefix: String,
    /// Domains in input order (disabled ones included).
    pub domains: Vec<Domain>,
    /// Network policies after enrichment (the auto AI policy appended).
    pub policies: Vec<Policy>,
    /// Shared volumes.
    pub shared_volumes: Vec<SharedVolume>,
    /// Sorted, unique images of all machines.
    pub images: Vec<String>,
}

/// A domain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Domain {
    /// Name (unprefixed).
    pub name: String,
    /// `description` (`None` when written as null).
    pub description: Option<String>,
    /// Whether files and resources are generated.
    pub enabled: bool,
    /// `ephemeral` (protection default of its machines).
    pub ephemeral: bool,
    /// Trust level (always set in addressing mode).
    pub trust_level: Option<String>,
    /// `openclaw`.
    pub openclaw: bool,
    /// AI provider.
    pub ai_provider: String,
    /// AI sanitisation (`true`, `false` or `"always"`).
    pub ai_sanitize: Value,
    /// First three octets of the /24.
    pub subnet: [u8; 3],
    /// The third octet, as v1's `subnet_id`.
    pub subnet_id: i64,
    /// Incus project name (prefixed).
    pub incus_project: String,
    /// Bridge name (prefixed).
    pub network_name: String,
    /// `profiles` as written, when non-empty.
    pub profiles: Option<Value>,
    /// Machines: declared ones, then auto-created ones.
    pub machines: Vec<Machine>,
}

impl Domain {
    /// `a.b.c.0/24`.
    pub fn cidr(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    /// `a.b.c.254`.
    pub fn gateway(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.254")
    }
}

/// A machine (instance).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    /// Name (unprefixed).
    pub name: String,
    /// Incus instance name (prefixed).
    pub instance_name: String,
    /// `lxc` or `vm`.
    pub kind: String,
    /// `description` (`None` when written as null).
    pub description: Option<String>,
    /// Effective ephemerality (`false` = protected).
    pub ephemeral: bool,
    /// Image (`None` when none is set or it is written as null).
    pub os_image: Option<String>,
    /// Static address.
    pub ip: Option<String>,
    /// `gpu` as written.
    pub gpu: Option<bool>,
    /// `profiles` as written.
    pub profiles: Option<Vec<String>>,
    /// Instance config after resource allocation.
    pub config: Option<Vec<(String, Value)>>,
    /// Merged devices: `sv-*`, `pd-*`, then the user's.
    pub devices: Option<Vec<(String, Value)>>,
    /// `storage_volumes` as written.
    pub storage_volumes: Option<Value>,
    /// `roles` as written.
    pub roles: Option<Vec<String>>,
    /// `boot_autostart`.
    pub boot_autostart: Option<bool>,
    /// `boot_priority`.
    pub boot_priority: Option<i64>,
    /// `snapshots_schedule`.
    pub snapshots_schedule: Option<String>,
    /// `snapshots_expiry`.
    pub snapshots_expiry: Option<String>,
    /// `weight` (default 1).
    pub weight: i64,
    /// Whether enrichment created it.
    pub auto: bool,
}

/// A network policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `description`.
    pub description: Option<String>,
    /// Source: domain, machine or `host`.
    pub from: String,
    /// Destination: domain, machine or `host`.
    pub to: String,
    /// `None` = all ports and protocols.
    pub ports: Option<Vec<u16>>,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Also the reverse direction.
    pub bidirectional: bool,
    /// The entry as written (copied into `all.yml`).
    pub raw: Value,
}

/// A shared volume.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedVolume {
    /// Name.
    pub name: String,
    /// Host directory.
    pub source: String,
    /// Mount point.
    pub path: String,
    /// Id-shifting.
    pub shift: bool,
    /// Also mount in nesting-enabled instances (D38, used by the planner).
    pub propagate: bool,
    /// (consumer name, read-write).
    pub consumers: Vec<(String, bool)>,
}

/// Where things come from in the sources, for messages and provenance.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// Span of each domain's name, by domain index.
    pub domains: Vec<Span>,
    /// Span of each machine's name, by (domain index, machine index);
    /// `Span::NONE` for auto-created machines.
    pub machines: Vec<Vec<Span>>,
    /// Span of each policy entry (auto-created: `Span::NONE`).
    pub policies: Vec<Span>,
}
