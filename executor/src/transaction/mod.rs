//! The apply and rollback transactions. Each owns its whole course: the
//! lock, the check for an unfinished apply, reading Incus, preflight, the
//! journal, pre-apply snapshots, execution, retention and interruption.
//! Each runs in two steps, so that its user can show what will happen and
//! ask before anything changes: `prepare` (read and decide, change nothing;
//! the lock is held from here) and `run` (change, reporting [`Event`]s as
//! they happen). Nothing here prints or exits: the CLI renders the events
//! and picks the exit code.

pub mod apply;
pub mod delete;
pub mod rollback;
pub mod snapshots;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::Serialize;

use crate::decide::Preflight;
use crate::incus::IncusError;
use crate::schedule::NodeEvent;
use crate::snapshot::SnapInfo;
use crate::undo::{Step, StepResult};
use crate::Error;

/// Something that happened during a transaction, as it happens.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The newest journal has no end: an apply was killed or crashed.
    UnfinishedApply {
        /// Its timestamp.
        journal: String,
        /// Changes it started.
        started: usize,
        /// Changes that finished.
        finished: usize,
    },
    /// The host's nftables table is left alone by this apply.
    NftablesNotManaged {
        /// Why (`nft` cannot be run here).
        reason: String,
    },
    /// A pre-apply snapshot of one instance failed (the apply goes on).
    SnapshotFailed {
        /// The instance's project.
        project: String,
        /// The instance.
        instance: String,
        /// The snapshot name.
        name: String,
        /// Incus's error.
        error: String,
    },
    /// Pre-apply snapshots were taken.
    Snapshot {
        /// Their name.
        name: String,
        /// Instances snapshotted.
        taken: usize,
        /// Instances whose snapshot failed.
        failed: usize,
    },
    /// An instance's static address was freed before the run, because
    /// another instance of the plan takes it over (its own new address is
    /// set by its update).
    AddressFreed {
        /// The instance's project.
        project: String,
        /// The instance.
        instance: String,
        /// Its NICs whose `ipv4.address` was dropped.
        nics: Vec<String>,
        /// It was running and was stopped, so that it gives the address
        /// up; it starts again with its new address.
        stopped: bool,
    },
    /// One node ended.
    Result {
        /// How.
        node: NodeEvent,
        /// Nodes ended so far.
        done: usize,
        /// Nodes in the plan.
        total: usize,
    },
    /// One Ansible task ended on one host being provisioned.
    Task {
        /// The provision node (`provision/<machine>`), when the host is one
        /// of the plan's.
        node: Option<String>,
        /// The task and its result.
        #[serde(flatten)]
        task: crate::ansible::TaskEvent,
    },
    /// Ctrl-C: no new operation starts; those in flight finish. `again`:
    /// the second one (the user wants to quit without waiting).
    Interrupted {
        /// Whether it is the second.
        again: bool,
    },
    /// Old pre-apply snapshots were deleted after a successful apply.
    Retention {
        /// How many.
        deleted: usize,
        /// How many timestamps are kept.
        keep: usize,
    },
    /// An old pre-apply snapshot could not be deleted.
    RetentionFailed {
        /// The snapshot.
        snapshot: SnapInfo,
        /// Incus's error.
        error: String,
    },
    /// Rollback waited for Incus operations of a killed apply.
    Settled {
        /// How many operations.
        operations: usize,
    },
    /// One rollback step ended.
    Step {
        /// The step.
        step: Step,
        /// How it ended.
        result: StepResult,
        /// Milliseconds.
        ms: u64,
    },
    /// A bug in anklume (a task panicked); the run goes on with the rest
    /// and ends as failed.
    Internal {
        /// What.
        message: String,
    },
    /// One deletion ended (`apply --prune`, `flush`, `remove`).
    Deleted {
        /// The object and how it ended.
        deleted: delete::Deleted,
    },
    /// Kept copies of older deletions were removed after a successful run.
    KeptRetention {
        /// Journals whose copies were removed.
        removed: usize,
        /// Bytes freed.
        bytes: u64,
        /// How many journals' copies are kept.
        keep: usize,
    },
    /// Something went wrong that does not stop the transaction.
    Warning {
        /// What.
        message: String,
    },
}

/// Why a transaction did not start, or stopped before changing anything.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The state directory, the lock or a journal.
    #[error(transparent)]
    Executor(#[from] Error),
    /// The plan's sources changed since it was made (or are missing).
    #[error("the plan is stale: {} changed since the plan was made (or is missing)", files.join(", "))]
    Stale {
        /// The source files, relative to the sources directory.
        files: Vec<String>,
    },
    /// `--limit` names no domain or machine of the plan.
    #[error("--limit {}: no such domain or machine in the plan", names.join(", "))]
    Limit {
        /// The names.
        names: Vec<String>,
    },
    /// `remove`: a name matches no instance anklume manages, or several.
    #[error("{message}")]
    Select {
        /// What is wrong, with a hint.
        message: String,
    },
    /// Incus's state could not be read.
    #[error("reading Incus state: {0}")]
    ReadLive(IncusError),
    /// A check before any change failed.
    #[error("{0}")]
    Preflight(Preflight),
    /// The journal could not be started: nothing was changed.
    #[error("cannot start the apply journal: {0}")]
    JournalStart(Error),
    /// The journal's first record could not be written: nothing was
    /// changed.
    #[error("cannot write the apply journal: {0}")]
    JournalWrite(Error),
    /// Incus's running operations could not be read (rollback waits for a
    /// killed apply's operations first).
    #[error("reading Incus operations: {0}")]
    Operations(IncusError),
    /// Incus's snapshots could not be listed (a rollback without a
    /// journal).
    #[error("{0}")]
    Snapshots(IncusError),
    /// There is no journal to roll back.
    #[error("nothing to roll back: no apply journal in {}", dir.display())]
    NoJournal {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The latest apply is rolled back already.
    #[error("the latest apply ({ts}) is already rolled back")]
    AlreadyRolledBack {
        /// Its timestamp.
        ts: String,
    },
    /// Nothing to undo for this timestamp.
    #[error("nothing to roll back for {ts}: {}", if *.journal { "its journal records no change" } else { "no journal and no instance has that pre-apply snapshot" })]
    NothingToUndo {
        /// The timestamp.
        ts: String,
        /// Whether it has a journal.
        journal: bool,
    },
    /// Without `--force`, the rollback would keep protected instances the
    /// apply created that hold addresses restored instances take back:
    /// those restores would fail. Nothing was changed.
    #[error("{}", problems.join("; "))]
    NeedsForce {
        /// One message per address.
        problems: Vec<String>,
    },
}

/// Where transactions report events. `Fn` (not `FnMut`), and `Send +
/// Sync`: the Ctrl-C watcher reports from its own task.
pub type Sink = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;
