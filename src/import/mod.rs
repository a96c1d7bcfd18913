//! `anklume import`: from what Incus has (read in bulk, as apply reads it)
//! to an infra.yml whose plan matches it, so that apply only adopts the
//! objects (adds anklume's `user.anklume.*` marks).
//!
//! The conversion is pure ([`build`]): Incus's objects in, a model of the
//! file out, with a comment wherever something was guessed or could not be
//! written, and a warning for each thing that could not. The command
//! (`commands/import.rs`) reads Incus, checks and plans the result, adds
//! a comment for every difference apply would still make, and writes it.
//!
//! What infra.yml can say about an Incus object is what the planner
//! declares for it (`planner/src/lib.rs`, `incus-effects.md`): the bridge
//! `net-<domain>` with its address `x.y.z.254/24`, NAT, firewall, DHCP
//! range and no IPv6; the project with its features and the `eth0` and
//! `root` of its `default` profile; extra profiles (config, devices,
//! description); instances (config, devices, profiles, description,
//! protection from `ephemeral`, `boot.*` and `snapshots.*` from their
//! fields, `eth0`'s static address from `ip`); custom volumes (pool, size,
//! where they are mounted).

pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use anklume_compiler::ir::HostNet;
use anklume_executor::kind::common::config_of;
use anklume_executor::live::{str_of, Live};
use anklume_incus_keys::{Catalogue, Scope, Verdict};
use serde_json::Value;

use yaml::{s, Entry, Y};

/// What to import and the host's facts that shape names and subnets.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The nesting prefix of this host (`001-`), empty on the physical host.
    pub prefix: String,
    /// Only these Incus projects (empty with `domains` empty: all).
    pub projects: Vec<String>,
    /// Only these domains (project = prefix + domain).
    pub domains: Vec<String>,
    /// The host's interface networks: a guessed subnet avoids them.
    pub interfaces: Vec<HostNet>,
    /// Whether a privileged container passes `check` here (a VM above it,
    /// or yolo).
    pub privileged_ok: bool,
}

/// A local image alias and the fingerprint it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The alias.
    pub name: String,
    /// The image's fingerprint.
    pub target: String,
}

/// The imported file, as a model the command can still annotate.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    /// How domains are addressed.
    pub mode: Mode,
    /// Domains, by project name.
    pub domains: Vec<DomainOut>,
    /// Notes for the top of the file (what was left out as a whole).
    pub notes: Vec<String>,
    /// Warnings for stderr: what could not be expressed.
    pub warnings: Vec<String>,
}

/// One domain (an Incus project).
#[derive(Clone, Debug, Default)]
pub struct DomainOut {
    /// The domain's name.
    pub name: String,
    /// Comment lines above the domain.
    pub comments: Vec<String>,
    /// `description`, `subnet_id`.
    pub fields: Vec<Entry>,
    /// Extra profiles.
    pub profiles: Vec<ProfileOut>,
    /// Machines.
    pub machines: Vec<MachineOut>,
}

/// One extra profile.
#[derive(Clone, Debug, Default)]
pub struct ProfileOut {
    /// Its name.
    pub name: String,
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// `description`, `config`, `devices`.
    pub fields: Vec<Entry>,
}

/// One machine (an Incus instance).
#[derive(Clone, Debug, Default)]
pub struct MachineOut {
    /// The machine's name.
    pub name: String,
    /// The Incus instance's name.
    pub instance: String,
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// Its keys.
    pub fields: Vec<Entry>,
}

/// Why an import cannot start: the selection names nothing Incus has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionError(pub String);

/// Whether `name` is a domain or machine name anklume accepts (lowercase
/// letters, digits, inner hyphens; not a name Ansible or anklume reserves).
pub fn valid_name(name: &str, machine: bool) -> Result<(), String> {
    if !anklume_schema::read::is_valid_name(name) {
        return Err(
            "is not a valid anklume name (lowercase letters, digits and inner hyphens)".into(),
        );
    }
    if matches!(name, "all" | "ungrouped" | "localhost" | "host") {
        return Err("is a name Ansible or anklume reserves".into());
    }
    if machine && name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is a number".into());
    }
    Ok(())
}

type Config = BTreeMap<String, String>;

fn map_of(c: &Config) -> Y {
    Y::Map(c.iter().map(|(k, v)| Entry::new(k, s(v))).collect())
}

fn devices_of(d: &BTreeMap<String, Config>) -> Y {
    Y::Map(d.iter().map(|(k, v)| Entry::new(k, map_of(v))).collect())
}

