//! The host nftables ruleset: read the live `inet anklume` table, load a
//! ruleset atomically (`nft -c -f` first, then `nft -f`), and keep the last
//! applied ruleset and the previous live table in the state directory.
//! Every ruleset is read by [`syntax::check`] first: anklume loads nothing
//! that touches more than table `inet anklume`.

pub mod fake;
pub mod syntax;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// What went wrong with `nft`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started (missing, or not allowed).
    #[error("cannot run nft: {0}")]
    Unavailable(std::io::Error),
    /// The ruleset touches more than table `inet anklume`: nothing was run.
    #[error("{0}")]
    Refused(String),
    /// `nft` refused the ruleset (`nft -c -f`: nothing was loaded;
    /// `nft -f`: the table in force is unchanged, nft loads atomically).
    #[error("nft {args} rejected {what}: {stderr}")]
    Rejected {
        /// The arguments before the file (`-c -f`, `-f`).
        args: String,
        /// What was given (`the ruleset`, `the previous table`).
        what: &'static str,
        /// What nft said.
        stderr: String,
    },
    /// The table in force could not be listed.
    #[error("nft list table inet anklume: {0}")]
    List(String),
}

/// What one run of `nft` gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// It exited with status 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// The host's `nft`, the one command the executor runs: [`System`] runs
/// it; [`fake::FakeNft`] keeps one table in memory for unit tests.
pub trait Nft: Send + Sync + std::fmt::Debug {
    /// Run `nft` with these arguments; `Err` when it cannot be started.
    fn run(&self, args: &[&str]) -> std::io::Result<Ran>;
}

/// The real `nft` of this host.
#[derive(Clone, Copy, Debug, Default)]
pub struct System;

