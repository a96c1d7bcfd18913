//! The planner: lowers the compiler's IR to a graph of Incus resources and a
//! deterministic [`Plan`]. Pure: no I/O, no Incus.
//!
//! Resources, their ids and their desired state follow `docs/plan-format.md`
//! (the contract is `incus-effects.md` plus decisions D30–D40). Edges are
//! real dependencies; nodes are emitted in phase order (networks, projects,
//! profiles, volumes, instances, nftables, provision) and then by id, which is
//! checked to be a topological order of the graph.
#![warn(missing_docs)]

mod nft;
mod provision;

use std::collections::HashMap;

use anklume_compiler::ir::{Domain, Ir, Machine, Provenance};
use anklume_plan::{
    Config, Devices, ImageSource, Instance, InstanceType, Kind, Network, Node, Plan, Profile,
    Project, Provision, Resource, Volume,
};
use anklume_schema::{Sources, Value};
use petgraph::graph::{DiGraph, NodeIndex};

pub use nft::ruleset;
pub use provision::{fingerprint, ProvisionInputs};

/// A planner bug: the graph the IR produced is not a DAG, or an edge points
/// at a node that does not exist. Never caused by user input (the compiler
/// rejects what would cause it), always reported, never a panic or a loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError {
    /// What is wrong, naming the nodes.
    pub message: String,
}

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal planner error: {}", self.message)
    }
}

impl std::error::Error for InternalError {}

/// The image server behind `images:`.
pub const IMAGES_SERVER: &str = "https://images.linuxcontainers.org";

/// Where an image comes from: `images:<alias>` is the simplestreams server;
/// anything else is a local image alias.
pub fn image_source(image: &str) -> ImageSource {
    match image.split_once(':') {
        Some(("images", alias)) if !alias.is_empty() => ImageSource::Remote {
            image: image.to_string(),
            server: IMAGES_SERVER.to_string(),
            protocol: "simplestreams".to_string(),
            alias: alias.to_string(),
        },
        _ => ImageSource::Local {
            alias: image.to_string(),
        },
    }
}

/// An Incus config value from a YAML value (`true`, `4`, `"2GiB"`).
pub fn incus_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => anklume_schema::value::format_float(*f),
        Value::Str(s) => s.clone(),
        other => other.display(),
    }
}

fn map_config(v: Option<&Value>) -> Config {
    match v {
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| (incus_value(k), incus_value(v)))
            .collect(),
        _ => Config::new(),
    }
}

fn map_devices(v: Option<&Value>) -> Devices {
    match v {
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| (incus_value(k), map_config(Some(v))))
            .collect(),
        _ => Devices::new(),
    }
}

