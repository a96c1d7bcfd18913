//! The progress events of anklume's callback plugin
//! (`ansible/callback_plugins/anklume_events.py`): one JSON object per line
//! in the file named by `ANKLUME_EVENTS_FILE`, read while the playbook runs.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::recap::HostRecap;

/// How one task ended on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Nothing to do.
    Ok,
    /// It changed something.
    Changed,
    /// It failed (see `ignored`).
    Failed,
    /// Its condition was false.
    Skipped,
    /// The host could not be reached.
    Unreachable,
}

/// One task's result on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// The inventory host.
    pub host: String,
    /// The task's name.
    pub task: String,
    /// Its role, if any.
    #[serde(default)]
    pub role: Option<String>,
    /// How it ended.
    pub status: TaskStatus,
    /// A failure the play ignores (`ignore_errors`).
    #[serde(default)]
    pub ignored: bool,
    /// Why it failed (first 2000 characters).
    #[serde(default)]
    pub msg: Option<String>,
}

/// One line of the events file.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Task(TaskEvent),
    Stats { hosts: BTreeMap<String, HostRecap> },
}

/// Reads an events file as it grows: only whole lines, each once.
#[derive(Debug, Default)]
pub struct Reader {
    offset: u64,
    partial: Vec<u8>,
    /// The final per-host counts, once the run wrote them.
    pub stats: Option<BTreeMap<String, HostRecap>>,
}

impl Reader {
    /// The task events appended since the last call (a missing file has
    /// none yet; a line that is not an event is ignored).
    pub fn poll(&mut self, path: &Path) -> Vec<TaskEvent> {
        let mut out = Vec::new();
        let Ok(mut f) = std::fs::File::open(path) else {
            return out;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        // At most 64 MiB per poll: the rest comes with the next one.
        let Ok(n) = f.take(64 << 20).read_to_end(&mut buf) else {
            return out;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            match serde_json::from_slice::<Line>(&line) {
                Ok(Line::Task(t)) => out.push(t),
                Ok(Line::Stats { hosts }) => self.stats = Some(hosts),
                Err(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn whole_lines_are_read_once_and_a_half_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut r = Reader::default();
        assert!(r.poll(&p).is_empty(), "no file yet");
        let mut f = std::fs::File::create(&p).unwrap();
        let first = r#"{"kind":"task","host":"a","task":"Base | Install","role":"base_system","status":"changed","ignored":false,"msg":null}"#;
        let half = r#"{"kind":"task","host":"b","task":"T","role":null,"status":"fai"#;
        write!(f, "{first}\n{half}").unwrap();
        f.flush().unwrap();
        let got = r.poll(&p);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].host, "a");
        assert_eq!(got[0].status, TaskStatus::Changed);
        assert_eq!(got[0].role.as_deref(), Some("base_system"));
        assert!(r.poll(&p).is_empty(), "nothing new, half a line");
        let rest = r#"led","ignored":false,"msg":"boom"}"#;
        writeln!(f, "{rest}").unwrap();
        writeln!(f, "not json").unwrap();
        let stats = r#"{"kind":"stats","hosts":{"a":{"ok":3,"changed":1,"failed":0,"unreachable":0,"skipped":1,"rescued":0,"ignored":0},"b":{"ok":1,"changed":0,"failed":1,"unreachable":0,"skipped":0,"rescued":0,"ignored":0}}}"#;
        writeln!(f, "{stats}").unwrap();
        let got = r.poll(&p);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, TaskStatus::Failed);
        assert_eq!(got[0].msg.as_deref(), Some("boom"));
        let stats = r.stats.as_ref().unwrap();
        assert_eq!(stats["a"].changed, 1);
        assert_eq!(stats["b"].failed, 1);
    }
}
