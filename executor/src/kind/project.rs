//! A project and its `default` profile (`/1.0/projects/<name>`).

use std::collections::BTreeSet;

use anklume_plan::Project;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::common::{
    config_changes, config_json, delete_if_exists, description_change, device_changes,
    devices_json, domain_of, is_managed, patch, pick, put_back, restored, verdict,
};
use super::{Action, NodeError, Orphan, StepResult, Target, Undo};
use crate::incus::{enc, project_query, Api, IncusError};
use crate::live::Live;

/// Where it is: its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The project's name.
    pub name: String,
}

impl Address {
    /// Its REST path.
    pub fn path(&self) -> String {
        format!("/1.0/projects/{}", enc(&self.name))
    }

    /// The REST path of its `default` profile.
    pub fn default_profile(&self) -> String {
        format!("/1.0/profiles/default?{}", project_query(&self.name))
    }
}

/// The fields the journal keeps and rollback puts back; the `default`
/// profile's are kept too, as `default_profile` ([`super::profile::FIELDS`]).
pub const FIELDS: &[&str] = &["config", "description"];

/// Its address.
pub fn address(p: &Project) -> Address {
    Address {
        name: p.name.clone(),
    }
}

/// Compare with Incus: the declared keys, and the devices of its `default`
/// profile.
pub fn decide(p: &Project, live: &Live) -> Action {
    match live.projects.get(&p.name) {
        None => Action::Create,
        Some(l) => {
            let mut c = Vec::new();
            config_changes(
                "config",
                &after_creation(&p.config),
                l.get("config"),
                &mut c,
            );
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
    }
}

/// The keys compared and set once the project exists: all but its
/// `features.*`. Those are set when anklume creates it; Incus refuses to
/// change them on a project that holds anything (measured on 6.0.4:
/// "cannot be disabled on non-empty projects"), so a project made by hand
/// with Incus's defaults (`features.images=true`…) is adopted as it is.
pub fn after_creation(config: &anklume_plan::Config) -> anklume_plan::Config {
    config
        .iter()
        .filter(|(k, _)| !k.starts_with("features."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Create it and give its `default` profile the declared devices, or bring
/// both back to the declared keys.
pub async fn apply<A: Api>(api: &A, p: &Project, create: bool) -> Result<(), NodeError> {
    let a = address(p);
    let devices = json!({"devices": devices_json(&p.default_profile_devices)});
    if create {
        let body =
            json!({"name": p.name, "description": p.description, "config": config_json(&p.config)});
        api.post("/1.0/projects", &body).await?;
        patch(api, &a.default_profile(), &devices).await?;
        return Ok(());
    }
    // Never PATCH a project's config (Incus replaces it all): GET, merge,
    // PUT with If-Match. Whether anything differs is read as `decide`
    // reads it.
    let cur = api.get(&a.path()).await?;
    let mut c = Vec::new();
    let declared = after_creation(&p.config);
    config_changes("config", &declared, cur.metadata.get("config"), &mut c);
    description_change(&p.description, &cur.metadata, &mut c);
    if !c.is_empty() {
        let mut config: Map<String, Value> = cur
            .metadata
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &declared {
            config.insert(k.clone(), Value::String(v.clone()));
        }
        let body = json!({"config": config, "description": p.description});
        api.put(&a.path(), &body, cur.etag.as_deref()).await?;
    }
    let prof = api.get(&a.default_profile()).await?;
    let mut c = Vec::new();
    device_changes(
        "devices",
        &p.default_profile_devices,
        prof.metadata.get("devices"),
        &mut c,
    );
    if !c.is_empty() {
        api.patch(&a.default_profile(), &devices, prof.etag.as_deref())
            .await?;
    }
    Ok(())
}

/// What the journal keeps before an update: its fields and its `default`
/// profile's.
pub async fn prior<A: Api>(api: &A, a: &Address) -> Result<Option<Value>, IncusError> {
    let Some(cur) = api.get_opt(&a.path()).await? else {
        return Ok(None);
    };
    let mut v = pick(&cur.metadata, FIELDS);
    let prof = api.get_opt(&a.default_profile()).await?;
    v["default_profile"] = prof.map_or(Value::Null, |r| pick(&r.metadata, super::profile::FIELDS));
    Ok(Some(v))
}

/// Undo: delete what the apply created (Incus refuses while it holds
/// anything), put back what it updated, `default` profile included.
pub async fn undo<A: Api>(api: &A, a: &Address, undo: &Undo) -> Result<StepResult, IncusError> {
    match undo {
        Undo::Delete => delete(api, a).await,
        Undo::Restore { prior: None, .. } => Ok(StepResult::Skipped {
            why: "no prior state in the journal".into(),
        }),
        Undo::Recreate { prior, .. } => {
            let r = super::common::recreate_fields(
                api,
                &a.path(),
                "/1.0/projects",
                &a.name,
                prior.as_ref(),
                FIELDS,
                json!({}),
            )
            .await?;
            if let (StepResult::Restored { .. }, Some(p)) = (
                &r,
                prior
                    .as_ref()
                    .and_then(|p| p.get("default_profile"))
                    .filter(|p| !p.is_null()),
            ) {
                put_back(api, &a.default_profile(), p, super::profile::FIELDS).await?;
            }
            Ok(r)
        }
        Undo::Restore {
            prior: Some(prior), ..
        } => {
            let wrote = put_back(api, &a.path(), prior, FIELDS).await?;
            let profile = match prior.get("default_profile") {
                Some(p) if !p.is_null() => {
                    put_back(api, &a.default_profile(), p, super::profile::FIELDS).await?
                }
                _ => false,
            };
            Ok(restored(wrote || profile))
        }
    }
}

/// Delete it.
pub async fn delete<A: Api>(api: &A, a: &Address) -> Result<StepResult, IncusError> {
    delete_if_exists(api, &a.path()).await
}

/// Projects anklume marked that the plan lacks.
pub fn orphans(live: &Live, declared: &BTreeSet<Target>) -> Vec<Orphan> {
    live.projects
        .iter()
        .filter(|(name, v)| {
            is_managed(v)
                && !declared.contains(&Target::Project(Address {
                    name: (*name).clone(),
                }))
        })
        .map(|(name, v)| Orphan {
            kind: "project",
            project: name.clone(),
            name: name.clone(),
            protected: false,
            domain: domain_of(v),
        })
        .collect()
}
