//! `anklume rollback`: undo an apply from its journal and pre-apply
//! snapshots; list what can be rolled back; clean old snapshots up.

use std::io::IsTerminal;
use std::path::Path;

use anklume_executor::journal::{self, Record};
use anklume_executor::rollback::{self, Options, Step, StepResult};
use anklume_executor::{snapshot, state, Incus};

use crate::Outcome;

/// Undo an apply: delete what it created, put back what it changed.
///
/// Without TIMESTAMP, the latest apply. In reverse order: instances it
/// created are deleted (protected ones only with --force), what it updated
/// gets its prior configuration back, instances it changed get their
/// `pre-apply-TIMESTAMP` snapshot restored (data included) and then their
/// prior configuration. Works from the journal alone; a pre-apply snapshot
/// without a journal (anklume v1) is restored on every instance that has it.
#[derive(clap::Args)]
pub struct Args {
    /// The apply to undo (`YYYYMMDD-HHMMSS`, see --list).
    pub timestamp: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete protected instances the apply created.
    #[arg(long)]
    pub force: bool,
    /// List the applies that can be rolled back.
    #[arg(long, conflicts_with_all = ["timestamp", "cleanup", "force"])]
    pub list: bool,
    /// Delete old pre-apply snapshots, keeping the newest --keep.
    #[arg(long, conflicts_with_all = ["timestamp", "force"])]
    pub cleanup: bool,
    /// Instance restores and deletions in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// With --cleanup: pre-apply snapshots to keep.
    #[arg(long, default_value_t = 3, value_name = "N", requires = "cleanup")]
    pub keep: usize,
}

/// Run it.
pub fn run(args: Args) -> Outcome {
    if let Some(ts) = &args.timestamp {
        let ts = ts.strip_prefix(snapshot::PRE_APPLY).unwrap_or(ts);
        if !journal::is_timestamp(ts) {
            eprintln!("error: '{ts}' is not a timestamp like 20260219-143022\nhint: `anklume rollback --list` shows them");
            return Outcome::Failed;
        }
    }
    super::block_on(run_async(args))
}

