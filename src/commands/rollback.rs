//! `anklume rollback`: undo an apply from its journal and pre-apply
//! snapshots; list what can be rolled back; clean old snapshots up.

use std::io::IsTerminal;
use std::sync::Arc;

use anklume_executor::journal;
use anklume_executor::transaction::rollback::{self as tx, Options};
use anklume_executor::transaction::{Event, Sink, TxError};
use anklume_executor::undo::StepResult;
use anklume_executor::{snapshot, state};
use anklume_term::display as esc;

use crate::Exit;

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
    /// Delete old pre-apply snapshots and the kept copies of old deletions,
    /// keeping those of the newest --keep applies.
    #[arg(long, conflicts_with_all = ["timestamp", "force"])]
    pub cleanup: bool,
    /// Instance restores and deletions in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// With --cleanup: pre-apply timestamps (and deletions' kept copies)
    /// to keep.
    #[arg(long, default_value_t = 3, value_name = "N", requires = "cleanup")]
    pub keep: usize,
    /// With --list: `text` (a table, newest first) or `json` (one object
    /// per apply, newest first).
    #[arg(long, value_enum, default_value = "text", requires = "list")]
    pub format: super::ListFormat,
}

/// Run it.
pub fn run(args: Args) -> Exit {
    if let Some(ts) = &args.timestamp {
        let ts = ts.strip_prefix(snapshot::PRE_APPLY).unwrap_or(ts);
        if !journal::is_timestamp(ts) {
            eprintln!(
                "error: '{}' is not a timestamp like 20260219-143022\nhint: `anklume rollback --list` shows them",
                esc(ts)
            );
            return Exit::Failed;
        }
    }
    super::block_on(run_async(args))
}

fn sink() -> Sink {
    Arc::new(|event: &Event| match event {
        Event::Settled { operations } => {
            println!("Waited for {operations} Incus operation(s) of the interrupted apply.")
        }
        Event::Step { step, result, ms } => {
            let node = esc(&step.node);
            match result {
                StepResult::Restored { detail } => {
                    println!("restored {node}: {} ({ms} ms)", esc(detail))
                }
                StepResult::AlreadyDone { detail } => println!("unchanged {node}: {}", esc(detail)),
                StepResult::Skipped { why } => println!("skipped {node}: {}", esc(why)),
                StepResult::Failed { error } => println!("FAILED {node}: {}", esc(error)),
            }
        }
        Event::Warning { message } => eprintln!("warning: {}", esc(message)),
        Event::AddressFreed {
            project,
            instance,
            nics,
            stopped,
        } => println!(
            "Freed the static address of {}/{} ({}){}: another instance takes it back.",
            esc(project),
            esc(instance),
            esc(&nics.join(", ")),
            if *stopped { " and stopped it" } else { "" }
        ),
        _ => {}
    })
}

fn refused(e: &TxError) -> Exit {
    let hint = match e {
        TxError::NoJournal { .. } => "\nhint: `anklume rollback --list` shows what can be rolled back; name a pre-apply snapshot's timestamp to restore it",
        TxError::AlreadyRolledBack { .. } => "\nhint: name an older apply to undo it too: `anklume rollback --list`",
        TxError::NothingToUndo { .. } => "\nhint: `anklume rollback --list` shows what can be rolled back",
        TxError::NeedsForce { .. } => "\nnothing was changed\nhint: `anklume rollback --force` deletes the protected instances the apply created, so the others get their addresses back",
        _ => "",
    };
    let msg = match e {
        TxError::ReadLive(i) => format!("reading Incus state: {i}"),
        e => e.to_string(),
    };
    eprintln!("error: {}{hint}", esc(&msg));
    Exit::Invalid
}

