//! A custom storage volume
//! (`/1.0/storage-pools/<pool>/volumes/custom/<name>?project=<p>`).

use anklume_plan::Volume;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    config_changes, config_json, delete_if_exists, patch, read_prior, undo_fields, verdict,
};
use super::{Action, NodeError, StepResult, Undo};
use crate::incus::{enc, project_query, Api, IncusError};
use crate::live::Live;

/// Where it is: project, pool and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The project.
    pub project: String,
    /// The storage pool.
    pub pool: String,
    /// The volume's name.
    pub name: String,
}

impl Address {
    fn collection(&self) -> String {
        format!("/1.0/storage-pools/{}/volumes/custom", enc(&self.pool))
    }

    /// Its REST path.
    pub fn path(&self) -> String {
        format!(
            "{}/{}?{}",
            self.collection(),
            enc(&self.name),
            project_query(&self.project)
        )
    }
}

/// The fields the journal keeps and rollback puts back.
pub const FIELDS: &[&str] = &["config", "description"];

/// Its address.
pub fn address(v: &Volume) -> Address {
    Address {
        project: v.project.clone(),
        pool: v.pool.clone(),
        name: v.name.clone(),
    }
}

/// Compare with Incus: the declared keys.
pub fn decide(v: &Volume, live: &Live) -> Action {
    match live
        .volumes
        .get(&(v.project.clone(), v.pool.clone(), v.name.clone()))
    {
        None => Action::Create,
        Some(l) => {
            let mut c = Vec::new();
            config_changes("config", &v.config, l.get("config"), &mut c);
            verdict(c)
        }
    }
}

/// Create it, or bring its declared keys back.
pub async fn apply<A: Api>(api: &A, v: &Volume, create: bool) -> Result<(), NodeError> {
    let a = address(v);
    if create {
        let body =
            json!({"name": v.name, "content_type": "filesystem", "config": config_json(&v.config)});
        api.post(
            &format!("{}?{}", a.collection(), project_query(&v.project)),
            &body,
        )
        .await?;
    } else {
        patch(api, &a.path(), &json!({"config": config_json(&v.config)})).await?;
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

/// Delete it (its data goes with it; Incus refuses while it is attached).
pub async fn delete<A: Api>(api: &A, a: &Address) -> Result<StepResult, IncusError> {
    delete_if_exists(api, &a.path()).await
}
