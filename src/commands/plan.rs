//! `anklume plan`: compute the plan and write `plan.bin` (or a rendering).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anklume_plan::codec::{self, Facts, Header, PlanFile, SourceDigest};
use anklume_plan::render;

use super::{load_and_compile, print_diags, summary, Compilation, DiagFormat};
use crate::Exit;

/// Output format of `plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// plan.bin (the default; for `apply`).
    Bin,
    /// For people.
    Text,
    /// Canonical RON (for review and golden files).
    Ron,
    /// JSON for tools (schema anklume.plan/v1).
    Json,
}

/// Compute the plan from the sources.
#[derive(clap::Args)]
pub struct Args {
    /// infra.yml or infra/ (default: whichever exists here).
    pub source: Option<PathBuf>,
    /// Write the plan to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format (default: `bin` into a file, that is with `-o` or
    /// `> file`; `text` on a terminal or a pipe).
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
    /// Diagnostic format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub diagnostics: DiagFormat,
    /// The Ansible tree (where `anklume sync` writes, and `roles_custom/`):
    /// what each instance's provisioning fingerprint is computed from.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub tree: PathBuf,
}

/// Build the plan file for a valid compilation; with the Ansible tree
/// `tree`, provisioning fingerprints and the tree's digests too.
pub fn plan_file(
    c: &Compilation,
    facts: &anklume_compiler::HostFacts,
    tree: Option<&std::path::Path>,
    diagnostics: DiagFormat,
) -> Result<PlanFile, String> {
    let ir = &c.compiled.ir;
    let mut plan = anklume_planner::plan(ir, &c.compiled.provenance, &c.loaded.sources)
        .map_err(|e| e.to_string())?;
    let (tree_dir, tree_digests) = match tree {
        Some(dir) => {
            let g = crate::provisioning::gather(&plan, dir)?;
            for (role, hosts) in &g.missing {
                super::say(
                    diagnostics,
                    "warning",
                    &format!(
                        "role '{role}' is not in {} nor among anklume's roles: the provisioning of {} cannot run",
                        crate::output::shown(&dir.join("roles_custom")),
                        hosts.join(", ")
                    ),
                );
            }
            anklume_planner::fingerprint(&mut plan, &g.inputs);
            if let Some(w) = tree_out_of_sync(ir, dir) {
                super::say(diagnostics, "warning", &w);
            }
            (dir.to_string_lossy().into_owned(), g.digests)
        }
        None => (String::new(), Vec::new()),
    };
    let uses_resources = c.loaded.infra.global.resource_policy.get().is_some();
    Ok(PlanFile {
        header: Header {
            anklume_version: env!("CARGO_PKG_VERSION").to_string(),
            sources: c
                .loaded
                .sources
                .files
                .iter()
                .map(|f| SourceDigest {
                    path: f.name.clone(),
                    sha256: codec::sha256_hex(f.text.as_bytes()),
                })
                .collect(),
            facts: Facts {
                absolute_level: facts.absolute_level,
                relative_level: facts.relative_level,
                prefix: ir.prefix.clone(),
                vm_nested: facts.vm_nested,
                yolo: facts.yolo,
                cpu: facts.cpu.filter(|_| uses_resources),
                memory: facts.memory.filter(|_| uses_resources),
            },
            tree_dir,
            tree: tree_digests,
        },
        plan,
    })
}

/// What `anklume sync` would still write in the Ansible tree `dir`, when
/// anything: the plan's provisioning reads the tree as it is (its
/// inventory, its variables), so a machine added since the last sync would
/// be provisioned without its inventory entry, and a changed variable with
/// its old value. `None` when the tree is in sync, or when there is no tree
/// (no `inventory/`: apply then says provisioning does not run).
fn tree_out_of_sync(ir: &anklume_compiler::Ir, dir: &std::path::Path) -> Option<String> {
    use anklume_compiler::ansible::sync::{sync, FileStatus, SyncOptions};
    if !dir.join("inventory").is_dir() {
        return None;
    }
    let report = sync(
        ir,
        &SyncOptions {
            base_dir: dir.to_path_buf(),
            dry_run: true,
            clean_orphans: false,
        },
    )
    .ok()?;
    let stale: Vec<&str> = report
        .files
        .iter()
        .filter(|(_, st)| *st == FileStatus::Written)
        .map(|(p, _)| p.as_str())
        .collect();
    if stale.is_empty() {
        return None;
    }
    const SHOWN: usize = 4;
    let more = stale.len().saturating_sub(SHOWN);
    Some(format!(
        "the Ansible tree in {} is not in sync with the sources: `anklume sync` would write {} file(s) ({}{}); provisioning reads the tree as it is: run `anklume sync` first",
        crate::output::shown(dir),
        stale.len(),
        stale[..stale.len().min(SHOWN)].join(", "),
        if more > 0 { format!(", and {more} more") } else { String::new() }
    ))
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let (c, facts) = match load_and_compile(args.source.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            super::say(args.diagnostics, "error", &msg);
            return Exit::Failed;
        }
    };
    print_diags(&c, args.diagnostics, false);
    if c.compiled.has_errors() {
        // In JSON, the diagnostics and the exit status say it all.
        if args.diagnostics == DiagFormat::Text {
            eprintln!("plan aborted: {}", summary(&c));
        }
        return Exit::Invalid;
    }
    let file = match plan_file(&c, &facts, Some(&args.tree), args.diagnostics) {
        Ok(f) => f,
        Err(e) => {
            super::say(args.diagnostics, "error", &e);
            return Exit::Failed;
        }
    };
    // Binary only into a file: with -o, a redirection to a file, or when
    // asked; a terminal or a pipe (`| grep`, `| less`) gets the text.
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(_)) => PlanFormat::Bin,
        (None, None) if stdout_is_file() => PlanFormat::Bin,
        (None, None) => {
            if std::io::stderr().is_terminal() && args.diagnostics == DiagFormat::Text {
                let why = if std::io::stdout().is_terminal() {
                    "a terminal"
                } else {
                    "a pipe"
                };
                eprintln!("note: the plan's text rendering, since stdout is {why}: `anklume plan -o plan.bin` (or `> plan.bin`, or `--format bin`) writes the plan file");
            }
            PlanFormat::Text
        }
    };
    let bytes = match format {
        PlanFormat::Bin => codec::encode(&file),
        PlanFormat::Text => render::text(&file).into_bytes(),
        PlanFormat::Ron => render::ron(&file.plan).into_bytes(),
        PlanFormat::Json => render::json(&file).into_bytes(),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = crate::output::write_output(path, &bytes) {
                super::say(
                    args.diagnostics,
                    "error",
                    &format!("{}: {e}", crate::output::shown(path)),
                );
                return Exit::Failed;
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
                super::say(args.diagnostics, "error", &format!("writing the plan: {e}"));
                return Exit::Failed;
            }
        }
    }
    Exit::Ok
}

/// Whether stdout is a regular file (`> plan.bin`), not a terminal, a pipe
/// or a device.
fn stdout_is_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_file())
}
