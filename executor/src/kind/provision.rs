//! Ansible provisioning of one instance: planned, not run by apply yet
//! (issue 11 adds it). Not journaled: nothing to undo.

use anklume_plan::Provision;

use super::Action;

/// Why apply does not run it.
pub const NOT_RUN: &str = "provisioning runs with Ansible, not part of apply yet";

/// Not run by apply (yet).
pub fn decide(_p: &Provision) -> Action {
    Action::NotRun {
        reason: NOT_RUN.into(),
    }
}