fn cfg(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `eth0` of a domain's default profile.
fn eth0(network: &str) -> Config {
    cfg(&[
        ("type", "nic"),
        ("network", network),
        ("name", "eth0"),
        ("security.mac_filtering", "true"),
        ("security.ipv4_filtering", "true"),
        ("security.ipv6_filtering", "true"),
    ])
}

/// Name of the firewall VM's profile with one NIC per bridge (D35).
pub const FIREWALL_PROFILE: &str = "firewall-multi-nic";

struct Builder {
    nodes: Vec<Node>,
    /// (dependency id, dependent id)
    edges: Vec<(String, String)>,
}

impl Builder {
    fn add(
        &mut self,
        id: String,
        domain: Option<&str>,
        origin: Option<String>,
        resource: Resource,
    ) {
        self.nodes.push(Node {
            id,
            domain: domain.map(str::to_string),
            origin,
            resource,
        });
    }

    fn edge(&mut self, from: &str, to: &str) {
        self.edges.push((from.to_string(), to.to_string()));
    }

    fn managed(&self, domain: &str) -> Config {
        cfg(&[
            ("user.anklume.managed", "true"),
            ("user.anklume.domain", domain),
        ])
    }
}

/// Lower a valid IR to a plan. `sources` and `provenance` give each node its
/// origin (`infra.yml:12`).
pub fn plan(ir: &Ir, provenance: &Provenance, sources: &Sources) -> Result<Plan, InternalError> {
    let mut b = Builder {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let origin = |span: anklume_schema::Span| -> Option<String> {
        let f = sources.get(span.file).filter(|_| span.is_real())?;
        let (line, col) = sources.line_col(span.file, span.start);
        Some(format!("{}:{line}:{col}", f.name))
    };
    let firewall_bridges: Vec<String> = {
        let mut v: Vec<&Domain> = ir.domains.iter().filter(|d| d.enabled).collect();
        v.sort_by_key(|d| (d.name != "anklume", d.network_name.clone()));
        v.iter().map(|d| d.network_name.clone()).collect()
    };
    for (di, d) in ir.domains.iter().enumerate() {
        if !d.enabled {
            continue;
        }
        let dorigin = provenance.domains.get(di).copied().and_then(origin);
        lower_domain(&mut b, d, dorigin);
        let with_firewall = d
            .machines
            .iter()
            .any(|m| m.auto && m.name == "anklume-firewall");
        if with_firewall {
            let id = format!("profile/{}/{FIREWALL_PROFILE}", d.incus_project);
            let devices: Devices = firewall_bridges
                .iter()
                .enumerate()
                .map(|(i, br)| {
                    let name = format!("eth{i}");
                    (
                        name.clone(),
                        cfg(&[("type", "nic"), ("network", br), ("name", &name)]),
                    )
                })
                .collect();
            let mut config = b.managed(&d.name);
            config.insert("user.anklume.source".into(), "auto:firewall_mode".into());
            b.add(
                id.clone(),
                Some(&d.name),
                None,
                Resource::Profile(Profile {
                    project: d.incus_project.clone(),
                    name: FIREWALL_PROFILE.into(),
                    description: "anklume firewall VM: one NIC per domain bridge".into(),
                    config,
                    devices,
                }),
            );
            b.edge(&format!("project/{}", d.incus_project), &id);
            for br in &firewall_bridges {
                b.edge(&format!("network/{br}"), &id);
            }
        }
        for (mi, m) in d.machines.iter().enumerate() {
            let span = provenance.machines.get(di).and_then(|v| v.get(mi)).copied();
            // Provenance in Incus: the declaring file's name only, so the
            // path `plan` was given, or a line moving, changes nothing there.
            let file = span
                .filter(|s| s.is_real())
                .and_then(|s| sources.get(s.file))
                .map(|f| {
                    std::path::Path::new(&f.name)
                        .file_name()
                        .map_or(f.name.clone(), |n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            lower_machine(
                &mut b,
                d,
                m,
                span.and_then(origin),
                with_firewall,
                &file,
                &ir.host_context,
            );
        }
    }
    let nft = nft::ruleset(ir);
    let nft_id = "nftables/anklume".to_string();
    for d in ir.domains.iter().filter(|d| d.enabled) {
        b.edge(&format!("network/{}", d.network_name), &nft_id);
    }
    b.add(nft_id, None, None, Resource::Nftables(nft));
    finish(b.nodes, b.edges)
}

fn lower_domain(b: &mut Builder, d: &Domain, origin: Option<String>) {
    let [x, y, z] = d.subnet;
    let mut net_config = b.managed(&d.name);
    net_config.extend(cfg(&[
        ("ipv4.address", &format!("{}/24", d.gateway())),
        ("ipv4.nat", "true"),
        ("ipv4.firewall", "true"),
        (
            "ipv4.dhcp.ranges",
            &format!("{x}.{y}.{z}.100-{x}.{y}.{z}.199"),
        ),
        ("ipv6.address", "none"),
    ]));
    let description = d.description.clone().unwrap_or_default();
    let net_id = format!("network/{}", d.network_name);
    b.add(
        net_id.clone(),
        Some(&d.name),
        origin.clone(),
        Resource::Network(Network {
            name: d.network_name.clone(),
            description: description.clone(),
            config: net_config,
        }),
    );
    let mut proj_config = b.managed(&d.name);
    proj_config.extend(cfg(&[
        ("features.images", "false"),
        ("features.profiles", "true"),
        ("features.storage.volumes", "true"),
        ("features.networks", "false"),
    ]));
    let proj_id = format!("project/{}", d.incus_project);
    let mut default_devices = Devices::new();
    default_devices.insert("eth0".into(), eth0(&d.network_name));
    default_devices.insert(
        "root".into(),
        cfg(&[("type", "disk"), ("pool", "default"), ("path", "/")]),
    );
    b.add(
        proj_id.clone(),
        Some(&d.name),
        origin.clone(),
        Resource::Project(Project {
            name: d.incus_project.clone(),
            description,
            config: proj_config,
            default_profile_devices: default_devices,
        }),
    );
    b.edge(&net_id, &proj_id);
    if let Some(Value::Map(profiles)) = &d.profiles {
        for (name, p) in profiles {
            let name = incus_value(name);
            let id = format!("profile/{}/{name}", d.incus_project);
            let mut config = b.managed(&d.name);
            config.extend(map_config(p.get("config")));
            b.add(
                id.clone(),
                Some(&d.name),
                origin.clone(),
                Resource::Profile(Profile {
                    project: d.incus_project.clone(),
                    name,
                    description: p.get("description").map(incus_value).unwrap_or_default(),
                    config,
                    devices: map_devices(p.get("devices")),
                }),
            );
            b.edge(&proj_id, &id);
        }
    }
}

fn lower_machine(
    b: &mut Builder,
    d: &Domain,
    m: &Machine,
    origin: Option<String>,
    with_firewall: bool,
    source_file: &str,
    host: &anklume_compiler::NestingContext,
) {
    let proj_id = format!("project/{}", d.incus_project);
    let net_id = format!("network/{}", d.network_name);
    let inst_id = format!("instance/{}/{}", d.incus_project, m.instance_name);
    let mut config = b.managed(&d.name);
    config.insert(
        "user.anklume.source".into(),
        if m.auto {
            "auto".to_string()
        } else {
            source_file.to_string()
        },
    );
    for (k, v) in m.config.iter().flatten() {
        config.insert(k.clone(), incus_value(v));
    }
    config.insert(
        "security.protection.delete".into(),
        (!m.ephemeral).to_string(),
    );
    if let Some(a) = m.boot_autostart {
        config.insert("boot.autostart".into(), a.to_string());
    }
    if let Some(p) = m.boot_priority {
        config.insert("boot.autostart.priority".into(), p.to_string());
    }
    if let Some(s) = &m.snapshots_schedule {
        config.insert("snapshots.schedule".into(), s.clone());
    }
    if let Some(e) = &m.snapshots_expiry {
        config.insert("snapshots.expiry".into(), e.clone());
    }
    let mut devices = Devices::new();
    if let Some(ip) = &m.ip {
        let mut nic = eth0(&d.network_name);
        nic.insert("ipv4.address".into(), ip.clone());
        devices.insert("eth0".into(), nic);
    }
    for (name, dev) in m.devices.iter().flatten() {
        devices.insert(name.clone(), map_config(Some(dev)));
    }
    if m.gpu == Some(true)
        && !devices
            .values()
            .any(|d| d.get("type").map(String::as_str) == Some("gpu"))
    {
        devices.insert("gpu".into(), cfg(&[("type", "gpu")]));
    }
    b.edge(&proj_id, &inst_id);
    b.edge(&net_id, &inst_id);
    if let Some(Value::Map(vols)) = &m.storage_volumes {
        for (name, spec) in vols {
            let name = incus_value(name);
            let pool = spec
                .get("pool")
                .map(incus_value)
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "default".into());
            let vol_id = format!("volume/{}/{pool}/{name}", d.incus_project);
            let mut vconfig = b.managed(&d.name);
            if let Some(size) = spec.get("size").map(incus_value).filter(|s| !s.is_empty()) {
                vconfig.insert("size".into(), size);
            }
            if b.nodes.iter().all(|n| n.id != vol_id) {
                b.add(
                    vol_id.clone(),
                    Some(&d.name),
                    origin.clone(),
                    Resource::Volume(Volume {
                        project: d.incus_project.clone(),
                        pool: pool.clone(),
                        name: name.clone(),
                        config: vconfig,
                    }),
                );
                b.edge(&proj_id, &vol_id);
            }
            if let Some(path) = spec.get("path").map(incus_value).filter(|p| !p.is_empty()) {
                devices.insert(
                    name.clone(),
                    cfg(&[
                        ("type", "disk"),
                        ("pool", &pool),
                        ("source", &name),
                        ("path", &path),
                    ]),
                );
            }
            b.edge(&vol_id, &inst_id);
        }
    }
    let mut profiles = m.profiles.clone().unwrap_or_else(|| vec!["default".into()]);
    if with_firewall && m.auto && m.name == "anklume-firewall" {
        profiles.push(FIREWALL_PROFILE.into());
    }
    for p in &profiles {
        if p != "default" {
            b.edge(&format!("profile/{}/{p}", d.incus_project), &inst_id);
        }
    }
    let image = m
        .os_image
        .clone()
        .unwrap_or_else(|| "images:debian/13".into());
    b.add(
        inst_id.clone(),
        Some(&d.name),
        origin.clone(),
        Resource::Instance(Instance {
            project: d.incus_project.clone(),
            name: m.instance_name.clone(),
            instance_type: if m.kind == "vm" {
                InstanceType::VirtualMachine
            } else {
                InstanceType::Container
            },
            description: m.description.clone().unwrap_or_default(),
            source: image_source(&image),
            profiles,
            config,
            devices,
            ip: m.ip.clone(),
        }),
    );
    let mut roles = vec!["base_system".to_string()];
    if d.name == "anklume" {
        roles.push("admin_bootstrap".into());
    }
    for r in m.roles.iter().flatten() {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    let prov_id = format!("provision/{}", m.name);
    b.add(
        prov_id.clone(),
        Some(&d.name),
        origin,
        Resource::Provision(Provision {
            host: m.name.clone(),
            instance: m.instance_name.clone(),
            project: d.incus_project.clone(),
            roles,
            inventory: format!("inventory/{}.yml", d.name),
            context: host
                .child(m.kind == "vm")
                .files()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            vars: vec![
                "group_vars/all.yml".into(),
                format!("group_vars/{}.yml", d.name),
                format!("inventory/{}.yml", d.name),
                format!("host_vars/{}.yml", m.name),
            ],
            fingerprint: String::new(),
        }),
    );
    b.edge(&inst_id, &prov_id);
}

/// Sort nodes canonically, resolve edges, and check the graph with petgraph:
/// every edge must name existing nodes, and the graph must be acyclic with
/// the canonical order as a topological order.
fn finish(mut nodes: Vec<Node>, edges: Vec<(String, String)>) -> Result<Plan, InternalError> {
    nodes.sort_by(|a, b| (a.resource.kind(), &a.id).cmp(&(b.resource.kind(), &b.id)));
    for w in nodes.windows(2) {
        if w[0].id == w[1].id {
            return Err(InternalError {
                message: format!("two resources have the id {}", w[0].id),
            });
        }
    }
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(nodes.len(), edges.len());
    let gi: Vec<NodeIndex> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
    let mut resolved: Vec<(u32, u32)> = Vec::with_capacity(edges.len());
    for (from, to) in &edges {
        let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) else {
            let missing = if index.contains_key(from.as_str()) {
                to
            } else {
                from
            };
            return Err(InternalError {
                message: format!(
                    "edge {from} -> {to} names a resource that does not exist ({missing})"
                ),
            });
        };
        resolved.push((a as u32, b as u32));
        graph.update_edge(gi[a], gi[b], ());
    }
    resolved.sort_unstable();
    resolved.dedup();
    if let Err(cycle) = petgraph::algo::toposort(&graph, None) {
        let start = graph[cycle.node_id()];
        // Name the cycle: walk from the node toposort stopped at.
        let scc = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .find(|c| c.iter().any(|n| graph[*n] == start))
            .unwrap_or_default();
        let mut names: Vec<&str> = scc.iter().map(|n| nodes[graph[*n]].id.as_str()).collect();
        names.sort_unstable();
        return Err(InternalError {
            message: format!("dependency cycle between {}", names.join(", ")),
        });
    }
    if let Some(&(a, b)) = resolved.iter().find(|(a, b)| a >= b) {
        return Err(InternalError {
            message: format!(
                "{} must come before {}, but the phase order puts it after",
                nodes[a as usize].id, nodes[b as usize].id
            ),
        });
    }
    debug_assert!(Kind::ALL.windows(2).all(|w| w[0] < w[1]));
    Ok(Plan {
        nodes,
        edges: resolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            domain: None,
            origin: None,
            resource: Resource::Provision(Provision {
                host: id.into(),
                instance: id.into(),
                project: "p".into(),
                roles: vec![],
                inventory: String::new(),
                context: Default::default(),
                vars: Vec::new(),
                fingerprint: String::new(),
            }),
        }
    }

    #[test]
    fn cycles_are_internal_errors_naming_the_nodes() {
        let e = finish(
            vec![node("a"), node("b"), node("c")],
            vec![("a".into(), "b".into()), ("b".into(), "a".into())],
        )
        .unwrap_err();
        assert_eq!(e.message, "dependency cycle between a, b");
    }

    #[test]
    fn dangling_edges_are_internal_errors() {
        let e = finish(vec![node("a")], vec![("a".into(), "zz".into())]).unwrap_err();
        assert!(e.message.contains("zz"), "{}", e.message);
    }

    #[test]
    fn edges_against_phase_order_are_internal_errors() {
        let e = finish(vec![node("a"), node("b")], vec![("b".into(), "a".into())]).unwrap_err();
        assert!(e.message.contains("b must come before a"), "{}", e.message);
    }

    #[test]
    fn image_sources() {
        assert!(
            matches!(image_source("images:debian/13"), ImageSource::Remote { alias, .. } if alias == "debian/13")
        );
        assert_eq!(
            image_source("busybox-test"),
            ImageSource::Local {
                alias: "busybox-test".into()
            }
        );
    }
}
