//! The executor's vocabulary, shared by the kinds and the verbs above
//! them: what `decide` says to do with a node ([`Action`], with its
//! [`Change`]s), a managed object the plan lacks ([`Orphan`]), what undoing
//! one target means ([`Undo`]) and how it ended ([`StepResult`]).

use serde::Serialize;
use serde_json::Value;

/// One changed setting (the same shape `anklume diff` reports).
pub use anklume_plan::diff::Change;

/// What to do with one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// It does not exist: create it.
    Create,
    /// It exists and differs: these keys change.
    Update {
        /// The differences.
        changes: Vec<Change>,
    },
    /// It exists, was not made by anklume, and differs only by the
    /// `user.anklume.*` keys anklume marks what it manages with: the update
    /// adds them (an object made by hand, then imported).
    Adopt {
        /// The `user.anklume.*` keys it gains.
        changes: Vec<Change>,
    },
    /// It exists as desired.
    Unchanged,
    /// Not executed by apply (yet).
    NotRun {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// Whether a run changes something for it (create, update, adopt).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update { .. } | Action::Adopt { .. }
        )
    }

    /// Whether it changes an existing object (update or adopt).
    pub fn is_update(&self) -> bool {
        matches!(self, Action::Update { .. } | Action::Adopt { .. })
    }

    /// The changed keys of an update or an adoption.
    pub fn changes(&self) -> &[Change] {
        match self {
            Action::Update { changes } | Action::Adopt { changes } => changes,
            _ => &[],
        }
    }
}

/// A managed object Incus has that the plan does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// `network`, `project`, `profile`, `instance`.
    pub kind: &'static str,
    /// Project (`default` for networks).
    pub project: String,
    /// Name.
    pub name: String,
    /// Instances: `security.protection.delete` is true.
    pub protected: bool,
    /// The domain its `user.anklume.domain` config names, when it has one
    /// (bridges anklume v1 made, for one, have none).
    pub domain: Option<String>,
}

/// The copy of a deleted instance kept so that rollback can bring it back
/// (an Incus backup export, in the state directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Kept {
    /// The file.
    pub file: std::path::PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Undo {
    /// anklume deleted it (prune, flush, remove): create it again from its
    /// prior state and, for an instance, its kept copy.
    Recreate {
        /// The state before the delete.
        prior: Option<Value>,
        /// The instance's kept copy (`None`: deleted with `--no-keep`).
        kept: Option<Kept>,
    },
    /// The apply created it: delete it.
    Delete,
    /// The apply updated it: put its prior state back.
    Restore {
        /// The prior state (`None` for a snapshot-only rollback).
        prior: Option<Value>,
        /// The pre-apply snapshot to restore first (instances).
        snapshot: Option<String>,
    },
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepResult {
    /// Undone.
    Restored {
        /// What was done.
        detail: String,
    },
    /// Nothing to undo (already as before).
    AlreadyDone {
        /// Why.
        detail: String,
    },
    /// Deliberately not undone.
    Skipped {
        /// Why.
        why: String,
    },
    /// Tried and failed.
    Failed {
        /// Incus's error.
        error: String,
    },
}
