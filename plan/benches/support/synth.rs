//! Synthetic plans for the render benchmarks and `examples/synth_plan.rs`,
//! built directly from the plan types (the plan crate does not depend on
//! the compiler). Deterministic.

#![allow(dead_code)]

use anklume_plan::codec::{Facts, Header, PlanFile, SourceDigest};
use anklume_plan::{
    Config, Devices, ImageSource, Instance, InstanceType, Network, Nftables, Node, Plan, Project,
    Provision, Resource,
};

fn cfg(pairs: &[(&str, String)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn header() -> Header {
    Header {
        anklume_version: "0.1.0".into(),
        sources: vec![SourceDigest {
            path: "infra.yml".into(),
            sha256: "0".repeat(64),
        }],
        facts: Facts::default(),
        tree_dir: ".".into(),
        tree: Vec::new(),
    }
}

/// Nodes of one kind are pushed per phase, then sorted edges are built from
/// (dependency id, dependent id) pairs.
struct Builder {
    phases: Vec<Vec<Node>>,
    deps: Vec<(String, String)>,
}

impl Builder {
    fn build(self) -> Plan {
        let nodes: Vec<Node> = self.phases.into_iter().flatten().collect();
        let index: std::collections::HashMap<&str, u32> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i as u32))
            .collect();
        let mut edges: Vec<(u32, u32)> = self
            .deps
            .iter()
            .map(|(a, b)| (index[a.as_str()], index[b.as_str()]))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        Plan { nodes, edges }
    }
}

