//! `anklume apply`: make Incus match a plan file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

// Names, keys, orphans and errors come from the plan or from Incus: printed
// escaped, they can never move the cursor or fake a line.
use anklume_term::display as esc;

use anklume_executor::apply::{
    execute, pre_apply_snapshots, touched_instances, Event, Outcome as NodeOutcome,
};
use anklume_executor::reconcile::{decide, preflight, Action};
use anklume_executor::{journal, live, snapshot, state, Api, Incus};
use anklume_plan::{Plan, Resource};
use serde_json::json;

use super::show::read_plan;
use crate::Outcome;

/// Output format of `apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyFormat {
    /// Lines for people (a progress counter on a terminal).
    Text,
    /// One JSON event per line.
    Json,
}

/// Make Incus match a plan: create what is missing, update what differs.
///
/// Reads Incus's state in bulk, decides per resource (create, update,
/// unchanged), lists orphans (reported, never deleted here), then executes
/// in dependency order. Provisioning is not run yet.
#[derive(clap::Args)]
pub struct Args {
    /// The plan file (`anklume plan > plan.bin`).
    pub plan: PathBuf,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply even if the sources changed since the plan was made.
    #[arg(long)]
    pub allow_stale: bool,
    /// Do not load the host nftables ruleset (when the rules belong on
    /// another host: use `anklume nftables deploy` there).
    #[arg(long)]
    pub no_nftables: bool,
    /// Do not snapshot the instances this apply changes
    /// (`pre-apply-YYYYMMDD-HHMMSS`); rollback then restores their
    /// configuration but not their data.
    #[arg(long)]
    pub skip_snapshot: bool,
    /// Pre-apply snapshots to keep after a successful apply (the newest N).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ApplyFormat,
}

fn describe(action: &Action) -> String {
    match action {
        Action::Create => "create".into(),
        Action::Unchanged => "unchanged".into(),
        Action::NotRun { reason } => format!("not run: {reason}"),
        Action::Update { changes } => {
            let parts: Vec<String> = changes
                .iter()
                .map(|c| {
                    format!(
                        "{}: {:?} -> {:?}",
                        esc(&c.key),
                        c.old.as_deref().unwrap_or(""),
                        c.new.as_deref().unwrap_or("")
                    )
                })
                .collect();
            format!("update: {}", parts.join("; "))
        }
    }
}

fn symbol(action: &Action) -> char {
    match action {
        Action::Create => '+',
        Action::Update { .. } => '~',
        Action::Unchanged => '=',
        Action::NotRun { .. } => '.',
    }
}

fn event_line(e: &Event) -> String {
    match &e.outcome {
        NodeOutcome::Created => format!("created {} ({} ms)", esc(&e.id), e.ms),
        NodeOutcome::Updated => format!("updated {} ({} ms)", esc(&e.id), e.ms),
        NodeOutcome::Unchanged => format!("unchanged {}", esc(&e.id)),
        NodeOutcome::NotRun { .. } => format!("not run {}", esc(&e.id)),
        NodeOutcome::Failed {
            error,
            half_created,
        } => format!(
            "FAILED {}{}: {}",
            esc(&e.id),
            if *half_created {
                " (half-created: exists but is not running)"
            } else {
                ""
            },
            esc(error)
        ),
        NodeOutcome::Skipped { because } => {
            format!("skipped {} (depends on {})", esc(&e.id), esc(because))
        }
        NodeOutcome::Interrupted => format!("not started {} (interrupted)", esc(&e.id)),
    }
}

