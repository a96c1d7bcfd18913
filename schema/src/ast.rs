//! The typed AST of the infra format (`docs/infra-format.md`), built from a
//! spanned YAML tree. Every shape problem is reported, none stops the reading:
//! a field with a bad value reads as absent after its diagnostic.

use crate::diag::Diagnostic;
use crate::read::{Field, Name, Obj, Reader};
use crate::span::Span;
use crate::value::Value;
use crate::yaml::{Kind, Node};

/// The five trust levels, in zone order.
pub const TRUST_LEVELS: [&str; 5] = [
    "admin",
    "trusted",
    "semi-trusted",
    "untrusted",
    "disposable",
];

/// The whole infrastructure description.
#[derive(Clone, Debug, Default)]
pub struct Infra {
    /// Span of the root mapping.
    pub span: Span,
    /// `project_name`.
    pub project_name: Field<String>,
    /// `global` (defaults when absent or null).
    pub global: Global,
    /// Where `global` is written.
    pub global_span: Option<Span>,
    /// `domains`, in order.
    pub domains: Vec<Domain>,
    /// Where `domains` is written.
    pub domains_span: Option<Span>,
    /// `network_policies`.
    pub network_policies: Vec<Policy>,
    /// `shared_volumes`, in order.
    pub shared_volumes: Vec<SharedVolume>,
}

/// `global`.
#[derive(Clone, Debug, Default)]
pub struct Global {
    /// `addressing` (presence switches zone addressing on).
    pub addressing: Field<Addressing>,
    /// `base_subnet` (legacy addressing).
    pub base_subnet: Field<String>,
    /// `default_os_image`.
    pub default_os_image: Field<String>,
    /// `default_connection`.
    pub default_connection: Field<String>,
    /// `default_user`.
    pub default_user: Field<String>,
    /// `firewall_mode`: host | vm.
    pub firewall_mode: Field<String>,
    /// `gpu_policy`: exclusive | shared.
    pub gpu_policy: Field<String>,
    /// `ai_access_policy`: exclusive | open.
    pub ai_access_policy: Field<String>,
    /// `ai_access_default`.
    pub ai_access_default: Field<String>,
    /// `ai_vram_flush` (documented, no effect).
    pub ai_vram_flush: Field<bool>,
    /// `nesting_prefix`.
    pub nesting_prefix: Field<bool>,
    /// `resource_policy` (`true` reads as all defaults).
    pub resource_policy: Field<ResourcePolicy>,
    /// `shared_volumes_base`.
    pub shared_volumes_base: Field<String>,
    /// `persistent_data_base`.
    pub persistent_data_base: Field<String>,
}

/// `global.addressing`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Addressing {
    /// `base_octet` (only 10).
    pub base_octet: Field<i64>,
    /// `zone_base` 0–245.
    pub zone_base: Field<i64>,
    /// `zone_step` ≥ 1.
    pub zone_step: Field<i64>,
    /// The mapping as written (copied verbatim into `all.yml`).
    pub raw: Value,
}

/// A host reserve amount.
#[derive(Clone, Debug, PartialEq)]
pub enum Reserve {
    /// `"N%"`.
    Percent(i64),
    /// A number: cores for cpu, bytes for memory.
    Number(f64),
    /// A memory string, in bytes.
    Bytes(u64),
}

/// `global.resource_policy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourcePolicy {
    /// `host_reserve.cpu`.
    pub reserve_cpu: Field<Reserve>,
    /// `host_reserve.memory`.
    pub reserve_memory: Field<Reserve>,
    /// `mode`: proportional | equal.
    pub mode: Field<String>,
    /// `cpu_mode`: allowance | count.
    pub cpu_mode: Field<String>,
    /// `memory_enforce`: soft | hard.
    pub memory_enforce: Field<String>,
    /// `overcommit`.
    pub overcommit: Field<bool>,
}

/// A domain.
#[derive(Clone, Debug, Default)]
pub struct Domain {
    /// Its name.
    pub name: Name,
    /// `description`.
    pub description: Field<String>,
    /// `enabled`.
    pub enabled: Field<bool>,
    /// `subnet_id` 0–254.
    pub subnet_id: Field<i64>,
    /// `ephemeral`.
    pub ephemeral: Field<bool>,
    /// `trust_level`.
    pub trust_level: Field<String>,
    /// `openclaw`.
    pub openclaw: Field<bool>,
    /// `ai_provider`: local | cloud | local-first.
    pub ai_provider: Field<String>,
    /// `ai_sanitize`: true | false | "always".
    pub ai_sanitize: Field<Value>,
    /// `profiles`, in order.
    pub profiles: Vec<Profile>,
    /// `profiles` as written.
    pub profiles_raw: Field<Value>,
    /// `machines`, in order.
    pub machines: Vec<Machine>,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            text: String::new(),
            span: Span::NONE,
        }
    }
}