/// A plan shaped like `anklume plan`'s for `domains` domains of `machines`
/// machines: a network and a project per domain, an instance and a
/// provisioning node per machine, one nftables ruleset.
pub fn realistic(domains: usize, machines: usize) -> PlanFile {
    let mut b = Builder {
        phases: vec![Vec::new(); 5],
        deps: Vec::new(),
    };
    let mut lines = vec!["table inet anklume;".to_string()];
    let mut paths = Vec::new();
    for d in 0..domains {
        let dom = format!("d{d}");
        let net = format!("net-{dom}");
        let subnet = format!("10.{}.{}", 100 + d / 250, d % 250);
        let mark = |extra: &[(&str, String)]| {
            let mut c = cfg(&[
                ("user.anklume.managed", "true".into()),
                ("user.anklume.domain", dom.clone()),
            ]);
            c.extend(cfg(extra));
            c
        };
        let node = |id: String, line: usize, resource| Node {
            id,
            domain: Some(dom.clone()),
            origin: Some(format!("infra.yml:{line}:3")),
            resource,
        };
        b.phases[0].push(node(
            format!("network/{net}"),
            d * 10,
            Resource::Network(Network {
                name: net.clone(),
                description: format!("Synthetic domain {d}"),
                config: mark(&[
                    ("ipv4.address", format!("{subnet}.254/24")),
                    ("ipv4.nat", "true".into()),
                    ("ipv4.firewall", "true".into()),
                    ("ipv4.dhcp.ranges", format!("{subnet}.100-{subnet}.199")),
                    ("ipv6.address", "none".into()),
                ]),
            }),
        ));
        let nic: Config = cfg(&[
            ("type", "nic".into()),
            ("network", net.clone()),
            ("name", "eth0".into()),
            ("security.mac_filtering", "true".into()),
            ("security.ipv4_filtering", "true".into()),
        ]);
        let root: Config = cfg(&[
            ("type", "disk".into()),
            ("pool", "default".into()),
            ("path", "/".into()),
        ]);
        b.phases[1].push(node(
            format!("project/{dom}"),
            d * 10,
            Resource::Project(Project {
                name: dom.clone(),
                description: format!("Synthetic domain {d}"),
                config: mark(&[
                    ("features.images", "false".into()),
                    ("features.profiles", "true".into()),
                    ("features.storage.volumes", "true".into()),
                    ("features.networks", "false".into()),
                ]),
                default_profile_devices: [("eth0".into(), nic.clone()), ("root".into(), root)]
                    .into(),
            }),
        ));
        b.deps
            .push((format!("network/{net}"), format!("project/{dom}")));
        b.deps
            .push((format!("network/{net}"), "nftables/anklume".into()));
        lines.push(format!("    iifname \"{net}\" oifname \"{net}\" accept"));
        let to = format!("d{}", (d + 1) % domains.max(1));
        lines.push(format!("    # {dom} reaches {to} web"));
        lines.push(format!(
            "    iifname \"{net}\" oifname \"net-{to}\" tcp dport {{ 80, 443 }} accept"
        ));
        paths.push(format!("{dom} -> {to} tcp/80,443"));
        for m in 0..machines {
            let name = format!("{dom}-m{m}");
            let ip = format!("{subnet}.{}", m % 99 + 1);
            let mut devices: Devices = Devices::new();
            let mut eth0 = nic.clone();
            eth0.insert("ipv4.address".into(), ip.clone());
            devices.insert("eth0".into(), eth0);
            if m % 7 == 0 {
                devices.insert(
                    "pd-data".into(),
                    cfg(&[
                        ("type", "disk".into()),
                        ("source", format!("/srv/anklume/data/{dom}/{name}/data")),
                        ("path", "/srv/data".into()),
                        ("shift", "true".into()),
                    ]),
                );
            }
            let id = format!("instance/{dom}/{name}");
            b.phases[2].push(node(
                id.clone(),
                d * 10 + m + 1,
                Resource::Instance(Instance {
                    project: dom.clone(),
                    name: name.clone(),
                    instance_type: if m % 4 == 3 {
                        InstanceType::VirtualMachine
                    } else {
                        InstanceType::Container
                    },
                    description: format!("Machine {m} of domain {d}"),
                    source: ImageSource::Remote {
                        image: "images:debian/13".into(),
                        server: "https://images.linuxcontainers.org".into(),
                        protocol: "simplestreams".into(),
                        alias: "debian/13".into(),
                    },
                    profiles: vec!["default".into()],
                    config: mark(&[
                        ("user.anklume.source", "infra.yml".into()),
                        ("security.protection.delete", "true".into()),
                        ("limits.cpu", "2".into()),
                        ("limits.memory", "2GiB".into()),
                    ]),
                    devices,
                    ip: Some(ip),
                }),
            ));
            b.deps.push((format!("network/{net}"), id.clone()));
            b.deps.push((format!("project/{dom}"), id.clone()));
            b.phases[4].push(node(
                format!("provision/{name}"),
                d * 10 + m + 1,
                Resource::Provision(Provision {
                    host: name.clone(),
                    instance: name.clone(),
                    project: dom.clone(),
                    roles: vec!["base_system".into()],
                    inventory: format!("inventory/{dom}.yml"),
                    context: [
                        ("absolute_level", "1"),
                        ("relative_level", "1"),
                        ("vm_nested", "false"),
                        ("yolo", "false"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                    vars: vec![format!("host_vars/{name}.yml")],
                    fingerprint: "0".repeat(64),
                }),
            ));
            b.deps.push((id, format!("provision/{name}")));
        }
    }
    lines.push("}".into());
    b.phases[3].push(Node {
        id: "nftables/anklume".into(),
        domain: None,
        origin: None,
        resource: Resource::Nftables(Nftables {
            table: "inet anklume".into(),
            lines,
            paths,
        }),
    });
    PlanFile {
        header: header(),
        plan: b.build(),
    }
}

/// A crafted plan of `domains` domains holding one small node each: what
/// made the per-domain scans quadratic.
pub fn many_domains(domains: usize) -> PlanFile {
    let nodes = (0..domains)
        .map(|d| Node {
            id: format!("network/n{d}"),
            domain: Some(format!("d{d}")),
            origin: None,
            resource: Resource::Network(Network {
                name: format!("n{d}"),
                description: String::new(),
                config: Config::new(),
            }),
        })
        .collect();
    PlanFile {
        header: header(),
        plan: Plan {
            nodes,
            edges: Vec::new(),
        },
    }
}