fn pools(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.resource {
            Resource::Volume(v) => Some(v.pool.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Run it.
pub fn run(args: Args) -> Outcome {
    let json_out = args.format == ApplyFormat::Json;
    let file = match read_plan(&args.plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let stale = state::stale_sources(&file.header, std::path::Path::new("."));
    if !stale.is_empty() && !args.allow_stale {
        eprintln!(
            "error: the plan is stale: {} changed since the plan was made (or is missing)\nhint: run `anklume plan` again, or pass --allow-stale to apply it anyway",
            stale.join(", ")
        );
        return Outcome::Invalid;
    }
    let _lock = if args.dry_run {
        None
    } else {
        match state::lock(&state::state_dir()) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Invalid;
            }
        }
    };
    super::block_on(run_async(args, file.plan, json_out))
}

async fn run_async(args: Args, plan: Plan, json_out: bool) -> Outcome {
    let start = Instant::now();
    let incus = super::incus();
    let live = match live::read(&incus, &pools(&plan)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: reading Incus state: {e}");
            return Outcome::Invalid;
        }
    };
    let mut live = live;
    let state_dir = state::state_dir();
    if !args.no_nftables {
        match anklume_executor::nft::read(&state_dir) {
            Ok(s) => live.nftables = Some(s),
            Err(e) => {
                eprintln!("note: the host nftables ruleset is not managed by this apply: {e}")
            }
        }
    }
    // A journal without an end is a dead apply, unless an apply is running
    // right now (a dry run does not hold the lock: probe it).
    let unfinished = journal::unfinished(&state_dir)
        .filter(|_| !(args.dry_run && state::lock(&state_dir).is_err()));
    if let Some(j) = unfinished {
        let changes = j.changes();
        let finished = changes.iter().filter(|c| c.1.is_some()).count();
        if json_out {
            println!(
                "{}",
                json!({"event": "unfinished_apply", "journal": j.ts, "started": changes.len(), "finished": finished})
            );
        } else {
            eprintln!(
                "warning: the apply of {} did not finish (killed or crashed): {} change(s) started, {finished} finished.\n  `anklume rollback {}` undoes its completed part; this apply converges from what exists now.",
                j.ts,
                changes.len(),
                j.ts
            );
        }
    }
    let nft_previous = live.nftables.as_ref().and_then(|s| s.live_table.clone());
    let decisions = decide(&plan, &live);
    let mut out = String::new();
    let count = |a: &Action| match a {
        Action::Create => 0,
        Action::Update { .. } => 1,
        Action::Unchanged => 2,
        Action::NotRun { .. } => 3,
    };
    let mut totals = [0usize; 4];
    for (node, action) in plan.nodes.iter().zip(&decisions.actions) {
        totals[count(action)] += 1;
        if json_out {
            out.push_str(
                &json!({"event": "decision", "id": node.id, "decision": action}).to_string(),
            );
            out.push('\n');
        } else if !matches!(action, Action::Unchanged) {
            out.push_str(&format!(
                "  {} {} {}\n",
                symbol(action),
                esc(&node.id),
                describe(action)
            ));
        }
    }
    for o in &decisions.orphans {
        if json_out {
            out.push_str(&json!({"event": "orphan", "orphan": o}).to_string());
            out.push('\n');
        }
    }
    if !json_out {
        if !decisions.orphans.is_empty() {
            out.push_str("orphans (managed by anklume, absent from the plan; not deleted):\n");
            for o in &decisions.orphans {
                out.push_str(&format!(
                    "  {} {}/{}{}\n",
                    esc(o.kind),
                    esc(&o.project),
                    esc(&o.name),
                    if o.protected { " (protected)" } else { "" }
                ));
            }
        }
        out.push_str(&format!(
            "Plan: {} to create, {} to update, {} unchanged, {} not run, {} orphan(s).\n",
            totals[0],
            totals[1],
            totals[2],
            totals[3],
            decisions.orphans.len()
        ));
    }
    print!("{out}");
    if let Err(p) = preflight(&plan, &live) {
        for problem in &p.problems {
            eprintln!("error: {}", esc(&problem.to_string()));
        }
        eprintln!("nothing was changed");
        return Outcome::Invalid;
    }
    let changes = totals[0] + totals[1];
    if args.dry_run {
        if json_out {
            println!(
                "{}",
                json!({"event": "summary", "dry_run": true, "create": totals[0], "update": totals[1], "unchanged": totals[2], "not_run": totals[3], "orphans": decisions.orphans.len(), "requests": incus.counters().reads() + incus.counters().writes(), "writes": incus.counters().writes(), "ms": start.elapsed().as_millis() as u64})
            );
        } else {
            println!(
                "Dry run: nothing changed ({} requests, {} writes, {} ms).",
                incus.counters().reads() + incus.counters().writes(),
                incus.counters().writes(),
                start.elapsed().as_millis()
            );
        }
        return Outcome::Ok;
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if changes > 0 && !args.yes {
        if !interactive {
            eprintln!(
                "error: {changes} change(s) to make and no terminal to confirm them: pass --yes"
            );
            return Outcome::Invalid;
        }
        if !super::confirm("Apply these changes?") {
            eprintln!("cancelled: nothing was changed");
            return Outcome::Invalid;
        }
    }
    let progress = !json_out && std::io::stdout().is_terminal();
    // Journal and pre-apply snapshots, before the first change.
    let journal = if changes > 0 {
        match journal::Journal::create(&state_dir) {
            Ok(j) => Some(Arc::new(j)),
            Err(e) => {
                eprintln!("error: cannot start the apply journal: {e}\nnothing was changed");
                return Outcome::Failed;
            }
        }
    } else {
        None
    };
    let touched = touched_instances(&plan, &decisions);
    let mut snapshot_taken = false;
    if let Some(j) = &journal {
        let snap_name = (!args.skip_snapshot && !touched.is_empty())
            .then(|| format!("{}{}", snapshot::PRE_APPLY, j.ts));
        let begin = journal::Record::Begin {
            ts: j.ts.clone(),
            anklume: env!("CARGO_PKG_VERSION").to_string(),
            changes,
            snapshot: snap_name.clone(),
        };
        if let Err(e) = j.append(&begin) {
            eprintln!("error: cannot write the apply journal: {e}\nnothing was changed");
            return Outcome::Failed;
        }
        if let Some(name) = &snap_name {
            let results =
                pre_apply_snapshots(&incus, &touched, name, args.parallelism, Some(j)).await;
            let ok = results.iter().filter(|r| r.1.is_ok()).count();
            for (i, r) in &results {
                if let Err(e) = r {
                    eprintln!(
                        "warning: snapshot {name} of {}/{} failed: {e} (apply goes on; rollback cannot restore its data)",
                        i.project, i.name
                    );
                }
            }
            if ok > 0 {
                snapshot_taken = true;
                if let Err(e) = snapshot::record(&state_dir, &j.ts, "all") {
                    eprintln!("warning: {e}");
                }
            }
            if json_out {
                println!(
                    "{}",
                    json!({"event": "snapshot", "name": name, "taken": ok, "failed": results.len() - ok})
                );
            } else {
                println!("Snapshot {name} of {ok} instance(s) about to change.");
            }
        }
    }
    let report = execute(
        &incus,
        &plan,
        &decisions,
        args.parallelism,
        &anklume_executor::apply::Context {
            state_dir: state_dir.clone(),
            nft_previous,
            journal: journal.clone(),
        },
        Arc::new(AtomicBool::new(false)),
        |e, done, total| {
            if json_out {
                println!("{}", json!({"event": "result", "node": e}));
            } else if !matches!(
                e.outcome,
                NodeOutcome::Unchanged | NodeOutcome::NotRun { .. }
            ) {
                if progress {
                    println!("[{done}/{total}] {}", event_line(e));
                } else {
                    println!("{}", event_line(e));
                }
            }
        },
    )
    .await;
    let mut t = std::collections::BTreeMap::<&str, usize>::new();
    for e in report.results.iter().flatten() {
        let k = match &e.outcome {
            NodeOutcome::Created => "created",
            NodeOutcome::Updated => "updated",
            NodeOutcome::Unchanged => "unchanged",
            NodeOutcome::NotRun { .. } => "not run",
            NodeOutcome::Failed { .. } => "failed",
            NodeOutcome::Skipped { .. } => "skipped",
            NodeOutcome::Interrupted => "interrupted",
        };
        *t.entry(k).or_default() += 1;
    }
    let get = |k: &str| t.get(k).copied().unwrap_or(0);
    let all_ok = !report.interrupted && get("failed") == 0;
    if let Some(j) = &journal {
        let outcome = if report.interrupted {
            "interrupted"
        } else if all_ok {
            "ok"
        } else {
            "failed"
        };
        if let Err(e) = j.append(&journal::Record::End {
            outcome: outcome.into(),
        }) {
            eprintln!("warning: {e}");
        }
    }
    // Retention, after a successful apply that added snapshots.
    if snapshot_taken && all_ok {
        match snapshot::cleanup(&incus, &state_dir, args.keep).await {
            Ok(c) => {
                for (s, e) in &c.failed {
                    eprintln!(
                        "warning: cannot delete old snapshot {} of {}/{}: {e}",
                        s.name, s.project, s.instance
                    );
                }
                if !c.deleted.is_empty() && !json_out {
                    println!(
                        "Retention: deleted {} old pre-apply snapshot(s), keeping the newest {}.",
                        c.deleted.len(),
                        args.keep
                    );
                }
            }
            Err(e) => eprintln!("warning: pre-apply snapshot retention: {e}"),
        }
    }
    let requests = incus.counters().reads() + incus.counters().writes();
    if json_out {
        println!(
            "{}",
            json!({"event": "summary", "dry_run": false, "created": get("created"), "updated": get("updated"), "unchanged": get("unchanged"), "not_run": get("not run"), "failed": get("failed"), "skipped": get("skipped"), "interrupted": get("interrupted"), "orphans": decisions.orphans.len(), "requests": requests, "writes": incus.counters().writes(), "ms": start.elapsed().as_millis() as u64, "journal": journal.as_ref().map(|j| j.ts.clone())})
        );
    } else {
        println!(
            "Applied: {} created, {} updated, {} unchanged, {} not run, {} failed, {} skipped{} ({requests} requests, {} writes, {} ms).",
            get("created"),
            get("updated"),
            get("unchanged"),
            get("not run"),
            get("failed"),
            get("skipped"),
            if get("interrupted") > 0 { format!(", {} interrupted", get("interrupted")) } else { String::new() },
            incus.counters().writes(),
            start.elapsed().as_millis()
        );
        if get("not run") > 0 {
            println!(
                "Not run: provisioning (Ansible) is not part of apply yet{}.",
                if args.no_nftables {
                    "; nor is the host nftables ruleset (--no-nftables)"
                } else {
                    ""
                }
            );
        }
        if let Some(j) = &journal {
            println!(
                "Journal: {} (undo with `anklume rollback {}`).",
                j.path.display(),
                j.ts
            );
        }
        let failed: Vec<&Event> = report.failed().collect();
        if !failed.is_empty() {
            eprintln!("{} node(s) failed:", failed.len());
            for e in failed {
                eprintln!("  {}", event_line(e));
            }
        }
    }
    if report.interrupted {
        Outcome::Interrupted
    } else if report.failed().next().is_some() {
        Outcome::Invalid
    } else {
        Outcome::Ok
    }
}