/// A profile of a domain.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Its name.
    pub name: Name,
    /// Whether one of its devices has `type: gpu`.
    pub has_gpu: bool,
    /// `config`, in order (key, value, key span).
    pub config: Field<Vec<(String, Value, Span)>>,
    /// `devices`, in order.
    pub devices: Field<Vec<Device>>,
}

/// A machine.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// Its name.
    pub name: Name,
    /// `description`.
    pub description: Field<String>,
    /// `type`: lxc | vm.
    pub kind: Field<String>,
    /// `ip`.
    pub ip: Field<String>,
    /// `os_image`.
    pub os_image: Field<String>,
    /// `ephemeral`.
    pub ephemeral: Field<bool>,
    /// `gpu`.
    pub gpu: Field<bool>,
    /// `profiles`.
    pub profiles: Field<Vec<(String, Span)>>,
    /// `config`, in order (key, value, key span).
    pub config: Field<Vec<(String, Value, Span)>>,
    /// `devices`, in order.
    pub devices: Field<Vec<Device>>,
    /// `storage_volumes` as written.
    pub storage_volumes: Field<Value>,
    /// `persistent_data`, in order.
    pub persistent_data: Vec<PersistentData>,
    /// `roles`.
    pub roles: Field<Vec<(String, Span)>>,
    /// `weight` ≥ 1.
    pub weight: Field<i64>,
    /// `boot_autostart`.
    pub boot_autostart: Field<bool>,
    /// `boot_priority` 0–100.
    pub boot_priority: Field<i64>,
    /// `snapshots_schedule` (5-field cron).
    pub snapshots_schedule: Field<String>,
    /// `snapshots_expiry` (`30d`, `24h`, `60m`).
    pub snapshots_expiry: Field<String>,
}

/// A user device of a machine.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its name.
    pub name: Name,
    /// Its `type`.
    pub kind: String,
    /// The device as written.
    pub raw: Value,
    /// Its option keys (`type` included), each with its span.
    pub options: Vec<(String, Span)>,
}

/// A `persistent_data` entry.
#[derive(Clone, Debug)]
pub struct PersistentData {
    /// Volume name.
    pub name: Name,
    /// `path` (mount point).
    pub path: Field<String>,
    /// `readonly`.
    pub readonly: Field<bool>,
}

/// A network policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Span of the entry.
    pub span: Span,
    /// `description`.
    pub description: Field<String>,
    /// `from`.
    pub from: Field<String>,
    /// `to`.
    pub to: Field<String>,
    /// `ports`.
    pub ports: Field<Ports>,
    /// `protocol`: tcp | udp | icmp (icmp means ICMP and ICMPv6, no ports).
    pub protocol: Field<String>,
    /// `bidirectional`.
    pub bidirectional: Field<bool>,
    /// The entry as written.
    pub raw: Value,
}

/// `ports` of a policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Ports {
    /// `all`.
    All,
    /// A list of ports with their spans.
    List(Vec<(u16, Span)>),
}

/// A shared volume.
#[derive(Clone, Debug)]
pub struct SharedVolume {
    /// Its name.
    pub name: Name,
    /// `source` (host directory).
    pub source: Field<String>,
    /// `path` (mount point).
    pub path: Field<String>,
    /// `shift`.
    pub shift: Field<bool>,
    /// `propagate`.
    pub propagate: Field<bool>,
    /// `consumers`: name, span, `rw`?
    pub consumers: Vec<(Name, bool)>,
}

const TOP_KEYS: &[&str] = &[
    "project_name",
    "global",
    "domains",
    "network_policies",
    "shared_volumes",
];
const GLOBAL_KEYS: &[&str] = &[
    "addressing",
    "base_subnet",
    "default_os_image",
    "default_connection",
    "default_user",
    "firewall_mode",
    "gpu_policy",
    "ai_access_policy",
    "ai_access_default",
    "ai_vram_flush",
    "nesting_prefix",
    "resource_policy",
    "shared_volumes_base",
    "persistent_data_base",
];
const DOMAIN_KEYS: &[&str] = &[
    "description",
    "enabled",
    "subnet_id",
    "ephemeral",
    "trust_level",
    "openclaw",
    "ai_provider",
    "ai_sanitize",
    "profiles",
    "machines",
    "file_portal",
];
const MACHINE_KEYS: &[&str] = &[
    "description",
    "type",
    "ip",
    "os_image",
    "ephemeral",
    "gpu",
    "profiles",
    "config",
    "devices",
    "storage_volumes",
    "persistent_data",
    "roles",
    "weight",
    "boot_autostart",
    "boot_priority",
    "snapshots_schedule",
    "snapshots_expiry",
    "export_apps",
];
const POLICY_KEYS: &[&str] = &[
    "description",
    "from",
    "to",
    "ports",
    "protocol",
    "bidirectional",
];

