//! Writing the Ansible tree to disk: managed blocks merged into existing
//! files, atomic writes (temporary file + rename) only for files whose bytes
//! change, and orphan detection with v1's protection rule.
//!
//! What `sync` guarantees (also in `docs/sync.md`):
//!
//! * every byte outside a file's managed block is kept (see [`block`]);
//! * nothing is read, written or deleted through a symbolic link: a link (or
//!   any non-regular file) where anklume writes is an error, found before
//!   anything is written;
//! * each file is replaced atomically; a sync that cannot read a file it
//!   would write writes nothing at all; a sync that fails while writing says
//!   which files were written and which were not;
//! * one sync at a time per tree (a lock in the base directory); the
//!   temporary files of a killed sync are removed by the next one;
//! * an orphan is deleted only when it is proven unprotected (see
//!   [`protect`]); anything anklume cannot read is kept, with the reason.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::ansible::block;
pub use crate::ansible::fsio::write_atomic;
use crate::ansible::fsio::{self, PathProblem};
use crate::ansible::protect::{self, Protection};
use crate::ansible::tree::{files, known_stems};
use crate::ir::Ir;

/// The directories of the tree, in report order.
pub const TREE_DIRS: [&str; 3] = ["inventory", "group_vars", "host_vars"];

/// The largest existing file sync reads to merge its block into.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// What happened to one generated file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// New or changed bytes were written (or would be, in dry-run).
    Written,
    /// The file already has exactly these bytes; it was not touched.
    Unchanged,
}

/// A file that no domain or machine owns any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanFile {
    /// Path relative to the base directory.
    pub path: String,
    /// Whether it may be deleted.
    pub protection: Protection,
}

/// The outcome of a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Every generated file in write order, with its status.
    pub files: Vec<(String, FileStatus)>,
    /// Orphans, sorted: inventory/, then group_vars/, then host_vars/.
    pub orphans: Vec<OrphanFile>,
    /// Orphans deleted (with `clean_orphans`).
    pub deleted: Vec<String>,
    /// Temporary files of an earlier, killed sync that were removed.
    pub stale_temps: Vec<String>,
}

/// Options of a sync.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Directory holding inventory/, group_vars/, host_vars/.
    pub base_dir: PathBuf,
    /// Compute everything, write and delete nothing.
    pub dry_run: bool,
    /// Delete unprotected orphans (ignored in dry-run).
    pub clean_orphans: bool,
}

/// What the read phase found for one file.
enum Pending {
    /// The file holds exactly the right bytes.
    Unchanged,
    /// No file yet.
    New,
    /// The file's new bytes.
    Changed(Vec<u8>),
}

/// Why a sync failed.
#[derive(Debug)]
pub enum SyncError {
    /// A path cannot be used (a link, a FIFO, unreadable...). Nothing was
    /// written or deleted.
    Refused {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Another sync is writing this tree. Nothing was written.
    Locked {
        /// The locked base directory.
        lock: PathBuf,
    },
    /// Writing (or deleting) failed for some files: `report` lists what was
    /// done, `failures` what was not.
    Partial {
        /// What was written (and deleted) before and besides the failures.
        report: SyncReport,
        /// Each file that was not written or deleted, with the error.
        failures: Vec<(String, std::io::Error)>,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Refused { path, problem } => {
                write!(f, "{}: {problem}; nothing was written", path.display())
            }
            SyncError::Locked { lock } => write!(
                f,
                "another anklume sync is writing this tree ({} is locked); nothing was written",
                lock.display()
            ),
            SyncError::Partial { report, failures } => {
                let written = report
                    .files
                    .iter()
                    .filter(|(_, s)| *s == FileStatus::Written)
                    .count();
                write!(
                    f,
                    "{} file(s) could not be written or deleted; {written} file(s) were written",
                    failures.len()
                )
            }
        }
    }
}