async fn run_async(args: Args) -> Outcome {
    let incus = super::incus();
    let state_dir = state::state_dir();
    if args.list {
        return list(&incus, &state_dir).await;
    }
    let _lock = match state::lock(&state_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    if args.cleanup {
        return match snapshot::cleanup(&incus, &state_dir, args.keep).await {
            Ok(c) => {
                for s in &c.deleted {
                    println!("deleted {} of {}/{}", s.name, s.project, s.instance);
                }
                for (s, e) in &c.failed {
                    eprintln!(
                        "error: cannot delete {} of {}/{}: {e}",
                        s.name, s.project, s.instance
                    );
                }
                println!(
                    "Cleanup: {} snapshot(s) deleted; kept {} pre-apply timestamp(s){}.",
                    c.deleted.len(),
                    c.kept.len(),
                    if c.kept.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.kept.join(", "))
                    }
                );
                if c.failed.is_empty() {
                    Outcome::Ok
                } else {
                    Outcome::Invalid
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::Invalid
            }
        };
    }
    let journals = journal::list(&state_dir);
    let ts = match &args.timestamp {
        Some(t) => t.strip_prefix(snapshot::PRE_APPLY).unwrap_or(t).to_string(),
        None => match journals.last() {
            Some(t) => t.clone(),
            None => {
                eprintln!(
                    "error: nothing to roll back: no apply journal in {}\nhint: `anklume rollback --list` shows what can be rolled back; name a pre-apply snapshot's timestamp to restore it",
                    journal::dir(&state_dir).display()
                );
                return Outcome::Invalid;
            }
        },
    };
    let jpath = journal::path(&state_dir, &ts);
    let read = if jpath.exists() {
        match journal::read(&jpath) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Invalid;
            }
        }
    } else {
        None
    };
    if let Some(r) = &read {
        if args.timestamp.is_none() && r.rolled_back() == Some("complete") {
            eprintln!(
                "error: the latest apply ({ts}) is already rolled back\nhint: name an older apply to undo it too: `anklume rollback --list`"
            );
            return Outcome::Invalid;
        }
        if r.ended().is_none() {
            // The apply died: let its operations finish before undoing.
            match rollback::settle(&incus).await {
                Ok(0) => {}
                Ok(n) => println!("Waited for {n} Incus operation(s) of the interrupted apply."),
                Err(e) => {
                    eprintln!("error: reading Incus operations: {e}");
                    return Outcome::Invalid;
                }
            }
        }
    }
    let steps: Vec<Step> = match &read {
        Some(r) => rollback::steps(r),
        None => match rollback::snapshot_only_steps(&incus, &ts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Invalid;
            }
        },
    };
    if steps.is_empty() {
        eprintln!(
            "error: nothing to roll back for {ts}: {}\nhint: `anklume rollback --list` shows what can be rolled back",
            if read.is_some() {
                "its journal records no change"
            } else {
                "no journal and no instance has that pre-apply snapshot"
            }
        );
        return Outcome::Invalid;
    }
    let later: Vec<&String> = journals.iter().filter(|t| **t > ts).collect();
    match &read {
        Some(r) => println!(
            "Rollback of the apply of {ts} ({}; journal {}):",
            r.status(),
            r.path.display()
        ),
        None => println!(
            "Rollback to pre-apply snapshot {}{ts} (no journal: snapshots only, as anklume v1):",
            snapshot::PRE_APPLY
        ),
    }
    for s in &steps {
        println!("  {}", s.describe());
    }
    if !later.is_empty() {
        eprintln!(
            "warning: {} later apply(s) ({}) may have changed the same objects; their changes to them are overwritten",
            later.len(),
            later
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !args.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            eprintln!("error: no terminal to confirm the rollback: pass --yes");
            return Outcome::Invalid;
        }
        if !super::confirm("Roll back?") {
            eprintln!("cancelled: nothing was changed");
            return Outcome::Invalid;
        }
    }
    let results = rollback::run(
        &incus,
        &steps,
        &state_dir,
        Options {
            force: args.force,
            parallelism: args.parallelism,
        },
        |step, result, ms| match result {
            StepResult::Restored { detail } => {
                println!("restored {}: {detail} ({ms} ms)", step.node)
            }
            StepResult::AlreadyDone { detail } => {
                println!("unchanged {}: {detail}", step.node)
            }
            StepResult::Skipped { why } => println!("skipped {}: {why}", step.node),
            StepResult::Failed { error } => println!("FAILED {}: {error}", step.node),
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
    if read.is_some() {
        let rec = Record::Rollback {
            at: journal::timestamp(),
            outcome: outcome.into(),
            restored,
            skipped,
            failed,
        };
        if let Err(e) = journal::append_file(&jpath, &rec) {
            eprintln!("warning: {e}");
        }
    }
    println!(
        "Rollback: {restored} restored, {already} already as before, {skipped} skipped, {failed} failed."
    );
    let isolation_kept = steps.iter().zip(&results).any(|(s, r)| {
        s.target == journal::Target::Nftables && matches!(r, StepResult::Skipped { .. })
    });
    if isolation_kept {
        eprintln!(
            "warning: partial rollback: the nftables table of the apply stays in force, because bridges it isolates are still there (see `skipped nftables/anklume` above); `anklume rollback {ts} --force` finishes the rollback"
        );
    } else if outcome == "partial" && failed == 0 {
        eprintln!("note: partial rollback: the skipped steps above were left as they are; `anklume rollback {ts}` again (with --force for protected instances) finishes it");
    }
    if failed > 0 {
        eprintln!("{failed} step(s) failed: see the FAILED lines above");
        return Outcome::Invalid;
    }
    if outcome == "nothing" {
        eprintln!("error: nothing could be restored\nhint: `anklume rollback --list` shows what can be rolled back");
        return Outcome::Invalid;
    }
    Outcome::Ok
}

async fn list(incus: &Incus, state_dir: &Path) -> Outcome {
    let snaps = match snapshot::list_all(incus).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: cannot read snapshots from Incus: {e}");
            None
        }
    };
    let count = |ts: &str| -> Option<usize> {
        let name = format!("{}{ts}", snapshot::PRE_APPLY);
        snaps
            .as_ref()
            .map(|s| s.iter().filter(|x| x.name == name).count())
    };
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let journals = journal::list(state_dir);
    for ts in &journals {
        let Ok(r) = journal::read(&journal::path(state_dir, ts)) else {
            rows.push((
                ts.clone(),
                "unreadable journal".into(),
                String::new(),
                String::new(),
            ));
            continue;
        };
        let changes = r.changes();
        let created = changes
            .iter()
            .filter(|c| {
                matches!(
                    c.0,
                    Record::Intent {
                        change: journal::Change::Create,
                        ..
                    }
                )
            })
            .count();
        let snap = match (r.snapshot(), count(ts)) {
            (Some(n), Some(k)) => format!("{n} ({k} instance(s))"),
            (Some(n), None) => n.to_string(),
            (None, _) => "-".into(),
        };
        rows.push((
            ts.clone(),
            r.status(),
            format!("{created} created, {} updated", changes.len() - created),
            snap,
        ));
    }
    // Pre-apply snapshots without a journal (anklume v1, or a lost state dir).
    if let Some(s) = &snaps {
        let mut orphan: Vec<&str> = s
            .iter()
            .filter_map(|x| x.name.strip_prefix(snapshot::PRE_APPLY))
            .filter(|ts| journal::is_timestamp(ts) && !journals.iter().any(|j| j == ts))
            .collect();
        orphan.sort();
        orphan.dedup();
        for ts in orphan {
            rows.push((
                ts.to_string(),
                "no journal (snapshots only)".into(),
                "-".into(),
                format!(
                    "{}{ts} ({} instance(s))",
                    snapshot::PRE_APPLY,
                    count(ts).unwrap_or(0)
                ),
            ));
        }
    }
    rows.sort();
    if rows.is_empty() {
        println!("Nothing to roll back: no apply journal and no pre-apply snapshot.");
        return Outcome::Ok;
    }
    let w = |f: fn(&(String, String, String, String)) -> &String, h: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(h.len())
    };
    let (w1, w2, w3) = (
        w(|r| &r.0, "TIMESTAMP"),
        w(|r| &r.1, "STATUS"),
        w(|r| &r.2, "CHANGES"),
    );
    println!(
        "{:w1$}  {:w2$}  {:w3$}  SNAPSHOT",
        "TIMESTAMP", "STATUS", "CHANGES"
    );
    for r in rows.iter().rev() {
        println!("{:w1$}  {:w2$}  {:w3$}  {}", r.0, r.1, r.2, r.3);
    }
    Outcome::Ok
}