async fn run_async(args: Args) -> Exit {
    let incus = super::incus();
    let state_dir = state::state_dir();
    let sink = sink();
    if args.list {
        return list(&incus, &state_dir, &sink, args.format).await;
    }
    if args.cleanup {
        let prepared = match tx::prepare_cleanup(&incus, &state_dir, args.keep).await {
            Ok(p) => p,
            Err(e) => return refused(&e),
        };
        let kept = match anklume_executor::transaction::delete::kept_copies(&state_dir) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {}", esc(&e.to_string()));
                return Exit::Failed;
            }
        };
        let purge = &kept[..kept.len().saturating_sub(args.keep)];
        if prepared.plan.delete.is_empty() && purge.is_empty() {
            println!(
                "Cleanup: nothing to delete; {} pre-apply timestamp(s) kept.",
                prepared.plan.kept.len()
            );
            return Exit::Ok;
        }
        if !purge.is_empty() {
            println!("Kept copies of deleted instances to remove (rollback of those deletions can then no longer bring the instances back):");
            for (ts, dir, bytes) in purge {
                println!(
                    "  {ts}: {} ({})",
                    esc(&dir.display().to_string()),
                    anklume_executor::kind::instance::human_bytes(*bytes)
                );
            }
        }
        if prepared.plan.delete.is_empty() {
            if !args.yes && !confirmed("Remove these copies?") {
                return Exit::Invalid;
            }
            return purge_copies(&state_dir, args.keep);
        }
        println!("Pre-apply snapshots to delete (their applies can then no longer restore data):");
        for s in &prepared.plan.delete {
            println!(
                "  {} of {}/{}",
                esc(&s.name),
                esc(&s.project),
                esc(&s.instance)
            );
        }
        println!(
            "Kept: the newest {} timestamp(s){}.",
            prepared.plan.kept.len(),
            if prepared.plan.kept.is_empty() {
                String::new()
            } else {
                format!(": {}", prepared.plan.kept.join(", "))
            }
        );
        if !args.yes {
            let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            if !interactive {
                eprintln!("error: no terminal to confirm the deletion: pass --yes");
                return Exit::Invalid;
            }
            if !super::confirm("Delete these snapshots?") {
                eprintln!("cancelled: nothing was deleted");
                return Exit::Invalid;
            }
        }
        let copies = if purge.is_empty() {
            Exit::Ok
        } else {
            purge_copies(&state_dir, args.keep)
        };
        return match prepared.run(&incus).await {
            Ok(_) if !matches!(copies, Exit::Ok) => copies,
            Ok(c) => {
                for s in &c.deleted {
                    println!(
                        "deleted {} of {}/{}",
                        esc(&s.name),
                        esc(&s.project),
                        esc(&s.instance)
                    );
                }
                for (s, e) in &c.failed {
                    eprintln!(
                        "error: cannot delete {} of {}/{}: {}",
                        esc(&s.name),
                        esc(&s.project),
                        esc(&s.instance),
                        esc(e)
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
                    Exit::Ok
                } else {
                    Exit::Invalid
                }
            }
            Err(e) => refused(&e),
        };
    }
    let opts = Options {
        state_dir: state_dir.clone(),
        timestamp: args.timestamp.clone(),
        force: args.force,
        parallelism: args.parallelism,
        nft: anklume_executor::nft::system(),
    };
    let prepared = match tx::prepare(incus, opts, &sink).await {
        Ok(p) => p,
        Err(e) => return refused(&e),
    };
    let ts = prepared.ts.clone();
    match &prepared.journal {
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
    for s in &prepared.steps {
        println!("  {}", esc(&s.describe()));
    }
    if !prepared.later.is_empty() {
        eprintln!(
            "warning: {} later apply(s) ({}) may have changed the same objects; their changes to them are overwritten",
            prepared.later.len(),
            prepared.later.join(", ")
        );
    }
    if !args.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            eprintln!("error: no terminal to confirm the rollback: pass --yes");
            return Exit::Invalid;
        }
        if !super::confirm("Roll back?") {
            eprintln!("cancelled: nothing was changed");
            return Exit::Invalid;
        }
    }
    let s = prepared.run(&sink).await;
    println!(
        "Rollback: {} restored, {} already as before, {} skipped, {} failed.",
        s.restored, s.already, s.skipped, s.failed
    );
    if s.isolation_kept {
        eprintln!(
            "warning: partial rollback: the nftables table of the apply stays in force, because bridges it isolates are still there (see `skipped nftables/anklume` above); `anklume rollback {ts} --force` finishes the rollback"
        );
    } else if s.outcome == "partial" && s.failed == 0 {
        eprintln!("note: partial rollback: the skipped steps above were left as they are; `anklume rollback {ts}` again (with --force for protected instances) finishes it");
    }
    if s.failed > 0 {
        eprintln!("{} step(s) failed: see the FAILED lines above", s.failed);
        return Exit::Invalid;
    }
    if s.outcome == "nothing" {
        eprintln!("error: nothing could be restored\nhint: `anklume rollback --list` shows what can be rolled back");
        return Exit::Invalid;
    }
    Exit::Ok
}

async fn list(
    incus: &anklume_executor::Incus,
    state_dir: &std::path::Path,
    sink: &Sink,
    format: super::ListFormat,
) -> Exit {
    let rows = tx::history(incus, state_dir, sink).await;
    if format == super::ListFormat::Json {
        for r in rows.iter().rev() {
            println!("{}", serde_json::json!(r));
        }
        return Exit::Ok;
    }
    if rows.is_empty() {
        println!("Nothing to roll back: no apply journal and no pre-apply snapshot.");
        return Exit::Ok;
    }
    let cells: Vec<[String; 4]> = rows
        .iter()
        .rev()
        .map(|r| {
            let snapshot = match (&r.snapshot, r.snapshot_instances) {
                (Some(n), Some(k)) => format!("{n} ({k} instance(s))"),
                (Some(n), None) => n.clone(),
                (None, _) => "-".into(),
            };
            [
                r.ts.clone(),
                r.status.clone(),
                r.changes.map_or_else(|| "-".into(), |c| c.text()),
                snapshot,
            ]
        })
        .collect();
    let head = ["TIMESTAMP", "STATUS", "CHANGES", "SNAPSHOT"];
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].len())
            .max()
            .unwrap_or(0)
            .max(head[i].len())
    };
    let (w1, w2, w3) = (width(0), width(1), width(2));
    println!(
        "{:w1$}  {:w2$}  {:w3$}  {}",
        head[0], head[1], head[2], head[3]
    );
    for c in &cells {
        println!("{:w1$}  {:w2$}  {:w3$}  {}", c[0], c[1], c[2], c[3]);
    }
    Exit::Ok
}

/// Ask on the terminal (refuse without one).
fn confirmed(question: &str) -> bool {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        eprintln!("error: no terminal to confirm the deletion: pass --yes");
        return false;
    }
    if !super::confirm(question) {
        eprintln!("cancelled: nothing was deleted");
        return false;
    }
    true
}

/// Remove the kept copies of all but the newest `keep` deletions.
fn purge_copies(state_dir: &std::path::Path, keep: usize) -> Exit {
    match anklume_executor::transaction::delete::purge_kept(state_dir, keep) {
        Ok(p) => {
            println!(
                "Cleanup: removed the kept copies of {} deletion(s) ({}).",
                p.dirs,
                anklume_executor::kind::instance::human_bytes(p.bytes)
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {}", esc(&e.to_string()));
            Exit::Failed
        }
    }
}
