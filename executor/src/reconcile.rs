//! Deciding what to do: for each plan node, create, update (with the changed
//! keys), unchanged, or not run; plus the orphans anklume manages that the
//! plan lacks. Only keys the plan declares are compared, so keys Incus adds
//! (`volatile.*`, `image.*`, defaults) are never drift.

use std::collections::BTreeMap;

use anklume_plan::{Config, Devices, ImageSource, Plan, Resource};
use serde::Serialize;
use serde_json::Value;

use crate::live::{instance_ips, Live};

/// One changed setting (the same shape `anklume diff` reports).
pub use anklume_plan::diff::Change;

/// What to do with one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// It does not exist: create it.
    Create,
    /// It exists and differs: these keys change.
    Update {
        /// The differences.
        changes: Vec<Change>,
    },
    /// It exists as desired.
    Unchanged,
    /// Not executed by apply (yet).
    NotRun {
        /// Why.
        reason: String,
    },
}

/// A managed object Incus has that the plan does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// `network`, `project`, `profile`, `instance`.
    pub kind: &'static str,
    /// Project (`default` for networks).
    pub project: String,
    /// Name.
    pub name: String,
    /// Instances: `security.protection.delete` is true.
    pub protected: bool,
}

/// All decisions for a plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Decisions {
    /// One action per plan node, in plan order.
    pub actions: Vec<Action>,
    /// Orphans, sorted.
    pub orphans: Vec<Orphan>,
}

/// Problems found before anything is changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// One message per problem.
    pub problems: Vec<String>,
}