/// Read the AST from a root node. Shape errors go to `r`.
pub fn read_infra(root: &Node, r: &mut Reader) -> Infra {
    let mut infra = Infra {
        span: root.span,
        ..Infra::default()
    };
    if root.is_null() {
        r.push(
            Diagnostic::error("E0105", "the infra file is empty", root.span)
                .with_help("start with `project_name:`, `global:` and `domains:` (see examples/)"),
        );
        return infra;
    }
    let under_domains = |name: &str| {
        format!("if `{name}` is a domain, indent it under `domains:` (two spaces more)")
    };
    let depth = crate::read::Depth {
        hint: &under_domains,
        child_keys: DOMAIN_KEYS,
    };
    let Some(top) = r.obj_in(root, "the infra file", TOP_KEYS, false, Some(&depth)) else {
        return infra;
    };
    // `global` may be left out: all defaults, as `global: {}`.
    for key in ["project_name", "domains"] {
        if top.get(key).is_none() {
            r.missing(
                Span {
                    end: root.span.start,
                    ..root.span
                },
                "the infra file",
                key,
                match key {
                    "project_name" => "add `project_name: <name>` at the top",
                    _ => "add `domains:` with at least one domain",
                },
            );
        }
    }
    infra.project_name = r.string(&top, "project_name", "");
    if let Some(g) = top.get("global") {
        infra.global_span = Some(g.span);
        infra.global = read_global(g, r);
    }
    if let Some(d) = top.get("domains") {
        infra.domains_span = Some(d.span);
        if d.is_null() {
            r.push(
                Diagnostic::error("E0202", "domains must be a mapping, got null", d.span)
                    .label("no domains here")
                    .with_help("write `domains: {}` for no domains, or add a domain under it"),
            );
        } else if let Some(list) = r.named(d, "domains") {
            // Domains read independently: in parallel for large inputs, each
            // with its own reader, diagnostics merged back in input order.
            // Chunk by chunk, so that each chunk's readers start knowing
            // which codes are already full (their diagnostics only counted,
            // never built) and what waits to be merged stays bounded.
            use rayon::prelude::*;
            const CHUNK: usize = 1024;
            infra.domains.reserve(list.len());
            let mut list = list.into_iter();
            loop {
                let chunk: Vec<_> = list.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                let parent = &*r;
                let read: Vec<(Domain, Reader)> = chunk
                    .into_par_iter()
                    .with_min_len(8)
                    .map(|(n, v)| {
                        let mut local = parent.fork();
                        let dom = read_domain(n, v, &mut local);
                        (dom, local)
                    })
                    .collect();
                for (dom, local) in read {
                    r.extend(local);
                    infra.domains.push(dom);
                }
            }
        }
    }
    if let Some(p) = top.get("network_policies") {
        infra.network_policies = read_policies(p, r);
    }
    if let Some(v) = top.get("shared_volumes") {
        infra.shared_volumes = read_volumes(v, r);
    }
    infra
}

