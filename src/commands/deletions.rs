//! How deletions look, shared by `apply --prune`, `flush` and `remove`:
//! the list shown before anything happens, and one line per deletion as
//! it ends.

use anklume_executor::kind::instance::human_bytes;
use anklume_executor::kind::StepResult;
use anklume_executor::transaction::delete::{Deleted, Deletion, Spared};
use anklume_term::display as esc;
use serde_json::json;

/// The deletions to come (`- id`), then what stays and why (`= id`), as
/// text lines or JSON `deletion` / `spared` events.
pub fn plan(deletions: &[Deletion], spared: &[Spared], keep: bool, json_out: bool) -> String {
    let mut out = String::new();
    for d in deletions {
        if json_out {
            out.push_str(
                &json!({"event": "deletion", "deletion": d, "kept_copy": keep && d.kind == "instance"})
                    .to_string(),
            );
        } else {
            let copy = match (d.kind, keep) {
                ("instance", true) => " (a copy is kept for rollback)",
                ("instance", false) => " (--no-keep: no copy, rollback cannot bring its data back)",
                _ => "",
            };
            out.push_str(&format!(
                "  - {} delete{}{copy}",
                esc(&d.id),
                if d.protected {
                    " (protected; --force)"
                } else {
                    ""
                }
            ));
        }
        out.push('\n');
    }
    for s in spared {
        if json_out {
            out.push_str(&json!({"event": "spared", "spared": s}).to_string());
        } else {
            out.push_str(&format!(
                "  = {} stays: {}",
                esc(&s.deletion.id),
                esc(&s.why)
            ));
        }
        out.push('\n');
    }
    out
}

/// One line for a deletion that ended.
pub fn line(d: &Deleted) -> String {
    let id = esc(&d.deletion.id);
    match &d.result {
        StepResult::Restored { .. } => match &d.kept {
            Some(k) => format!(
                "deleted {id} (copy kept: {}, {}; {} ms)",
                human_bytes(k.bytes),
                esc(&k.file.display().to_string()),
                d.ms
            ),
            None => format!("deleted {id} ({} ms)", d.ms),
        },
        StepResult::AlreadyDone { detail } => format!("{id}: {}", esc(detail)),
        StepResult::Skipped { why } => format!("not deleted {id}: {}", esc(why)),
        StepResult::Failed { error } => format!("FAILED to delete {id}: {}", esc(error)),
    }
}
