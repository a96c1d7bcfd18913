//! `anklume snapshot`: create, restore, list and delete instance snapshots,
//! of one instance (anklume v1's `snap.sh`) or of whole domains (`--domain
//! D`, `--all`: v1's `snapshot`, `restore-domain` and `snapshot-delete`
//! targets), a few instances at a time.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anklume_executor::snapshot::{self, SnapInfo};
use anklume_executor::transaction::snapshots::{
    self as tx, Item, Member, Op, Options, Outcome, Plan, Selection, SnapEvent, SnapSink, Summary,
};
use anklume_executor::{journal, state};
use anklume_term::display as esc;
use serde_json::json;

use super::ListFormat;
use crate::Exit;

/// Instance snapshots: of one instance, by its name alone (its project is
/// found across all projects) or `self` (the instance this runs in); or of
/// every anklume-managed instance of some domains (`--domain`) or of all
/// (`--all`), with one snapshot name for the whole run.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// Which instances, and how to run over them.
#[derive(clap::Args)]
pub struct Bulk {
    /// The anklume-managed instances of this domain
    /// (`user.anklume.domain`) instead of one instance; repeat it, or
    /// separate domains with commas. The one positional is then the
    /// snapshot name.
    #[arg(long, value_name = "DOMAIN", value_delimiter = ',')]
    pub domain: Vec<String>,
    /// Every anklume-managed instance (`user.anklume.managed=true`).
    #[arg(long, conflicts_with = "domain")]
    pub all: bool,
    /// Instances worked on at once.
    #[arg(long, default_value_t = 8, value_name = "N", alias = "parallelism")]
    pub parallel: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: RunFormat,
}

/// Output format of `snapshot create|restore|delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// Lines for people.
    Text,
    /// One JSON event per line (`planned`, `journal`, `result`,
    /// `summary`).
    Json,
}

impl Bulk {
    fn is_bulk(&self) -> bool {
        self.all || !self.domain.is_empty()
    }
}

/// What to do.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Take a snapshot (default name `snap-YYYYMMDD-HHMMSS`, computed once
    /// for the whole run). With --domain or --all, an instance that already
    /// has the name is skipped and reported.
    Create {
        /// The instance, or `self` (with --domain or --all: the snapshot
        /// name).
        #[arg(value_name = "INSTANCE")]
        target: Option<String>,
        /// The snapshot name.
        name: Option<String>,
        #[command(flatten)]
        bulk: Bulk,
    },
    /// Restore a snapshot, as one journaled change that `anklume rollback`
    /// undoes: each instance is snapshotted first (`pre-apply-<ts>`), and
    /// after the restore gets back the configuration it had just before
    /// (Incus's restore would bring back the snapshot's). Incus stops a
    /// running instance, restores and restarts it. Lists what it will do
    /// and asks first (`--yes` without a terminal).
    Restore {
        /// The instance, or `self` (with --domain or --all: the snapshot
        /// name).
        #[arg(value_name = "INSTANCE")]
        target: Option<String>,
        /// The snapshot name.
        name: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Do not ask before restoring the instance this runs in (which
        /// ends this session); --yes does not answer that question.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        bulk: Bulk,
    },
    /// List snapshots (of every instance when none is named).
    List {
        /// The instance, or `self`.
        instance: Option<String>,
        /// Only the anklume-managed instances of this domain (repeatable).
        #[arg(
            long,
            value_name = "DOMAIN",
            value_delimiter = ',',
            conflicts_with = "instance"
        )]
        domain: Vec<String>,
        /// `text` (a table) or `json` (one object per snapshot:
        /// project, instance, name, created_at).
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Delete a snapshot. This cannot be undone. Lists what it will do and
    /// asks first (`--yes` without a terminal); with --domain or --all an
    /// instance without the snapshot is reported, not a failure.
    Delete {
        /// The instance, or `self` (with --domain or --all: the snapshot
        /// name).
        #[arg(value_name = "INSTANCE")]
        target: Option<String>,
        /// The snapshot name.
        name: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        bulk: Bulk,
    },
}

/// Run it.
pub fn run(args: Args) -> Exit {
    super::block_on(run_async(args.action))
}