fn read_global(node: &Node, r: &mut Reader) -> Global {
    let mut g = Global::default();
    let Some(o) = r.obj(node, "global", GLOBAL_KEYS, true) else {
        return g;
    };
    if let Some(a) = o.get("addressing") {
        g.addressing = match &a.kind {
            Kind::Null => Field::Null(a.span),
            _ => match r.obj(
                a,
                "global.addressing",
                &["base_octet", "zone_base", "zone_step"],
                false,
            ) {
                Some(ao) => {
                    let base_octet = r.int(&ao, "base_octet", "global.addressing", 0, 255);
                    if let Field::Set(v, sp) = base_octet {
                        if v != 10 {
                            r.push(
                                Diagnostic::error(
                                    "E0205",
                                    format!("global.addressing.base_octet must be 10 (only RFC 1918 /8), got {v}"),
                                    sp,
                                )
                                .with_help("remove base_octet or set it to 10"),
                            );
                        }
                    }
                    Field::Set(
                        Addressing {
                            base_octet,
                            zone_base: r.int(&ao, "zone_base", "global.addressing", 0, 245),
                            zone_step: r.int(&ao, "zone_step", "global.addressing", 1, 255),
                            raw: a.to_value(),
                        },
                        a.span,
                    )
                }
                None => Field::Invalid(a.span),
            },
        };
    }
    if let Some(b) = o.get("base_subnet") {
        g.base_subnet = match &b.kind {
            Kind::Float(_) | Kind::Int(_) => {
                let src = b.source_text();
                r.push(
                    Diagnostic::error(
                        "E0202",
                        format!("global.base_subnet must be a string, got number {src}"),
                        b.span,
                    )
                    .label("YAML reads this as a number")
                    .with_help(format!("quote it: base_subnet: \"{src}\"")),
                );
                Field::Absent
            }
            _ => {
                let f = r.string_node(b, "global.base_subnet");
                if let Field::Set(s, sp) = &f {
                    let parts: Vec<&str> = s.split('.').collect();
                    let ok = parts.len() == 2
                        && parts.iter().all(|p| {
                            !p.is_empty()
                                && p.len() <= 3
                                && p.bytes().all(|c| c.is_ascii_digit())
                                && p.parse::<u16>().is_ok_and(|n| n <= 255)
                        });
                    if !ok {
                        r.push(
                            Diagnostic::error(
                                "E0208",
                                format!("global.base_subnet must be two octets like \"10.100\", got '{s}'"),
                                *sp,
                            )
                            .with_help("write the first two octets of the /16 the domains use, e.g. \"10.100\""),
                        );
                        Field::Absent
                    } else {
                        f
                    }
                } else {
                    f
                }
            }
        };
    }
    g.default_os_image = r.string(&o, "default_os_image", "global");
    g.default_connection = r.string(&o, "default_connection", "global");
    g.default_user = r.string(&o, "default_user", "global");
    g.firewall_mode = r.one_of(&o, "firewall_mode", "global", &["host", "vm"]);
    g.gpu_policy = r.one_of(&o, "gpu_policy", "global", &["exclusive", "shared"]);
    g.ai_access_policy = r.one_of(&o, "ai_access_policy", "global", &["exclusive", "open"]);
    g.ai_access_default = r.string(&o, "ai_access_default", "global");
    g.ai_vram_flush = r.bool(&o, "ai_vram_flush", "global");
    g.nesting_prefix = r.bool(&o, "nesting_prefix", "global");
    g.shared_volumes_base = r.abs_path(&o, "shared_volumes_base", "global");
    g.persistent_data_base = r.abs_path(&o, "persistent_data_base", "global");
    if let Some(rp) = o.get("resource_policy") {
        g.resource_policy = read_resource_policy(rp, r);
    }
    g
}

fn read_resource_policy(node: &Node, r: &mut Reader) -> Field<ResourcePolicy> {
    match &node.kind {
        Kind::Null => return Field::Null(node.span),
        Kind::Bool(true) => return Field::Set(ResourcePolicy::default(), node.span),
        Kind::Map(_) => {}
        _ => {
            r.push(
                Diagnostic::error(
                    "E0202",
                    format!(
                        "global.resource_policy must be a mapping or true, got {}",
                        crate::read::shown(node)
                    ),
                    node.span,
                )
                .with_help("write `resource_policy: true` for the defaults, or remove the key"),
            );
            return Field::Absent;
        }
    }
    let Some(o) = r.obj(
        node,
        "global.resource_policy",
        &[
            "host_reserve",
            "mode",
            "cpu_mode",
            "memory_enforce",
            "overcommit",
        ],
        false,
    ) else {
        return Field::Absent;
    };
    let path = "global.resource_policy";
    let mut p = ResourcePolicy {
        mode: r.one_of(&o, "mode", path, &["proportional", "equal"]),
        cpu_mode: r.one_of(&o, "cpu_mode", path, &["allowance", "count"]),
        memory_enforce: r.one_of(&o, "memory_enforce", path, &["soft", "hard"]),
        overcommit: r.bool(&o, "overcommit", path),
        ..ResourcePolicy::default()
    };
    if let Some(hr) = o.get("host_reserve") {
        if let Some(ho) = r.obj(
            hr,
            "global.resource_policy.host_reserve",
            &["cpu", "memory"],
            true,
        ) {
            p.reserve_cpu = read_reserve(ho.get("cpu"), "cpu", r);
            p.reserve_memory = read_reserve(ho.get("memory"), "memory", r);
        }
    }
    Field::Set(p, node.span)
}

fn read_reserve(node: Option<&Node>, field: &str, r: &mut Reader) -> Field<Reserve> {
    let Some(n) = node else {
        return Field::Absent;
    };
    let path = format!("global.resource_policy.host_reserve.{field}");
    let bad = |r: &mut Reader, msg: String| {
        r.push(
            Diagnostic::error("E0208", msg, n.span).with_help(if field == "cpu" {
                "write a percentage like \"20%\" or a number of cores like 2"
            } else {
                "write a percentage like \"20%\", a size like \"4GiB\", or a number of bytes"
            }),
        );
        Field::Absent
    };
    match &n.kind {
        Kind::Null => Field::Null(n.span),
        Kind::Str(s) if s.ends_with('%') => match s[..s.len() - 1].trim().parse::<i64>() {
            Ok(pc) if (1..=99).contains(&pc) => Field::Set(Reserve::Percent(pc), n.span),
            Ok(pc) => bad(r, format!("{path}: percentage must be 1-99, got {pc}")),
            Err(_) => bad(r, format!("{path}: invalid format '{s}'")),
        },
        Kind::Int(i) if *i > 0 => Field::Set(Reserve::Number(*i as f64), n.span),
        Kind::Float(f) if *f > 0.0 && f.is_finite() => Field::Set(Reserve::Number(*f), n.span),
        Kind::Int(_) | Kind::Float(_) => bad(
            r,
            format!("{path}: must be positive, got {}", n.to_value().display()),
        ),
        Kind::Str(s) if field == "memory" => match parse_memory(s) {
            Some(b) if b > 0 => Field::Set(Reserve::Bytes(b), n.span),
            _ => bad(r, format!("{path}: invalid value '{s}'")),
        },
        _ => bad(
            r,
            format!(
                "{path}: must be 'N%' or a positive number, got {}",
                crate::read::shown(n)
            ),
        ),
    }
}

