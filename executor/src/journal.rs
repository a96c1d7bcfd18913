//! The apply journal: one JSON-lines file per apply in
//! `<state dir>/journal/YYYYMMDD-HHMMSS.jsonl`. Before each change apply
//! records what it is about to do and the object's prior state; after it, the
//! outcome. Every record is written and fsynced before the change it
//! announces is sent, so a crash or `kill -9` leaves a journal from which
//! `rollback` can undo the part that was done.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::kind::Target;
use crate::Error;

/// The two kinds of change apply makes (the `change` field of an intent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// The object did not exist.
    Create,
    /// The object existed; `prior` holds what it was.
    Update,
    /// The object is deleted (prune, flush, remove); `prior` holds what it
    /// was (an instance's copy is in a [`Record::Kept`]).
    Delete,
}

/// One line of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The apply started.
    Begin {
        /// Its timestamp (the journal's name).
        ts: String,
        /// anklume's version.
        anklume: String,
        /// Changes the apply is about to make.
        changes: usize,
        /// The pre-apply snapshot name, unless snapshots were skipped.
        snapshot: Option<String>,
    },
    /// A pre-apply snapshot was taken (or failed).
    Snapshot {
        /// The instance's project.
        project: String,
        /// The instance.
        instance: String,
        /// The snapshot name.
        name: String,
        /// Whether it was taken.
        ok: bool,
        /// Incus's error when not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A change is about to be sent.
    Intent {
        /// Its number in this journal.
        seq: u64,
        /// The plan node id.
        node: String,
        /// What it changes.
        target: Target,
        /// Create or update.
        change: Verb,
        /// Plan ids of the nodes this one depends on.
        #[serde(default)]
        deps: Vec<String>,
        /// The object before the change (updates and deletes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prior: Option<Value>,
    },
    /// The copy of an instance about to be deleted was kept (after its
    /// intent, before the delete).
    Kept {
        /// The intent's number.
        seq: u64,
        /// The copy.
        kept: crate::model::Kept,
    },
    /// A change ended.
    Done {
        /// The intent's number.
        seq: u64,
        /// Whether it succeeded.
        ok: bool,
        /// Incus's error when not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The apply ended (interrupted by Ctrl-C included; not after a crash).
    End {
        /// `ok`, `failed` or `interrupted`.
        outcome: String,
    },
    /// A rollback of this apply ran.
    Rollback {
        /// When (a timestamp).
        at: String,
        /// `complete`, `partial` or `nothing`.
        outcome: String,
        /// Counts for the report.
        restored: usize,
        /// Skipped undo steps.
        skipped: usize,
        /// Failed undo steps.
        failed: usize,
    },
}

/// The journal directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("journal")
}

/// Local time as `YYYYMMDD-HHMMSS` (v1's `date +%Y%m%d-%H%M%S`).
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed struct we own; a null
    // result (out of range) leaves it zeroed.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Whether `s` looks like `YYYYMMDD-HHMMSS`.
pub fn is_timestamp(s: &str) -> bool {
    s.len() == 15
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// An open journal, shared by the tasks of one apply.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
    /// The file.
    pub path: PathBuf,
    /// Its timestamp.
    pub ts: String,
    seq: AtomicU64,
    written: AtomicU64,
    kill_after: Option<u64>,
    pause_after: Option<u64>,
}

