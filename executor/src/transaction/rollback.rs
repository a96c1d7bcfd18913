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
use crate::snapshot::{self, Cleanup, CleanupPlan};
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
    if !opts.force {
        let problems = undo::kept_holders(&api, &steps).await;
        if !problems.is_empty() {
            return Err(TxError::NeedsForce { problems });
        }
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
        let (freed, warnings) =
            undo::free_taken_addresses(&self.api, &self.steps, self.opts.force).await;
        for (a, nics, stopped) in freed {
            sink(&Event::AddressFreed {
                project: a.project,
                instance: a.name,
                nics,
                stopped,
            });
        }
        for message in warnings {
            sink(&Event::Warning { message });
        }
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Its timestamp.
    pub ts: String,
    /// Its journal's status (`ok`, `unfinished`, `…, rolled back (…)`),
    /// or why there is none.
    pub status: String,
    /// What its journal records it changed; none without a (readable)
    /// journal.
    pub changes: Option<ChangeCounts>,
    /// Its pre-apply snapshot, if it took one.
    pub snapshot: Option<String>,
    /// How many instances have that snapshot now (unknown when Incus
    /// could not be asked).
    pub snapshot_instances: Option<usize>,
}

/// The changes of one apply, by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    /// Creations that succeeded.
    pub created: usize,
    /// Updates that succeeded.
    pub updated: usize,
    /// Changes that failed (a failed creation created nothing).
    pub failed: usize,
    /// Changes started but never ended (a killed apply).
    pub unfinished: usize,
}

impl ChangeCounts {
    /// `2 created, 1 updated`, and the failed and unfinished ones when
    /// there are some.
    pub fn text(&self) -> String {
        let mut s = format!("{} created, {} updated", self.created, self.updated);
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        if self.unfinished > 0 {
            s.push_str(&format!(", {} unfinished", self.unfinished));
        }
        s
    }
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
                changes: None,
                snapshot: None,
                snapshot_instances: None,
            });
            continue;
        };
        let mut counts = ChangeCounts::default();
        for (intent, ended) in r.changes() {
            let create = matches!(
                intent,
                Record::Intent {
                    change: Verb::Create,
                    ..
                }
            );
            match (ended, create) {
                (Some(true), true) => counts.created += 1,
                (Some(true), false) => counts.updated += 1,
                (Some(false), _) => counts.failed += 1,
                (None, _) => counts.unfinished += 1,
            }
        }
        let snapshot = r.snapshot().map(str::to_string);
        rows.push(HistoryRow {
            ts: ts.clone(),
            status: r.status(),
            changes: Some(counts),
            snapshot_instances: snapshot.as_ref().and_then(|_| count(ts)),
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
                changes: None,
                snapshot: Some(format!("{}{ts}", snapshot::PRE_APPLY)),
                snapshot_instances: count(ts),
            });
        }
    }
    rows.sort_by(|a, b| a.ts.cmp(&b.ts));
    rows
}

/// A cleanup of old pre-apply snapshots, decided and not yet done: the
/// lock is held from here, so that the user can see what goes and say yes.
#[derive(Debug)]
pub struct PreparedCleanup {
    _lock: ApplyLock,
    state_dir: PathBuf,
    /// What it deletes and keeps.
    pub plan: CleanupPlan,
}

/// Decide which old pre-apply snapshots go, keeping the newest `keep`
/// timestamps, under the lock; nothing is deleted yet.
pub async fn prepare_cleanup<A: Api>(
    api: &A,
    state_dir: &Path,
    keep: usize,
) -> Result<PreparedCleanup, TxError> {
    let lock = state::lock(state_dir)?;
    let plan = snapshot::plan_cleanup(api, state_dir, keep).await?;
    Ok(PreparedCleanup {
        _lock: lock,
        state_dir: state_dir.to_path_buf(),
        plan,
    })
}

impl PreparedCleanup {
    /// Delete them.
    pub async fn run<A: Api>(self, api: &A) -> Result<Cleanup, TxError> {
        Ok(snapshot::run_cleanup(api, &self.state_dir, &self.plan).await?)
    }
}