/// Parse a memory size: `<number><GiB|MiB|KiB|GB|MB>` or a bare byte count.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    const UNITS: [(&str, f64); 5] = [
        ("GiB", 1073741824.0),
        ("MiB", 1048576.0),
        ("KiB", 1024.0),
        ("GB", 1e9),
        ("MB", 1e6),
    ];
    for (suffix, mult) in UNITS {
        if let Some(num) = s.strip_suffix(suffix) {
            let n: f64 = num.trim().parse().ok()?;
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            return Some((n * mult) as u64);
        }
    }
    s.parse::<u64>().ok()
}

/// A domain or machine named like one of its own keys (`machines`,
/// `description`, `roles`…): that key, indented one level too little, read
/// as a name. Said as such, instead of the errors that follow from it.
fn misplaced_key(r: &mut Reader, name: &Name, what: &str, keys: &[&str], indent: &str) -> bool {
    if !keys.contains(&name.text.as_str()) {
        return false;
    }
    r.push(
        Diagnostic::error(
            "E0206",
            format!("{what} '{}': a key, not a name", name.text),
            name.span,
        )
        .label(format!(
            "`{}` is a key of a {}",
            name.text,
            what.to_lowercase()
        ))
        .with_help(format!("`{}:` looks indented {indent}", name.text)),
    );
    true
}

fn read_domain(name: Name, node: &Node, r: &mut Reader) -> Domain {
    let mut d = Domain {
        name,
        ..Domain::default()
    };
    r.check_name(&d.name, "Domain");
    if misplaced_key(
        r,
        &d.name,
        "Domain",
        DOMAIN_KEYS,
        "too little: it belongs under the domain above it",
    ) {
        return d;
    }
    let what = format!("domain '{}'", d.name.text);
    let path = format!("domains.{}", d.name.text);
    let under_machines =
        |name: &str| format!("if `{name}` is a machine, indent it under this domain's `machines:`");
    let depth = crate::read::Depth {
        hint: &under_machines,
        child_keys: MACHINE_KEYS,
    };
    let Some(o) = r.obj_in(node, &what, DOMAIN_KEYS, true, Some(&depth)) else {
        return d;
    };
    d.description = r.string(&o, "description", &path);
    d.enabled = r.bool(&o, "enabled", &path);
    d.subnet_id = r.int(&o, "subnet_id", &path, 0, 254);
    d.ephemeral = r.bool(&o, "ephemeral", &path);
    d.trust_level = r.one_of(&o, "trust_level", &path, &TRUST_LEVELS);
    d.openclaw = r.bool(&o, "openclaw", &path);
    d.ai_provider = r.one_of(&o, "ai_provider", &path, &["local", "cloud", "local-first"]);
    if let Some(n) = o.get("ai_sanitize") {
        d.ai_sanitize = match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Bool(_) => Field::Set(n.to_value(), n.span),
            Kind::Str(s) if s == "always" => Field::Set(n.to_value(), n.span),
            _ => {
                r.push(
                    Diagnostic::error(
                        "E0204",
                        format!(
                            "{path}.ai_sanitize must be true, false, or 'always', got {}",
                            crate::read::shown(n)
                        ),
                        n.span,
                    )
                    .with_help("write true, false or \"always\""),
                );
                Field::Absent
            }
        };
    }
    if let Some(fp) = o.get("file_portal") {
        if let Some(fo) = r.obj(
            fp,
            &format!("{path}.file_portal"),
            &["allowed_paths", "read_only"],
            true,
        ) {
            let _ = r.string_list(&fo, "allowed_paths", &format!("{path}.file_portal"));
            let _ = r.bool(&fo, "read_only", &format!("{path}.file_portal"));
        }
    }
    if let Some(pn) = o.get("profiles") {
        d.profiles_raw = if pn.is_null() {
            Field::Null(pn.span)
        } else {
            Field::Set(pn.to_value(), pn.span)
        };
        if let Some(list) = r.named(pn, &format!("{path}.profiles")) {
            for (pname, pv) in list {
                d.profiles.push(read_profile(pname, pv, &path, r));
            }
        }
    }
    if let Some(mn) = o.get("machines") {
        if let Some(list) = r.named(mn, &format!("{path}.machines")) {
            d.machines = list
                .into_iter()
                .map(|(n, v)| read_machine(n, v, r))
                .collect();
        }
    }
    d
}

