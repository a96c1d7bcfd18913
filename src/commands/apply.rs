//! `anklume apply`: make Incus match a plan file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

// Names, keys, orphans and errors come from the plan or from Incus: printed
// escaped, they can never move the cursor or fake a line.
use anklume_term::display as esc;

use anklume_executor::decide::Action;
use anklume_executor::schedule::{NodeEvent, NodeResult};
use anklume_executor::transaction::apply::{self as tx, Options, Summary};
use anklume_executor::transaction::{Event, Sink, TxError};
use anklume_executor::{state, Api};
use serde_json::json;

use super::show::read_plan;
use crate::Exit;

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
/// in dependency order, then provisions (Ansible inside the instances
/// whose provisioning fingerprint differs), streaming each task.
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
    /// Do not run provisioning (Ansible inside the instances).
    #[arg(long)]
    pub no_provision: bool,
    /// Only these domains or machines (comma-separated, or repeated), and
    /// what they depend on; the rest is reported not run.
    #[arg(long, value_delimiter = ',', value_name = "DOMAIN|MACHINE")]
    pub limit: Vec<String>,
    /// Provision again even where the fingerprint matches: these domains or
    /// machines (comma-separated), or every instance when none is given.
    #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "DOMAIN|MACHINE")]
    pub reprovision: Option<Vec<String>>,
    /// Do not snapshot the instances this apply changes
    /// (`pre-apply-YYYYMMDD-HHMMSS`); rollback then restores their
    /// configuration but not their data.
    #[arg(long)]
    pub skip_snapshot: bool,
    /// Pre-apply snapshots, and kept copies of deleted instances, to keep
    /// after a successful apply (those of the newest N applies).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep: usize,
    /// Delete the orphans: what anklume made (`user.anklume.managed`) that
    /// the plan no longer declares (with --limit, only the named domains'),
    /// instances first, then profiles, projects and bridges, once the
    /// plan's changes are made. Each deleted instance is kept as a backup
    /// first, so `anklume rollback` brings it back with its data.
    #[arg(long)]
    pub prune: bool,
    /// With --prune: delete protected instances too
    /// (`security.protection.delete`, from `ephemeral: false`).
    #[arg(long, requires = "prune")]
    pub force: bool,
    /// With --prune: keep no copy of the deleted instances (their space
    /// comes back now; rollback cannot bring their data back).
    #[arg(long, requires = "prune")]
    pub no_keep: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ApplyFormat,
    /// Also list every node that will not run (text format: one line per
    /// reason otherwise), and the Ansible tasks that changed nothing (JSON
    /// always has every decision and task).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// Changed keys as apply's decisions (and `status`) show them:
/// `key: "old" -> "new"`, joined by `; `.
pub(super) fn changes_text(changes: &[anklume_executor::decide::Change]) -> String {
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
    parts.join("; ")
}

