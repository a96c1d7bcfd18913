//! One module per resource kind, each holding everything about its kind:
//! its [`Target`] address, how desired and live state compare (`decide`),
//! how a change is carried out (`apply`), what prior state the journal
//! keeps (`prior`), how it is undone (`undo`) and deleted (`delete`), and
//! which live objects are its orphans (`orphans`).
//!
//! This file is the registry: the only place that matches over every kind.
//! Adding a kind means adding its module and one arm to each function here
//! (the compiler lists the missing arms: the matches are exhaustive).

pub mod common;
pub mod instance;
pub mod network;
pub mod nftables;
pub mod profile;
pub mod project;
pub mod provision;
#[cfg(test)]
pub(crate) mod tests;
pub mod volume;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anklume_plan::{Plan, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::incus::{Api, IncusError};
use crate::journal::Journal;
use crate::live::Live;
pub use crate::model::{Action, Change, Kept, Orphan, StepResult, Undo};
use crate::nft::Nft;

/// What a change is made to, named so that rollback can find it again
/// without the plan: one variant per journaled kind, holding that kind's
/// address. Serialised as `{"type": "<kind>", <address fields>}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A managed bridge (in the default project).
    Network(network::Address),
    /// A project.
    Project(project::Address),
    /// A profile in a project.
    Profile(profile::Address),
    /// A custom storage volume.
    Volume(volume::Address),
    /// An instance.
    Instance(instance::Address),
    /// The host's `inet anklume` nftables table.
    Nftables(nftables::Address),
    /// The provisioning of an instance (its data and recorded fingerprint).
    Provision(provision::Address),
}

impl Target {
    /// Its REST path; `None` for the nftables table, which is not in Incus.
    pub fn path(&self) -> Option<String> {
        Some(match self {
            Target::Network(a) => a.path(),
            Target::Project(a) => a.path(),
            Target::Profile(a) => a.path(),
            Target::Volume(a) => a.path(),
            Target::Instance(a) => a.path(),
            Target::Provision(a) => a.path(),
            Target::Nftables(_) => return None,
        })
    }

    /// Whether it is the nftables table.
    pub fn is_nftables(&self) -> bool {
        matches!(self, Target::Nftables(_))
    }
}

/// Why one node could not be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeError {
    /// Incus's error, with context.
    pub message: String,
    /// For instances: it was created but did not start.
    pub half_created: bool,
}

impl NodeError {
    /// An error that left nothing half-made.
    pub fn new(message: impl Into<String>) -> NodeError {
        NodeError {
            message: message.into(),
            half_created: false,
        }
    }
}

