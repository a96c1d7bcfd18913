//! What goes in each file of the Ansible tree (`docs/ansible-tree.md`):
//! `group_vars/all.yml`, then per enabled domain `inventory/<d>.yml`,
//! `group_vars/<d>.yml` and `host_vars/<m>.yml`, with v1's keys, order and
//! omission rules.

use std::collections::HashSet;

use anklume_schema::Value;

use crate::ansible::emit::emit_document;
use crate::ir::{Domain, Ir, Machine};

/// One generated file: its path relative to the base directory, and the YAML
/// that goes inside its managed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenFile {
    /// e.g. `host_vars/pro-dev.yml`.
    pub path: String,
    /// The managed block's YAML body.
    pub yaml: String,
}

type Map = Vec<(Value, Value)>;

fn put(m: &mut Map, key: &str, v: Value) {
    m.push((Value::str(key), v));
}

fn put_opt(m: &mut Map, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        put(m, key, v);
    }
}

fn strs(v: &[String]) -> Value {
    Value::Seq(v.iter().map(|s| Value::str(s.clone())).collect())
}

/// All files, in write order. Empty when there are no domains at all.
pub fn files(ir: &Ir) -> Vec<GenFile> {
    if ir.domains.is_empty() {
        return Vec::new();
    }
    let mut out = vec![GenFile {
        path: "group_vars/all.yml".into(),
        yaml: emit_document(&all_vars(ir)),
    }];
    for d in ir.domains.iter().filter(|d| d.enabled) {
        out.push(GenFile {
            path: format!("inventory/{}.yml", d.name),
            yaml: emit_document(&inventory(d)),
        });
        out.push(GenFile {
            path: format!("group_vars/{}.yml", d.name),
            yaml: emit_document(&group_vars(d)),
        });
        for m in &d.machines {
            out.push(GenFile {
                path: format!("host_vars/{}.yml", m.name),
                yaml: emit_document(&host_vars(d, m)),
            });
        }
    }
    out
}

fn all_vars(ir: &Ir) -> Map {
    let mut m = Map::new();
    put_opt(
        &mut m,
        "project_name",
        ir.project_name.clone().map(Value::Str),
    );
    put_opt(&mut m, "addressing", ir.addressing_raw.clone());
    put_opt(
        &mut m,
        "base_subnet",
        ir.base_subnet.clone().map(Value::Str),
    );
    put_opt(
        &mut m,
        "default_os_image",
        ir.default_os_image.clone().map(Value::Str),
    );
    put_opt(
        &mut m,
        "psot_default_connection",
        ir.default_connection.clone().map(Value::Str),
    );
    put_opt(
        &mut m,
        "psot_default_user",
        ir.default_user.clone().map(Value::Str),
    );
    if !ir.images.is_empty() {
        put(&mut m, "incus_all_images", strs(&ir.images));
    }
    if !ir.policies.is_empty() {
        put(
            &mut m,
            "network_policies",
            Value::Seq(ir.policies.iter().map(|p| p.raw.clone()).collect()),
        );
    }
    m
}

fn inventory(d: &Domain) -> Map {
    let hosts: Map = d
        .machines
        .iter()
        .map(|m| {
            let v = match &m.ip {
                Some(ip) => Value::Map(vec![(Value::str("ansible_host"), Value::str(ip.clone()))]),
                None => Value::Null,
            };
            (Value::str(m.name.clone()), v)
        })
        .collect();
    let hosts = if hosts.is_empty() {
        Value::Null
    } else {
        Value::Map(hosts)
    };
    let group = Value::Map(vec![(Value::str("hosts"), hosts)]);
    let children = Value::Map(vec![(Value::str(d.name.clone()), group)]);
    vec![(
        Value::str("all"),
        Value::Map(vec![(Value::str("children"), children)]),
    )]
}