impl Journal {
    /// Create a new journal named by the current time. Two applies within
    /// one second get distinct names: the second waits for the next second.
    pub fn create(state_dir: &Path) -> Result<Journal, Error> {
        let d = dir(state_dir);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        for _ in 0..3 {
            let ts = timestamp();
            let path = d.join(format!("{ts}.jsonl"));
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(file) => {
                    // Make the new name durable too.
                    if let Ok(dirf) = File::open(&d) {
                        let _ = dirf.sync_all();
                    }
                    let kill_after = kill_after_from_env();
                    let pause_after = failpoint_from_env("ANKLUME_FAILPOINT_PAUSE_AFTER_RECORDS");
                    return Ok(Journal {
                        file: Mutex::new(file),
                        path,
                        ts,
                        seq: AtomicU64::new(0),
                        written: AtomicU64::new(0),
                        kill_after,
                        pause_after,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(std::time::Duration::from_millis(1000));
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::io(
            &d,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "cannot find a free journal name",
            ),
        ))
    }

    /// The next intent number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Append one record and fsync it.
    pub fn append(&self, record: &Record) -> Result<(), Error> {
        append_to(&self.file, &self.path, record)?;
        let n = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        if self.kill_after == Some(n) {
            // A test failpoint: die as `kill -9` would, right after the
            // n-th record reached the disk.
            // SAFETY: sending a signal to ourselves.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        if self.pause_after == Some(n) {
            pause(n);
        }
        Ok(())
    }
}

/// Whether this build has the test failpoint
/// (`ANKLUME_FAILPOINT_KILL_AFTER_RECORDS`): only with the `failpoints`
/// cargo feature, which release builds do not enable. Tests that need the
/// failpoint assert this first, so a build without it fails them loudly.
pub const FAILPOINTS: bool = cfg!(feature = "failpoints");

/// The kill failpoint's record count, read from the environment in builds
/// with the `failpoints` feature; always `None` otherwise (the variable is
/// ignored).
fn kill_after_from_env() -> Option<u64> {
    failpoint_from_env("ANKLUME_FAILPOINT_KILL_AFTER_RECORDS")
}

/// A failpoint's record count from the environment (only with the
/// `failpoints` feature).
fn failpoint_from_env(name: &str) -> Option<u64> {
    #[cfg(feature = "failpoints")]
    {
        std::env::var(name).ok().and_then(|v| v.parse().ok())
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        None
    }
}

/// The pause failpoint (`ANKLUME_FAILPOINT_PAUSE_AFTER_RECORDS`): hold the
/// run right after the n-th record reached the disk, for up to a minute, so
/// a test can signal the process at that exact point (the double Ctrl-C
/// test). Says so on stderr. The runtime's other tasks go on: the wait
/// leaves its worker thread to them.
fn pause(n: u64) {
    eprintln!("failpoint: paused after journal record {n}");
    let wait = || std::thread::sleep(std::time::Duration::from_secs(60));
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

fn append_to(file: &Mutex<File>, path: &Path, record: &Record) -> Result<(), Error> {
    let mut line = serde_json::to_string(record).map_err(|e| Error::io(path, e.into()))?;
    line.push('\n');
    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(path, e))
}

/// Append a record to an existing journal file (rollback's own records).
/// A torn last line (a crash while writing it) is cut off first.
pub fn append_file(path: &Path, record: &Record) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::io(path, e);
    let bytes = std::fs::read(path).map_err(err)?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let f = OpenOptions::new().write(true).open(path).map_err(err)?;
        f.set_len(keep as u64).map_err(err)?;
    }
    let file = OpenOptions::new().append(true).open(path).map_err(err)?;
    append_to(&Mutex::new(file), path, record)
}

/// A journal read back.
#[derive(Clone, Debug, Default)]
pub struct Read {
    /// Its timestamp.
    pub ts: String,
    /// The file.
    pub path: PathBuf,
    /// Its records, in order. A torn last line (a crash mid-write) is
    /// dropped: its change was never sent.
    pub records: Vec<Record>,
}

impl Read {
    /// Whether the apply ended (no crash).
    pub fn ended(&self) -> Option<&str> {
        self.records.iter().find_map(|r| match r {
            Record::End { outcome } => Some(outcome.as_str()),
            _ => None,
        })
    }