fn refused(path: &Path, problem: impl std::fmt::Display) -> SyncError {
    SyncError::Refused {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// Write the tree for `ir` under `opts.base_dir`.
pub fn sync(ir: &Ir, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let gen = files(ir);
    if gen.is_empty() {
        return Ok(SyncReport::default());
    }
    let base = &opts.base_dir;
    let mut report = SyncReport::default();
    let _lock = if opts.dry_run {
        None
    } else {
        std::fs::create_dir_all(base).map_err(|e| refused(base, e))?;
        Some(fsio::lock_tree(base).map_err(|e| match e {
            fsio::LockError::Busy(lock) => SyncError::Locked { lock },
            fsio::LockError::Problem(p, problem) => refused(&p, problem),
        })?)
    };
    for sub in TREE_DIRS {
        let dir = base.join(sub);
        fsio::ensure_dir(&dir, !opts.dry_run).map_err(|p| refused(&dir, p))?;
    }
    // Read and merge everything first: a file anklume cannot read stops the
    // sync before anything is written.
    let merged: Vec<Result<Pending, SyncError>> = gen
        .par_iter()
        .map(|f| {
            let path = base.join(&f.path);
            if block::holds_marker_line(&f.yaml) {
                // Cannot happen with the PyYAML-style emitter (it quotes
                // and indents multi-line strings); refuse rather than write
                // a block the next sync would misread.
                return Err(refused(
                    &path,
                    "internal error: the generated YAML holds a managed-block marker line",
                ));
            }
            let Some(existing) =
                fsio::read_regular(&path, MAX_FILE_BYTES).map_err(|p| refused(&path, p))?
            else {
                // Built when written: nothing to hold meanwhile.
                return Ok(Pending::New);
            };
            let new = block::merge(Some(&existing), &f.yaml).map_err(|e| {
                refused(&path, format!("anklume cannot add its managed block: {e}"))
            })?;
            Ok(if existing == new {
                Pending::Unchanged
            } else {
                Pending::Changed(new)
            })
        })
        .collect();
    let merged: Vec<Pending> = merged.into_iter().collect::<Result<_, _>>()?;
    let outcomes: Vec<Result<FileStatus, std::io::Error>> = gen
        .par_iter()
        .zip(merged.par_iter())
        .map(|(f, pending)| {
            let path = base.join(&f.path);
            match pending {
                Pending::Unchanged => Ok(FileStatus::Unchanged),
                _ if opts.dry_run => Ok(FileStatus::Written),
                Pending::New => fsio::write_atomic(&path, &block::new_file(&f.yaml))
                    .map(|()| FileStatus::Written),
                Pending::Changed(bytes) => {
                    fsio::write_atomic(&path, bytes).map(|()| FileStatus::Written)
                }
            }
        })
        .collect();
    let mut failures = Vec::new();
    for (f, o) in gen.iter().zip(outcomes) {
        match o {
            Ok(s) => report.files.push((f.path.clone(), s)),
            Err(e) => failures.push((f.path.clone(), e)),
        }
    }
    // One listing of each directory finds the orphans and, under the lock,
    // the temporary files a killed sync left behind.
    let (orphans, temps) = scan(ir, base, !opts.dry_run);
    report.orphans = orphans;
    report.stale_temps = temps;
    if !failures.is_empty() {
        return Err(SyncError::Partial { report, failures });
    }
    if opts.clean_orphans && !opts.dry_run {
        for o in report.orphans.iter() {
            if o.protection != Protection::Unprotected {
                continue;
            }
            match std::fs::remove_file(base.join(&o.path)) {
                Ok(()) => report.deleted.push(o.path.clone()),
                Err(e) => failures.push((o.path.clone(), e)),
            }
        }
        if !failures.is_empty() {
            return Err(SyncError::Partial { report, failures });
        }
    }
    Ok(report)
}

/// Files under inventory/, group_vars/ and host_vars/ that nothing owns,
/// with what anklume knows of their protection. Hidden files are never
/// orphans: anklume does not write them. Links and other
/// non-regular files are listed as [`Protection::Unknown`], never followed.
pub fn orphans(ir: &Ir, base: &Path) -> Vec<OrphanFile> {
    scan(ir, base, false).0
}

/// The orphans under `base`, and (with `remove_temps`, only while holding
/// the tree lock) the temporary files of a killed sync, removed.
fn scan(ir: &Ir, base: &Path, remove_temps: bool) -> (Vec<OrphanFile>, Vec<String>) {
    let (domains, machines) = known_stems(ir);
    let mut out = Vec::new();
    let mut temps = Vec::new();
    for (sub, owned) in [
        ("inventory", &domains),
        ("group_vars", &domains),
        ("host_vars", &machines),
    ] {
        let dir = base.join(sub);
        if !matches!(fsio::ensure_dir(&dir, false), Ok(true)) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<(String, Protection)> = Vec::new();
        for e in entries {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                // A name anklume never writes; listed, kept.
                let shown = name.to_string_lossy().into_owned();
                if shown.ends_with(".yml") {
                    found.push((shown, Protection::Unknown("its name is not UTF-8".into())));
                }
                continue;
            };
            if remove_temps
                && fsio::is_temp_name(name)
                && e.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(e.path()).is_ok()
            {
                temps.push(format!("{sub}/{name}"));
                continue;
            }
            let Some(stem) = name.strip_suffix(".yml") else {
                continue;
            };
            if name.starts_with('.') {
                // anklume never writes hidden files: not one of its orphans.
                continue;
            }
            if owned.contains(&stem) || (sub == "group_vars" && stem == "all") {
                continue;
            }
            let path = dir.join(name);
            let protection = match fsio::read_regular(&path, protect::MAX_ORPHAN_BYTES) {
                Ok(Some(bytes)) => protect::protection(&bytes),
                Ok(None) => continue, // removed meanwhile
                Err(PathProblem::Link) => {
                    Protection::Unknown("a symbolic link, not followed".into())
                }
                Err(p) => Protection::Unknown(p.to_string()),
            };
            found.push((name.to_owned(), protection));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(found.into_iter().map(|(n, protection)| OrphanFile {
            path: format!("{sub}/{n}"),
            protection,
        }));
    }
    temps.sort();
    (out, temps)
}
