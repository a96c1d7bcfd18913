//! Ansible provisioning of one instance. What it depends on is digested in
//! the plan (`Provision::fingerprint`); after a successful run the instance
//! records it in `user.anklume.provisioned`, so an instance whose recorded
//! fingerprint matches is provisioned already and no Ansible runs for it.
//! Running it goes through [`crate::ansible::Provisioner`], which batches
//! the hosts of one apply into one `ansible-playbook`.

use anklume_plan::Provision;
use serde_json::json;

use super::common::{keeping_description, patch, str_of};
use super::{Action, Change, NodeError, RunContext, StepResult, Undo};
use crate::incus::{enc, project_query, Api, IncusError};
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
    let outcome = provisioner.run(&p.host, &p.context).await;
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

/// Where it is: the instance it provisions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The project.
    pub project: String,
    /// The instance.
    pub instance: String,
}

impl Address {
    /// The REST path of its instance.
    pub fn path(&self) -> String {
        format!(
            "/1.0/instances/{}?{}",
            enc(&self.instance),
            project_query(&self.project)
        )
    }
}

/// Its address.
pub fn address(p: &Provision) -> Address {
    Address {
        project: p.project.clone(),
        instance: p.instance.clone(),
    }
}

/// What the journal keeps: the fingerprint the instance recorded before
/// (null: none, or no instance yet).
pub async fn prior<A: Api>(api: &A, a: &Address) -> Result<Option<serde_json::Value>, IncusError> {
    let recorded = api.get_opt(&a.path()).await?.and_then(|r| {
        r.metadata
            .get("config")
            .and_then(|c| c.get(PROVISIONED))
            .cloned()
    });
    Ok(Some(json!({ "provisioned": recorded })))
}

/// Undo: restore the instance's pre-apply snapshot (its data as before
/// provisioning; none for an instance the apply created), then the
/// fingerprint it recorded before, so the next apply provisions it again.
pub async fn undo<A: Api>(api: &A, a: &Address, undo: &Undo) -> Result<StepResult, IncusError> {
    let Undo::Restore { prior, snapshot } = undo else {
        return Ok(StepResult::Skipped {
            why: "provisioning is undone by restoring, never by deleting".into(),
        });
    };
    let Some(cur) = api.get_opt(&a.path()).await? else {
        return Ok(StepResult::AlreadyDone {
            detail: "the instance is gone".into(),
        });
    };
    let mut done = Vec::new();
    if let Some(snap) = snapshot {
        let i = crate::snapshot::InstanceRef {
            project: a.project.clone(),
            name: a.instance.clone(),
        };
        if crate::snapshot::exists(api, &i, snap).await? {
            crate::snapshot::restore(api, &i, snap).await?;
            done.push(format!("snapshot {snap} restored"));
        } else {
            return Ok(StepResult::Skipped {
                why: format!("snapshot {snap} is gone (cleaned up?): data not restored"),
            });
        }
    }
    let want = prior
        .as_ref()
        .and_then(|p| p.get("provisioned"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let cur = if done.is_empty() {
        cur
    } else {
        api.get(&a.path()).await?
    };
    let now = cur
        .metadata
        .get("config")
        .map(|c| str_of(c, PROVISIONED).to_string())
        .unwrap_or_default();
    if now != want {
        // An empty value removes the key.
        api.patch(
            &a.path(),
            &keeping_description(&json!({"config": {PROVISIONED: want}}), &cur.metadata),
            cur.etag.as_deref(),
        )
        .await?;
        done.push("provisioning fingerprint as before".into());
    }
    Ok(if done.is_empty() {
        StepResult::AlreadyDone {
            detail: "as before the apply".into(),
        }
    } else {
        StepResult::Restored {
            detail: done.join("; "),
        }
    })
}
