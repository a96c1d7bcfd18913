//! An in-memory `nft` for unit tests: one `inet anklume` table, kept as the
//! text of the last file loaded. `nft -c -f FILE` accepts what
//! [`super::syntax::check`] accepts; `nft -f FILE` replaces the table with
//! what follows the file's last `delete table inet anklume` (how anklume's
//! rulesets and rollback's restore files are written), or removes it when
//! nothing follows; `nft list table inet anklume` prints the table as
//! loaded. It does not model rules, only which table is in force.

use std::sync::{Arc, Mutex};

use super::{syntax, Nft, Ran};

/// The fake; clones share the table.
#[derive(Clone, Debug, Default)]
pub struct FakeNft {
    table: Arc<Mutex<Option<String>>>,
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeNft {
    /// A host without the table.
    pub fn new() -> FakeNft {
        FakeNft::default()
    }

    /// The table in force.
    pub fn table(&self) -> Option<String> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Put a table in force (loaded by someone else).
    pub fn set_table(&self, table: Option<&str>) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = table.map(str::to_string);
    }

    /// Every run so far, its arguments.
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn ok(stdout: String) -> Ran {
    Ran {
        ok: true,
        stdout,
        stderr: String::new(),
    }
}

fn refused(stderr: impl Into<String>) -> Ran {
    Ran {
        ok: false,
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

/// What `nft -f` leaves in force after loading `text`.
fn loaded(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| {
            l.trim()
                .trim_end_matches(';')
                .eq("delete table inet anklume")
        })
        .map_or(0, |i| i + 1);
    let rest = lines[start..].join("\n");
    (!rest.trim().is_empty()).then(|| format!("{}\n", rest.trim_end()))
}

impl Nft for FakeNft {
    fn run(&self, args: &[&str]) -> std::io::Result<Ran> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(args.iter().map(|a| a.to_string()).collect());
        Ok(match args {
            ["list", "table", "inet", "anklume"] => match self.table() {
                Some(t) => ok(t),
                None => refused("Error: No such file or directory; did you mean table 'anklume' in family inet?"),
            },
            ["-c", "-f", file] | ["-f", file] => {
                let text = std::fs::read_to_string(file)?;
                if let Err(r) = syntax::check(&text) {
                    refused(syntax::refusal_message("the file", &r))
                } else if args[0] == "-f" {
                    self.set_table(loaded(&text).as_deref());
                    ok(String::new())
                } else {
                    ok(String::new())
                }
            }
            _ => refused(format!("the fake nft does not know `{}`", args.join(" "))),
        })
    }
}
