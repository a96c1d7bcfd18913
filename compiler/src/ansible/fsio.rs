//! The file-system side of `sync`: reading without following links, atomic
//! writes, the tree lock and leftovers of killed runs.
//!
//! Every path handled here is inside the base directory, and nothing is
//! read, written or deleted through a symbolic link: a link where anklume
//! expects one of its directories or files is an error, never followed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a path inside the tree cannot be used.
#[derive(Debug)]
pub enum PathProblem {
    /// A symbolic link (to anything, or dangling).
    Link,
    /// Something else than the expected kind (a directory where a file is
    /// expected, a FIFO, a device, a socket...).
    Kind(&'static str),
    /// An I/O error.
    Io(std::io::Error),
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathProblem::Link => {
                f.write_str("is a symbolic link; anklume does not follow links inside the tree")
            }
            PathProblem::Kind(k) => write!(f, "is a {k}, not a regular file"),
            PathProblem::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The name of a file type, for messages.
fn kind_name(t: std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "regular file"
    }
}

/// Open `path` for reading without following a final symbolic link and
/// without blocking on a FIFO; refuse anything but a regular file. Gives
/// the file and its size, `None` when nothing is there.
fn open_regular(path: &Path) -> Result<Option<(File, u64)>, PathProblem> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(PathProblem::Link),
        Err(e) => {
            // O_NOFOLLOW fails with ELOOP on a link; some systems say
            // ENOTDIR or EMLINK. Look again to be exact.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(PathProblem::Link);
            }
            return Err(PathProblem::Io(e));
        }
    };
    let m = f.metadata().map_err(PathProblem::Io)?;
    if !m.file_type().is_file() {
        return Err(PathProblem::Kind(kind_name(m.file_type())));
    }
    Ok(Some((f, m.len())))
}

/// The bytes of the regular file at `path` (`None` when absent), read
/// without following links. At most `limit` bytes are read: a longer file
/// is an error.
pub fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, PathProblem> {
    let Some((f, len)) = open_regular(path)? else {
        return Ok(None);
    };
    let too_big = || PathProblem::Io(std::io::Error::other(format!("larger than {limit} bytes")));
    if len > limit {
        return Err(too_big());
    }
    // Sized from the file's length: one read, plus the one that sees the
    // end (the bound still holds if the file grows meanwhile).
    let mut bytes = Vec::with_capacity(len as usize + 1);
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(PathProblem::Io)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(Some(bytes))
}

/// Make sure `dir` is a real directory (creating it when `create` is set).
/// A symbolic link or any other kind of file there is an error.
pub fn ensure_dir(dir: &Path, create: bool) -> Result<bool, PathProblem> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(true),
        Ok(m) if m.file_type().is_symlink() => Err(PathProblem::Link),
        Ok(m) => Err(PathProblem::Kind(kind_name(m.file_type()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if create {
                std::fs::create_dir_all(dir).map_err(PathProblem::Io)?;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        Err(e) => Err(PathProblem::Io(e)),
    }
}

/// The suffix of anklume's temporary files: `.NAME.anklume-PID-N.tmp`.
const TMP_MARK: &str = ".anklume-";

/// Whether `name` is one of anklume's temporary files.
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(".tmp") else {
        return false;
    };
    let Some(i) = rest.rfind(TMP_MARK) else {
        return false;
    };
    let ids = &rest[i + TMP_MARK.len()..];
    let mut parts = ids.split('-');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    i > 0 && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Write `content` to `path` atomically: a temporary file in the same
/// directory, then renamed over the target, so a reader sees the old or the
/// new file, never a part. When an existing file (which may hold user
/// content) is replaced, the new data is flushed to disk before the rename,
/// so a crash cannot leave it empty; a new file has nothing to lose and
/// skips that flush. The new file keeps the old file's permissions (0644
/// for a new file).
///
/// A symbolic link at `path` is replaced by the file, never followed; the
/// temporary file is created exclusively (`O_EXCL`), so a planted link
/// cannot redirect it either.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let existing = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_file());
    let mode = existing
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}{TMP_MARK}{}-{}.tmp",
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

/// The lock of a tree: held for the whole of a (non-dry-run) sync, so two
/// syncs of the same base directory never mix their trees. It is an
/// advisory lock (`flock`) on the base directory itself, so no lock file is
/// added to the user's tree. Released when dropped (or when the process
/// dies).
#[derive(Debug)]
pub struct TreeLock {
    _dir: File,
    /// The locked directory.
    pub path: PathBuf,
}

/// Why the tree lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another sync holds it.
    Busy(PathBuf),
    /// The directory could not be opened or locked.
    Problem(PathBuf, PathProblem),
}

/// Take the lock of the tree under `base` without waiting.
pub fn lock_tree(base: &Path) -> Result<TreeLock, LockError> {
    let path = base.to_path_buf();
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(&path)
        .map_err(|e| LockError::Problem(path.clone(), PathProblem::Io(e)))?;
    match dir.try_lock() {
        Ok(()) => Ok(TreeLock { _dir: dir, path }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Problem(path, PathProblem::Io(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".web.yml.anklume-123-0.tmp"));
        assert!(is_temp_name(".a.anklume-b.yml.anklume-1-22.tmp"));
        for n in [
            "web.yml",
            ".web.yml",
            ".anklume-1-2.tmp",
            ".web.yml.anklume-1.tmp",
            ".web.yml.anklume-1-2-3.tmp",
            ".web.yml.anklume-x-2.tmp",
            ".web.yml.anklume--2.tmp",
            ".web.yml.anklume-1-2.tmpx",
        ] {
            assert!(!is_temp_name(n), "{n}");
        }
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_tree(dir.path()).unwrap();
        assert!(matches!(lock_tree(dir.path()), Err(LockError::Busy(_))));
        drop(held);
        lock_tree(dir.path()).unwrap();
    }

    #[test]
    fn links_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.yml"), "secret").unwrap();
        let link = dir.path().join("x.yml");
        std::os::unix::fs::symlink(outside.path().join("x.yml"), &link).unwrap();
        assert!(matches!(read_regular(&link, 100), Err(PathProblem::Link)));
        let dangling = dir.path().join("d.yml");
        std::os::unix::fs::symlink("/nonexistent/anklume", &dangling).unwrap();
        assert!(matches!(
            read_regular(&dangling, 100),
            Err(PathProblem::Link)
        ));
        let fifo = dir.path().join("f.yml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(
            read_regular(&fifo, 100),
            Err(PathProblem::Kind("FIFO"))
        ));
        std::os::unix::fs::symlink(outside.path(), dir.path().join("host_vars")).unwrap();
        assert!(matches!(
            ensure_dir(&dir.path().join("host_vars"), true),
            Err(PathProblem::Link)
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 1),
            Ok(None)
        ));
        std::fs::write(dir.path().join("big"), "12345").unwrap();
        assert!(read_regular(&dir.path().join("big"), 4).is_err());
        // Writing over a link replaces the link, never the file it names.
        write_atomic(&link, b"mine").unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("x.yml")).unwrap(),
            b"secret"
        );
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    }
}
