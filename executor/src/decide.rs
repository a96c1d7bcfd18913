//! Deciding what to do: for each plan node, create, update (with the changed
//! keys), unchanged, or not run; plus the orphans anklume manages that the
//! plan lacks, and the checks that must pass before anything changes. Only
//! keys the plan declares are compared, so keys Incus adds (`volatile.*`,
//! `image.*`, defaults) are never drift. Each kind's comparison is in its
//! module under [`crate::kind`].

use std::collections::BTreeMap;

use anklume_plan::{ImageSource, Plan, Resource};
use serde::Serialize;

use crate::kind::instance::Address as InstanceAddress;
use crate::live::{instance_ips, Live};

pub use crate::model::{Action, Change, Orphan};

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

impl std::fmt::Display for Preflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for Preflight {}

/// Compare the plan with what Incus has.
pub fn decide(plan: &Plan, live: &Live) -> Decisions {
    Decisions {
        actions: plan
            .nodes
            .iter()
            .map(|n| crate::kind::decide(&n.resource, live))
            .collect(),
        orphans: crate::kind::orphans(plan, live),
    }
}

impl Decisions {
    /// Creates and updates: what a run changes.
    pub fn changes(&self) -> usize {
        self.actions.iter().filter(|a| a.is_change()).count()
    }

