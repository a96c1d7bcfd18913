//! Ansible provisioning of one instance. What it depends on is digested in
//! the plan (`Provision::fingerprint`); after a successful run the instance
//! records it in `user.anklume.provisioned`, so an instance whose recorded
//! fingerprint matches is provisioned already and no Ansible runs for it.
//! Running it goes through [`crate::ansible::Provisioner`], which batches
//! the hosts of one apply into one `ansible-playbook`.

use anklume_plan::Provision;
use serde_json::json;

use super::common::{patch, str_of};
use super::{Action, Change, NodeError, RunContext};
use crate::incus::{enc, project_query, Api};
use crate::live::Live;

/// The instance key that records the fingerprint of its last successful
/// provisioning.
pub const PROVISIONED: &str = "user.anklume.provisioned";

/// Why it cannot be decided: the plan was made without the Ansible tree.
pub const NO_FINGERPRINT: &str =
    "the plan has no provisioning fingerprint (made without the Ansible tree: `anklume plan --tree DIR`)";

/// Whether it needs to run: not when the instance records this plan's
/// fingerprint; otherwise the change is the fingerprint (none recorded
/// yet, or another one).
pub fn needed(p: &Provision, live: &Live) -> Option<Change> {
    let recorded = live
        .instances
        .get(&(p.project.clone(), p.instance.clone()))
        .and_then(|i| i.get("config"))
        .map(|c| str_of(c, PROVISIONED).to_string())
        .filter(|s| !s.is_empty());
    (recorded.as_deref() != Some(p.fingerprint.as_str())).then(|| Change {
        key: format!("config.{PROVISIONED}"),
        old: recorded,
        new: Some(p.fingerprint.clone()),
    })
}

/// Run it when the instance does not record this fingerprint (create: it
/// never was provisioned; update: with other inputs), unless provisioning
/// is off for this apply.
pub fn decide(p: &Provision, live: &Live) -> Action {
    if p.fingerprint.is_empty() {
        return Action::NotRun {
            reason: NO_FINGERPRINT.into(),
        };
    }
    let Some(change) = needed(p, live) else {
        return Action::Unchanged;
    };
    if let Some(why) = &live.provisioning_off {
        return Action::NotRun {
            reason: format!("provisioning does not run: {why}"),
        };
    }
    if change.old.is_none() {
        Action::Create
    } else {
        Action::Update {
            changes: vec![change],
        }
    }
}

/// Run the playbook for this host (in the apply's batch), then record the
/// fingerprint on the instance.
pub async fn apply<A: Api>(api: &A, p: &Provision, ctx: &RunContext) -> Result<(), NodeError> {
    let Some(provisioner) = &ctx.provisioner else {
        return Err(NodeError::new("internal error: no provisioner"));
    };
    let outcome = provisioner.run(&p.host).await;
    if let Some(e) = outcome.error {
        return Err(NodeError::new(format!(
            "{e}; its output is in {}",
            outcome.log.display()
        )));
    }
    let path = format!(
        "/1.0/instances/{}?{}",
        enc(&p.instance),
        project_query(&p.project)
    );
    patch(api, &path, &json!({"config": {PROVISIONED: p.fingerprint}})).await?;
    Ok(())
}
