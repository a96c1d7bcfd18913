//! Writing a command's output file (`plan -o`, `nftables -o`).
//!
//! A regular file (or nothing yet) is replaced atomically: a temporary file
//! next to it, then a rename. Anything else the user names — a character
//! device (`/dev/null`, a terminal), a FIFO, a socket, `/dev/stdout` — is
//! written through, never replaced; and a symbolic link is never replaced
//! by a file: the file it names is written (atomically when regular).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anklume_compiler::ansible::fsio::write_atomic;

/// The file descriptor of this process that `path` names, if it is one:
/// `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N` (or a link
/// to one of them).
fn own_fd(path: &Path) -> Option<i32> {
    let own = format!("/proc/{}/fd/", std::process::id());
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let s = p.to_string_lossy();
        for prefix in ["/proc/self/fd/", "/dev/fd/", own.as_str()] {
            if let Some(n) = s.strip_prefix(prefix) {
                return n.parse().ok();
            }
        }
        let target = std::fs::read_link(&p).ok()?;
        p = match p.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    None
}

/// A path as printed in messages: control characters escaped (a file name
/// may hold anything).
pub fn shown(path: &Path) -> String {
    anklume_term::display(&path.to_string_lossy()).into_owned()
}

/// Write `bytes` to the output file `path`.
pub fn write_output(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(fd) = own_fd(path) {
        // One of our own descriptors (`-o /dev/stdout` into `>> log`):
        // write through it, at its offset and with its flags (append),
        // never replace the file behind it.
        use std::os::fd::{FromRawFd, OwnedFd};
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(dup) });
        f.write_all(bytes)?;
        return f.flush();
    }
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => true,
        Ok(m) if m.file_type().is_file() => return write_atomic(path, bytes),
        Ok(m) if m.file_type().is_dir() => {
            return Err(std::io::Error::other("is a directory"));
        }
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return write_atomic(path, bytes),
        Err(e) => return Err(e),
    };
    if link {
        match std::fs::metadata(path) {
            // A link to a regular file: replace that file, keep the link.
            Ok(m) if m.file_type().is_file() => {
                if let Ok(real) = std::fs::canonicalize(path) {
                    return write_atomic(&real, bytes);
                }
            }
            Ok(m) if m.file_type().is_dir() => {
                return Err(std::io::Error::other("is a link to a directory"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(std::io::Error::other(
                    "is a dangling symbolic link (anklume does not create its target)",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    // A device, FIFO or socket (or a link to one): write through it.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{e} (opening it for writing)")))?;
    f.write_all(bytes)?;
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_replaced_and_links_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plan.bin");
        write_output(&target, b"one").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        write_output(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_output(&link, b"three").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"three");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(write_output(&dangling, b"x").is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert!(write_output(dir.path(), b"x").is_err());
    }

    #[test]
    fn special_files_are_written_through_never_replaced() {
        write_output(Path::new("/dev/null"), b"discarded").unwrap();
        let m = std::fs::symlink_metadata("/dev/null").unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &m.file_type()
        ));
        // A FIFO: the reader gets the bytes, the FIFO stays a FIFO.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_output(&fifo, b"through the fifo").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the fifo");
        let t = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&t));
        // A link to a FIFO stays a link.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_output(&link, b"via link").unwrap();
        assert_eq!(reader.join().unwrap(), b"via link");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