/// The `eth0` the planner gives a domain's default profile (and, with an
/// address, a machine with `ip`).
pub fn planned_eth0(bridge: &str) -> Config {
    [
        ("type", "nic"),
        ("network", bridge),
        ("name", "eth0"),
        ("security.mac_filtering", "true"),
        ("security.ipv4_filtering", "true"),
        ("security.ipv6_filtering", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The bridge's IPv4 network as its first three octets, and whether it is
/// exactly anklume's form (`x.y.z.254/24`).
fn bridge_subnet(net: &Value) -> Option<([u8; 3], bool)> {
    let addr = config_of(net.get("config"))
        .get("ipv4.address")
        .cloned()
        .unwrap_or_default();
    let (ip, len) = addr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let [a, b, c, h] = ip.octets();
    (len == "24").then_some(([a, b, c], h == 254))
}

/// Whether the /24 `net` overlaps a host interface, as `check` sees it
/// (anklume's own bridges and `lo` excepted).
fn overlaps_host(net: [u8; 3], interfaces: &[HostNet]) -> bool {
    let net = u32::from_be_bytes([net[0], net[1], net[2], 0]);
    interfaces.iter().any(|h| {
        let own = h.ifname.starts_with("net-")
            || (h.ifname.len() > 4
                && h.ifname.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && h.ifname[3..].starts_with("-net-"));
        if h.ifname == "lo" || own || h.prefix > 32 {
            return false;
        }
        let mask = if h.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - h.prefix)
        };
        let om = mask & (u32::MAX << 8);
        (net & om) == (u32::from_be_bytes(h.addr) & om)
    })
}

/// A machine's pieces while it is built.
#[derive(Default)]
struct Machine {
    comments: Vec<String>,
    warnings: Vec<String>,
}

impl Machine {
    /// Something that could not be expressed: a comment and a warning.
    fn cannot(&mut self, what: String) {
        self.comments.push(format!("not expressed: {what}"));
        self.warnings.push(what);
    }
}

/// Convert what Incus has into the model of an infra.yml.
pub fn build(live: &Live, aliases: &[Alias], opts: &Options) -> Result<Imported, SelectionError> {
    let mut out = Imported::default();
    let catalogue = Catalogue::recorded();
    let prefix = opts.prefix.as_str();
    // Which projects.
    let mut all: Vec<&String> = live.projects.keys().filter(|p| *p != "default").collect();
    all.sort();
    let mut wanted: BTreeSet<String> = opts.projects.iter().cloned().collect();
    wanted.extend(opts.domains.iter().map(|d| format!("{prefix}{d}")));
    for w in &wanted {
        if !live.projects.contains_key(w) || w == "default" {
            let hint = if w == "default" {
                "anklume never puts a domain in the default project"
            } else {
                "no such Incus project (`incus project list`)"
            };
            return Err(SelectionError(format!("cannot import '{w}': {hint}")));
        }
    }
    let selected: Vec<&String> = if wanted.is_empty() {
        all
    } else {
        all.into_iter().filter(|p| wanted.contains(*p)).collect()
    };
    if wanted.is_empty() {
        let n = live
            .instances
            .keys()
            .filter(|(p, _)| p == "default")
            .count();
        if n > 0 {
            let what = format!(
                "{n} instance(s) of Incus's default project: anklume gives every domain its own project (move them with `incus move --target-project`)"
            );
            out.notes.push(format!("not imported: {what}"));
            out.warnings.push(format!("not imported: {what}"));
        }
    }
    // Domains: name checks first, so machines can be checked against them.
    let mut domains: Vec<(String, String)> = Vec::new();
    for p in selected {
        let Some(d) = p.strip_prefix(prefix) else {
            let what =
                format!("project '{p}': its name lacks this host's nesting prefix '{prefix}'");
            out.notes.push(format!("not imported: {what}"));
            out.warnings.push(format!("not imported: {what}"));
            continue;
        };
        let bridge = format!("{prefix}net-{d}");
        let problem = valid_name(d, false).err().or_else(|| {
            (bridge.chars().count() > 15).then(|| {
                format!("gives the bridge name '{bridge}', longer than Linux's 15 characters")
            })
        });
        if let Some(why) = problem {
            let what = format!("project '{p}': the domain name '{d}' {why}");
            out.notes.push(format!("not imported: {what}"));
            out.warnings.push(format!("not imported: {what}"));
            continue;
        }
        domains.push((p.clone(), d.to_string()));
    }
    let domain_names: BTreeSet<&str> = domains.iter().map(|(_, d)| d.as_str()).collect();
    // Subnets: the bridges', in the addressing mode that keeps most of them.
    let candidates: Vec<Option<[u8; 3]>> = domains
        .iter()
        .map(|(_, d)| {
            live.networks
                .get(&format!("{prefix}net-{d}"))
                .and_then(bridge_subnet)
                .map(|(n, _)| n)
        })
        .collect();
    let used: BTreeSet<[u8; 3]> = live
        .networks
        .values()
        .filter_map(bridge_subnet)
        .map(|(n, _)| n)
        .collect();
    let (mode, placed) = place(&candidates, &used, &opts.interfaces);
    out.mode = mode;
    let mut machine_names: BTreeMap<String, String> = BTreeMap::new();
    for (i, (project, d)) in domains.iter().enumerate() {
        let bridge = format!("{prefix}net-{d}");
        let plive = &live.projects[project];
        let mut dom = DomainOut {
            name: d.clone(),
            ..DomainOut::default()
        };
        let mut dwarn: Vec<String> = Vec::new();
        let Placed { subnet, id, trust } = placed[i];
        let cidr = format!("{}.{}.{}.0/24", subnet[0], subnet[1], subnet[2]);
        match candidates[i] {
            Some(n) if n == subnet => {}
            Some(n) => {
                let what = format!(
                    "the bridge {bridge} is on {}.{}.{}.0/24, which the addressing of this file (chosen to keep most domains' subnets) or another domain rules out; {cidr} is a free one",
                    n[0], n[1], n[2]
                );
                dom.comments.push(format!("not expressed: {what}"));
                dwarn.push(what);
            }
            None if live.networks.contains_key(&bridge) => dom.comments.push(format!(
                "guessed: the bridge {bridge} has no x.y.z.N/24 address; {cidr} is a free subnet"
            )),
            None => dom.comments.push(format!(
                "guessed: Incus has no bridge {bridge}; apply creates it on {cidr}, a free subnet"
            )),
        }
        let description = str_of(plive, "description");
        if !description.is_empty() {
            dom.fields.push(Entry::new("description", s(description)));
        }
        if let Some(trust) = trust {
            dom.fields.push(Entry::new("trust_level", s(trust)));
        }
        dom.fields
            .push(Entry::new("subnet_id", Y::Int(i64::from(id))));
        // Features: anklume sets its own when it creates a project and
        // never changes them after (Incus refuses to on a project that has
        // instances): these are adopted as they are, with a note on what
        // differs.
        let features = config_of(plive.get("config"));
        let off: Vec<String> = [
            ("features.images", "false"),
            ("features.profiles", "true"),
            ("features.storage.volumes", "true"),
            ("features.networks", "false"),
        ]
        .iter()
        // Absent means disabled.
        .filter(|(k, v)| features.get(*k).map_or("false", String::as_str) != *v)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        let has_instances = live.instances.keys().any(|(p, _)| p == project);
        if !off.is_empty() && has_instances {
            let what = format!(
                "the project's features differ from those anklume gives the projects it creates ({}); they are kept as they are (Incus does not change a project's features while it has instances), but with features.images=true a machine added to this domain needs its image in this project",
                off.join(", ")
            );
            dom.comments.push(format!("not expressed: {what}"));
            dwarn.push(what);
        }
        // The default profile: anklume declares its eth0 and root only.
        if let Some(dp) = live.profiles.get(&(project.clone(), "default".into())) {
            let extra_devices: Vec<String> = dp
                .get("devices")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter(|k| *k != "eth0" && *k != "root")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let extra_config: Vec<String> = config_of(dp.get("config"))
                .into_keys()
                .filter(|k| !k.starts_with("user.anklume."))
                .collect();
            if !extra_devices.is_empty() || !extra_config.is_empty() {
                let mut parts = Vec::new();
                if !extra_devices.is_empty() {
                    parts.push(format!("devices {}", extra_devices.join(", ")));
                }
                if !extra_config.is_empty() {
                    parts.push(format!("config keys {}", extra_config.join(", ")));
                }
                dom.comments.push(format!(
                    "not expressed: the default profile's {} (anklume leaves them as they are, but would not make them again)",
                    parts.join(" and ")
                ));
            }
        }
        // Extra profiles.
        let mut profiles: Vec<&String> = live
            .profiles
            .keys()
            .filter(|(p, n)| p == project && n != "default")
            .map(|(_, n)| n)
            .collect();
        profiles.sort();
        let mut profile_names: BTreeSet<String> = BTreeSet::new();
        for name in profiles {
            let v = &live.profiles[&(project.clone(), name.clone())];
            if name == "firewall-multi-nic" {
                dwarn.push(format!(
                    "profile '{name}': anklume reserves this name for the firewall VM's profile"
                ));
                dom.comments.push(format!(
                    "not expressed: profile '{name}' (anklume reserves this name for the firewall VM's profile)"
                ));
                continue;
            }
            let mut m = Machine::default();
            let mut fields = Vec::new();
            let desc = str_of(v, "description");
            if !desc.is_empty() {
                fields.push(Entry::new("description", s(desc)));
            }
            let mut config = Config::new();
            for (k, val) in config_of(v.get("config")) {
                if k.starts_with("user.anklume.") {
                    continue;
                }
                if let Verdict::Unknown { .. } = catalogue.check(Scope::Instance, &k) {
                    m.cannot(format!(
                        "config key {k}={val}: not a key anklume's check knows"
                    ));
                    continue;
                }
                config.insert(k, val);
            }
            if !config.is_empty() {
                fields.push(Entry::new("config", map_of(&config)));
            }
            let devices = import_devices(v.get("devices"), catalogue, &mut m, false);
            if !devices.is_empty() {
                fields.push(Entry::new("devices", devices_of(&devices)));
            }
            out.warnings.extend(
                m.warnings
                    .iter()
                    .map(|w| format!("domain {d}, profile {name}: {w}")),
            );
            profile_names.insert(name.clone());
            dom.profiles.push(ProfileOut {
                name: name.clone(),
                comments: m.comments,
                fields,
            });
        }
        // Instances.
        let mut instances: Vec<&String> = live
            .instances
            .keys()
            .filter(|(p, _)| p == project)
            .map(|(_, n)| n)
            .collect();
        instances.sort();
        let mut attached: BTreeSet<(String, String)> = BTreeSet::new();
        for iname in instances {
            let inst = &live.instances[&(project.clone(), iname.clone())];
            let problem = match iname.strip_prefix(prefix) {
                None => Some((iname.to_string(), format!("lacks this host's nesting prefix '{prefix}'"))),
                Some(m) => valid_name(m, true)
                    .err()
                    .or_else(|| {
                        domain_names
                            .contains(m)
                            .then(|| "is also a domain's name".to_string())
                    })
                    .or_else(|| {
                        machine_names
                            .get(m)
                            .map(|other| format!("is also an instance of domain '{other}' (machine names are global)"))
                    })
                    .map(|w| (m.to_string(), w)),
            };
            if let Some((n, why)) = problem {
                let what = format!("instance '{iname}': the machine name '{n}' {why}");
                dwarn.push(what.clone());
                dom.comments.push(format!("not expressed: {what}"));
                continue;
            }
            let mname = iname.strip_prefix(prefix).unwrap_or(iname).to_string();
            machine_names.insert(mname.clone(), d.clone());
            let mut m = Machine::default();
            let fields = import_machine(
                inst,
                MachineCx {
                    live,
                    project,
                    bridge: &bridge,
                    subnet,
                    aliases,
                    catalogue,
                    opts,
                    profiles: &profile_names,
                },
                &mut m,
                &mut attached,
            );
            out.warnings.extend(
                m.warnings
                    .iter()
                    .map(|w| format!("domain {d}, machine {mname}: {w}")),
            );
            dom.machines.push(MachineOut {
                name: mname,
                instance: iname.clone(),
                comments: m.comments,
                fields,
            });
        }
        // Volumes no instance mounts: declared on the first machine, so
        // that anklume knows them.
        let mut loose: Vec<&(String, String, String)> = live
            .volumes
            .keys()
            .filter(|(p, pool, n)| p == project && !attached.contains(&(pool.clone(), n.clone())))
            .collect();
        loose.sort();
        for (_, pool, name) in loose {
            let v = &live.volumes[&(project.clone(), pool.clone(), name.clone())];
            match dom.machines.first_mut() {
                Some(first) => {
                    let spec = volume_spec(v, pool, None);
                    add_storage_volume(&mut first.fields, name, spec);
                    first.comments.push(format!(
                        "guessed: the custom volume '{name}' (pool {pool}) is mounted by no instance; it is declared here, without a path, so that anklume keeps it"
                    ));
                }
                None => {
                    let what = format!(
                        "custom volume '{name}' (pool {pool}): anklume declares volumes on machines, and this domain has none"
                    );
                    dwarn.push(what.clone());
                    dom.comments.push(format!("not expressed: {what}"));
                }
            }
        }
        out.warnings
            .extend(dwarn.into_iter().map(|w| format!("domain {d}: {w}")));
        out.domains.push(dom);
    }
    Ok(out)
}

/// How the file addresses domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Legacy addressing: `global.base_subnet` (`A.B`), a `subnet_id`
    /// (the third octet) per domain.
    Legacy([u8; 2]),
    /// Zone addressing with this `zone_base` (and the default step 10):
    /// the second octet is the zone's, the third the `subnet_id`. Every
    /// machine gets a static address.
    Zones(u8),
}

