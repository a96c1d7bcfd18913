//! `anklume sync`: write the Ansible tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anklume_compiler::ansible::sync::{sync, FileStatus, SyncOptions};

use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Outcome;

/// Write inventory/, group_vars/ and host_vars/ from the sources.
#[derive(clap::Args)]
pub struct Args {
    /// infra.yml or infra/ (default: whichever exists here).
    pub source: Option<PathBuf>,
    /// Where to write the tree.
    #[arg(long, default_value = ".")]
    pub base_dir: PathBuf,
    /// Show what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete orphan files that are not protected (ephemeral: false).
    #[arg(long)]
    pub clean_orphans: bool,
    /// Diagnostic format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagFormat,
}

fn shown(base: &Path, rel: &str) -> String {
    if base == Path::new(".") {
        rel.to_string()
    } else {
        base.join(rel).display().to_string()
    }
}

/// Run it.
pub fn run(args: Args) -> Outcome {
    let c = match load_and_compile(args.source.as_deref()) {
        Ok((c, _)) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Outcome::Failed;
        }
    };
    print_diags(&c, args.format, true);
    if c.compiled.has_errors() {
        if args.format == DiagFormat::Text {
            eprintln!("sync aborted, nothing written: {}", summary(&c));
        }
        return Outcome::Invalid;
    }
    let ir = &c.compiled.ir;
    if ir.domains.is_empty() {
        println!("No domains defined. Nothing to generate.");
        return Outcome::Ok;
    }
    let p = if args.dry_run { "[DRY-RUN] " } else { "" };
    let enabled = ir.domains.iter().filter(|d| d.enabled).count();
    println!("{p}Generating files for {enabled} domain(s)...");
    let opts = SyncOptions {
        base_dir: args.base_dir.clone(),
        dry_run: args.dry_run,
        clean_orphans: args.clean_orphans,
    };
    let report = match sync(ir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Failed;
        }
    };
    let base = &args.base_dir;
    // One write at the end: 10,000 lines are 10,000 syscalls otherwise.
    let mut out = String::new();
    let mut changed = 0;
    for (path, status) in &report.files {
        let path = shown(base, path);
        match (status, args.dry_run) {
            (FileStatus::Written, false) => {
                changed += 1;
                let _ = writeln!(out, "  Written: {path}");
            }
            (FileStatus::Written, true) => {
                changed += 1;
                let _ = writeln!(out, "  [DRY-RUN] Would write: {path}");
            }
            (FileStatus::Unchanged, _) => {
                let _ = writeln!(out, "  Unchanged: {path}");
            }
        }
    }
    if !report.orphans.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "Orphan files ({}):", report.orphans.len());
        for o in &report.orphans {
            let path = shown(base, &o.path);
            if o.protected {
                let _ = writeln!(
                    out,
                    "  PROTECTED (ephemeral=false): {path} — manual removal required"
                );
            } else {
                let _ = writeln!(out, "  ORPHAN: {path}");
            }
        }
        if args.clean_orphans && !args.dry_run {
            for o in &report.orphans {
                let path = shown(base, &o.path);
                if o.protected {
                    let _ = writeln!(out, "  Skipped (protected): {path}");
                } else {
                    let _ = writeln!(out, "  Deleted: {path}");
                }
            }
        }
    }
    if !args.dry_run {
        out.push('\n');
        let _ = writeln!(
            out,
            "Done: {changed} file(s) written, {} unchanged. Run `make lint` to validate.",
            report.files.len() - changed
        );
    }
    print!("{out}");
    Outcome::Ok
}