fn print(list: &[SnapInfo]) {
    if list.is_empty() {
        println!("No snapshots.");
        return;
    }
    let w = |f: fn(&SnapInfo) -> &str, h: &str| {
        list.iter()
            .map(|s| esc(f(s)).chars().count())
            .max()
            .unwrap_or(0)
            .max(h.len())
    };
    let (w1, w2, w3) = (
        w(|s| &s.instance, "INSTANCE"),
        w(|s| &s.project, "PROJECT"),
        w(|s| &s.name, "SNAPSHOT"),
    );
    println!(
        "{:w1$}  {:w2$}  {:w3$}  CREATED",
        "INSTANCE", "PROJECT", "SNAPSHOT"
    );
    for s in list {
        println!(
            "{:w1$}  {:w2$}  {:w3$}  {}",
            esc(&s.instance),
            esc(&s.project),
            esc(&s.name),
            esc(&s.created_at)
        );
    }
}

/// Which instances and which name, from the positionals and the flags.
/// `Err`: a usage error (exit 2).
fn selection(
    target: Option<String>,
    name: Option<String>,
    bulk: &Bulk,
    name_required: bool,
) -> Result<(Selection, Option<String>), String> {
    let (sel, name) =
        if bulk.is_bulk() {
            if target.is_some() && name.is_some() {
                return Err("with --domain or --all, give only the snapshot name".into());
            }
            let sel = if bulk.all {
                Selection::All
            } else {
                let mut d = bulk.domain.clone();
                d.sort();
                d.dedup();
                Selection::Domains(d)
            };
            (sel, name.or(target))
        } else {
            match target {
                Some(t) => (Selection::One(t), name),
                None => return Err(
                    "name an instance (or `self`), or choose instances with --domain D or --all"
                        .into(),
                ),
            }
        };
    if name_required && name.is_none() {
        return Err("the snapshot name is required".into());
    }
    if let Some(n) = &name {
        if n.is_empty() || n.contains('/') {
            return Err(format!(
                "'{}' is not a snapshot name (not empty, no '/')",
                esc(n)
            ));
        }
    }
    Ok((sel, name))
}