impl Default for Mode {
    fn default() -> Mode {
        Mode::Legacy([10, 100])
    }
}

/// Where one domain goes: its /24, `subnet_id`, trust level (zones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The first three octets.
    pub subnet: [u8; 3],
    /// `subnet_id`.
    pub id: u8,
    /// `trust_level` (zone addressing).
    pub trust: Option<&'static str>,
}

/// Zones by offset from `zone_base` (step 10), as the compiler numbers them.
const ZONES: [(&str, u8); 5] = [
    ("admin", 0),
    ("trusted", 10),
    ("semi-trusted", 20),
    ("untrusted", 40),
    ("disposable", 50),
];

/// Choose the addressing mode that keeps the most bridges' subnets
/// (`candidates`, per domain), legacy when equal (it gives no machine an
/// address it does not have), and place every domain: on its bridge's
/// subnet when the mode can say it, else on a free /24 (not `used` by
/// another Incus network, not overlapping a host interface).
pub fn place(
    candidates: &[Option<[u8; 3]>],
    used: &BTreeSet<[u8; 3]>,
    interfaces: &[HostNet],
) -> (Mode, Vec<Placed>) {
    // Legacy: the most common A.B.
    let mut bases: BTreeMap<[u8; 2], usize> = BTreeMap::new();
    for c in candidates.iter().flatten() {
        *bases.entry([c[0], c[1]]).or_default() += 1;
    }
    let (legacy_base, legacy_score) = bases
        .iter()
        .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
        .map_or(([10, 100], 0), |(b, n)| (*b, *n));
    // Zones: the zone_base that fits the most 10.x subnets.
    let zone_of = |z: u8, b: u8| -> Option<&'static str> {
        ZONES
            .iter()
            .find(|(_, off)| u16::from(z) + u16::from(*off) == u16::from(b))
            .map(|(t, _)| *t)
    };
    let (zone_base, zone_score) = (0..=245u8)
        .map(|z| {
            let n = candidates
                .iter()
                .flatten()
                .filter(|c| c[0] == 10 && zone_of(z, c[1]).is_some())
                .count();
            (z, n)
        })
        .max_by_key(|(z, n)| (*n, *z == 100, std::cmp::Reverse(*z)))
        .unwrap_or((100, 0));
    let mode = if zone_score > legacy_score {
        Mode::Zones(zone_base)
    } else {
        Mode::Legacy(legacy_base)
    };
    let mut taken: BTreeSet<[u8; 3]> = BTreeSet::new();
    let mut out: Vec<Option<Placed>> = vec![None; candidates.len()];
    for (i, c) in candidates.iter().enumerate() {
        let Some(c) = c else { continue };
        let fits = match mode {
            Mode::Legacy(b) => ([c[0], c[1]] == b).then_some(None),
            Mode::Zones(z) => (c[0] == 10).then(|| zone_of(z, c[1])).flatten().map(Some),
        };
        if let Some(trust) = fits {
            if c[2] < 255 && taken.insert(*c) {
                out[i] = Some(Placed {
                    subnet: *c,
                    id: c[2],
                    trust,
                });
            }
        }
    }
    let (first, second, trust) = match mode {
        Mode::Legacy(b) => (b[0], b[1], None),
        Mode::Zones(z) => (10, z.saturating_add(20), Some("semi-trusted")),
    };
    let placed = out
        .into_iter()
        .map(|p| {
            p.unwrap_or_else(|| {
                let id = (0..=254u8)
                    .find(|c| {
                        let n = [first, second, *c];
                        !taken.contains(&n) && !used.contains(&n) && !overlaps_host(n, interfaces)
                    })
                    .unwrap_or(0);
                taken.insert([first, second, id]);
                Placed {
                    subnet: [first, second, id],
                    id,
                    trust,
                }
            })
        })
        .collect();
    (mode, placed)
}