impl From<IncusError> for NodeError {
    fn from(e: IncusError) -> NodeError {
        NodeError::new(e.to_string())
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

/// What carrying out a node needs besides Incus.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The state directory (last applied ruleset, saved previous tables).
    pub state_dir: PathBuf,
    /// The live `inet anklume` table before this apply, saved before the
    /// The host's `inet anklume` table and the state files as apply read
    /// them before this apply: what the nftables node journals as its
    /// prior state, and the table saved before the ruleset replaces it.
    pub nft_before: Option<crate::nft::NftLive>,
    /// The journal every change is recorded in first (none for tests that
    /// exercise the scheduler alone).
    pub journal: Option<Arc<Journal>>,
    /// The host's `nft`.
    pub nft: Arc<dyn Nft>,
    /// Runs Ansible for the provision nodes (none: they do not run).
    pub provisioner: Option<Arc<crate::ansible::Provisioner>>,
}

impl Default for RunContext {
    fn default() -> RunContext {
        RunContext {
            state_dir: PathBuf::new(),
            nft_before: None,
            journal: None,
            nft: crate::nft::system(),
            provisioner: None,
        }
    }
}

/// What undoing a step needs besides Incus.
#[derive(Clone, Debug)]
pub struct UndoContext {
    /// The state directory.
    pub state_dir: PathBuf,
    /// Delete protected instances too.
    pub force: bool,
    /// The bridges the journal names (the nftables step checks which are
    /// left).
    pub networks: Vec<String>,
    /// The host's `nft`.
    pub nft: Arc<dyn Nft>,
}

impl Default for UndoContext {
    fn default() -> UndoContext {
        UndoContext {
            state_dir: PathBuf::new(),
            force: false,
            networks: Vec::new(),
            nft: crate::nft::system(),
        }
    }
}

/// What a node changes, for the journal; `None` for what is not journaled
/// (provisioning).
pub fn target(resource: &Resource) -> Option<Target> {
    Some(match resource {
        Resource::Network(n) => Target::Network(network::address(n)),
        Resource::Project(p) => Target::Project(project::address(p)),
        Resource::Profile(p) => Target::Profile(profile::address(p)),
        Resource::Volume(v) => Target::Volume(volume::address(v)),
        Resource::Instance(i) => Target::Instance(instance::address(i)),
        Resource::Nftables(_) => Target::Nftables(nftables::Address {}),
        Resource::Provision(p) => Target::Provision(provision::address(p)),
    })
}

/// The Incus configuration keys a node sets, each with what it is checked
/// against and, for a device option, the device's name.
pub fn incus_keys(resource: &Resource) -> Vec<(anklume_incus_keys::Scope<'_>, &str, Option<&str>)> {
    use anklume_incus_keys::Scope;
    let (scope, config, devices) = match resource {
        Resource::Project(p) => (Scope::Project, &p.config, &p.default_profile_devices),
        Resource::Profile(p) => (Scope::Instance, &p.config, &p.devices),
        Resource::Instance(i) => (Scope::Instance, &i.config, &i.devices),
        // Incus 6.0 does not describe network or volume keys; nftables
        // and provisioning are not Incus configuration.
        Resource::Network(_)
        | Resource::Volume(_)
        | Resource::Nftables(_)
        | Resource::Provision(_) => return Vec::new(),
    };
    let mut out: Vec<_> = config.keys().map(|k| (scope, k.as_str(), None)).collect();
    for (name, options) in devices {
        let t = options.get("type").map_or("", String::as_str);
        for key in options.keys() {
            out.push((Scope::Device(t), key.as_str(), Some(name.as_str())));
        }
    }
    out
}

/// Compare one node with what Incus (and the host) has. An object anklume
/// did not make that differs only by anklume's `user.anklume.*` marks is
/// adopted rather than updated.
pub fn decide(resource: &Resource, live: &Live) -> Action {
    let action = decide_kind(resource, live);
    let Action::Update { changes } = action else {
        return action;
    };
    let unmarked = live_object(resource, live).is_some_and(|v| !common::is_managed(v));
    if unmarked
        && changes
            .iter()
            .all(|c| c.key.starts_with("config.user.anklume."))
    {
        Action::Adopt { changes }
    } else {
        Action::Update { changes }
    }
}

/// The Incus object a node describes, as read in bulk (`None`: absent, or
/// not an Incus object).
pub fn live_object<'a>(resource: &Resource, live: &'a Live) -> Option<&'a Value> {
    match resource {
        Resource::Network(n) => live.networks.get(&n.name),
        Resource::Project(p) => live.projects.get(&p.name),
        Resource::Profile(p) => live.profiles.get(&(p.project.clone(), p.name.clone())),
        Resource::Volume(v) => {
            live.volumes
                .get(&(v.project.clone(), v.pool.clone(), v.name.clone()))
        }
        Resource::Instance(i) => live.instances.get(&(i.project.clone(), i.name.clone())),
        Resource::Nftables(_) | Resource::Provision(_) => None,
    }
}

fn decide_kind(resource: &Resource, live: &Live) -> Action {
    match resource {
        Resource::Network(n) => network::decide(n, live),
        Resource::Project(p) => project::decide(p, live),
        Resource::Profile(p) => profile::decide(p, live),
        Resource::Volume(v) => volume::decide(v, live),
        Resource::Instance(i) => instance::decide(i, live),
        Resource::Nftables(t) => nftables::decide(t, live),
        Resource::Provision(p) => provision::decide(p, live),
    }
}