    /// The instances a run changes that exist already: what pre-apply
    /// snapshots cover.
    /// Those that provisioning is about to change count too (unless the
    /// apply creates them: nothing to keep).
    pub fn touched_instances(&self, plan: &Plan) -> Vec<InstanceAddress> {
        let created: std::collections::BTreeSet<InstanceAddress> = plan
            .nodes
            .iter()
            .zip(&self.actions)
            .filter_map(|(node, action)| match (&node.resource, action) {
                (Resource::Instance(i), Action::Create) => Some(crate::kind::instance::address(i)),
                _ => None,
            })
            .collect();
        let mut out: Vec<InstanceAddress> = Vec::new();
        for (node, action) in plan.nodes.iter().zip(&self.actions) {
            let changed = action.is_change();
            let a = match &node.resource {
                Resource::Instance(i) if action.is_update() => crate::kind::instance::address(i),
                Resource::Provision(p) if changed => InstanceAddress {
                    project: p.project.clone(),
                    name: p.instance.clone(),
                },
                _ => continue,
            };
            if !created.contains(&a) && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// ` (infra.yml:12:7)`: where a node comes from, for messages about it
/// (empty when the plan does not know).
pub fn origin_suffix(node: &anklume_plan::Node) -> String {
    node.origin
        .as_deref()
        .map_or_else(String::new, |o| format!(" ({o})"))
}

/// Checks that must pass before anything changes: every configuration key
/// and device option a created or updated node sets is one the server knows
/// (when it was read: see [`Live::keys`]), local images exist, and no static
/// address of the plan is held by another instance (Incus accepts a
/// duplicate at create time, then refuses to start both), unless apply
/// frees it first: `moves`, from [`address_moves`] on the same actions (a
/// holder left out by `--limit` is not freed, so it clashes).
pub fn preflight(
    plan: &Plan,
    live: &Live,
    actions: &[Action],
    moves: &[(usize, Vec<String>)],
) -> Result<(), Preflight> {
    let mut problems = Vec::new();
    if let Some(keys) = &live.keys {
        problems.extend(key_problems(plan, actions, keys));
    }
    let mut missing_images: Vec<&str> = Vec::new();
    let wanted = planned_addresses(plan);
    // The holders apply frees first: their addresses are moving away.
    let freed: std::collections::BTreeSet<(&str, &str)> = moves
        .iter()
        .filter_map(|(idx, _)| match &plan.nodes[*idx].resource {
            Resource::Instance(i) => Some((i.project.as_str(), i.name.as_str())),
            _ => None,
        })
        .collect();
    for n in &plan.nodes {
        let Resource::Instance(i) = &n.resource else {
            continue;
        };
        if let ImageSource::Local { alias } = &i.source {
            if !live.aliases.contains(alias) && !missing_images.contains(&alias.as_str()) {
                missing_images.push(alias);
            }
        }
    }
    for alias in missing_images {
        problems.push(format!(
            "image '{alias}' is not a local image alias in Incus (add it with `incus image import … --alias {alias}`, or use a remote image such as images:debian/13)"
        ));
    }
    let origins: BTreeMap<(&str, &str), String> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.resource {
            Resource::Instance(i) => {
                Some(((i.project.as_str(), i.name.as_str()), origin_suffix(n)))
            }
            _ => None,
        })
        .collect();
    let mut live_ips: Vec<(String, &str, &str)> = Vec::new();
    for ((project, name), v) in &live.instances {
        for ip in instance_ips(v) {
            live_ips.push((ip, project, name));
        }
    }
    live_ips.sort();
    for (ip, project, name) in live_ips {
        if let Some((wp, wn)) = wanted.get(ip.as_str()) {
            let moving_away = freed.contains(&(project, name));
            if (*wp, *wn) != (project, name) && !moving_away {
                let at = origins.get(&(*wp, *wn)).map_or("", String::as_str);
                problems.push(format!(
                    "static address {ip} of instance '{wn}' (project {wp}){at} is already used by instance '{name}' (project {project})"
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

/// Keys of the plan the server does not know, one message each, naming
/// the node and where it comes from.
fn key_problems(
    plan: &Plan,
    actions: &[Action],
    keys: &anklume_incus_keys::Catalogue,
) -> Vec<String> {
    use anklume_incus_keys::Verdict;
    let server = keys
        .server_version
        .as_deref()
        .map_or_else(|| "this Incus server".to_string(), |v| format!("Incus {v}"));
    let mut out = Vec::new();
    for (n, action) in plan.nodes.iter().zip(actions) {
        if !action.is_change() {
            continue;
        }
        for (scope, key, device) in crate::kind::incus_keys(&n.resource) {
            let Verdict::Unknown { suggestion } = keys.check(scope, key) else {
                continue;
            };
            let what = match device {
                Some(d) => format!("option '{key}' of device '{d}'"),
                None => format!("config key '{key}'"),
            };
            let hint = suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"));
            out.push(format!(
                "{}{}: {what} is unknown to {server}{hint}",
                n.id,
                origin_suffix(n)
            ));
        }
    }
    out
}

/// The instances apply must free an address of before anything else
/// runs: existing instances of the plan that hold, on a NIC the plan
/// declares, an address the plan gives another instance (a machine inserted
/// above others shifts their automatic addresses; two machines can swap).
/// Freeing them all first lets every update and create then set its new
/// address, whatever the order: shifts, chains and swaps alike. Returns,
/// per plan node index, the NIC names to free.
pub fn address_moves(plan: &Plan, live: &Live, actions: &[Action]) -> Vec<(usize, Vec<String>)> {
    let owner = planned_addresses(plan);
    let mut out = Vec::new();
    for (idx, (n, action)) in plan.nodes.iter().zip(actions).enumerate() {
        let (Resource::Instance(i), Action::Update { .. }) = (&n.resource, action) else {
            continue;
        };
        let Some(cur) = live.instances.get(&(i.project.clone(), i.name.clone())) else {
            continue;
        };
        let nics: Vec<String> = crate::kind::instance::nic_addresses(cur)
            .into_iter()
            .filter(|(name, ip)| {
                let Some(declared) = i.devices.get(*name) else {
                    return false;
                };
                declared.get("ipv4.address").map(String::as_str) != Some(*ip)
                    && owner
                        .get(ip)
                        .is_some_and(|o| *o != (i.project.as_str(), i.name.as_str()))
            })
            .map(|(name, _)| name.to_string())
            .collect();
        if !nics.is_empty() {
            out.push((idx, nics));
        }
    }
    out
}

/// Each static address of the plan, and the instance it is planned for
/// (project, name).
fn planned_addresses(plan: &Plan) -> BTreeMap<&str, (&str, &str)> {
    plan.nodes
        .iter()
        .filter_map(|n| match &n.resource {
            Resource::Instance(i) => {
                Some((i.ip.as_deref()?, (i.project.as_str(), i.name.as_str())))
            }
            _ => None,
        })
        .collect()
}