fn read_profile(name: Name, node: &Node, dpath: &str, r: &mut Reader) -> Profile {
    let path = format!("{dpath}.profiles.{}", name.text);
    let mut p = Profile {
        name,
        ..Profile::default()
    };
    let Some(o) = r.obj(
        node,
        &format!("profile '{}'", p.name.text),
        &["description", "config", "devices"],
        true,
    ) else {
        return p;
    };
    let _ = r.string(&o, "description", &path);
    p.config = r.scalar_map(&o, "config", &path);
    p.devices = read_devices(&o, &path, r, false);
    if let Field::Set(devs, _) = &p.devices {
        p.has_gpu = devs.iter().any(|d| d.kind == "gpu");
    }
    p
}

fn read_devices(o: &Obj, path: &str, r: &mut Reader, reserve_prefixes: bool) -> Field<Vec<Device>> {
    let Some(n) = o.get("devices") else {
        return Field::Absent;
    };
    if n.is_null() {
        return Field::Null(n.span);
    }
    let Some(list) = r.named(n, &format!("{path}.devices")) else {
        return Field::Absent;
    };
    let mut out = Vec::new();
    for (name, v) in list {
        if reserve_prefixes && (name.text.starts_with("sv-") || name.text.starts_with("pd-")) {
            r.push(
                Diagnostic::error(
                    "E0304",
                    format!("device name '{}' uses a reserved prefix", name.text),
                    name.span,
                )
                .label("`sv-` and `pd-` are reserved for generated devices")
                .with_help(
                    "rename the device, or declare it as a shared volume / persistent_data entry",
                ),
            );
        }
        let dpath = format!("{path}.devices.{}", name.text);
        match &v.kind {
            Kind::Map(entries) => {
                let mut kind = None;
                let mut options = Vec::with_capacity(entries.len());
                for (k, val) in entries {
                    options.push((k.key_text(), k.span));
                    match &val.kind {
                        Kind::Seq(_) | Kind::Map(_) => {
                            r.push(
                                Diagnostic::error(
                                    "E0202",
                                    format!(
                                        "{dpath}.{} must be a single value, got {}",
                                        k.key_text(),
                                        crate::read::type_name(val)
                                    ),
                                    val.span,
                                )
                                .with_help("Incus device options are strings: write one value"),
                            );
                        }
                        Kind::Str(s) if k.as_str() == Some("type") => kind = Some(s.clone()),
                        _ => {}
                    }
                }
                match kind {
                    Some(kind) => out.push(Device {
                        name,
                        kind,
                        raw: v.to_value(),
                        options,
                    }),
                    None => r.missing(
                        name.span,
                        &format!("device '{}'", name.text),
                        "type",
                        "every Incus device needs a `type` (disk, nic, gpu, proxy, …)",
                    ),
                }
            }
            _ => {
                r.push(
                    Diagnostic::error(
                        "E0202",
                        format!(
                            "{dpath} must be a mapping, got {}",
                            crate::read::type_name(v)
                        ),
                        v.span,
                    )
                    .with_help("write the device as `type: …` plus its options"),
                );
            }
        }
    }
    Field::Set(out, n.span)
}