/// Carry out a create (`create`) or an update of one node.
pub async fn apply<A: Api>(
    api: &A,
    resource: &Resource,
    create: bool,
    ctx: &RunContext,
) -> Result<(), NodeError> {
    match resource {
        Resource::Network(n) => network::apply(api, n, create).await,
        Resource::Project(p) => project::apply(api, p, create).await,
        Resource::Profile(p) => profile::apply(api, p, create).await,
        Resource::Volume(v) => volume::apply(api, v, create).await,
        Resource::Instance(i) => instance::apply(api, i, create).await,
        Resource::Nftables(t) => {
            let previous = ctx
                .nft_before
                .as_ref()
                .and_then(|b| b.live_table.as_deref());
            nftables::apply(&ctx.nft, t, &ctx.state_dir, previous).await
        }
        Resource::Provision(p) => provision::apply(api, p, ctx).await,
    }
}

/// The state of what `target` names, as rollback restores it; `None` when
/// it does not exist. The nftables table's is kept for a create too.
pub async fn prior<A: Api>(
    api: &A,
    target: &Target,
    ctx: &RunContext,
) -> Result<Option<Value>, IncusError> {
    match target {
        Target::Network(a) => network::prior(api, a).await,
        Target::Project(a) => project::prior(api, a).await,
        Target::Profile(a) => profile::prior(api, a).await,
        Target::Volume(a) => volume::prior(api, a).await,
        Target::Instance(a) => instance::prior(api, a).await,
        Target::Nftables(_) => Ok(Some(nftables::prior(ctx.nft_before.as_ref()))),
        Target::Provision(a) => provision::prior(api, a).await,
    }
}

/// Whether the journal keeps the prior state of a create too (not only of
/// an update).
pub fn prior_on_create(target: &Target) -> bool {
    matches!(target, Target::Nftables(_) | Target::Provision(_))
}

/// Undo one step.
pub async fn undo<A: Api>(
    api: &A,
    target: &Target,
    undo: &Undo,
    ctx: &UndoContext,
) -> Result<StepResult, IncusError> {
    match target {
        Target::Network(a) => network::undo(api, a, undo).await,
        Target::Project(a) => project::undo(api, a, undo).await,
        Target::Profile(a) => profile::undo(api, a, undo).await,
        Target::Volume(a) => volume::undo(api, a, undo).await,
        Target::Instance(a) => instance::undo(api, a, undo, ctx.force).await,
        Target::Nftables(_) => {
            nftables::undo(api, &ctx.nft, undo, &ctx.state_dir, &ctx.networks).await
        }
        Target::Provision(a) => provision::undo(api, a, undo).await,
    }
}

/// Delete what `target` names (protected instances only with `force`).
/// The nftables table is not deleted this way: its undo decides.
pub async fn delete<A: Api>(
    api: &A,
    target: &Target,
    force: bool,
) -> Result<StepResult, IncusError> {
    match target {
        Target::Network(a) => network::delete(api, a).await,
        Target::Project(a) => project::delete(api, a).await,
        Target::Profile(a) => profile::delete(api, a).await,
        Target::Volume(a) => volume::delete(api, a).await,
        Target::Instance(a) => instance::delete(api, a, force).await,
        Target::Nftables(_) => Ok(StepResult::Skipped {
            why: "the isolation table is removed only by rollback, which checks what it protects"
                .into(),
        }),
        Target::Provision(_) => Ok(StepResult::Skipped {
            why: "provisioning goes with its instance".into(),
        }),
    }
}

/// The objects anklume manages that Incus has and the plan lacks, sorted.
pub fn orphans(plan: &Plan, live: &Live) -> Vec<Orphan> {
    let declared: BTreeSet<Target> = plan
        .nodes
        .iter()
        .filter_map(|n| target(&n.resource))
        .collect();
    let mut out = network::orphans(live, &declared);
    out.extend(project::orphans(live, &declared));
    out.extend(profile::orphans(live, &declared));
    out.extend(instance::orphans(live, &declared));
    out.sort_by(|a, b| (a.kind, &a.project, &a.name).cmp(&(b.kind, &b.project, &b.name)));
    out
}
