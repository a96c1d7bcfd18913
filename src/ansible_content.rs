//! anklume's own Ansible content (`site.yml`, `ansible.cfg`, plugins and
//! roles), embedded in the binary by `build.rs` and written out, once per
//! content version, to `<cache>/ansible-<digest>/` when first needed: an
//! installed anklume needs no source tree. `ANKLUME_ANSIBLE_DIR` points at
//! another copy instead (to try role changes without a rebuild).
//!
//! The cache is `ANKLUME_CACHE_DIR`, else `$XDG_CACHE_HOME/anklume`, else
//! `~/.cache/anklume`. A version is written to a temporary directory beside
//! it and renamed into place, so a reader sees all of it or none.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ansible_content.rs"));
}

/// The file that marks a complete copy.
const COMPLETE: &str = ".anklume-complete";

/// The embedded files: (path relative to `ansible/`, bytes, executable).
pub fn files() -> &'static [(&'static str, &'static [u8], bool)] {
    embedded::FILES
}

/// A digest of the embedded content (paths, modes and bytes).
pub fn digest() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| {
        let mut all = Vec::new();
        for (path, bytes, exec) in files() {
            all.extend_from_slice(path.as_bytes());
            all.push(0);
            all.push(u8::from(*exec));
            all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            all.extend_from_slice(bytes);
        }
        anklume_plan::codec::sha256_hex(&all)
    })
}

/// The cache directory.
fn cache() -> PathBuf {
    if let Some(d) = std::env::var_os("ANKLUME_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Path::new(&d).join("anklume");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/anklume")
}

/// Where the Ansible content is: `ANKLUME_ANSIBLE_DIR`, else the embedded
/// copy, written out first if needed.
pub fn dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("ANKLUME_ANSIBLE_DIR") {
        return Ok(PathBuf::from(d));
    }
    let cache = cache();
    let target = cache.join(format!("ansible-{}", &digest()[..16]));
    if target.join(COMPLETE).is_file() {
        return Ok(target);
    }
    write_out(&cache, &target).map_err(|e| {
        format!(
            "cannot write anklume's Ansible content to {}: {e}",
            target.display()
        )
    })?;
    Ok(target)
}

fn write_out(cache: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cache)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = cache.join(format!(
        ".{}.{}.{nanos}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ansible"),
        std::process::id()
    ));
    let result = (|| {
        std::fs::DirBuilder::new().mode(0o755).create(&tmp)?;
        for (path, bytes, exec) in files() {
            let full = tmp.join(path);
            if let Some(parent) = full.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if *exec { 0o755 } else { 0o644 })
                .open(&full)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::write(tmp.join(COMPLETE), digest())?;
        match std::fs::rename(&tmp, target) {
            Ok(()) => Ok(()),
            // Another anklume wrote it meanwhile: use theirs.
            Err(_) if target.join(COMPLETE).is_file() => {
                std::fs::remove_dir_all(&tmp)?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_content_is_embedded_and_nothing_else() {
        let paths: Vec<&str> = files().iter().map(|(p, _, _)| *p).collect();
        for p in [
            "site.yml",
            "ansible.cfg",
            "callback_plugins/anklume_events.py",
            "vars_plugins/anklume_tree.py",
            "roles/base_system/tasks/main.yml",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        assert!(paths
            .iter()
            .all(|p| !p.starts_with("tests/") && !p.contains("__pycache__")));
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), paths.len());
    }

    #[test]
    fn written_out_once_whole_and_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(format!("ansible-{}", &digest()[..16]));
        write_out(dir.path(), &target).unwrap();
        for (path, bytes, _) in files() {
            assert_eq!(&std::fs::read(target.join(path)).unwrap(), bytes, "{path}");
        }
        assert!(target.join(COMPLETE).is_file());
        // A second writer finds it there and leaves no temporary behind.
        write_out(dir.path(), &target).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [target.file_name().unwrap().to_string_lossy()]);
    }
}