struct MachineCx<'a> {
    live: &'a Live,
    project: &'a str,
    bridge: &'a str,
    subnet: [u8; 3],
    aliases: &'a [Alias],
    catalogue: &'a Catalogue,
    opts: &'a Options,
    profiles: &'a BTreeSet<String>,
}

/// A storage volume entry: pool (unless `default`), path, size.
fn volume_spec(v: &Value, pool: &str, path: Option<&str>) -> Vec<Entry> {
    let mut spec = Vec::new();
    if pool != "default" {
        spec.push(Entry::new("pool", s(pool)));
    }
    if let Some(size) = config_of(v.get("config")).get("size") {
        spec.push(Entry::new("size", s(size)));
    }
    if let Some(p) = path {
        spec.push(Entry::new("path", s(p)));
    }
    spec
}

fn add_storage_volume(fields: &mut Vec<Entry>, name: &str, spec: Vec<Entry>) {
    let pos = fields.iter().position(|e| e.key == "storage_volumes");
    let entry = Entry::new(name, Y::Map(spec));
    match pos {
        Some(i) => {
            if let Y::Map(m) = &mut fields[i].value {
                if !m.iter().any(|e| e.key == name) {
                    m.push(entry);
                }
            }
        }
        None => fields.push(Entry::new("storage_volumes", Y::Map(vec![entry]))),
    }
}