async fn run_async(action: Action) -> Exit {
    match action {
        Action::List {
            instance,
            domain,
            format,
        } => list(instance, domain, format).await,
        Action::Create { target, name, bulk } => {
            let (sel, name) = match selection(target, name, &bulk, false) {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            // One name for the whole run, computed once.
            let name =
                name.unwrap_or_else(|| format!("{}{}", snapshot::USER, journal::timestamp()));
            bulk_run(Op::Create, sel, name, &bulk, true, false).await
        }
        Action::Restore {
            target,
            name,
            yes,
            force,
            bulk,
        } => {
            let (sel, name) = match selection(target, name, &bulk, true) {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            bulk_run(
                Op::Restore,
                sel,
                name.unwrap_or_default(),
                &bulk,
                yes,
                force,
            )
            .await
        }
        Action::Delete {
            target,
            name,
            yes,
            bulk,
        } => {
            let (sel, name) = match selection(target, name, &bulk, true) {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            bulk_run(Op::Delete, sel, name.unwrap_or_default(), &bulk, yes, false).await
        }
    }
}

fn usage(e: &str) -> Exit {
    eprintln!("error: {e}");
    Exit::Failed
}

async fn list(instance: Option<String>, domain: Vec<String>, format: ListFormat) -> Exit {
    let incus = super::incus();
    let result = match (instance, domain.is_empty()) {
        (Some(i), _) => match snapshot::resolve_target(&incus, &i).await {
            Ok(t) => snapshot::list_one(&incus, &t)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        (None, true) => snapshot::list_all(&incus).await.map_err(|e| e.to_string()),
        (None, false) => match tx::members(&incus, &Selection::Domains(domain)).await {
            Ok(members) => snapshot::list_all(&incus)
                .await
                .map(|all| {
                    all.into_iter()
                        .filter(|s| {
                            members
                                .iter()
                                .any(|m| m.project == s.project && m.instance == s.instance)
                        })
                        .collect()
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(l) => {
            if format == ListFormat::Json {
                for s in &l {
                    println!("{}", json!(s));
                }
            } else {
                print(&l);
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {}", esc(&e));
            Exit::Invalid
        }
    }
}

/// `X (project P)`, escaped.
fn who(m: &Member) -> String {
    format!("{} ({})", esc(&m.instance), esc(&m.project))
}

/// The line that says what will happen to one instance (restore, delete).
fn planned_line(op: Op, item: &Item) -> String {
    let m = &item.member;
    match (&item.plan, op) {
        (Plan::Restore, _) => format!("  ~ {} restore", who(m)),
        (Plan::Delete, _) => format!("  - {} delete", who(m)),
        (Plan::Create, _) => format!("  + {} create", who(m)),
        (Plan::Exists, _) => format!("  = {} has it already: skipped", who(m)),
        (Plan::Absent, _) => format!("  = {} does not have it: nothing to do", who(m)),
        (Plan::Fail { reason }, _) => format!("  ! {} FAILS: {}", who(m), esc(reason)),
    }
}

fn plan_name(p: &Plan) -> &'static str {
    match p {
        Plan::Create => "create",
        Plan::Exists => "exists",
        Plan::Restore => "restore",
        Plan::Delete => "delete",
        Plan::Absent => "absent",
        Plan::Fail { .. } => "fail",
    }
}

/// How run events look: text lines, or one JSON object per line.
fn sink(json_out: bool) -> SnapSink {
    Arc::new(move |event: &SnapEvent| {
        if json_out
            && !matches!(
                event,
                SnapEvent::Interrupted { .. } | SnapEvent::Warning { .. }
            )
        {
            println!("{}", json!(event));
            return;
        }
        match event {
            SnapEvent::Journal { ts, path, safety } => println!(
                "Journal: {} (undo with `anklume rollback {ts}`); each instance is snapshotted first ({safety}).",
                esc(&path.display().to_string())
            ),
            SnapEvent::Result {
                member: m,
                snapshot: name,
                result,
                detail,
                ms,
                ..
            } => {
                let name = esc(name);
                let detail = detail.as_deref().map(esc);
                match result {
                    Outcome::Created => println!("created snapshot {name} of {}", who(m)),
                    Outcome::Skipped => {
                        println!("skipped {}: already has a snapshot '{name}'", who(m))
                    }
                    Outcome::Restored => println!(
                        "restored snapshot {name} of {} ({ms} ms){}",
                        who(m),
                        detail.map_or_else(String::new, |d| format!(": {d}"))
                    ),
                    Outcome::Deleted => println!("deleted snapshot {name} of {}", who(m)),
                    Outcome::Absent => {
                        println!("absent: {} has no snapshot '{name}': nothing to delete", who(m))
                    }
                    Outcome::Failed => eprintln!(
                        "FAILED {name} of {}: {}",
                        who(m),
                        detail.unwrap_or_default()
                    ),
                    Outcome::Interrupted => {
                        println!("not started {} (interrupted)", who(m))
                    }
                }
            }
            SnapEvent::Interrupted { again: false } => eprintln!(
                "interrupted: no new instance is started; waiting for those in flight (Ctrl-C again to quit now)"
            ),
            SnapEvent::Interrupted { again: true } => {
                eprintln!(
                    "interrupted again: quitting without waiting; operations in flight continue in Incus"
                );
                std::process::exit(130);
            }
            SnapEvent::Warning { message } => eprintln!("warning: {}", esc(message)),
        }
    })
}

/// Ask before restoring the instance this runs in (it ends this session):
/// typed `yes` on a terminal, unless `--force`.
fn confirm_self(host: &str) -> bool {
    eprintln!(
        "warning: {} is the instance this command runs in: restoring it stops it and ends this session.",
        esc(host)
    );
    if !std::io::stdin().is_terminal() {
        eprintln!("error: no terminal to confirm: pass --force");
        return false;
    }
    eprint!("Type 'yes' to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}

async fn bulk_run(
    op: Op,
    sel: Selection,
    name: String,
    bulk: &Bulk,
    yes: bool,
    force: bool,
) -> Exit {
    let start = Instant::now();
    let json_out = bulk.format == RunFormat::Json;
    let opts = Options {
        op,
        name: name.clone(),
        selection: sel,
        parallelism: bulk.parallel.max(1),
        state_dir: state::state_dir(),
        anklume_version: env!("CARGO_PKG_VERSION").to_string(),
        ctrl_c: true,
    };
    let prepared = match tx::prepare(super::incus(), opts).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}\nnothing was changed", esc(&e.to_string()));
            return Exit::Invalid;
        }
    };
    let acting = prepared.items.iter().filter(|i| i.plan.acts()).count();
    // Show before it happens: restore and delete list what they will do.
    if op != Op::Create {
        if json_out {
            for i in &prepared.items {
                let mut v = json!({"event": "planned", "op": op, "snapshot": name, "project": i.member.project, "instance": i.member.instance, "domain": i.member.domain, "plan": plan_name(&i.plan)});
                if let Plan::Fail { reason } = &i.plan {
                    v["reason"] = json!(reason);
                }
                println!("{v}");
            }
        } else {
            println!(
                "{} snapshot '{}' of {} instance(s):",
                if op == Op::Restore {
                    "Restore"
                } else {
                    "Delete"
                },
                esc(&name),
                prepared.items.len()
            );
            for i in &prepared.items {
                println!("{}", planned_line(op, i));
            }
            if acting > 0 {
                println!(
                    "{}",
                    if op == Op::Restore {
                        "Each instance is snapshotted first and gets back its configuration after the restore; `anklume rollback` undoes the restore. Incus stops a running instance, restores it and starts it again."
                    } else {
                        "Deleting a snapshot cannot be undone."
                    }
                );
            }
        }
    }
    if acting > 0 && op != Op::Create {
        // Restoring the instance this runs in asks even with --yes.
        let host = snapshot::hostname().ok();
        let is_self = op == Op::Restore
            && prepared
                .items
                .iter()
                .any(|i| i.plan.acts() && Some(&i.member.instance) == host.as_ref());
        if is_self && !force {
            if !confirm_self(host.as_deref().unwrap_or("")) {
                eprintln!("cancelled: nothing was restored");
                return Exit::Invalid;
            }
        } else if !yes {
            let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            if !interactive {
                eprintln!(
                    "error: {acting} snapshot(s) to {} and no terminal to confirm: pass --yes",
                    op.name()
                );
                return Exit::Invalid;
            }
            let question = if op == Op::Restore {
                "Restore these instances?"
            } else {
                "Delete these snapshots? This cannot be undone."
            };
            if !super::confirm(question) {
                eprintln!("cancelled: nothing was changed");
                return Exit::Invalid;
            }
        }
    }
    let summary = match prepared.run(&sink(json_out)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}\nnothing was changed", esc(&e.to_string()));
            return Exit::Failed;
        }
    };
    render_summary(op, &name, &summary, start, json_out);
    if summary.interrupted {
        Exit::Interrupted
    } else if summary.count(Outcome::Failed) > 0 {
        Exit::Invalid
    } else {
        Exit::Ok
    }
}

fn render_summary(op: Op, name: &str, s: &Summary, start: Instant, json_out: bool) {
    let ms = start.elapsed().as_millis() as u64;
    if json_out {
        let mut v = json!({"event": "summary", "op": op, "snapshot": name, "ms": ms, "journal": s.journal.as_ref().map(|j| j.0.clone())});
        for o in Outcome::ALL {
            v[o.name()] = json!(s.count(o));
        }
        println!("{v}");
        return;
    }
    let parts: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| s.count(**o) > 0)
        .map(|o| format!("{} {}", s.count(*o), o.name()))
        .collect();
    let verb = match op {
        Op::Create => "Create",
        Op::Restore => "Restore",
        Op::Delete => "Delete",
    };
    println!(
        "{verb} snapshot '{}': {} ({ms} ms).",
        esc(name),
        if parts.is_empty() {
            "no instance".to_string()
        } else {
            parts.join(", ")
        }
    );
    if let Some((ts, _)) = &s.journal {
        println!("Undo with `anklume rollback {ts}`.");
    }
}
