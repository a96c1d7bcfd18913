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
    /// `/etc/anklume/relative_level` as an integer, when present and valid.
    pub relative_level: Option<i64>,
    /// Host CPU count, when known.
    pub cpu: Option<f64>,
    /// Host memory in bytes, when known.
    pub memory: Option<u64>,
    /// Host interface networks (name, network address, prefix length).
    pub interfaces: Vec<HostNet>,
    /// `ANKLUME_SKIP_HOST_SUBNET_CHECK=1`.
    pub skip_subnet_check: bool,
}

/// A host's nesting context: the `/etc/anklume/*` files anklume reads on
/// the host it runs on and writes into every instance it makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NestingContext {
    /// `absolute_level`: how deep below the physical host (0 there).
    pub absolute_level: i64,
    /// `relative_level`: how deep below the nearest VM (0 in a VM).
    pub relative_level: i64,
    /// `vm_nested`: a VM is somewhere above (or it is one).
    pub vm_nested: bool,
    /// `yolo`: the production safeguards are off.
    pub yolo: bool,
}

impl NestingContext {
    /// The context of an instance this host makes: one level deeper; a VM
    /// starts a new relative count and is VM-nested (spec §5, incus-effects
    /// §6.9).
    pub fn child(&self, vm: bool) -> NestingContext {
        NestingContext {
            absolute_level: self.absolute_level + 1,
            relative_level: if vm { 0 } else { self.relative_level + 1 },
            vm_nested: vm || self.vm_nested,
            yolo: self.yolo,
        }
    }

    /// The files, by name, each holding its value (without the newline
    /// that is written after it).
    pub fn files(&self) -> [(&'static str, String); 4] {
        [
            ("absolute_level", self.absolute_level.to_string()),
            ("relative_level", self.relative_level.to_string()),
            ("vm_nested", self.vm_nested.to_string()),
            ("yolo", self.yolo.to_string()),
        ]
    }
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
    /// This host's own nesting context (`/etc/anklume/*`; a missing file
    /// counts as 0 or false): what each instance's context is computed from.
    pub host_context: NestingContext,
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
    /// `None` = all ports and protocols (with `icmp`: all of ICMP and ICMPv6).
    pub ports: Option<Vec<u16>>,
    /// `tcp`, `udp` or `icmp` (ICMP and ICMPv6; never with ports).
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

#[cfg(test)]
mod tests {
    use super::NestingContext;

    /// incus-effects §6.9: one level deeper; a VM restarts the relative
    /// count and is VM-nested from then on; yolo is inherited.
    #[test]
    fn a_child_context_follows_the_spec() {
        let host = NestingContext::default();
        let ct = host.child(false);
        assert_eq!(
            ct,
            NestingContext {
                absolute_level: 1,
                relative_level: 1,
                vm_nested: false,
                yolo: false
            }
        );
        let vm = ct.child(true);
        assert_eq!(
            (vm.absolute_level, vm.relative_level, vm.vm_nested),
            (2, 0, true)
        );
        let in_vm = NestingContext { yolo: true, ..vm }.child(false);
        assert_eq!(
            in_vm,
            NestingContext {
                absolute_level: 3,
                relative_level: 1,
                vm_nested: true,
                yolo: true
            }
        );
        assert_eq!(
            in_vm.files().map(|(k, v)| format!("{k}={v}")),
            [
                "absolute_level=3",
                "relative_level=1",
                "vm_nested=true",
                "yolo=true"
            ]
        );
    }
}
