//! An extra profile in a project (`/1.0/profiles/<name>?project=<p>`). A
//! project's `default` profile belongs to [`super::project`].

use std::collections::BTreeSet;

use anklume_plan::Profile;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    config_changes, config_json, delete_if_exists, description_change, device_changes,
    devices_json, domain_of, is_managed, patch, read_prior, undo_fields, verdict,
};
use super::{Action, NodeError, Orphan, StepResult, Target, Undo};
use crate::incus::{enc, project_query, Api, IncusError};
use crate::live::Live;

/// Where it is: project and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The project.
    pub project: String,
    /// The profile's name.
    pub name: String,
}

impl Address {
    /// Its REST path.
    pub fn path(&self) -> String {
        format!(
            "/1.0/profiles/{}?{}",
            enc(&self.name),
            project_query(&self.project)
        )
    }
}

/// The fields the journal keeps and rollback puts back (a project's
/// `default` profile's too).
pub const FIELDS: &[&str] = &["config", "description", "devices"];

/// Its address.
pub fn address(p: &Profile) -> Address {
    Address {
        project: p.project.clone(),
        name: p.name.clone(),
    }
}

/// Compare with Incus: the declared keys and devices.
pub fn decide(p: &Profile, live: &Live) -> Action {
    match live.profiles.get(&(p.project.clone(), p.name.clone())) {
        None => Action::Create,
        Some(l) => {
            let mut c = Vec::new();
            config_changes("config", &p.config, l.get("config"), &mut c);
            device_changes("devices", &p.devices, l.get("devices"), &mut c);
            description_change(&p.description, l, &mut c);
            verdict(c)
        }
    }
}

/// Create it, or bring its declared keys and devices back.
pub async fn apply<A: Api>(api: &A, p: &Profile, create: bool) -> Result<(), NodeError> {
    let body = json!({"name": p.name, "description": p.description, "config": config_json(&p.config), "devices": devices_json(&p.devices)});
    if create {
        api.post(
            &format!("/1.0/profiles?{}", project_query(&p.project)),
            &body,
        )
        .await?;
    } else {
        let body = json!({"description": p.description, "config": config_json(&p.config), "devices": devices_json(&p.devices)});
        patch(api, &address(p).path(), &body).await?;
    }
    Ok(())
}

/// What the journal keeps before an update.
pub async fn prior<A: Api>(api: &A, a: &Address) -> Result<Option<Value>, IncusError> {
    read_prior(api, &a.path(), FIELDS).await
}

/// Undo: delete what the apply created, put back what it updated.
pub async fn undo<A: Api>(api: &A, a: &Address, undo: &Undo) -> Result<StepResult, IncusError> {
    undo_fields(api, &a.path(), undo, FIELDS).await
}

/// Delete it (Incus refuses while an instance uses it).
pub async fn delete<A: Api>(api: &A, a: &Address) -> Result<StepResult, IncusError> {
    delete_if_exists(api, &a.path()).await
}

/// Profiles anklume marked that the plan lacks.
pub fn orphans(live: &Live, declared: &BTreeSet<Target>) -> Vec<Orphan> {
    live.profiles
        .iter()
        .filter(|((project, name), v)| {
            is_managed(v)
                && !declared.contains(&Target::Profile(Address {
                    project: project.clone(),
                    name: name.clone(),
                }))
        })
        .map(|((project, name), v)| Orphan {
            kind: "profile",
            project: project.clone(),
            name: name.clone(),
            protected: false,
            domain: domain_of(v),
        })
        .collect()
}