impl Nft for System {
    fn run(&self, args: &[&str]) -> std::io::Result<Ran> {
        let out = Command::new("nft").args(args).output()?;
        Ok(Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The host's `nft`, shared.
pub fn system() -> std::sync::Arc<dyn Nft> {
    std::sync::Arc::new(System)
}

fn path_arg(file: &Path) -> Result<&str, Error> {
    file.to_str().ok_or_else(|| {
        Error::io(
            file,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 path"),
        )
    })
}

/// `nft list table inet anklume`: `None` when there is no such table.
fn list(nft: &dyn Nft) -> Result<Option<String>, Error> {
    let out = nft
        .run(&["list", "table", "inet", "anklume"])
        .map_err(unavailable)?;
    if out.ok {
        Ok(Some(out.stdout))
    } else if out.stderr.contains("No such file or directory")
        || out.stderr.contains("does not exist")
    {
        Ok(None)
    } else {
        Err(Error::Nft(NftError::List(out.stderr.trim().to_string())))
    }
}

/// `nft <args> <file>`; a refusal is [`NftError::Rejected`] about `what`.
fn run_file(nft: &dyn Nft, args: &[&str], file: &Path, what: &'static str) -> Result<(), Error> {
    let mut all = args.to_vec();
    all.push(path_arg(file)?);
    let out = nft.run(&all).map_err(unavailable)?;
    if out.ok {
        Ok(())
    } else {
        Err(Error::Nft(NftError::Rejected {
            args: args.join(" "),
            what,
            stderr: out.stderr.trim().to_string(),
        }))
    }
}

fn unavailable(e: std::io::Error) -> Error {
    Error::Nft(NftError::Unavailable(e))
}

/// What the host has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftLive {
    /// `nft list table inet anklume`, when the table exists.
    pub live_table: Option<String>,
    /// The ruleset anklume last loaded (from the state directory).
    pub last_applied: Option<String>,
    /// How the kernel listed the table right after that load: a different
    /// listing now means someone changed the table by hand.
    pub applied_listing: Option<String>,
}

impl NftLive {
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
pub fn read(nft: &dyn Nft, state_dir: &Path) -> Result<NftLive, Error> {
    let live_table = list(nft)?;
    let last_applied = std::fs::read_to_string(dir(state_dir).join("applied.nft")).ok();
    let applied_listing = std::fs::read_to_string(dir(state_dir).join("applied.listing")).ok();
    Ok(NftLive {
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
pub fn load(
    nft: &dyn Nft,
    text: &str,
    state_dir: &Path,
    previous: Option<&str>,
) -> Result<(), Error> {
    syntax::check(text).map_err(|r| {
        Error::Nft(NftError::Refused(syntax::refusal_message(
            "the ruleset",
            &r,
        )))
    })?;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    let file = d.join("pending.nft");
    std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    run_file(nft, &["-c", "-f"], &file, "the ruleset")?;
    if let Some(prev) = previous {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let saved = d.join(format!("previous-{stamp}.nft"));
        std::fs::write(&saved, prev).map_err(|e| Error::io(&saved, e))?;
    }
    run_file(nft, &["-f"], &file, "the ruleset")?;
    std::fs::rename(&file, d.join("applied.nft")).map_err(|e| Error::io(&d, e))?;
    let listing = list(nft)?.unwrap_or_default();
    std::fs::write(d.join("applied.listing"), listing).map_err(|e| Error::io(&d, e))?;
    Ok(())
}

/// `anklume nftables deploy`: load `text` (already read, once, by the
/// caller) as [`load`] does for apply, saving the table in force first and
/// recording the ruleset in the state directory: the next apply's drift
/// check sees what was deployed.
pub fn deploy(nft: &dyn Nft, text: &str, state_dir: &Path) -> Result<(), Error> {
    syntax::check(text).map_err(|r| {
        Error::Nft(NftError::Refused(syntax::refusal_message(
            "the ruleset",
            &r,
        )))
    })?;
    let previous = list(nft)?;
    load(nft, text, state_dir, previous.as_deref())
}

/// Put the `inet anklume` table back as it was (`table`: a listing saved
/// by [`read`], or `None` when there was no table), atomically, and the
/// state files with it.
pub fn restore(
    nft: &dyn Nft,
    table: Option<&str>,
    applied: Option<&str>,
    applied_listing: Option<&str>,
    state_dir: &Path,
) -> Result<(), Error> {
    if let Some(t) = table {
        syntax::check(t).map_err(|r| {
            Error::Nft(NftError::Refused(syntax::refusal_message(
                "the previous table",
                &r,
            )))
        })?;
    }
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    let file = d.join("rollback.nft");
    // Declaring the table first makes the delete valid when it is absent;
    // the whole file is one transaction.
    let text = format!(
        "table inet anklume {{}}\ndelete table inet anklume\n{}",
        table.unwrap_or("")
    );
    std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    run_file(nft, &["-f"], &file, "the previous table")?;
    let _ = std::fs::remove_file(&file);
    for (name, content) in [
        ("applied.nft", applied),
        ("applied.listing", applied_listing),
    ] {
        let p = d.join(name);
        match content {
            Some(c) => std::fs::write(&p, c).map_err(|e| Error::io(&p, e))?,
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(())
}

/// What rollback does with the `inet anklume` table, as its last step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRollback {
    /// Load the table from before the apply again: it separates every pair
    /// of bridges that the table in force separates and that still exist.
    LoadPrevious,
    /// Remove the table (there was none before the apply): no pair of
    /// bridges that it separates still exists.
    Remove,
    /// Keep the table in force: going back would let these pairs of
    /// still-existing bridges (from, to) reach each other.
    KeepApplied {
        /// The pairs the previous table (or no table) leaves open.
        uncovered: Vec<(String, String)>,
    },
}

/// The bridges a table's inter-bridge drop rules name ([`syntax::isolated_pairs`]).
pub fn isolated_bridges(table: &str) -> BTreeSet<String> {
    syntax::parse(table)
        .map(|s| syntax::isolated_pairs(&s))
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .collect()
}

/// Decide rollback's last step. `existing`: the bridges that still exist
/// after the other steps (among those `applied` names); `previous`: the
/// table before the apply (`None`: there was none); `applied`: the table in
/// force now (`None`: there is none).
///
/// Isolation is only ever given up when nothing it protects remains: every
/// pair of bridges that `applied` separates and that both still exist must
/// be separated by `previous` too, or `applied` stays. A table in force
/// that cannot be read counts as separating every pair of the bridges that
/// exist.
pub fn after_rollback(
    existing: &BTreeSet<String>,
    previous: Option<&str>,
    applied: Option<&str>,
) -> AfterRollback {
    let pairs = |t: Option<&str>| -> Option<BTreeSet<(String, String)>> {
        match t {
            None => Some(BTreeSet::new()),
            Some(t) => syntax::parse(t).ok().map(|s| syntax::isolated_pairs(&s)),
        }
    };
    let needed: BTreeSet<(String, String)> = match pairs(applied) {
        Some(p) => p
            .into_iter()
            .filter(|(a, b)| existing.contains(a) && existing.contains(b))
            .collect(),
        None => existing
            .iter()
            .flat_map(|a| existing.iter().map(move |b| (a.clone(), b.clone())))
            .filter(|(a, b)| a != b)
            .collect(),
    };
    let provided = pairs(previous).unwrap_or_default();
    let uncovered: Vec<(String, String)> = needed.difference(&provided).cloned().collect();
    if !uncovered.is_empty() {
        AfterRollback::KeepApplied { uncovered }
    } else if previous.is_some() {
        AfterRollback::LoadPrevious
    } else {
        AfterRollback::Remove
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// apply and rollback load nothing that touches another table: refused
    /// before nft runs, nothing written in the state directory.
    #[test]
    fn load_and_restore_refuse_other_tables_before_running_nft() {
        let dir = std::env::temp_dir().join(format!("anklume-nft-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let e = load(
            &System,
            "table inet anklume {}\nflush ruleset\n",
            &dir,
            Some("table inet anklume {\n}\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2: `flush ruleset`"), "{e}");
        assert!(!dir.exists(), "nothing written");
        let e = restore(&System, Some("table ip filter {\n}\n"), None, None, &dir).unwrap_err();
        assert!(e.to_string().contains("`ip filter`"), "{e}");
        assert!(!dir.exists(), "nothing written");
    }

    /// The table anklume writes for these bridges (planner/src/nft.rs).
    fn table(bridges: &[&str]) -> String {
        let mut t = String::from("table inet anklume {\n\tchain isolation {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n\t\tct state established,related accept\n");
        for b in bridges {
            t.push_str(&format!("\t\tiifname \"{b}\" oifname \"{b}\" accept\n"));
        }
        if bridges.len() >= 2 {
            let set = bridges
                .iter()
                .map(|b| format!("\"{b}\""))
                .collect::<Vec<_>>()
                .join(", ");
            t.push_str(&format!(
                "\t\tiifname {{ {set} }} oifname {{ {set} }} drop\n"
            ));
        }
        t.push_str("\t}\n}\n");
        t
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The issue: no table before, the apply added domain `b` beside `a`,
    /// rollback kept `b`'s protected instance (so its bridge). Removing the
    /// table would let `a` and `b` reach each other.
    #[test]
    fn a_kept_domain_keeps_the_table_that_isolates_it() {
        let applied = table(&["net-a", "net-b"]);
        let d = after_rollback(&set(&["net-a", "net-b"]), None, Some(&applied));
        assert_eq!(
            d,
            AfterRollback::KeepApplied {
                uncovered: vec![
                    ("net-a".into(), "net-b".into()),
                    ("net-b".into(), "net-a".into())
                ]
            }
        );
        // An older table that does not name the kept bridge: kept too.
        let before = table(&["net-a", "net-c"]);
        let d = after_rollback(
            &set(&["net-a", "net-b", "net-c"]),
            Some(&before),
            Some(&table(&["net-a", "net-b", "net-c"])),
        );
        assert!(
            matches!(d, AfterRollback::KeepApplied { ref uncovered } if uncovered.len() == 4),
            "{d:?}"
        );
    }

    #[test]
    fn isolation_goes_only_when_nothing_it_protects_remains() {
        let applied = table(&["net-a", "net-b"]);
        // Everything the apply made is gone: the table goes.
        assert_eq!(
            after_rollback(&set(&[]), None, Some(&applied)),
            AfterRollback::Remove
        );
        // One bridge left: no pair to separate.
        assert_eq!(
            after_rollback(&set(&["net-a"]), None, Some(&applied)),
            AfterRollback::Remove
        );
        // The previous table separates what remains: loaded back.
        let before = table(&["net-a", "net-b", "net-c"]);
        assert_eq!(
            after_rollback(
                &set(&["net-a", "net-b", "net-c"]),
                Some(&before),
                Some(&table(&["net-a", "net-b", "net-c", "net-d"]))
            ),
            AfterRollback::LoadPrevious
        );
        // No table in force (the apply died before loading it): going back
        // gives up nothing.
        assert_eq!(
            after_rollback(&set(&["net-a", "net-b"]), Some(&before), None),
            AfterRollback::LoadPrevious
        );
        // A table in force that cannot be read protects every bridge left.
        assert!(matches!(
            after_rollback(
                &set(&["net-a", "net-b"]),
                None,
                Some("table inet anklume {")
            ),
            AfterRollback::KeepApplied { .. }
        ));
    }
}
