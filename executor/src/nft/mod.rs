//! The host nftables ruleset: read the live `inet anklume` table, load a
//! ruleset atomically (`nft -c -f` first, then `nft -f`), and keep the last
//! applied ruleset and the previous live table in the state directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the host has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftState {
    /// `nft list table inet anklume`, when the table exists.
    pub live_table: Option<String>,
    /// The ruleset anklume last loaded (from the state directory).
    pub last_applied: Option<String>,
    /// How the kernel listed the table right after that load: a different
    /// listing now means someone changed the table by hand.
    pub applied_listing: Option<String>,
}

impl NftState {
    /// Whether the live table is exactly what anklume loaded last.
    pub fn untouched(&self) -> bool {
        self.live_table.is_some() && self.live_table == self.applied_listing
    }
}

/// Where anklume keeps rulesets in the state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("nftables")
}

/// Read the host's state. `Err` when `nft` cannot be run (missing, or not
/// allowed): apply then reports the ruleset as not run.
pub fn read(state_dir: &Path) -> Result<NftState, String> {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "anklume"])
        .output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    let live_table = if out.status.success() {
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") || err.contains("does not exist") {
            None
        } else {
            return Err(format!("nft list table inet anklume: {}", err.trim()));
        }
    };
    let last_applied = std::fs::read_to_string(dir(state_dir).join("applied.nft")).ok();
    let applied_listing = std::fs::read_to_string(dir(state_dir).join("applied.listing")).ok();
    Ok(NftState {
        live_table,
        last_applied,
        applied_listing,
    })
}

/// Rule lines of a ruleset (comments and blank lines dropped), for diffs.
pub fn rules(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Check, then load `text`; save the previous live table and the new
/// ruleset under the state directory.
pub fn load(text: &str, state_dir: &Path, previous: Option<&str>) -> Result<(), String> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let file = d.join("pending.nft");
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("nft")
            .args(args)
            .arg(&file)
            .output()
            .map_err(|e| format!("cannot run nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft {} rejected the ruleset: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(&["-c", "-f"])?;
    if let Some(prev) = previous {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let saved = d.join(format!("previous-{stamp}.nft"));
        std::fs::write(&saved, prev).map_err(|e| format!("{}: {e}", saved.display()))?;
    }
    run(&["-f"])?;
    std::fs::rename(&file, d.join("applied.nft")).map_err(|e| format!("{}: {e}", d.display()))?;
    let listing = Command::new("nft")
        .args(["list", "table", "inet", "anklume"])
        .output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    std::fs::write(d.join("applied.listing"), &listing.stdout)
        .map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(())
}

/// Put the `inet anklume` table back as it was (`table`: a listing saved
/// by [`read`], or `None` when there was no table), atomically, and the
/// state files with it.
pub fn restore(
    table: Option<&str>,
    applied: Option<&str>,
    applied_listing: Option<&str>,
    state_dir: &Path,
) -> Result<(), String> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let file = d.join("rollback.nft");
    // Declaring the table first makes the delete valid when it is absent;
    // the whole file is one transaction.
    let text = format!(
        "table inet anklume {{}}\ndelete table inet anklume\n{}",
        table.unwrap_or("")
    );
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    let out = Command::new("nft")
        .arg("-f")
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft -f rejected the previous table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = std::fs::remove_file(&file);
    for (name, content) in [
        ("applied.nft", applied),
        ("applied.listing", applied_listing),
    ] {
        let p = d.join(name);
        match content {
            Some(c) => std::fs::write(&p, c).map_err(|e| format!("{}: {e}", p.display()))?,
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(())
}