fn describe(action: &Action) -> String {
    match action {
        Action::Create => "create".into(),
        Action::Unchanged => "unchanged".into(),
        Action::NotRun { reason } => format!("not run: {reason}"),
        Action::Update { changes } => format!("update: {}", changes_text(changes)),
        Action::Adopt { changes } => format!(
            "adopt (made outside anklume; gains {})",
            changes
                .iter()
                .map(|c| c.key.trim_start_matches("config."))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The decision's symbol: `+` create, `~` update, `@` adopt, `=`
/// unchanged, `.` not run (`status` marks its states with the same).
pub(super) fn symbol(action: &Action) -> char {
    match action {
        Action::Create => '+',
        Action::Update { .. } => '~',
        Action::Adopt { .. } => '@',
        Action::Unchanged => '=',
        Action::NotRun { .. } => '.',
    }
}

fn event_line(e: &NodeEvent) -> String {
    let line = match &e.result {
        NodeResult::Created => format!("created {} ({} ms)", esc(&e.id), e.ms),
        NodeResult::Updated => format!("updated {} ({} ms)", esc(&e.id), e.ms),
        NodeResult::Unchanged => format!("unchanged {}", esc(&e.id)),
        NodeResult::NotRun { .. } => format!("not run {}", esc(&e.id)),
        NodeResult::Failed {
            error,
            half_created,
        } => format!(
            "FAILED {}{}{}: {}",
            esc(&e.id),
            e.origin
                .as_deref()
                .map_or_else(String::new, |o| format!(" ({})", esc(o))),
            if *half_created {
                " (half-created: exists but is not running)"
            } else {
                ""
            },
            esc(error)
        ),
        NodeResult::Skipped { because } => {
            format!("skipped {} (depends on {})", esc(&e.id), esc(because))
        }
        NodeResult::Interrupted => format!("not started {} (interrupted)", esc(&e.id)),
    };
    match &e.warning {
        Some(w) => format!("{line}; warning: {}", esc(w)),
        None => line,
    }
}

/// inotify instances a booted Debian container takes (systemd, udev,
/// networkd, resolved, journald…), measured about ten, with a margin.
const INOTIFY_PER_CONTAINER: usize = 12;

/// Unprivileged containers all map root to the same host uid, whose
/// inotify instances are limited by `fs.inotify.max_user_instances`
/// (Debian: 128). Past it, containers boot without network (dnsmasq and
/// systemd fail with "Too many open files"): say so before, with the fix.
fn inotify_warning(containers: usize, limit: Option<usize>) -> Option<String> {
    let limit = limit?;
    (containers * INOTIFY_PER_CONTAINER > limit).then(|| {
        format!(
            "fs.inotify.max_user_instances is {limit}: not enough for {containers} containers (about {INOTIFY_PER_CONTAINER} each, counted together); they may boot without network. Raise it: sysctl -w fs.inotify.max_user_instances=1048576 (scripts/incus-setup.sh does, and keeps it in /etc/sysctl.d/)"
        )
    })
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let file = match read_plan(&args.plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    super::block_on(run_async(args, file))
}

/// How events look: text lines for people, or one JSON object per line.
fn sink(json_out: bool, progress: bool, verbose: bool) -> Sink {
    Arc::new(move |event: &Event| {
        if json_out {
            if let Event::Interrupted { .. } | Event::Warning { .. } | Event::Internal { .. } =
                event
            {
                // Said on stderr in both formats: stdout stays the stream
                // of results.
            } else {
                println!("{}", json!(event));
                return;
            }
        }
        match event {
            Event::UnfinishedApply {
                journal,
                started,
                finished,
            } => eprintln!(
                "warning: the apply of {journal} did not finish (killed or crashed): {started} change(s) started, {finished} finished.\n  `anklume rollback {journal}` undoes its completed part; this apply converges from what exists now."
            ),
            Event::NftablesNotManaged { reason } => eprintln!(
                "note: the host nftables ruleset is not managed by this apply: {}",
                esc(reason)
            ),
            Event::SnapshotFailed {
                project,
                instance,
                name,
                error,
            } => eprintln!(
                "warning: snapshot {name} of {}/{} failed: {} (apply goes on; rollback cannot restore its data)",
                esc(project),
                esc(instance),
                esc(error)
            ),
            Event::AddressFreed {
                project,
                instance,
                nics,
                stopped,
            } => println!(
                "Freed the static address of {}/{} ({}){}: another instance takes it over.",
                esc(project),
                esc(instance),
                esc(&nics.join(", ")),
                if *stopped { " and stopped it (it starts again with its new address)" } else { "" }
            ),
            Event::Snapshot { name, taken, .. } => {
                println!("Snapshot {name} of {taken} instance(s) about to change.")
            }
            Event::Result { node, done, total } => {
                if !matches!(node.result, NodeResult::Unchanged | NodeResult::NotRun { .. }) {
                    if progress {
                        println!("[{done}/{total}] {}", event_line(node));
                    } else {
                        println!("{}", event_line(node));
                    }
                }
            }
            Event::Task { task: t, .. } => {
                use anklume_executor::ansible::TaskStatus as S;
                let status = match (t.status, t.ignored) {
                    (S::Failed, true) => "failed (ignored)",
                    (S::Failed, false) => "FAILED",
                    (S::Unreachable, _) => "UNREACHABLE",
                    (S::Changed, _) => "changed",
                    (S::Ok, _) => "ok",
                    (S::Skipped, _) => "skipped",
                };
                let shown = verbose || matches!(t.status, S::Changed | S::Failed | S::Unreachable);
                if shown {
                    let why = match (&t.msg, t.ignored) {
                        (Some(m), false) => format!(": {}", esc(m.lines().next().unwrap_or(""))),
                        _ => String::new(),
                    };
                    println!("  [{}] {status} {}{why}", esc(&t.host), esc(&t.task));
                }
            }
            Event::Interrupted { again: false } => eprintln!(
                "interrupted: no new operation is started; waiting for those in flight (Ctrl-C again to quit now)"
            ),
            Event::Interrupted { again: true } => {
                eprintln!(
                    "interrupted again: quitting without waiting; operations in flight continue in Incus"
                );
                std::process::exit(130);
            }
            Event::Retention { deleted, keep } => println!(
                "Retention: deleted {deleted} old pre-apply snapshot(s), keeping the newest {keep}."
            ),
            Event::RetentionFailed { snapshot: s, error } => eprintln!(
                "warning: cannot delete old snapshot {} of {}/{}: {}",
                esc(&s.name),
                esc(&s.project),
                esc(&s.instance),
                esc(error)
            ),
            Event::Warning { message } => eprintln!("warning: {}", esc(message)),
            Event::Internal { message } => eprintln!("internal error: {}", esc(message)),
            Event::Deleted { deleted } => println!("{}", super::deletions::line(deleted)),
            Event::KeptRetention {
                removed,
                bytes,
                keep,
            } => println!(
                "Retention: removed the kept copies of {removed} older deletion(s) ({}), keeping those of the newest {keep}.",
                anklume_executor::kind::instance::human_bytes(*bytes)
            ),
            Event::Settled { .. } | Event::Step { .. } => {}
        }
    })
}

async fn run_async(args: Args, file: anklume_plan::codec::PlanFile) -> Exit {
    let start = Instant::now();
    let json_out = args.format == ApplyFormat::Json;
    let progress = !json_out && std::io::stdout().is_terminal();
    let sink = sink(json_out, progress, args.verbose);
    // The plan's relative paths: from here, or from beside the plan file
    // when that is where they match (a plan applied from elsewhere).
    let plan_dir = match args.plan.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let sources_dir = state::sources_dir(&file.header, &[PathBuf::from("."), plan_dir]);
    let tree_dir = sources_dir.join(if file.header.tree_dir.is_empty() {
        "."
    } else {
        file.header.tree_dir.as_str()
    });
    let opts = Options {
        state_dir: state::state_dir(),
        dry_run: args.dry_run,
        parallelism: args.parallelism,
        nftables: !args.no_nftables,
        snapshots: !args.skip_snapshot,
        keep: args.keep,
        allow_stale: args.allow_stale,
        sources_dir: sources_dir.clone(),
        ctrl_c: true,
        anklume_version: env!("CARGO_PKG_VERSION").to_string(),
        nft: anklume_executor::nft::system(),
        limit: args.limit.clone(),
        reprovision: args.reprovision.clone(),
        prune: args.prune,
        force: args.force,
        keep_copies: !args.no_keep,
        provisioning: (!args.no_provision).then(|| anklume_executor::ansible::Setup {
            ansible_playbook: anklume_executor::ansible::default_playbook(),
            content: crate::ansible_content::dir().unwrap_or_else(|e| {
                eprintln!("warning: {}", esc(&e));
                PathBuf::new()
            }),
            // Absolute: Ansible resolves a relative roles path from its
            // configuration file's directory, not from here.
            tree: std::path::absolute(&tree_dir).unwrap_or_else(|_| tree_dir.clone()),
            logs: state::state_dir().join("ansible"),
            forks: args.parallelism,
            quiet: std::time::Duration::from_millis(1500),
        }),
    };
    let prepared = match tx::prepare(super::incus(), file.plan, &file.header, opts, &sink).await {
        Ok(p) => p,
        Err(e) => return refused(&e, &sources_dir),
    };
    let plan = prepared.plan();
    let decisions = &prepared.decisions;
    let mut out = String::new();
    let mut totals = [0usize; 5];
    let mut not_run: std::collections::BTreeMap<&str, (usize, &String)> = Default::default();
    for (node, action) in plan.nodes.iter().zip(&decisions.actions) {
        totals[match action {
            Action::Create => 0,
            Action::Update { .. } => 1,
            Action::Unchanged => 2,
            Action::NotRun { .. } => 3,
            Action::Adopt { .. } => 4,
        }] += 1;
        if json_out {
            out.push_str(
                &json!({"event": "decision", "id": node.id, "decision": action}).to_string(),
            );
            out.push('\n');
        } else if let (Action::NotRun { reason }, false) = (action, args.verbose) {
            // One line per reason, not one per node (-v lists them).
            let e = not_run.entry(reason.as_str()).or_insert((0, &node.id));
            e.0 += 1;
        } else if !matches!(action, Action::Unchanged) {
            out.push_str(&format!(
                "  {} {} {}\n",
                symbol(action),
                esc(&node.id),
                describe(action)
            ));
        }
    }
    for (reason, (n, first)) in &not_run {
        if *n == 1 {
            out.push_str(&format!("  . {} not run: {}\n", esc(first), esc(reason)));
        } else {
            out.push_str(&format!(
                "  . {n} nodes not run ({} …; -v lists them): {}\n",
                esc(first),
                esc(reason)
            ));
        }
    }
    for o in &decisions.orphans {
        if json_out {
            out.push_str(&json!({"event": "orphan", "orphan": o}).to_string());
            out.push('\n');
        }
    }
    if args.prune {
        let any = !prepared.deletions.is_empty() || !prepared.spared.is_empty();
        if !json_out && any {
            out.push_str("--prune (after the changes above):\n");
        }
        out.push_str(&super::deletions::plan(
            &prepared.deletions,
            &prepared.spared,
            !args.no_keep,
            json_out,
        ));
    }
    if !json_out {
        if !decisions.orphans.is_empty() && !args.prune {
            out.push_str("orphans (managed by anklume, absent from the plan; `apply --prune` deletes them):\n");
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
        let orphans = if args.prune {
            format!(
                "{} to delete, {} orphan(s) kept",
                prepared.deletions.len(),
                prepared.spared.len()
            )
        } else {
            format!("{} orphan(s)", decisions.orphans.len())
        };
        out.push_str(&format!(
            "Plan: {} to create, {} to update,{} {} unchanged, {} not run, {orphans}.\n",
            totals[0],
            totals[1],
            if totals[4] > 0 {
                format!(" {} to adopt,", totals[4])
            } else {
                String::new()
            },
            totals[2],
            totals[3],
        ));
    }
    print!("{out}");
    let containers = plan
        .nodes
        .iter()
        .filter(|n| {
            matches!(&n.resource, anklume_plan::Resource::Instance(i)
                if i.instance_type == anklume_plan::InstanceType::Container)
        })
        .count();
    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if let Some(w) = inotify_warning(containers, limit) {
        eprintln!("warning: {w}");
    }
    if let Some(p) = &prepared.preflight {
        for problem in &p.problems {
            eprintln!("error: {}", esc(problem));
        }
        eprintln!("nothing was changed");
        return Exit::Invalid;
    }
    let counters = prepared.api().counters();
    if args.dry_run {
        if json_out {
            println!(
                "{}",
                json!({"event": "summary", "dry_run": true, "create": totals[0], "update": totals[1], "adopt": totals[4], "unchanged": totals[2], "not_run": totals[3], "orphans": decisions.orphans.len(), "delete": prepared.deletions.len(), "requests": counters.total(), "writes": counters.writes(), "ms": start.elapsed().as_millis() as u64})
            );
        } else {
            println!(
                "Dry run: nothing changed ({} requests, {} writes, {} ms).",
                counters.total(),
                counters.writes(),
                start.elapsed().as_millis()
            );
        }
        return Exit::Ok;
    }
    let changes = decisions.changes() + prepared.deletions.len();
    if changes > 0 && !args.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            eprintln!(
                "error: {changes} change(s) to make and no terminal to confirm them: pass --yes"
            );
            return Exit::Invalid;
        }
        if !super::confirm("Apply these changes?") {
            eprintln!("cancelled: nothing was changed");
            return Exit::Invalid;
        }
    }
    let orphans = decisions.orphans.len();
    let api = prepared.api().clone();
    let summary = match prepared.run(&sink).await {
        Ok(s) => s,
        Err(e) => return refused(&e, &sources_dir),
    };
    render_summary(&summary, orphans, &api, start, json_out);
    if summary.report.interrupted {
        Exit::Interrupted
    } else if !summary.report.panicked.is_empty() {
        Exit::Internal
    } else if summary.report.failed().next().is_some() || !summary.ok() {
        Exit::Invalid
    } else {
        Exit::Ok
    }
}

/// The transaction did not start, or stopped before any change.
fn refused(e: &TxError, sources_dir: &std::path::Path) -> Exit {
    match e {
        TxError::Stale { .. } => {
            let dir = std::path::absolute(sources_dir).unwrap_or_else(|_| sources_dir.into());
            eprintln!(
                "error: {} (paths relative to {})\nhint: run `anklume plan` again, or pass --allow-stale to apply it anyway",
                esc(&e.to_string()),
                esc(&dir.display().to_string())
            );
            Exit::Invalid
        }
        TxError::JournalStart(_) | TxError::JournalWrite(_) => {
            eprintln!("error: {}\nnothing was changed", esc(&e.to_string()));
            Exit::Failed
        }
        TxError::Preflight(p) => {
            for problem in &p.problems {
                eprintln!("error: {}", esc(problem));
            }
            eprintln!("nothing was changed");
            Exit::Invalid
        }
        _ => {
            eprintln!("error: {}", esc(&e.to_string()));
            Exit::Invalid
        }
    }
}

fn render_summary(
    summary: &Summary,
    orphans: usize,
    api: &impl Api,
    start: Instant,
    json_out: bool,
) {
    let get = |k: &str| summary.count(k);
    let c = api.counters();
    if json_out {
        println!(
            "{}",
            json!({"event": "summary", "dry_run": false, "created": get("created"), "updated": get("updated"), "unchanged": get("unchanged"), "not_run": get("not_run"), "failed": get("failed"), "skipped": get("skipped"), "interrupted": get("interrupted"), "orphans": orphans, "deleted": summary.deleted.iter().filter(|d| d.ok()).count(), "delete_failed": summary.deleted.iter().filter(|d| !d.ok()).count(), "requests": c.total(), "writes": c.writes(), "ms": start.elapsed().as_millis() as u64, "journal": summary.journal.as_ref().map(|j| j.0.clone())})
        );
        return;
    }
    println!(
        "Applied: {} created, {} updated, {} unchanged, {} not run, {} failed, {} skipped{} ({} requests, {} writes, {} ms).",
        get("created"),
        get("updated"),
        get("unchanged"),
        get("not_run"),
        get("failed"),
        get("skipped"),
        if get("interrupted") > 0 {
            format!(", {} interrupted", get("interrupted"))
        } else {
            String::new()
        },
        c.total(),
        c.writes(),
        start.elapsed().as_millis()
    );
    if !summary.deleted.is_empty() {
        let ok = summary.deleted.iter().filter(|d| d.ok()).count();
        let bytes: u64 = summary
            .deleted
            .iter()
            .filter_map(|d| d.kept.as_ref())
            .map(|k| k.bytes)
            .sum();
        println!(
            "Pruned: {ok} deleted, {} not{}.",
            summary.deleted.len() - ok,
            if bytes > 0 {
                format!(
                    "; copies kept for rollback: {}",
                    anklume_executor::kind::instance::human_bytes(bytes)
                )
            } else {
                String::new()
            }
        );
    }
    // Why nodes did not run, one line per reason.
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in summary.report.results.iter().flatten() {
        if let NodeResult::NotRun { reason } = &e.result {
            *reasons.entry(reason.as_str()).or_default() += 1;
        }
    }
    for (reason, n) in reasons {
        println!("Not run ({n}): {}.", esc(reason));
    }
    if let Some((ts, path)) = &summary.journal {
        println!(
            "Journal: {} (undo with `anklume rollback {ts}`).",
            path.display()
        );
    }
    let failed: Vec<&NodeEvent> = summary.report.failed().collect();
    if !failed.is_empty() {
        eprintln!("{} node(s) failed:", failed.len());
        for e in failed {
            eprintln!("  {}", event_line(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inotify_warning;

    #[test]
    fn inotify_limit_warns_only_when_the_containers_do_not_fit() {
        assert!(inotify_warning(12, Some(128)).unwrap().contains("is 128"));
        assert_eq!(inotify_warning(10, Some(128)), None);
        assert_eq!(inotify_warning(12, Some(1_048_576)), None);
        assert_eq!(inotify_warning(500, None), None, "unreadable: no guess");
    }
}
