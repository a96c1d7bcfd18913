//! The state directory (`ANKLUME_STATE_DIR`, default `~/.anklume`): the apply
//! lock, and the check that a plan's sources have not changed since it was
//! made.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anklume_plan::codec::{sha256_hex, Header};

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

/// Source files whose bytes differ from when the plan was made (missing
/// files included), relative to `cwd`.
pub fn stale_sources(header: &Header, cwd: &Path) -> Vec<String> {
    header
        .sources
        .iter()
        .filter(|s| match std::fs::read(cwd.join(&s.path)) {
            Ok(bytes) => sha256_hex(&bytes) != s.sha256,
            Err(_) => true,
        })
        .map(|s| s.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