fn read_machine(name: Name, node: &Node, r: &mut Reader) -> Machine {
    let mut m = Machine {
        name,
        ..Machine::default()
    };
    r.check_name(&m.name, "Machine");
    if misplaced_key(
        r,
        &m.name,
        "Machine",
        MACHINE_KEYS,
        "too little: it belongs under the machine above it",
    ) {
        return m;
    }
    let path = format!("machines.{}", m.name.text);
    let beside = |name: &str| {
        format!("if `{name}` is a machine, it is indented too much: put it at the level of the other machines, under `machines:`")
    };
    let depth = crate::read::Depth {
        hint: &beside,
        child_keys: MACHINE_KEYS,
    };
    let Some(o) = r.obj_in(
        node,
        &format!("machine '{}'", m.name.text),
        MACHINE_KEYS,
        true,
        Some(&depth),
    ) else {
        return m;
    };
    m.description = r.string(&o, "description", &path);
    m.kind = r.one_of(&o, "type", &path, &["lxc", "vm"]);
    m.ip = r.string(&o, "ip", &path);
    m.os_image = r.string(&o, "os_image", &path);
    m.ephemeral = r.bool(&o, "ephemeral", &path);
    m.gpu = r.bool(&o, "gpu", &path);
    m.profiles = r.string_list(&o, "profiles", &path);
    m.config = r.scalar_map(&o, "config", &path);
    m.devices = read_devices(&o, &path, r, true);
    m.roles = r.string_list(&o, "roles", &path);
    let _ = r.string_list(&o, "export_apps", &path);
    m.weight = r.int(&o, "weight", &path, 1, i64::MAX);
    m.boot_autostart = r.bool(&o, "boot_autostart", &path);
    m.boot_priority = r.int(&o, "boot_priority", &path, 0, 100);
    m.snapshots_schedule = r.string(&o, "snapshots_schedule", &path);
    if let Field::Set(s, sp) = &m.snapshots_schedule {
        if s.split_whitespace().count() != 5 {
            r.push(
                Diagnostic::error(
                    "E0208",
                    format!(
                        "{path}.snapshots_schedule must be a cron expression (5 fields), got '{s}'"
                    ),
                    *sp,
                )
                .with_help("write minute hour day month weekday, e.g. \"0 2 * * *\""),
            );
            m.snapshots_schedule = Field::Absent;
        }
    }
    m.snapshots_expiry = r.string(&o, "snapshots_expiry", &path);
    if let Field::Set(s, sp) = &m.snapshots_expiry {
        let ok = s.len() >= 2
            && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && matches!(s.as_bytes()[s.len() - 1], b'd' | b'h' | b'm');
        if !ok {
            r.push(
                Diagnostic::error(
                    "E0208",
                    format!("{path}.snapshots_expiry must be a duration (e.g., '30d', '24h', '60m'), got '{s}'"),
                    *sp,
                )
                .with_help("write a whole number followed by d, h or m"),
            );
            m.snapshots_expiry = Field::Absent;
        }
    }
    if let Some(sv) = o.get("storage_volumes") {
        m.storage_volumes = if sv.is_null() {
            Field::Null(sv.span)
        } else {
            if let Some(list) = r.named(sv, &format!("{path}.storage_volumes")) {
                for (vname, vv) in list {
                    if let Some(vo) = r.obj(
                        vv,
                        &format!("storage volume '{}'", vname.text),
                        &["pool", "size", "path"],
                        true,
                    ) {
                        let vpath = format!("{path}.storage_volumes.{}", vname.text);
                        let _ = r.string(&vo, "pool", &vpath);
                        let _ = r.string(&vo, "size", &vpath);
                        let _ = r.abs_path(&vo, "path", &vpath);
                    }
                }
            }
            Field::Set(sv.to_value(), sv.span)
        };
    }
    if let Some(pd) = o.get("persistent_data") {
        if let Some(list) = r.named(pd, &format!("{path}.persistent_data")) {
            for (vname, vv) in list {
                r.check_name(
                    &vname,
                    &format!("Machine '{}': persistent_data", m.name.text),
                );
                let vpath = format!("{path}.persistent_data.{}", vname.text);
                let Some(vo) = r.obj(vv, &vpath, &["path", "readonly"], false) else {
                    continue;
                };
                let p = r.abs_path(&vo, "path", &vpath);
                if !matches!(p, Field::Set(..)) && vo.get("path").is_none_or(|n| n.is_null()) {
                    r.missing(
                        vname.span,
                        &vpath,
                        "path",
                        "give the mount point inside the instance, e.g. `path: /srv/data`",
                    );
                }
                m.persistent_data.push(PersistentData {
                    path: p,
                    readonly: r.bool(&vo, "readonly", &vpath),
                    name: vname,
                });
            }
        }
    }
    m
}

