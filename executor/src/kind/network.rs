//! A managed bridge, in the default project (`/1.0/networks/<name>`).

use std::collections::BTreeSet;
use std::time::Duration;

use anklume_plan::Network;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    config_changes, config_json, delete_if_exists, description_change, domain_of, is_managed,
    patch, read_prior, undo_fields, verdict,
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

/// Create it, or bring its declared keys back. Both are retried on
/// Incus's transient bridge-setup failure ([`is_transient_link_race`]).
pub async fn apply<A: Api>(api: &A, n: &Network, create: bool) -> Result<(), NodeError> {
    if create {
        let body = json!({"name": n.name, "type": "bridge", "description": n.description, "config": config_json(&n.config)});
        create_bridge(api, &address(n), &body).await?;
    } else {
        let body = json!({"config": config_json(&n.config), "description": n.description});
        let path = address(n).path();
        retry_link_race(|| patch(api, &path, &body)).await?;
    }
    Ok(())
}

/// Attempts of one bridge operation before its link-race failure is
/// reported.
const ATTEMPTS: u32 = 4;

/// Run `op` again (up to [`ATTEMPTS`] times, backing off) while it fails
/// with Incus's link race.
///
/// Incus 6.0 lists the host's links while it sets a bridge up (or tears one
/// down) and then queries each one; a veth that vanishes in between (an
/// instance starting or stopping anywhere on the host) fails the whole
/// operation with "Device ... does not exist", and Incus reverts it. Bridges
/// are set up while other domains' instances start (nothing orders them:
/// an instance depends only on its own domain's bridge), so the race is
/// expected: measured at about 4.5% of creates during a from-scratch apply
/// of the 3x4 demo, and 20% under a constant restart loop; every failure
/// was this one, and the network was always gone after it.
async fn retry_link_race<T, F, Fut>(mut op: F) -> Result<T, IncusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, IncusError>>,
{
    let mut attempt = 1u32;
    loop {
        match op().await {
            Err(e) if attempt < ATTEMPTS && is_transient_link_race(&e) => {
                tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Create a bridge, retrying the link race; a leftover of a failed attempt
/// (Incus reverts it, but a revert can race too) is deleted first, with the
/// same retry.
async fn create_bridge<A: Api>(api: &A, a: &Address, body: &Value) -> Result<(), IncusError> {
    let path = a.path();
    let path = path.as_str();
    let mut first = true;
    retry_link_race(|| {
        let again = !std::mem::replace(&mut first, false);
        async move {
            if again && api.get_opt(path).await?.is_some() {
                retry_link_race(|| api.delete(path)).await?;
            }
            api.post("/1.0/networks", body).await.map(|_| ())
        }
    })
    .await
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

/// Undo: delete what the apply created, put back what it updated, once
/// Incus has finished with it ([`settle`]).
pub async fn undo<A: Api>(api: &A, a: &Address, undo: &Undo) -> Result<StepResult, IncusError> {
    match undo {
        Undo::Delete => delete(api, a).await,
        Undo::Restore { .. } => {
            settle(api, a).await?;
            undo_fields(api, &a.path(), undo, FIELDS).await
        }
        Undo::Recreate { prior, .. } => {
            if api.get_opt(&a.path()).await?.is_some() {
                return Ok(StepResult::AlreadyDone {
                    detail: "exists (created again already)".into(),
                });
            }
            let Some(prior) = prior else {
                return Ok(StepResult::Skipped {
                    why: "no prior state in the journal".into(),
                });
            };
            let body = super::common::recreate_body(
                &a.name,
                prior,
                FIELDS,
                json!({"type": prior.get("type").and_then(Value::as_str).unwrap_or("bridge")}),
            );
            create_bridge(api, a, &body).await?;
            Ok(StepResult::Restored {
                detail: "created again as it was".into(),
            })
        }
    }
}

/// Delete it (Incus refuses while something uses it), once Incus has
/// finished with it. A bridge whose create was cut short leaves Incus
/// `Pending`; after deleting it, the host's bridge device must be gone too:
/// one Incus no longer manages is reported, with how to remove it.
pub async fn delete<A: Api>(api: &A, a: &Address) -> Result<StepResult, IncusError> {
    let pending = settle(api, a).await?;
    let r = delete_if_exists(api, &a.path()).await?;
    if pending {
        let start = std::time::Instant::now();
        while let Some(left) = api.get_opt(&a.path()).await? {
            if start.elapsed() > SETTLE {
                let managed = left.metadata.get("managed").and_then(Value::as_bool);
                return Ok(StepResult::Failed {
                    error: if managed == Some(false) {
                        format!("deleted from Incus, but the host keeps a bridge device named {} that Incus no longer manages (its create was cut short): remove it with `ip link delete {}`", a.name, a.name)
                    } else {
                        "still there after its delete".into()
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(r)
}

/// How long rollback waits for Incus to finish with a bridge.
const SETTLE: Duration = Duration::from_secs(5);

/// Wait while Incus reports the bridge `Pending`: a create still in flight,
/// or cut short (a killed apply's: creating a bridge is not a background
/// operation, so rollback's wait for operations does not cover it, and a
/// cut-short create stays `Pending` while Incus reverts what it had set
/// up). Gives up after [`SETTLE`]. Returns whether it was pending.
async fn settle<A: Api>(api: &A, a: &Address) -> Result<bool, IncusError> {
    let start = std::time::Instant::now();
    let mut pending = false;
    while let Some(r) = api.get_opt(&a.path()).await? {
        if r.metadata.get("status").and_then(Value::as_str) != Some("Pending")
            || start.elapsed() > SETTLE
        {
            break;
        }
        pending = true;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(pending)
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
        .map(|(name, v)| Orphan {
            kind: "network",
            project: "default".into(),
            name: name.clone(),
            protected: false,
            domain: domain_of(v),
        })
        .collect()
}
