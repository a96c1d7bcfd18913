//! Ansible provisioning of one instance. What it depends on is digested in
//! the plan (`Provision::fingerprint`); after a successful run the instance
//! records it in `user.anklume.provisioned`, so an instance whose recorded
//! fingerprint matches is provisioned already and no Ansible runs for it.
//!
//! Carrying it out (a batched `ansible-playbook`) is not part of apply
//! yet: `decide` says what would run, and apply reports it as not run.

use anklume_plan::Provision;

use super::common::str_of;
use super::{Action, Change};
use crate::live::Live;

/// The instance key that records the fingerprint of its last successful
/// provisioning.
pub const PROVISIONED: &str = "user.anklume.provisioned";

/// Why apply does not run it.
pub const NOT_RUN: &str = "provisioning runs with Ansible, not part of apply yet";

/// Why it cannot be decided: the plan was made without the Ansible tree.
pub const NO_FINGERPRINT: &str =
    "the plan has no provisioning fingerprint (made without the Ansible tree: `anklume plan --tree DIR`)";

/// Whether it needs to run: not when the instance records this plan's
/// fingerprint; otherwise the change is the fingerprint (none recorded
/// yet, or another one).
pub fn needed(p: &Provision, live: &Live) -> Option<Change> {
    let recorded = live
        .instances
        .get(&(p.project.clone(), p.instance.clone()))
        .and_then(|i| i.get("config"))
        .map(|c| str_of(c, PROVISIONED).to_string())
        .filter(|s| !s.is_empty());
    (recorded.as_deref() != Some(p.fingerprint.as_str())).then(|| Change {
        key: format!("config.{PROVISIONED}"),
        old: recorded,
        new: Some(p.fingerprint.clone()),
    })
}

/// What apply would do. Not run by apply yet; the reason says whether it
/// is needed.
pub fn decide(p: &Provision, live: &Live) -> Action {
    let reason = if p.fingerprint.is_empty() {
        NO_FINGERPRINT.to_string()
    } else if needed(p, live).is_none() {
        format!("{NOT_RUN} (provisioned already: its fingerprint matches)")
    } else {
        NOT_RUN.to_string()
    };
    Action::NotRun { reason }
}
