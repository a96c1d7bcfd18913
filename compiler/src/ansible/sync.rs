//! Writing the Ansible tree to disk: managed blocks merged into existing
//! files, atomic writes (temporary file + rename) only for files whose bytes
//! change, and orphan detection with v1's protection rule.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::ansible::block;
use crate::ansible::tree::{files, known_stems};
use crate::ir::Ir;

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
pub struct Orphan {
    /// Path relative to the base directory.
    pub path: String,
    /// `ephemeral: false` in the file: never deleted.
    pub protected: bool,
}

/// The outcome of a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Every generated file in write order, with its status.
    pub files: Vec<(String, FileStatus)>,
    /// Orphans, sorted: inventory/, then group_vars/, then host_vars/.
    pub orphans: Vec<Orphan>,
    /// Orphans deleted (with `clean_orphans`).
    pub deleted: Vec<String>,
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

/// A sync failure (I/O).
#[derive(Debug)]
pub struct SyncError {
    /// The file concerned.
    pub path: PathBuf,
    /// What failed.
    pub error: std::io::Error,
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |error| SyncError {
        path: path.to_path_buf(),
        error,
    }
}

/// Write `content` to `path` atomically: a temporary file in the same
/// directory, then renamed over the target, so a reader sees the old or the
/// new file, never a part. When an existing file (which may hold user
/// content) is replaced, the new data is flushed to disk before the rename,
/// so a crash cannot leave it empty; a new file has nothing to lose and
/// skips that flush. The new file keeps the old file's permissions (0644
/// for a new file).
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let existing = std::fs::metadata(path).ok();
    let mode = existing
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.anklume-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content)?;
        if existing.is_some() {
            // The umask may have narrowed the mode given at creation.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_data()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write the tree for `ir` under `opts.base_dir`.
pub fn sync(ir: &Ir, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let gen = files(ir);
    if gen.is_empty() {
        return Ok(SyncReport::default());
    }
    let base = &opts.base_dir;
    if !opts.dry_run {
        for sub in ["inventory", "group_vars", "host_vars"] {
            let dir = base.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
    }
    let statuses: Vec<Result<FileStatus, SyncError>> = gen
        .par_iter()
        .map(|f| {
            let path = base.join(&f.path);
            let existing = match std::fs::read(&path) {
                Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&path)(e)),
            };
            let new = block::merge(existing.as_deref(), &f.yaml);
            if existing.as_deref() == Some(new.as_str()) {
                return Ok(FileStatus::Unchanged);
            }
            if !opts.dry_run {
                write_atomic(&path, new.as_bytes()).map_err(io_err(&path))?;
            }
            Ok(FileStatus::Written)
        })
        .collect();
    let mut report = SyncReport::default();
    for (f, s) in gen.iter().zip(statuses) {
        report.files.push((f.path.clone(), s?));
    }
    report.orphans = orphans(ir, base);
    if opts.clean_orphans && !opts.dry_run {
        for o in report.orphans.iter().filter(|o| !o.protected) {
            let p = base.join(&o.path);
            std::fs::remove_file(&p).map_err(io_err(&p))?;
            report.deleted.push(o.path.clone());
        }
    }
    Ok(report)
}

/// Files under inventory/, group_vars/ and host_vars/ that nothing owns.
pub fn orphans(ir: &Ir, base: &Path) -> Vec<Orphan> {
    let (domains, machines) = known_stems(ir);
    let mut out = Vec::new();
    for (sub, owned) in [
        ("inventory", &domains),
        ("group_vars", &domains),
        ("host_vars", &machines),
    ] {
        let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yml"))
            .collect();
        names.sort();
        for n in names {
            let stem = &n[..n.len() - 4];
            if owned.contains(&stem) || (sub == "group_vars" && stem == "all") {
                continue;
            }
            let rel = format!("{sub}/{n}");
            let protected = is_protected(&base.join(&rel));
            out.push(Orphan {
                path: rel,
                protected,
            });
        }
    }
    out
}

/// v1's rule: a mapping whose `domain_ephemeral` (else `instance_ephemeral`)
/// is falsy is protected; anything else (no key, not YAML) is not.
fn is_protected(path: &Path) -> bool {
    use anklume_schema::yaml::{parse, Kind};
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(root) = parse(anklume_schema::FileId(0), &text) else {
        return false;
    };
    let Some(map) = root.as_map() else {
        return false;
    };
    for key in ["domain_ephemeral", "instance_ephemeral"] {
        if let Some((_, v)) = map.iter().find(|(k, _)| k.as_str() == Some(key)) {
            // YAML 1.1 spellings of false (`no`, `off`) protect too: when in
            // doubt, keep the file.
            let yaml11_false = v.plain
                && matches!(&v.kind, Kind::Str(s) if matches!(s.as_str(), "no" | "No" | "NO" | "off" | "Off" | "OFF"));
            return !v.to_value().is_truthy() || yaml11_false;
        }
    }
    false
}
