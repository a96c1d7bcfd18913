//! The rollback transaction: [`prepare`] takes the lock, finds the apply
//! to undo (its journal, or pre-apply snapshots alone), waits for the
//! operations of a killed apply, and plans the steps; [`Prepared::run`]
//! runs them and records the rollback in the journal. Also [`history`]
//! (what can be rolled back) and [`cleanup`] (snapshot retention).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Event, Sink, TxError};
use crate::incus::Api;
use crate::journal::{self, Record, Verb};
use crate::kind::UndoContext;
use crate::snapshot::{self, Cleanup};
use crate::state::{self, ApplyLock};
use crate::undo::{self, Step, StepResult};

/// How to roll back.
#[derive(Clone, Debug)]
pub struct Options {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The apply to undo (`YYYYMMDD-HHMMSS`); `None`: the latest.
    pub timestamp: Option<String>,
    /// Delete protected instances the apply created too.
    pub force: bool,
    /// Instance steps in flight at once.
    pub parallelism: usize,
    /// The host's `nft`.
    pub nft: std::sync::Arc<dyn crate::nft::Nft>,
}

/// A rollback planned, about to run.
pub struct Prepared<A: Api> {
    api: A,
    opts: Options,
    _lock: ApplyLock,
    /// The apply's timestamp.
    pub ts: String,
    /// Its journal, when it has one (else: snapshots only, as v1).
    pub journal: Option<journal::Read>,
    /// The steps, in the order they run.
    pub steps: Vec<Step>,
    /// Applies after this one (their changes to the same objects are
    /// overwritten).
    pub later: Vec<String>,
}

/// Take the lock, find the apply, settle a killed apply's operations, and
/// plan the steps. Nothing changes.
pub async fn prepare<A: Api>(api: A, opts: Options, sink: &Sink) -> Result<Prepared<A>, TxError> {
    let lock = state::lock(&opts.state_dir)?;
    let journals = journal::list(&opts.state_dir);
    let ts = match &opts.timestamp {
        Some(t) => t.strip_prefix(snapshot::PRE_APPLY).unwrap_or(t).to_string(),
        None => journals.last().cloned().ok_or_else(|| TxError::NoJournal {
            dir: journal::dir(&opts.state_dir),
        })?,
    };
    let jpath = journal::path(&opts.state_dir, &ts);
    let read = if jpath.exists() {
        Some(journal::read(&jpath)?)
    } else {
        None
    };
    if let Some(r) = &read {
        if opts.timestamp.is_none() && r.rolled_back() == Some("complete") {
            return Err(TxError::AlreadyRolledBack { ts });
        }
        if r.ended().is_none() {
            // The apply died: let its operations finish before undoing.
            let n = undo::settle(&api).await.map_err(TxError::Operations)?;
            if n > 0 {
                sink(&Event::Settled { operations: n });
            }
        }
    }
    let steps = match &read {
        Some(r) => undo::steps(r),
        None => undo::snapshot_only_steps(&api, &ts)
            .await
            .map_err(TxError::Snapshots)?,
    };
    if steps.is_empty() {
        return Err(TxError::NothingToUndo {
            ts,
            journal: read.is_some(),
        });
    }
    let later = journals.into_iter().filter(|t| *t > ts).collect();
    Ok(Prepared {
        api,
        opts,
        _lock: lock,
        ts,
        journal: read,
        steps,
        later,
    })
}

/// What a rollback did.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// One result per step, in the order of the steps.
    pub results: Vec<StepResult>,
    /// Steps undone.
    pub restored: usize,
    /// Steps with nothing to undo.
    pub already: usize,
    /// Steps deliberately left.
    pub skipped: usize,
    /// Steps that failed.
    pub failed: usize,
    /// `complete`, `partial` or `nothing` (as recorded in the journal).
    pub outcome: &'static str,
    /// The nftables table of the apply stays in force (bridges it isolates
    /// are still there).
    pub isolation_kept: bool,
}

