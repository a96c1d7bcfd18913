//! The host's `inet anklume` nftables table: not in Incus. Its live state is
//! read with `nft` ([`crate::nft`]), its last loaded ruleset is kept in the
//! state directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anklume_plan::Nftables;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Action, Change, NodeError, StepResult, Undo};
use crate::incus::{enc, Api, IncusError};
use crate::live::Live;
use crate::nft::{self, AfterRollback, Nft, NftLive};

/// There is one table: its address is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {}

/// Reason the ruleset is not loaded by apply.
pub const NOT_RUN: &str =
    "host isolation rules are not managed by this apply (--no-nftables, or nft unusable here): use `anklume nftables deploy` on the host";

/// Compare the planned ruleset with the table in force and the ruleset
/// anklume loaded last: unchanged only when the text is the one loaded last
/// and the kernel still lists the table as it did right after.
pub fn decide(t: &Nftables, live: &Live) -> Action {
    let Some(state) = &live.nftables else {
        return Action::NotRun {
            reason: NOT_RUN.into(),
        };
    };
    let text = t.text();
    match (&state.live_table, &state.last_applied) {
        (None, _) => Action::Create,
        (Some(_), Some(last)) if *last == text && state.untouched() => Action::Unchanged,
        (Some(_), Some(last)) if *last == text => Action::Update {
            changes: vec![Change {
                key: "table".into(),
                old: Some("changed outside anklume".into()),
                new: Some("as planned".into()),
            }],
        },
        (Some(_), last) => {
            let old = nft::rules(last.as_deref().unwrap_or(""));
            let new = nft::rules(&text);
            let mut changes: Vec<Change> = old
                .iter()
                .filter(|l| !new.contains(l))
                .map(|l| Change {
                    key: "rule".into(),
                    old: Some(l.clone()),
                    new: None,
                })
                .collect();
            changes.extend(new.iter().filter(|l| !old.contains(l)).map(|l| Change {
                key: "rule".into(),
                old: None,
                new: Some(l.clone()),
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

/// Load the ruleset (checked, then atomically), saving the table it
/// replaces.
pub async fn apply(
    runner: &Arc<dyn Nft>,
    t: &Nftables,
    state_dir: &Path,
    previous: Option<&str>,
) -> Result<(), NodeError> {
    let text = t.text();
    let dir = state_dir.to_path_buf();
    let previous = previous.map(str::to_string);
    let runner = runner.clone();
    tokio::task::spawn_blocking(move || nft::load(&*runner, &text, &dir, previous.as_deref()))
        .await
        .map_err(|e| NodeError::new(format!("internal error: {e}")))?
        .map_err(|e| NodeError::new(e.to_string()))
}

/// What the journal keeps, for a create too: the table in force and the
/// state files, so rollback can put all three back.
pub fn prior(before: Option<&NftLive>) -> Value {
    let field = |f: fn(&NftLive) -> &Option<String>| before.and_then(|b| f(b).as_deref());
    json!({
        "table": field(|b| &b.live_table),
        "applied": field(|b| &b.last_applied),
        "applied_listing": field(|b| &b.applied_listing),
    })
}

/// Undo, as rollback's last step: put the table back as it was before the
/// apply, unless that would leave bridges that still exist without the
/// isolation the table in force gives them ([`nft::after_rollback`]): then
/// the table in force stays, and the step says why (skipped, so the
/// rollback is partial). `networks`: the bridges the journal names, checked
/// along with those the table in force isolates.
pub async fn undo<A: Api>(
    api: &A,
    runner: &Arc<dyn Nft>,
    undo: &Undo,
    state_dir: &Path,
    networks: &[String],
) -> Result<StepResult, IncusError> {
    let prior = match undo {
        Undo::Restore { prior, .. } | Undo::Recreate { prior, .. } => {
            prior.clone().unwrap_or(Value::Null)
        }
        Undo::Delete => Value::Null,
    };
    let s = |k: &str| prior.get(k).and_then(Value::as_str).map(str::to_string);
    let (table, applied, listing) = (s("table"), s("applied"), s("applied_listing"));
    let internal =
        |e: tokio::task::JoinError| IncusError::transport(format!("internal error: {e}"));
    let dir = state_dir.to_path_buf();
    let r = runner.clone();
    let live = tokio::task::spawn_blocking(move || nft::read(&*r, &dir))
        .await
        .map_err(internal)?
        .map_err(|e| IncusError::transport(e.to_string()))?
        .live_table;
    let mut candidates: BTreeSet<String> = networks.iter().cloned().collect();
    if let Some(t) = &live {
        candidates.extend(nft::isolated_bridges(t));
    }
    let mut existing = BTreeSet::new();
    for name in candidates {
        // A bridge whose state cannot be read counts as still there.
        let there = !matches!(
            api.get_opt(&format!("/1.0/networks/{}", enc(&name))).await,
            Ok(None)
        );
        if there {
            existing.insert(name);
        }
    }
    match nft::after_rollback(&existing, table.as_deref(), live.as_deref()) {
        AfterRollback::KeepApplied { uncovered } => {
            let mut pairs: Vec<String> = uncovered
                .iter()
                .filter(|(a, b)| a < b || !uncovered.contains(&(b.clone(), a.clone())))
                .map(|(a, b)| format!("{a} and {b}"))
                .collect();
            pairs.dedup();
            Ok(StepResult::Skipped {
                why: format!(
                    "the table in force is kept: it separates bridges that are still there ({}), which the table from before the apply {}; roll back again once what keeps them is gone (`--force` deletes protected instances)",
                    pairs.join("; "),
                    if table.is_some() {
                        "does not separate"
                    } else {
                        "(none) would leave open"
                    }
                ),
            })
        }
        decision => {
            let had = decision == AfterRollback::LoadPrevious;
            let dir = state_dir.to_path_buf();
            let r = runner.clone();
            tokio::task::spawn_blocking(move || {
                nft::restore(
                    &*r,
                    table.as_deref(),
                    applied.as_deref(),
                    listing.as_deref(),
                    &dir,
                )
            })
            .await
            .map_err(internal)?
            .map_err(|e| IncusError::transport(e.to_string()))?;
            Ok(StepResult::Restored {
                detail: if had {
                    "previous table loaded again".into()
                } else {
                    "table removed (there was none before, and no bridge it separated is left)"
                        .into()
                },
            })
        }
    }
}