/// An instance's or profile's devices that can be written: anklume's
/// generated ones (`sv-*`, `pd-*`, on an instance) and those with an option
/// the check does not know are left out.
fn import_devices(
    devices: Option<&Value>,
    catalogue: &Catalogue,
    m: &mut Machine,
    instance: bool,
) -> BTreeMap<String, Config> {
    let mut out = BTreeMap::new();
    let Some(devs) = devices.and_then(Value::as_object) else {
        return out;
    };
    for (name, dev) in devs {
        let d = config_of(Some(dev));
        let Some(kind) = d.get("type").cloned() else {
            m.cannot(format!("device '{name}': it has no type"));
            continue;
        };
        if instance && (name.starts_with("sv-") || name.starts_with("pd-")) {
            m.cannot(format!(
                "device '{name}': `sv-` and `pd-` devices are made by anklume from shared_volumes and persistent_data; declare it there"
            ));
            continue;
        }
        let unknown: Vec<&String> = d
            .keys()
            .filter(|k| *k != "type")
            .filter(|k| {
                matches!(
                    catalogue.check(Scope::Device(&kind), k),
                    Verdict::Unknown { .. }
                )
            })
            .collect();
        if !unknown.is_empty() {
            let keys: Vec<&str> = unknown.iter().map(|k| k.as_str()).collect();
            m.cannot(format!(
                "device '{name}' ({kind}): options anklume's check does not know ({})",
                keys.join(", ")
            ));
            continue;
        }
        out.insert(name.clone(), d);
    }
    out
}

