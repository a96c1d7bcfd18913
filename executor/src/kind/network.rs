//! A managed bridge, in the default project (`/1.0/networks/<name>`).

use std::collections::BTreeSet;
use std::time::Duration;

use anklume_plan::Network;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    config_changes, config_json, delete_if_exists, description_change, is_managed, patch,
    read_prior, restore_fields, verdict,
};
use super::{Action, NodeError, Orphan, StepResult, Target, Undo};
use crate::incus::{enc, Api, IncusError};
use crate::live::Live;

/// Where it is: its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The bridge's name.
    pub name: String,
}

impl Address {
    /// Its REST path.
    pub fn path(&self) -> String {
        format!("/1.0/networks/{}", enc(&self.name))
    }
}

/// The fields the journal keeps and rollback puts back.
pub const FIELDS: &[&str] = &["config", "description"];

/// Its address.
pub fn address(n: &Network) -> Address {
    Address {
        name: n.name.clone(),
    }
}

/// Compare with Incus: only the declared keys count.
pub fn decide(n: &Network, live: &Live) -> Action {
    match live.networks.get(&n.name) {
        None => Action::Create,
        Some(l) => {
            let mut c = Vec::new();
            config_changes("config", &n.config, l.get("config"), &mut c);
            description_change(&n.description, l, &mut c);
            verdict(c)
        }
    }
}

/// Create it, or bring its declared keys back.
pub async fn apply<A: Api>(api: &A, n: &Network, create: bool) -> Result<(), NodeError> {
    if create {
        let body = json!({"name": n.name, "type": "bridge", "description": n.description, "config": config_json(&n.config)});
        create_bridge(api, &n.name, &body).await?;
    } else {
        let body = json!({"config": config_json(&n.config), "description": n.description});
        patch(api, &address(n).path(), &body).await?;
    }
    Ok(())
}

/// Create a bridge, retrying Incus's transient bridge-setup failures.
///
/// Incus 6.0 lists the host's links while it sets a new bridge up and then
/// queries each one; a veth that vanishes in between (an instance starting or
/// stopping anywhere on the host) fails the whole create with "Device ... does
/// not exist". Incus reverts the half-made network, so the create is retried
/// (after removing any leftover) a few times before it is reported.
async fn create_bridge<A: Api>(api: &A, name: &str, body: &Value) -> Result<(), IncusError> {
    let mut attempt = 0u32;
    loop {
        match api.post("/1.0/networks", body).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 3 && is_transient_link_race(&e) => {
                attempt += 1;
                let path = format!("/1.0/networks/{}", enc(name));
                if api.get_opt(&path).await?.is_some() {
                    api.delete(&path).await?;
                }
                tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error Incus gives when a link vanished while it set a bridge up.
pub fn is_transient_link_race(e: &IncusError) -> bool {
    let m = e.to_string();
    m.contains("does not exist") && (m.contains("link show") || m.contains("children interfaces"))
}

/// What the journal keeps before an update.
pub async fn prior<A: Api>(api: &A, a: &Address) -> Result<Option<Value>, IncusError> {
    read_prior(api, &a.path(), FIELDS).await
}

/// Undo: delete what the apply created, put back what it updated.
pub async fn undo<A: Api>(api: &A, a: &Address, undo: &Undo) -> Result<StepResult, IncusError> {
    match undo {
        Undo::Delete => delete(api, a).await,
        Undo::Restore { prior, .. } => restore_fields(api, &a.path(), prior.as_ref(), FIELDS).await,
    }
}

/// Delete it (Incus refuses while something uses it).
pub async fn delete<A: Api>(api: &A, a: &Address) -> Result<StepResult, IncusError> {
    delete_if_exists(api, &a.path()).await
}

/// `net-x` or `NNN-net-x`: named like an anklume bridge.
fn bridge_like(name: &str) -> bool {
    name.starts_with("net-")
        || (name.len() > 8
            && name.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && name[3..].starts_with("-net-"))
}

/// Managed bridges Incus has that the plan lacks: marked by anklume, or
/// named like its bridges (v1 did not mark them).
pub fn orphans(live: &Live, declared: &BTreeSet<Target>) -> Vec<Orphan> {
    live.networks
        .iter()
        .filter(|(name, v)| {
            let managed = v.get("managed").and_then(Value::as_bool) != Some(false);
            managed
                && !declared.contains(&Target::Network(Address {
                    name: (*name).clone(),
                }))
                && (is_managed(v) || bridge_like(name))
        })
        .map(|(name, _)| Orphan {
            kind: "network",
            project: "default".into(),
            name: name.clone(),
            protected: false,
        })
        .collect()
}
