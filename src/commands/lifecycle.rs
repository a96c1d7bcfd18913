//! `anklume flush` (delete everything anklume manages on this Incus) and
//! `anklume remove` (delete named instances, or a domain's). Both show
//! what goes before anything happens, keep a copy of each instance, and
//! journal every delete: `anklume rollback` brings it all back.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anklume_executor::state;
use anklume_executor::transaction::delete::{self as del, Selection};
use anklume_executor::transaction::{Event, Sink, TxError};
use anklume_term::display as esc;
use serde_json::json;

use crate::Exit;

/// What both commands take.
#[derive(clap::Args)]
pub struct Common {
    /// Show what would be deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete protected instances too (`security.protection.delete`, from
    /// `ephemeral: false`).
    #[arg(long)]
    pub force: bool,
    /// Keep no copy of the deleted instances (their space comes back now;
    /// rollback cannot bring their data back).
    #[arg(long)]
    pub no_keep: bool,
    /// Instances deleted at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::apply::ApplyFormat,
}

/// Delete everything anklume manages on this Incus: its instances,
/// profiles, projects and bridges (only objects marked
/// `user.anklume.managed`; nothing made by hand). Refused on a production
/// host (nesting level 0) without --force.
///
/// Kept, as anklume v1 keeps them: custom storage volumes (and so the
/// projects that hold them), images, the sources, the Ansible tree, the
/// state directory and the host's nftables table.
#[derive(clap::Args)]
pub struct FlushArgs {
    #[command(flatten)]
    pub common: Common,
}

/// Delete instances anklume manages, by name or by domain.
#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The instances (`project/name` when a name is in several projects).
    #[arg(required_unless_present = "domain", conflicts_with = "domain")]
    pub instances: Vec<String>,
    /// Every instance of these domains (comma-separated, or repeated).
    #[arg(long, value_delimiter = ',', value_name = "DOMAIN")]
    pub domain: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// The context directory (`/etc/anklume`; `ANKLUME_CONTEXT_DIR` for
/// tests and nested setups).
fn context_dir() -> PathBuf {
    std::env::var_os("ANKLUME_CONTEXT_DIR")
        .map_or_else(|| PathBuf::from("/etc/anklume"), PathBuf::from)
}

/// Why this is a production host, if it is: its `absolute_level` is 0
/// (and `yolo` is not `true`); without the file, a host that is not itself
/// a container counts as level 0.
pub fn production(dir: &Path) -> Option<String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("yolo").as_deref() == Some("true") {
        return None;
    }
    match read("absolute_level") {
        Some(l) if l == "0" => Some(format!(
            "{} says nesting level 0: this is a production host",
            dir.join("absolute_level").display()
        )),
        Some(_) => None,
        None => {
            let in_container = std::process::Command::new("systemd-detect-virt")
                .arg("--container")
                .output()
                .is_ok_and(|o| o.status.success());
            (!in_container).then(|| {
                format!(
                    "{} is missing and this host is not a container: it counts as nesting level 0 (production)",
                    dir.join("absolute_level").display()
                )
            })
        }
    }
}

/// Run `anklume flush`.
pub fn flush(args: FlushArgs) -> Exit {
    if let (Some(why), false, false) = (
        production(&context_dir()),
        args.common.force,
        args.common.dry_run,
    ) {
        eprintln!(
            "error: refusing to flush: {why}.\nhint: `anklume flush --force` flushes it anyway (everything anklume manages here is deleted; `anklume rollback` can bring it back)"
        );
        return Exit::Invalid;
    }
    super::block_on(run(Selection::All, args.common, "flush"))
}

/// Run `anklume remove`.
pub fn remove(args: RemoveArgs) -> Exit {
    let sel = if args.domain.is_empty() {
        Selection::Instances(args.instances)
    } else {
        Selection::Domains(args.domain)
    };
    super::block_on(run(sel, args.common, "remove"))
}

