//! `anklume sync`: write the Ansible tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anklume_compiler::ansible::protect::Protection;
use anklume_compiler::ansible::sync::{sync, FileStatus, SyncError, SyncOptions, SyncReport};
use anklume_term::display as escape;

use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Exit;

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
pub fn run(args: Args) -> Exit {
    let c = match load_and_compile(args.source.as_deref()) {
        Ok((c, _)) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Failed;
        }
    };
    print_diags(&c, args.format, true);
    if c.compiled.has_errors() {
        if args.format == DiagFormat::Text {
            eprintln!("sync aborted, nothing written: {}", summary(&c));
        }
        return Exit::Invalid;
    }
    let ir = &c.compiled.ir;
    if ir.domains.is_empty() {
        println!("No domains defined. Nothing to generate.");
        return Exit::Ok;
    }
    let p = if args.dry_run { "[DRY-RUN] " } else { "" };
    let enabled = ir.domains.iter().filter(|d| d.enabled).count();
    println!("{p}Generating files for {enabled} domain(s)...");
    let opts = SyncOptions {
        base_dir: args.base_dir.clone(),
        dry_run: args.dry_run,
        clean_orphans: args.clean_orphans,
    };
    let base = &args.base_dir;
    let report = match sync(ir, &opts) {
        Ok(r) => r,
        Err(SyncError::Partial { report, failures }) => {
            // Say exactly what is on disk now.
            print!("{}", render(&report, base, &args, false));
            for (path, e) in &failures {
                eprintln!("error: {}: {e} (not written)", shown(base, path));
            }
            eprintln!(
                "error: sync stopped halfway: {} file(s) not written or deleted (listed above); every file listed as Written holds its new content. Fix the cause and run sync again to complete the tree.",
                failures.len()
            );
            return Exit::Failed;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    print!("{}", render(&report, base, &args, true));
    Exit::Ok
}

/// The report, as v1 printed it, plus what anklume adds (kept orphans and
/// their reason, removed leftovers). Paths are escaped: a file name cannot
/// carry terminal control characters to the screen.
fn render(report: &SyncReport, base: &Path, args: &Args, complete: bool) -> String {
    // One write at the end: 10,000 lines are 10,000 syscalls otherwise.
    let mut out = String::new();
    let shown = |rel: &str| escape(&shown(base, rel)).into_owned();
    for t in &report.stale_temps {
        let _ = writeln!(
            out,
            "  Removed leftover of an interrupted sync: {}",
            shown(t)
        );
    }
    let mut changed = 0;
    for (path, status) in &report.files {
        let path = shown(path);
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
            let path = shown(&o.path);
            match &o.protection {
                Protection::Protected => {
                    let _ = writeln!(
                        out,
                        "  PROTECTED (ephemeral=false): {path} — manual removal required"
                    );
                }
                Protection::Unknown(why) => {
                    let _ = writeln!(
                        out,
                        "  KEPT (cannot tell whether it is protected: {}): {path} — manual removal required",
                        escape(why)
                    );
                }
                Protection::Unprotected => {
                    let _ = writeln!(out, "  ORPHAN: {path}");
                }
            }
        }
        if args.clean_orphans && !args.dry_run {
            for o in &report.orphans {
                let path = shown(&o.path);
                if report.deleted.contains(&o.path) {
                    let _ = writeln!(out, "  Deleted: {path}");
                } else {
                    let _ = writeln!(out, "  Skipped (protected): {path}");
                }
            }
        }
    }
    if !args.dry_run && complete {
        out.push('\n');
        let _ = writeln!(
            out,
            "Done: {changed} file(s) written, {} unchanged.",
            report.files.len() - changed
        );
    }
    out
}