fn image_of(inst: &Value, config: &Config, aliases: &[Alias], m: &mut Machine) -> String {
    let base = config
        .get("volatile.base_image")
        .map(String::as_str)
        .unwrap_or("");
    let mut names: Vec<&str> = aliases
        .iter()
        .filter(|a| !base.is_empty() && a.target == base)
        .map(|a| a.name.as_str())
        .collect();
    names.sort_unstable();
    if let Some(first) = names.first() {
        return first.to_string();
    }
    let os = config.get("image.os").map(|s| s.to_lowercase());
    let release = config.get("image.release").map(|s| s.to_lowercase());
    let image = match (os, release) {
        (Some(os), Some(rel)) if !os.is_empty() && !rel.is_empty() => {
            format!("images:{os}/{rel}")
        }
        _ => "images:debian/13".to_string(),
    };
    let _ = inst;
    m.comments.push(format!(
        "guessed: os_image (no local alias points at the image it was made from); Incus uses it only if apply has to create {} again",
        str_of(inst, "name")
    ));
    image
}

fn import_machine(
    inst: &Value,
    cx: MachineCx<'_>,
    m: &mut Machine,
    attached: &mut BTreeSet<(String, String)>,
) -> Vec<Entry> {
    let config = config_of(inst.get("config"));
    let mut fields: Vec<Entry> = Vec::new();
    let desc = str_of(inst, "description");
    if !desc.is_empty() {
        fields.push(Entry::new("description", s(desc)));
    }
    let vm = str_of(inst, "type") == "virtual-machine";
    if vm {
        fields.push(Entry::new("type", s("vm")));
    }
    fields.push(Entry::new(
        "os_image",
        s(image_of(inst, &config, cx.aliases, m)),
    ));
    if inst.get("ephemeral").and_then(Value::as_bool) == Some(true) {
        m.cannot(
            "Incus deletes this instance when it stops (`ephemeral` in Incus's sense); anklume would create it again".into(),
        );
    }
    // Devices first: `ip` comes from eth0.
    let mut ip: Option<String> = None;
    let mut devices: BTreeMap<String, Config> = BTreeMap::new();
    let mut volumes: Vec<(String, Vec<Entry>)> = Vec::new();
    let local = import_devices(inst.get("devices"), cx.catalogue, m, true);
    for (name, d) in local {
        let kind = d.get("type").map(String::as_str).unwrap_or("");
        if name == "eth0" {
            if let Some(addr) = d.get("ipv4.address") {
                let mut want = planned_eth0(cx.bridge);
                want.insert("ipv4.address".into(), addr.clone());
                let inside = addr.parse::<Ipv4Addr>().is_ok_and(|a| {
                    let o = a.octets();
                    o[..3] == cx.subnet && (1..=253).contains(&o[3])
                });
                if want == d && inside {
                    ip = Some(addr.clone());
                    continue;
                }
            }
        }
        if kind == "nic" {
            let net = d.get("network").map(String::as_str).unwrap_or("");
            if net != cx.bridge {
                let on = if net.is_empty() {
                    "not on a managed network".to_string()
                } else {
                    format!("on the network '{net}'")
                };
                m.comments.push(format!(
                    "not anklume's convention: NIC '{name}' is {on}, not this domain's bridge {}: kept as a device; anklume's isolation does not cover it",
                    cx.bridge
                ));
                m.warnings.push(format!(
                    "NIC '{name}' is {on}, not the domain's bridge {} (kept as a device)",
                    cx.bridge
                ));
            }
        }
        if kind == "disk" {
            let pool = d.get("pool").cloned().unwrap_or_default();
            let source = d.get("source").cloned().unwrap_or_default();
            let key = (cx.project.to_string(), pool.clone(), source.clone());
            if let Some(v) = cx.live.volumes.get(&key) {
                attached.insert((pool.clone(), source.clone()));
                let keys: BTreeSet<&str> = d.keys().map(String::as_str).collect();
                let simple = name == source
                    && keys == BTreeSet::from(["type", "pool", "source", "path"])
                    && !matches!(name.as_str(), "eth0" | "root")
                    && !name.contains('/');
                let path = d.get("path").cloned().unwrap_or_default();
                if simple && path.starts_with('/') {
                    volumes.push((source, volume_spec(v, &pool, Some(&path))));
                    continue;
                }
                volumes.push((source, volume_spec(v, &pool, None)));
            }
        }
        devices.insert(name, d);
    }
    if let Some(ip) = &ip {
        fields.push(Entry::new("ip", s(ip)));
    }
    // Protection.
    match config.get("security.protection.delete").map(String::as_str) {
        Some("true") => {}
        Some("false") => fields.push(Entry::new("ephemeral", Y::Bool(true))),
        other => {
            fields.push(Entry::new("ephemeral", Y::Bool(true)));
            m.comments.push(format!(
                "security.protection.delete is {}: ephemeral (unprotected); apply writes security.protection.delete=false",
                other.map_or_else(|| "not set".to_string(), |v| format!("'{v}'"))
            ));
        }
    }
    let profiles: Vec<String> = inst
        .get("profiles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if profiles != ["default"] {
        let missing: Vec<&String> = profiles
            .iter()
            .filter(|p| *p != "default" && !cx.profiles.contains(*p))
            .collect();
        if missing.is_empty() {
            fields.push(Entry::new(
                "profiles",
                Y::Seq(profiles.iter().map(s).collect()),
            ));
        } else {
            let names: Vec<&str> = missing.iter().map(|p| p.as_str()).collect();
            m.cannot(format!(
                "its profiles {} (not imported: {})",
                profiles.join(", "),
                names.join(", ")
            ));
        }
    }
    let mut rest = Config::new();
    for (k, v) in &config {
        if k.starts_with("volatile.") || k.starts_with("image.") || k.starts_with("user.anklume.") {
            continue;
        }
        match k.as_str() {
            "security.protection.delete" => continue,
            "boot.autostart" if v == "true" || v == "false" => {
                fields.push(Entry::new("boot_autostart", Y::Bool(v == "true")));
                continue;
            }
            "boot.autostart.priority" => {
                if let Ok(n) = v.parse::<i64>() {
                    if (0..=100).contains(&n) && n.to_string() == *v {
                        fields.push(Entry::new("boot_priority", Y::Int(n)));
                        continue;
                    }
                }
            }
            "snapshots.schedule" if v.split_whitespace().count() == 5 => {
                fields.push(Entry::new("snapshots_schedule", s(v)));
                continue;
            }
            "snapshots.expiry" => {
                let ok = v.len() >= 2
                    && v[..v.len() - 1].bytes().all(|b| b.is_ascii_digit())
                    && matches!(v.as_bytes()[v.len() - 1], b'd' | b'h' | b'm');
                if ok {
                    fields.push(Entry::new("snapshots_expiry", s(v)));
                    continue;
                }
            }
            "security.privileged"
                if !vm && !cx.opts.privileged_ok && v.eq_ignore_ascii_case("true") =>
            {
                m.cannot("security.privileged=true: a privileged container without a VM above it does not pass anklume's check (E0504)".into());
                continue;
            }
            _ => {}
        }
        if let Verdict::Unknown { .. } = cx.catalogue.check(Scope::Instance, k) {
            m.cannot(format!(
                "config key {k}={v}: not a key anklume's check knows"
            ));
            continue;
        }
        rest.insert(k.clone(), v.clone());
    }
    if !rest.is_empty() {
        fields.push(Entry::new("config", map_of(&rest)));
    }
    if !devices.is_empty() {
        fields.push(Entry::new("devices", devices_of(&devices)));
    }
    for (name, spec) in volumes {
        add_storage_volume(&mut fields, &name, spec);
    }
    fields
}