fn sink(json_out: bool) -> Sink {
    Arc::new(move |event: &Event| {
        if json_out && !matches!(event, Event::Warning { .. } | Event::Interrupted { .. }) {
            println!("{}", json!(event));
            return;
        }
        match event {
            Event::Deleted { deleted } => println!("{}", super::deletions::line(deleted)),
            Event::UnfinishedApply { journal, .. } => eprintln!(
                "warning: the apply of {journal} did not finish (killed or crashed); `anklume rollback {journal}` undoes its completed part"
            ),
            Event::Warning { message } => eprintln!("warning: {}", esc(message)),
            Event::Interrupted { again: false } => eprintln!(
                "interrupted: no new deletion is started; waiting for those in flight (Ctrl-C again to quit now)"
            ),
            Event::Interrupted { again: true } => {
                eprintln!("interrupted again: quitting without waiting");
                std::process::exit(130);
            }
            _ => {}
        }
    })
}

async fn run(selection: Selection, c: Common, verb: &str) -> Exit {
    let json_out = c.format == super::apply::ApplyFormat::Json;
    let sink = sink(json_out);
    let keep = !c.no_keep;
    let opts = del::Options {
        delete: del::DeleteOptions {
            state_dir: state::state_dir(),
            keep,
            force: c.force,
            parallelism: c.parallelism,
        },
        dry_run: c.dry_run,
        ctrl_c: true,
        anklume_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let prepared = match del::prepare(super::incus(), &selection, opts, &sink).await {
        Ok(p) => p,
        Err(e) => {
            let msg = match &e {
                TxError::ReadLive(i) => format!("reading Incus state: {i}"),
                e => e.to_string(),
            };
            eprintln!("error: {}\nnothing was changed", esc(&msg));
            return match e {
                TxError::ReadLive(_) => Exit::Failed,
                _ => Exit::Invalid,
            };
        }
    };
    print!(
        "{}",
        super::deletions::plan(&prepared.deletions, &prepared.spared, keep, json_out)
    );
    let n = prepared.deletions.len();
    if !json_out {
        println!(
            "{}: {n} to delete, {} kept.",
            capitalise(verb),
            prepared.spared.len()
        );
    }
    if c.dry_run || n == 0 {
        if json_out {
            println!(
                "{}",
                json!({"event": "summary", "dry_run": c.dry_run, "delete": n, "spared": prepared.spared.len()})
            );
        } else if c.dry_run {
            println!("Dry run: nothing changed.");
        }
        return Exit::Ok;
    }
    if !c.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            eprintln!("error: {n} deletion(s) and no terminal to confirm them: pass --yes");
            return Exit::Invalid;
        }
        if !confirm_yes() {
            eprintln!("cancelled: nothing was deleted");
            return Exit::Ok;
        }
    }
    let summary = match prepared.run(&sink).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}\nnothing was changed", esc(&e.to_string()));
            return Exit::Failed;
        }
    };
    let ok = summary.deleted.iter().filter(|d| d.ok()).count();
    let bytes: u64 = summary
        .deleted
        .iter()
        .filter_map(|d| d.kept.as_ref())
        .map(|k| k.bytes)
        .sum();
    if json_out {
        println!(
            "{}",
            json!({"event": "summary", "dry_run": false, "deleted": ok, "failed": summary.deleted.len() - ok, "kept_bytes": bytes, "journal": summary.journal})
        );
    } else {
        println!(
            "{}: {ok} deleted, {} not{}.",
            capitalise(verb),
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
        if let Some(ts) = &summary.journal {
            println!("Undo with `anklume rollback {ts}`.");
        }
        if verb == "remove" {
            println!("Machines still declared in infra.yml come back (empty) with the next apply; remove them from it to keep them gone.");
        }
    }
    if summary.interrupted {
        Exit::Interrupted
    } else if ok == summary.deleted.len() {
        Exit::Ok
    } else {
        Exit::Invalid
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// v1's prompt: only `yes` goes on.
fn confirm_yes() -> bool {
    use std::io::{BufRead, Write};
    eprint!("Type 'yes' to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}