    /// The last rollback's outcome, if any ran.
    pub fn rolled_back(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| match r {
            Record::Rollback { outcome, .. } => Some(outcome.as_str()),
            _ => None,
        })
    }

    /// The pre-apply snapshot name, when one was taken.
    pub fn snapshot(&self) -> Option<&str> {
        self.records.iter().find_map(|r| match r {
            Record::Begin { snapshot, .. } => snapshot.as_deref(),
            _ => None,
        })
    }

    /// Intents, with whether each finished and how.
    pub fn changes(&self) -> Vec<(&Record, Option<bool>)> {
        let mut done = std::collections::HashMap::new();
        for r in &self.records {
            if let Record::Done { seq, ok, .. } = r {
                done.insert(*seq, *ok);
            }
        }
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Intent { seq, .. } => Some((r, done.get(seq).copied())),
                _ => None,
            })
            .collect()
    }

    /// A one-word status for lists.
    pub fn status(&self) -> String {
        let base = match self.ended() {
            Some(o) => o.to_string(),
            None => "unfinished".to_string(),
        };
        match self.rolled_back() {
            Some(r) => format!("{base}, rolled back ({r})"),
            None => base,
        }
    }
}

/// Read one journal.
pub fn read(path: &Path) -> Result<Read, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ts = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut records = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            // A torn final line: the process died while writing it.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::Journal {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(Read {
        ts,
        path: path.to_path_buf(),
        records,
    })
}

/// Every journal's timestamp, oldest first.
pub fn list(state_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir(state_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".jsonl")?;
            is_timestamp(stem).then(|| stem.to_string())
        })
        .collect();
    v.sort();
    v
}

/// The path of the journal named `ts`.
pub fn path(state_dir: &Path, ts: &str) -> PathBuf {
    dir(state_dir).join(format!("{ts}.jsonl"))
}

/// The newest journal, when it did not end: a crashed or killed apply.
pub fn unfinished(state_dir: &Path) -> Option<Read> {
    let ts = list(state_dir).pop()?;
    let j = read(&path(state_dir, &ts)).ok()?;
    (j.ended().is_none() && j.rolled_back().is_none()).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("anklume-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let j = Journal::create(&dir).unwrap();
        assert!(is_timestamp(&j.ts), "{}", j.ts);
        let intent = Record::Intent {
            seq: j.next_seq(),
            node: "instance/pro/pro-dev".into(),
            target: Target::Instance(crate::kind::instance::Address {
                project: "pro".into(),
                name: "pro-dev".into(),
            }),
            change: Verb::Update,
            deps: vec!["project/pro".into()],
            prior: Some(serde_json::json!({"config": {"limits.cpu": "1"}})),
        };
        j.append(&intent).unwrap();
        drop(j);
        let p = path(&dir, &list(&dir)[0]);
        // A crash while writing the next record.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"record\":\"done\",\"se").unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.records, vec![intent.clone()]);
        assert_eq!(r.changes()[0].1, None);
        assert_eq!(r.status(), "unfinished");
        assert!(unfinished(&dir).is_some());
        let end = Record::End {
            outcome: "interrupted".into(),
        };
        append_file(&p, &end).unwrap();
        assert_eq!(read(&p).unwrap().records, vec![intent, end]);
        assert!(unfinished(&dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A build without the `failpoints` feature (a release build) ignores
    /// the failpoint variable: writing records with it set does not kill
    /// this process (it would end the test run).
    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_failpoints_feature_the_kill_variable_is_ignored() {
        // The only reader of this variable is Journal::create, and no test in
        // this build can be killed by it.
        std::env::set_var("ANKLUME_FAILPOINT_KILL_AFTER_RECORDS", "1");
        let dir = std::env::temp_dir().join(format!("anklume-journal-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let j = Journal::create(&dir).unwrap();
        assert_eq!(j.kill_after, None);
        for _ in 0..3 {
            j.append(&Record::End {
                outcome: "ok".into(),
            })
            .unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With the feature, the variable is read (a count no test reaches).
    #[cfg(feature = "failpoints")]
    #[test]
    fn with_the_failpoints_feature_the_kill_variable_is_read() {
        std::env::set_var("ANKLUME_FAILPOINT_KILL_AFTER_RECORDS", "999999");
        assert_eq!(kill_after_from_env(), Some(999_999));
    }
}
