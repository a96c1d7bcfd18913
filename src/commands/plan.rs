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
    /// Output format.
    #[arg(long, value_enum, default_value = "bin")]
    pub format: PlanFormat,
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
) -> Result<PlanFile, String> {
    let ir = &c.compiled.ir;
    let mut plan = anklume_planner::plan(ir, &c.compiled.provenance, &c.loaded.sources)
        .map_err(|e| e.to_string())?;
    let (tree_dir, tree_digests) = match tree {
        Some(dir) => {
            let g = crate::provisioning::gather(&plan, dir)?;
            for (role, hosts) in &g.missing {
                eprintln!(
                    "warning: role '{}' is not in {} nor among anklume's roles: the provisioning of {} cannot run",
                    anklume_term::display(role),
                    crate::output::shown(&dir.join("roles_custom")),
                    anklume_term::display(&hosts.join(", "))
                );
            }
            anklume_planner::fingerprint(&mut plan, &g.inputs);
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

/// Run it.
pub fn run(args: Args) -> Exit {
    let (c, facts) = match load_and_compile(args.source.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Failed;
        }
    };
    print_diags(&c, args.diagnostics, false);
    if c.compiled.has_errors() {
        eprintln!("plan aborted: {}", summary(&c));
        return Exit::Invalid;
    }
    let file = match plan_file(&c, &facts, Some(&args.tree)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", anklume_term::display(&e));
            return Exit::Failed;
        }
    };
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let bytes = match args.format {
        PlanFormat::Bin if to_terminal => {
            print!("{}", render::text(&file));
            eprintln!("\nhint: plan.bin is binary and was not written to the terminal: run `anklume plan > plan.bin` or `anklume plan -o plan.bin`");
            return Exit::Ok;
        }
        PlanFormat::Bin => codec::encode(&file),
        PlanFormat::Text => render::text(&file).into_bytes(),
        PlanFormat::Ron => render::ron(&file.plan).into_bytes(),
        PlanFormat::Json => render::json(&file).into_bytes(),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = crate::output::write_output(path, &bytes) {
                eprintln!("error: {}: {e}", crate::output::shown(path));
                return Exit::Failed;
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
                eprintln!("error: writing the plan: {e}");
                return Exit::Failed;
            }
        }
    }
    Exit::Ok
}