fn group_vars(d: &Domain) -> Map {
    let mut m = Map::new();
    put(&mut m, "domain_name", Value::str(d.name.clone()));
    put_opt(
        &mut m,
        "domain_description",
        d.description.clone().map(Value::Str),
    );
    put(&mut m, "domain_ephemeral", Value::Bool(d.ephemeral));
    put_opt(
        &mut m,
        "domain_trust_level",
        d.trust_level.clone().map(Value::Str),
    );
    if d.openclaw {
        put(&mut m, "domain_openclaw", Value::Bool(true));
    }
    put(
        &mut m,
        "domain_ai_provider",
        Value::str(d.ai_provider.clone()),
    );
    put(&mut m, "domain_ai_sanitize", d.ai_sanitize.clone());
    put(&mut m, "incus_project", Value::str(d.incus_project.clone()));
    put(
        &mut m,
        "incus_network",
        Value::Map(vec![
            (Value::str("name"), Value::str(d.network_name.clone())),
            (Value::str("subnet"), Value::str(d.cidr())),
            (Value::str("gateway"), Value::str(d.gateway())),
        ]),
    );
    put(&mut m, "subnet_id", Value::Int(d.subnet_id));
    put_opt(&mut m, "incus_profiles", d.profiles.clone());
    m
}

fn host_vars(d: &Domain, mach: &Machine) -> Map {
    let mut m = Map::new();
    put(
        &mut m,
        "instance_name",
        Value::str(mach.instance_name.clone()),
    );
    put(&mut m, "instance_type", Value::str(mach.kind.clone()));
    put_opt(
        &mut m,
        "instance_description",
        mach.description.clone().map(Value::Str),
    );
    put(&mut m, "instance_domain", Value::str(d.name.clone()));
    put(&mut m, "instance_ephemeral", Value::Bool(mach.ephemeral));
    put_opt(
        &mut m,
        "instance_os_image",
        mach.os_image.clone().map(Value::Str),
    );
    put_opt(&mut m, "instance_ip", mach.ip.clone().map(Value::Str));
    put_opt(&mut m, "instance_gpu", mach.gpu.map(Value::Bool));
    put_opt(
        &mut m,
        "instance_profiles",
        mach.profiles.as_deref().map(strs),
    );
    put_opt(
        &mut m,
        "instance_config",
        mach.config.as_ref().map(|c| {
            Value::Map(
                c.iter()
                    .map(|(k, v)| (Value::str(k.clone()), v.clone()))
                    .collect(),
            )
        }),
    );
    put_opt(
        &mut m,
        "instance_devices",
        mach.devices.as_ref().map(|c| {
            Value::Map(
                c.iter()
                    .map(|(k, v)| (Value::str(k.clone()), v.clone()))
                    .collect(),
            )
        }),
    );
    put_opt(
        &mut m,
        "instance_storage_volumes",
        mach.storage_volumes.clone(),
    );
    put_opt(&mut m, "instance_roles", mach.roles.as_deref().map(strs));
    put_opt(
        &mut m,
        "instance_boot_autostart",
        mach.boot_autostart.map(Value::Bool),
    );
    put_opt(
        &mut m,
        "instance_boot_priority",
        mach.boot_priority.map(Value::Int),
    );
    put_opt(
        &mut m,
        "instance_snapshots_schedule",
        mach.snapshots_schedule.clone().map(Value::Str),
    );
    put_opt(
        &mut m,
        "instance_snapshots_expiry",
        mach.snapshots_expiry.clone().map(Value::Str),
    );
    m
}

/// Names of the domains and of the machines (disabled domains and
/// auto-created machines included): files named after them are not orphans.
pub fn known_stems(ir: &Ir) -> (HashSet<&str>, HashSet<&str>) {
    let domains = ir.domains.iter().map(|d| d.name.as_str()).collect();
    let machines = ir
        .domains
        .iter()
        .flat_map(|d| d.machines.iter().map(|m| m.name.as_str()))
        .collect();
    (domains, machines)
}
