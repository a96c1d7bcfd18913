//! The state directory (`ANKLUME_STATE_DIR`, default `~/.anklume`): the apply
//! lock, and the check that a plan's sources have not changed since it was
//! made.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anklume_plan::codec::{listing_digest, sha256_hex, Header};

use crate::Error;

/// The state directory.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ANKLUME_STATE_DIR") {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".anklume")
}

/// Held while an apply runs; released on drop.
#[derive(Debug)]
pub struct ApplyLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Take the apply lock (`<state dir>/apply.lock`), or say who holds it.
pub fn lock(dir: &Path) -> Result<ApplyLock, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("apply.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(ApplyLock { _file: file, path }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Files whose bytes differ from when the plan was made, relative to
/// `cwd`: the sources (missing ones included), and the Ansible tree's
/// files provisioning depends on (under the plan's tree directory; one
/// recorded as absent is stale once it exists).
pub fn stale_sources(header: &Header, cwd: &Path) -> Vec<String> {
    let sha = |p: &Path| std::fs::read(p).ok().map(|b| sha256_hex(&b));
    let mut out: Vec<String> = header
        .sources
        .iter()
        .filter(|s| sha(&cwd.join(&s.path)).as_deref() != Some(s.sha256.as_str()))
        .map(|s| s.path.clone())
        .collect();
    let tree = cwd.join(&header.tree_dir);
    for f in &header.tree {
        let path = tree.join(&f.path);
        let changed = if let Some(dir) = f.path.strip_suffix('/') {
            // A directory's list of files.
            let mut files = Vec::new();
            list_files(&tree.join(dir), Path::new(""), &mut files);
            listing_digest(files.iter().map(String::as_str)) != f.sha256
        } else if f.sha256.is_empty() {
            // Absent when planned: anything there now (a file, or a role's
            // directory) is a change.
            std::fs::symlink_metadata(&path).is_ok()
        } else {
            sha(&path).as_deref() != Some(f.sha256.as_str())
        };
        if changed {
            out.push(
                Path::new(&header.tree_dir)
                    .join(&f.path)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out
}

/// The directory a plan's relative source and tree paths are read from:
/// of `candidates` (where apply runs, then the plan file's own directory),
/// the one where the fewest of them are stale, the earlier on a tie. So a
/// plan applied from another directory (`cd /tmp && anklume apply
/// ~/proj/plan.bin`) is checked against the files beside it, even when the
/// other directory has an `infra.yml` of its own, while a plan applied
/// where it was made stays checked there.
pub fn sources_dir(header: &Header, candidates: &[PathBuf]) -> PathBuf {
    candidates
        .iter()
        .map(|d| (stale_sources(header, d).len(), d))
        .min_by_key(|(stale, _)| *stale)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every file under `dir` (links included, not followed), relative, into
/// `out`; an unreadable directory lists as empty.
fn list_files(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let name = rel.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() => list_files(dir, &name, out),
            Ok(_) => out.push(name.to_string_lossy().into_owned()),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree's files count, and one that appears after planning too.
    #[test]
    fn a_changed_or_new_tree_file_makes_the_plan_stale() {
        use anklume_plan::codec::SourceDigest;
        let dir = std::env::temp_dir().join(format!("anklume-stale-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("t/host_vars")).unwrap();
        std::fs::write(dir.join("t/host_vars/a.yml"), "x: 1\n").unwrap();
        let header = Header {
            tree_dir: "t".into(),
            tree: vec![
                SourceDigest {
                    path: "host_vars/a.yml".into(),
                    sha256: sha256_hex(b"x: 1\n"),
                },
                SourceDigest {
                    path: "host_vars/b.yml".into(),
                    sha256: String::new(),
                },
            ],
            ..Header::default()
        };
        assert_eq!(stale_sources(&header, &dir), Vec::<String>::new());
        std::fs::write(dir.join("t/host_vars/a.yml"), "x: 2\n").unwrap();
        std::fs::write(dir.join("t/host_vars/b.yml"), "y: 1\n").unwrap();
        assert_eq!(
            stale_sources(&header, &dir),
            ["t/host_vars/a.yml", "t/host_vars/b.yml"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_apply_at_a_time() {
        let dir = std::env::temp_dir().join(format!("anklume-lock-test-{}", std::process::id()));
        let first = lock(&dir).unwrap();
        let second = lock(&dir).unwrap_err();
        assert!(matches!(second, Error::Locked { .. }), "{second}");
        assert!(
            second
                .to_string()
                .contains("another anklume apply is running"),
            "{second}"
        );
        drop(first);
        assert!(lock(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