fn live_config(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn config_changes(
    prefix: &str,
    desired: &Config,
    live: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    for (k, v) in desired {
        let cur = live.get(k);
        if cur != Some(v) {
            out.push(Change {
                key: format!("{prefix}.{k}"),
                old: cur.cloned(),
                new: Some(v.clone()),
            });
        }
    }
}

fn show_device(d: &BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn device_changes(prefix: &str, desired: &Devices, live: Option<&Value>, out: &mut Vec<Change>) {
    let live: BTreeMap<String, BTreeMap<String, String>> = live
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), live_config(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    for (name, dev) in desired {
        let cur = live.get(name);
        if cur != Some(dev) {
            out.push(Change {
                key: format!("{prefix}.{name}"),
                old: cur.map(show_device),
                new: Some(show_device(dev)),
            });
        }
    }
}

fn description_change(desired: &str, live: &Value, out: &mut Vec<Change>) {
    let cur = live
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    if cur != desired {
        out.push(Change {
            key: "description".into(),
            old: Some(cur.to_string()),
            new: Some(desired.to_string()),
        });
    }
}

fn verdict(changes: Vec<Change>) -> Action {
    if changes.is_empty() {
        Action::Unchanged
    } else {
        Action::Update { changes }
    }
}

/// Reasons nodes are not run by apply.
pub const PROVISION_NOT_RUN: &str = "provisioning runs with Ansible, not part of apply yet";
/// Reason the ruleset is not loaded by apply.
pub const NFTABLES_NOT_RUN: &str =
    "host isolation rules are not managed by this apply (--no-nftables, or nft unusable here): use `anklume nftables deploy` on the host";

/// Compare the plan with what Incus has.
pub fn decide(plan: &Plan, live: &Live) -> Decisions {
    let mut actions = Vec::with_capacity(plan.nodes.len());
    for node in &plan.nodes {
        let action = match &node.resource {
            Resource::Network(n) => match live.networks.get(&n.name) {
                None => Action::Create,
                Some(l) => {
                    let mut c = Vec::new();
                    config_changes("config", &n.config, &live_config(l.get("config")), &mut c);
                    description_change(&n.description, l, &mut c);
                    verdict(c)
                }
            },
            Resource::Project(p) => match live.projects.get(&p.name) {
                None => Action::Create,
                Some(l) => {
                    let mut c = Vec::new();
                    config_changes("config", &p.config, &live_config(l.get("config")), &mut c);
                    description_change(&p.description, l, &mut c);
                    let prof = live.profiles.get(&(p.name.clone(), "default".to_string()));
                    device_changes(
                        "default_profile.devices",
                        &p.default_profile_devices,
                        prof.and_then(|x| x.get("devices")),
                        &mut c,
                    );
                    verdict(c)
                }
            },
            Resource::Profile(p) => match live.profiles.get(&(p.project.clone(), p.name.clone())) {
                None => Action::Create,
                Some(l) => {
                    let mut c = Vec::new();
                    config_changes("config", &p.config, &live_config(l.get("config")), &mut c);
                    device_changes("devices", &p.devices, l.get("devices"), &mut c);
                    description_change(&p.description, l, &mut c);
                    verdict(c)
                }
            },
            Resource::Volume(v) => {
                match live
                    .volumes
                    .get(&(v.project.clone(), v.pool.clone(), v.name.clone()))
                {
                    None => Action::Create,
                    Some(l) => {
                        let mut c = Vec::new();
                        config_changes("config", &v.config, &live_config(l.get("config")), &mut c);
                        verdict(c)
                    }
                }
            }
            Resource::Instance(i) => match live.instances.get(&(i.project.clone(), i.name.clone()))
            {
                None => Action::Create,
                Some(l) => {
                    let mut c = Vec::new();
                    config_changes("config", &i.config, &live_config(l.get("config")), &mut c);
                    device_changes("devices", &i.devices, l.get("devices"), &mut c);
                    let profiles: Vec<String> = l
                        .get("profiles")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    if profiles != i.profiles {
                        c.push(Change {
                            key: "profiles".into(),
                            old: Some(profiles.join(", ")),
                            new: Some(i.profiles.join(", ")),
                        });
                    }
                    description_change(&i.description, l, &mut c);
                    let status = l.get("status").and_then(Value::as_str).unwrap_or("");
                    if status != "Running" {
                        c.push(Change {
                            key: "state".into(),
                            old: Some(status.to_string()),
                            new: Some("Running".into()),
                        });
                    }
                    let ltype = l.get("type").and_then(Value::as_str).unwrap_or("container");
                    if ltype != i.instance_type.incus_name() {
                        c.push(Change {
                            key: "type".into(),
                            old: Some(ltype.to_string()),
                            new: Some(i.instance_type.incus_name().to_string()),
                        });
                    }
                    verdict(c)
                }
            },
            Resource::Nftables(t) => match &live.nftables {
                None => Action::NotRun {
                    reason: NFTABLES_NOT_RUN.into(),
                },
                Some(state) => {
                    let text = t.text();
                    match (&state.live_table, &state.last_applied) {
                        (None, _) => Action::Create,
                        (Some(_), Some(last)) if *last == text && state.untouched() => {
                            Action::Unchanged
                        }
                        (Some(_), Some(last)) if *last == text => Action::Update {
                            changes: vec![Change {
                                key: "table".into(),
                                old: Some("changed outside anklume".into()),
                                new: Some("as planned".into()),
                            }],
                        },
                        (Some(_), last) => {
                            let old = crate::nft::rules(last.as_deref().unwrap_or(""));
                            let new = crate::nft::rules(&text);
                            let mut changes: Vec<Change> = old
                                .iter()
                                .filter(|l| !new.contains(l))
                                .map(|l| Change {
                                    key: "rule".into(),
                                    old: Some(l.clone()),
                                    new: None,
                                })
                                .collect();
                            changes.extend(new.iter().filter(|l| !old.contains(l)).map(|l| {
                                Change {
                                    key: "rule".into(),
                                    old: None,
                                    new: Some(l.clone()),
                                }
                            }));
                            if changes.is_empty() {
                                changes.push(Change {
                                    key: "ruleset".into(),
                                    old: Some("(rule order or comments)".into()),
                                    new: Some("(as planned)".into()),
                                });
                            }
                            Action::Update { changes }
                        }
                    }
                }
            },
            Resource::Provision(_) => Action::NotRun {
                reason: PROVISION_NOT_RUN.into(),
            },
        };
        actions.push(action);
    }
    Decisions {
        actions,
        orphans: orphans(plan, live),
    }
}

fn is_managed(v: &Value) -> bool {
    v.get("config")
        .and_then(|c| c.get("user.anklume.managed"))
        .and_then(Value::as_str)
        == Some("true")
}

/// `net-x` or `NNN-net-x`: named like an anklume bridge.
fn bridge_like(name: &str) -> bool {
    name.starts_with("net-")
        || (name.len() > 8
            && name.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && name[3..].starts_with("-net-"))
}

fn orphans(plan: &Plan, live: &Live) -> Vec<Orphan> {
    let mut networks = std::collections::HashSet::new();
    let mut projects = std::collections::HashSet::new();
    let mut profiles = std::collections::HashSet::new();
    let mut instances = std::collections::HashSet::new();
    for n in &plan.nodes {
        match &n.resource {
            Resource::Network(x) => {
                networks.insert(x.name.clone());
            }
            Resource::Project(x) => {
                projects.insert(x.name.clone());
            }
            Resource::Profile(x) => {
                profiles.insert((x.project.clone(), x.name.clone()));
            }
            Resource::Instance(x) => {
                instances.insert((x.project.clone(), x.name.clone()));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (name, v) in &live.networks {
        let managed = v.get("managed").and_then(Value::as_bool) != Some(false);
        if managed && !networks.contains(name) && (is_managed(v) || bridge_like(name)) {
            out.push(Orphan {
                kind: "network",
                project: "default".into(),
                name: name.clone(),
                protected: false,
            });
        }
    }
    for (name, v) in &live.projects {
        if is_managed(v) && !projects.contains(name) {
            out.push(Orphan {
                kind: "project",
                project: name.clone(),
                name: name.clone(),
                protected: false,
            });
        }
    }
    for ((project, name), v) in &live.profiles {
        if is_managed(v) && !profiles.contains(&(project.clone(), name.clone())) {
            out.push(Orphan {
                kind: "profile",
                project: project.clone(),
                name: name.clone(),
                protected: false,
            });
        }
    }
    for ((project, name), v) in &live.instances {
        if is_managed(v) && !instances.contains(&(project.clone(), name.clone())) {
            let protected = v
                .get("config")
                .and_then(|c| c.get("security.protection.delete"))
                .and_then(Value::as_str)
                == Some("true");
            out.push(Orphan {
                kind: "instance",
                project: project.clone(),
                name: name.clone(),
                protected,
            });
        }
    }
    out.sort_by(|a, b| (a.kind, &a.project, &a.name).cmp(&(b.kind, &b.project, &b.name)));
    out
}

/// Checks that must pass before anything changes: local images exist, and
/// no static address of the plan is held by another instance (Incus accepts
/// a duplicate at create time, then refuses to start both).
pub fn preflight(plan: &Plan, live: &Live) -> Result<(), Preflight> {
    let mut problems = Vec::new();
    let mut missing_images: Vec<&str> = Vec::new();
    let mut wanted: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for n in &plan.nodes {
        let Resource::Instance(i) = &n.resource else {
            continue;
        };
        if let ImageSource::Local { alias } = &i.source {
            if !live.aliases.contains(alias) && !missing_images.contains(&alias.as_str()) {
                missing_images.push(alias);
            }
        }
        if let Some(ip) = &i.ip {
            wanted.insert(ip, (&i.project, &i.name));
        }
    }
    for alias in missing_images {
        problems.push(format!(
            "image '{alias}' is not a local image alias in Incus (add it with `incus image import … --alias {alias}`, or use a remote image such as images:debian/13)"
        ));
    }
    let mut live_ips: Vec<(String, &str, &str)> = Vec::new();
    for ((project, name), v) in &live.instances {
        for ip in instance_ips(v) {
            live_ips.push((ip, project, name));
        }
    }
    live_ips.sort();
    for (ip, project, name) in live_ips {
        if let Some((wp, wn)) = wanted.get(ip.as_str()) {
            if (*wp, *wn) != (project, name) {
                problems.push(format!(
                    "static address {ip} of instance '{wn}' (project {wp}) is already used by instance '{name}' (project {project})"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Preflight { problems })
    }
}