/// The document: header comment lines and the top-level entries.
pub fn document(imp: &Imported, header: &[String]) -> (Vec<String>, Vec<Entry>) {
    let mut head: Vec<String> = header.to_vec();
    head.extend(imp.notes.iter().cloned());
    let domains: Vec<Entry> = imp
        .domains
        .iter()
        .map(|d| {
            let mut fields = d.fields.clone();
            if !d.profiles.is_empty() {
                fields.push(Entry::new(
                    "profiles",
                    Y::Map(
                        d.profiles
                            .iter()
                            .map(|p| {
                                Entry::new(&p.name, Y::Map(p.fields.clone()))
                                    .with_comments(p.comments.clone())
                            })
                            .collect(),
                    ),
                ));
            }
            if !d.machines.is_empty() {
                fields.push(Entry::new(
                    "machines",
                    Y::Map(
                        d.machines
                            .iter()
                            .map(|m| {
                                Entry::new(&m.name, Y::Map(m.fields.clone()))
                                    .with_comments(m.comments.clone())
                            })
                            .collect(),
                    ),
                ));
            }
            Entry::new(&d.name, Y::Map(fields)).with_comments(d.comments.clone())
        })
        .collect();
    let root = vec![
        Entry::new("project_name", s("imported-infra")),
        Entry::new(
            "global",
            Y::Map(vec![match imp.mode {
                Mode::Legacy([a, b]) => Entry::new("base_subnet", s(format!("{a}.{b}"))),
                Mode::Zones(100) => Entry::new("addressing", Y::Map(Vec::new())),
                Mode::Zones(z) => Entry::new(
                    "addressing",
                    Y::Map(vec![Entry::new("zone_base", Y::Int(i64::from(z)))]),
                ),
            }]),
        ),
        Entry::new("domains", Y::Map(domains)),
    ];
    (head, root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Live {
        let mut l = Live::default();
        l.networks.insert(
            "net-lab".into(),
            json!({"name": "net-lab", "config": {"ipv4.address": "10.120.3.254/24"}}),
        );
        l.projects.insert(
            "lab".into(),
            json!({"name": "lab", "config": {"features.images": "true", "features.profiles": "true", "features.storage.volumes": "true"}}),
        );
        l.instances.insert(
            ("lab".into(), "box".into()),
            json!({"name": "box", "project": "lab", "type": "container", "profiles": ["default"],
                   "config": {"image.os": "Debian", "image.release": "trixie", "volatile.base_image": "abc"},
                   "devices": {}}),
        );
        l
    }

    fn text(imp: &Imported) -> String {
        let (h, r) = document(imp, &[]);
        yaml::emit(&h, &r)
    }

    #[test]
    fn a_project_with_other_features_and_instances_is_flagged() {
        let imp = build(&live(), &[], &Options::default()).unwrap();
        let t = text(&imp);
        assert!(t.contains("features.images=false"), "{t}");
        assert!(
            !t.contains("features.networks=false"),
            "absent means disabled: {t}"
        );
        assert!(imp
            .warnings
            .iter()
            .any(|w| w.contains("they are kept as they are")));
        // Control: anklume's features, no warning.
        let mut l = live();
        l.projects.insert(
            "lab".into(),
            json!({"name": "lab", "config": {"features.images": "false", "features.profiles": "true", "features.storage.volumes": "true"}}),
        );
        let imp = build(&l, &[], &Options::default()).unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    }

    #[test]
    fn unset_protection_and_unknown_images_are_guesses_in_comments() {
        let imp = build(&live(), &[], &Options::default()).unwrap();
        let t = text(&imp);
        assert!(t.contains("os_image: images:debian/trixie\n"), "{t}");
        assert!(t.contains("# guessed: os_image"), "{t}");
        assert!(t.contains("security.protection.delete is not set"), "{t}");
        assert!(t.contains("ephemeral: true"), "{t}");
        assert!(t.contains("base_subnet: \"10.120\""), "{t}");
        assert!(t.contains("subnet_id: 3"), "{t}");
        // A local alias of the same image wins, without a guess.
        let a = [Alias {
            name: "deb".into(),
            target: "abc".into(),
        }];
        let t = text(&build(&live(), &a, &Options::default()).unwrap());
        assert!(
            t.contains("os_image: deb\n") && !t.contains("guessed: os_image"),
            "{t}"
        );
    }

    #[test]
    fn selections_name_existing_projects_only() {
        let o = Options {
            projects: vec!["nope".into()],
            ..Options::default()
        };
        assert!(build(&live(), &[], &o).is_err());
        let o = Options {
            domains: vec!["lab".into()],
            ..Options::default()
        };
        assert_eq!(build(&live(), &[], &o).unwrap().domains.len(), 1);
    }

    #[test]
    fn addressing_keeps_the_most_subnets() {
        let none = BTreeSet::new();
        // One /16: legacy, every subnet kept.
        let (m, p) = place(&[Some([10, 120, 3]), Some([10, 120, 4]), None], &none, &[]);
        assert_eq!(m, Mode::Legacy([10, 120]));
        assert_eq!((p[0].id, p[1].id), (3, 4));
        assert_eq!(p[2].subnet, [10, 120, 0]);
        // anklume's zones (admin 10.100, trusted 10.110, disposable
        // 10.150): zone addressing with zone_base 100 keeps all three.
        let (m, p) = place(
            &[Some([10, 100, 0]), Some([10, 110, 0]), Some([10, 150, 2])],
            &none,
            &[],
        );
        assert_eq!(m, Mode::Zones(100));
        let trust: Vec<_> = p.iter().map(|x| x.trust.unwrap()).collect();
        assert_eq!(trust, ["admin", "trusted", "disposable"]);
        assert_eq!(p[2].id, 2);
        // A subnet another network uses is not guessed.
        let used = BTreeSet::from([[10, 120, 0]]);
        let (_, p) = place(&[Some([10, 120, 3]), None], &used, &[]);
        assert_eq!(p[1].subnet, [10, 120, 1]);
    }
}