impl<A: Api> Prepared<A> {
    /// Run the steps and record the rollback in the journal.
    pub async fn run(self, sink: &Sink) -> Summary {
        let ctx = UndoContext {
            state_dir: self.opts.state_dir.clone(),
            force: self.opts.force,
            networks: Vec::new(),
            nft: self.opts.nft.clone(),
        };
        let results = undo::run(
            &self.api,
            &self.steps,
            &ctx,
            self.opts.parallelism,
            |step, result, ms| {
                sink(&Event::Step {
                    step: step.clone(),
                    result: result.clone(),
                    ms,
                })
            },
        )
        .await;
        let count = |f: fn(&StepResult) -> bool| results.iter().filter(|r| f(r)).count();
        let restored = count(|r| matches!(r, StepResult::Restored { .. }));
        let already = count(|r| matches!(r, StepResult::AlreadyDone { .. }));
        let skipped = count(|r| matches!(r, StepResult::Skipped { .. }));
        let failed = count(|r| matches!(r, StepResult::Failed { .. }));
        let outcome = if restored + already == 0 {
            "nothing"
        } else if skipped + failed == 0 {
            "complete"
        } else {
            "partial"
        };
        if let Some(j) = &self.journal {
            let rec = Record::Rollback {
                at: journal::timestamp(),
                outcome: outcome.into(),
                restored,
                skipped,
                failed,
            };
            if let Err(e) = journal::append_file(&j.path, &rec) {
                sink(&Event::Warning {
                    message: e.to_string(),
                });
            }
        }
        let isolation_kept = self
            .steps
            .iter()
            .zip(&results)
            .any(|(s, r)| s.target.is_nftables() && matches!(r, StepResult::Skipped { .. }));
        Summary {
            results,
            restored,
            already,
            skipped,
            failed,
            outcome,
            isolation_kept,
        }
    }
}

/// One apply that can be rolled back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HistoryRow {
    /// Its timestamp.
    pub ts: String,
    /// Its journal's status (`ok`, `unfinished`, `…, rolled back (…)`),
    /// or why there is none.
    pub status: String,
    /// What it changed (`N created, M updated`), or `-`.
    pub changes: String,
    /// Its pre-apply snapshot and how many instances have it, or `-`.
    pub snapshot: String,
}

/// Every apply that can be rolled back, oldest first: the journals, and
/// pre-apply snapshots without one (anklume v1, or a lost state
/// directory). When Incus cannot be asked, the snapshot counts are left
/// out and a warning is reported.
pub async fn history<A: Api>(api: &A, state_dir: &Path, sink: &Sink) -> Vec<HistoryRow> {
    let snaps = match snapshot::list_all(api).await {
        Ok(s) => Some(s),
        Err(e) => {
            sink(&Event::Warning {
                message: format!("cannot read snapshots from Incus: {e}"),
            });
            None
        }
    };
    let count = |ts: &str| -> Option<usize> {
        let name = format!("{}{ts}", snapshot::PRE_APPLY);
        snaps
            .as_ref()
            .map(|s| s.iter().filter(|x| x.name == name).count())
    };
    let mut rows = Vec::new();
    let journals = journal::list(state_dir);
    for ts in &journals {
        let Ok(r) = journal::read(&journal::path(state_dir, ts)) else {
            rows.push(HistoryRow {
                ts: ts.clone(),
                status: "unreadable journal".into(),
                changes: String::new(),
                snapshot: String::new(),
            });
            continue;
        };
        let changes = r.changes();
        let created = changes
            .iter()
            .filter(|c| {
                matches!(
                    c.0,
                    Record::Intent {
                        change: Verb::Create,
                        ..
                    }
                )
            })
            .count();
        let snapshot = match (r.snapshot(), count(ts)) {
            (Some(n), Some(k)) => format!("{n} ({k} instance(s))"),
            (Some(n), None) => n.to_string(),
            (None, _) => "-".into(),
        };
        rows.push(HistoryRow {
            ts: ts.clone(),
            status: r.status(),
            changes: format!("{created} created, {} updated", changes.len() - created),
            snapshot,
        });
    }
    if let Some(s) = &snaps {
        let mut orphan: Vec<&str> = s
            .iter()
            .filter_map(|x| x.name.strip_prefix(snapshot::PRE_APPLY))
            .filter(|ts| journal::is_timestamp(ts) && !journals.iter().any(|j| j == ts))
            .collect();
        orphan.sort();
        orphan.dedup();
        for ts in orphan {
            rows.push(HistoryRow {
                ts: ts.to_string(),
                status: "no journal (snapshots only)".into(),
                changes: "-".into(),
                snapshot: format!(
                    "{}{ts} ({} instance(s))",
                    snapshot::PRE_APPLY,
                    count(ts).unwrap_or(0)
                ),
            });
        }
    }
    rows.sort();
    rows
}

/// Delete old pre-apply snapshots, keeping the newest `keep` timestamps,
/// under the lock.
pub async fn cleanup<A: Api>(api: &A, state_dir: &Path, keep: usize) -> Result<Cleanup, TxError> {
    let _lock = state::lock(state_dir)?;
    Ok(snapshot::cleanup(api, state_dir, keep).await?)
}