fn read_policies(node: &Node, r: &mut Reader) -> Vec<Policy> {
    let items = match &node.kind {
        Kind::Null => return Vec::new(),
        Kind::Seq(items) => items,
        _ => {
            r.push(
                Diagnostic::error(
                    "E0202",
                    format!(
                        "network_policies must be a list, got {}",
                        crate::read::type_name(node)
                    ),
                    node.span,
                )
                .with_help("write a list: each entry starts with `- from: …`"),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("network_policies[{i}]");
        let Some(o) = r.obj(item, &path, POLICY_KEYS, false) else {
            continue;
        };
        let mut p = Policy {
            span: item.span,
            description: r.string(&o, "description", &path),
            from: r.string(&o, "from", &path),
            to: r.string(&o, "to", &path),
            ports: Field::Absent,
            protocol: r.one_of(&o, "protocol", &path, &["tcp", "udp", "icmp"]),
            bidirectional: r.bool(&o, "bidirectional", &path),
            raw: item.to_value(),
        };
        for key in ["from", "to"] {
            if o.get(key).is_none_or(|n| n.is_null()) {
                r.missing(item.span, &path, key, "name a domain, a machine or `host`");
            }
        }
        if let Some(pn) = o.get("ports") {
            p.ports = match &pn.kind {
                Kind::Null => Field::Null(pn.span),
                Kind::Str(s) if s == "all" => Field::Set(Ports::All, pn.span),
                // With icmp, any port list is E0507 (below), an empty one too.
                Kind::Seq(list)
                    if list.is_empty() && p.protocol.get().is_some_and(|v| v == "icmp") =>
                {
                    Field::Set(Ports::List(Vec::new()), pn.span)
                }
                Kind::Seq(list) if list.is_empty() => {
                    r.push(
                        Diagnostic::error("E0501", format!("{path}: empty port list"), pn.span)
                            .label("opens nothing")
                            .with_help(
                                "list at least one port, write `ports: all`, or remove the policy",
                            ),
                    );
                    Field::Absent
                }
                Kind::Seq(list) => {
                    let mut ports = Vec::new();
                    for pnode in list {
                        if let Field::Set(v, sp) =
                            r.int_node(pnode, &format!("{path}.ports"), 1, 65535)
                        {
                            ports.push((v as u16, sp));
                        } else if pnode.is_null() {
                            r.push(
                                Diagnostic::error(
                                    "E0202",
                                    format!("{path}: invalid port null"),
                                    pnode.span,
                                )
                                .with_help("ports are whole numbers 1-65535"),
                            );
                        }
                    }
                    Field::Set(Ports::List(ports), pn.span)
                }
                _ => {
                    r.push(
                        Diagnostic::error(
                            "E0202",
                            format!(
                                "{path}: ports must be a list or 'all', got {}",
                                crate::read::shown(pn)
                            ),
                            pn.span,
                        )
                        .with_help("write `ports: [80, 443]` or `ports: all`"),
                    );
                    Field::Absent
                }
            };
        }
        check_icmp_ports(&p, &path, r);
        out.push(p);
    }
    out
}

/// ICMP has no ports: `protocol: icmp` takes `ports` absent, null or `all`
/// (E0507). A port list with it would read as "ICMP on these ports", which
/// nothing can match.
fn check_icmp_ports(p: &Policy, path: &str, r: &mut Reader) {
    let Field::Set(proto, proto_span) = &p.protocol else {
        return;
    };
    if proto != "icmp" {
        return;
    }
    if let Field::Set(Ports::List(_), ports_span) = &p.ports {
        r.push(
            Diagnostic::error(
                "E0507",
                format!("{path}: protocol icmp takes no ports"),
                *ports_span,
            )
            .label("ports given here")
            .with_secondary(*proto_span, "ICMP has no ports")
            .with_help(
                "remove `ports`: `protocol: icmp` opens ICMP and ICMPv6 (ping) whole; \
                 for TCP or UDP ports, write a second policy with `protocol: tcp` or `udp`",
            ),
        );
    }
}

fn read_volumes(node: &Node, r: &mut Reader) -> Vec<SharedVolume> {
    let Some(list) = r.named(node, "shared_volumes") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in list {
        r.check_name(&name, "shared_volumes");
        let path = format!("shared_volumes.{}", name.text);
        let Some(o) = r.obj(
            v,
            &path,
            &["source", "path", "shift", "propagate", "consumers"],
            false,
        ) else {
            continue;
        };
        let mut vol = SharedVolume {
            source: r.abs_path(&o, "source", &path),
            path: r.abs_path(&o, "path", &path),
            shift: r.bool(&o, "shift", &path),
            propagate: r.bool(&o, "propagate", &path),
            consumers: Vec::new(),
            name,
        };
        match o.get("consumers") {
            Some(c) if matches!(&c.kind, Kind::Map(e) if !e.is_empty()) => {
                for (k, a) in c.as_map().unwrap_or_default() {
                    let cname = Name {
                        text: k.key_text(),
                        span: k.span,
                    };
                    match a.as_str() {
                        Some("ro") => vol.consumers.push((cname, false)),
                        Some("rw") => vol.consumers.push((cname, true)),
                        _ => r.push(
                            Diagnostic::error(
                                "E0204",
                                format!(
                                    "{path}: consumer '{}' access must be 'ro' or 'rw', got {}",
                                    cname.text,
                                    crate::read::shown(a)
                                ),
                                a.span,
                            )
                            .with_help("write ro (read-only) or rw (read-write)"),
                        ),
                    }
                }
            }
            Some(c) => r.push(
                Diagnostic::error(
                    "E0202",
                    format!("{path}: consumers must be a non-empty mapping"),
                    c.span,
                )
                .with_help("list who mounts it: `consumers: {pro: ro, pro-dev: rw}`"),
            ),
            None => r.missing(
                vol.name.span,
                &path,
                "consumers",
                "list who mounts it: `consumers: {pro: ro}`",
            ),
        }
        out.push(vol);
    }
    out
}
