//! Running Ansible for provisioning: one `ansible-playbook` per batch of
//! hosts (forks = the apply's parallelism), never one process per host.
//!
//! Provision nodes hand their host to the [`Provisioner`] and wait; the
//! provisioner gathers the hosts that arrive close together (a short quiet
//! period ends a batch), runs the shipped playbook over them with the
//! user's Ansible tree, and answers each host from the play recap. The
//! whole output of each run is kept in the state directory.

pub mod events;
pub mod recap;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Mutex};

pub use events::{TaskEvent, TaskStatus};
pub use recap::HostRecap;

/// Where task events go while a playbook runs.
pub type Progress = Arc<dyn Fn(&TaskEvent) + Send + Sync>;

/// Where Ansible and anklume's Ansible content are.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The `ansible-playbook` to run (from the venv of
    /// `scripts/ansible-setup.sh`).
    pub ansible_playbook: PathBuf,
    /// anklume's Ansible content: `site.yml`, `ansible.cfg`, `roles/`.
    pub content: PathBuf,
    /// The user's Ansible tree (`inventory/`, `group_vars/`, `host_vars/`,
    /// `roles_custom/`), as the plan recorded it.
    pub tree: PathBuf,
    /// Where each run's output is kept (`<state dir>/ansible/`).
    pub logs: PathBuf,
    /// Hosts run at once (`-f`).
    pub forks: usize,
    /// How long no new host must arrive before a batch starts.
    pub quiet: Duration,
}

/// How one host's provisioning ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOutcome {
    /// Its recap, when the run reached it.
    pub recap: Option<HostRecap>,
    /// The run's full output.
    pub log: PathBuf,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl HostOutcome {
    /// The batch ended without answering this host (a bug: it always
    /// answers every host it took).
    fn no_answer() -> HostOutcome {
        HostOutcome {
            recap: None,
            log: PathBuf::new(),
            error: Some("internal error: the batch ended without an answer".into()),
        }
    }
}

struct Waiting {
    /// The nesting context files of the host.
    context: BTreeMap<String, String>,
    waiters: Vec<oneshot::Sender<HostOutcome>>,
}

impl Batch {
    /// The hosts gathered so far, as one batch: no longer expected.
    fn take(&mut self) -> BTreeMap<String, Waiting> {
        self.expected = self.expected.saturating_sub(self.hosts.len());
        std::mem::take(&mut self.hosts)
    }
}

struct Batch {
    hosts: BTreeMap<String, Waiting>,
    generation: u64,
    /// Hosts still expected in this apply (those that will not come, a
    /// skipped node's, are taken off by [`Provisioner::forget`]).
    expected: usize,
}

/// Gathers hosts into batches and runs them.
pub struct Provisioner {
    setup: Setup,
    batch: Mutex<Batch>,
    runs: std::sync::atomic::AtomicU64,
    progress: std::sync::Mutex<Option<Progress>>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("setup", &self.setup)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// A provisioner for these paths.
    pub fn new(setup: Setup) -> Arc<Provisioner> {
        Arc::new(Provisioner {
            setup,
            batch: Mutex::new(Batch {
                hosts: BTreeMap::new(),
                generation: 0,
                expected: usize::MAX,
            }),
            runs: Default::default(),
            progress: std::sync::Mutex::new(None),
        })
    }

    /// Report each task result of the coming runs to `progress`.
    pub fn set_progress(&self, progress: Progress) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress);
    }

    /// Why provisioning cannot run here, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        let s = &self.setup;
        if !s.ansible_playbook.is_file() {
            return Some(format!(
                "{} is not there: run scripts/ansible-setup.sh (or set ANKLUME_ANSIBLE_VENV)",
                s.ansible_playbook.display()
            ));
        }
        if !s.content.join("site.yml").is_file() {
            return Some(format!(
                "{} has no site.yml: set ANKLUME_ANSIBLE_DIR to anklume's ansible/ directory",
                s.content.display()
            ));
        }
        if !s.tree.join("inventory").is_dir() {
            return Some(format!(
                "{} has no inventory/: run `anklume sync` first",
                s.tree.display()
            ));
        }
        None
    }

    /// How many hosts this apply will hand over: a batch starts as soon as
    /// all of them are there (else after a quiet period).
    pub async fn expect(self: &Arc<Self>, hosts: usize) {
        self.batch.lock().await.expected = hosts;
    }

    /// One expected host will not come (its node was skipped); the batch
    /// may be complete now.
    pub async fn forget(self: &Arc<Self>) {
        let hosts = {
            let mut b = self.batch.lock().await;
            b.expected = b.expected.saturating_sub(1);
            if b.hosts.is_empty() || b.hosts.len() < b.expected {
                return;
            }
            b.generation += 1;
            b.take()
        };
        let me = self.clone();
        tokio::spawn(async move { me.run_batch(hosts).await });
    }

    /// Provision `host` with the next batch, writing its nesting context
    /// files first (`/etc/anklume/<name>`); resolves when its run ends.
    pub async fn run(
        self: &Arc<Self>,
        host: &str,
        context: &BTreeMap<String, String>,
    ) -> HostOutcome {
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut b = self.batch.lock().await;
            let w = b.hosts.entry(host.to_string()).or_insert_with(|| Waiting {
                context: context.clone(),
                waiters: Vec::new(),
            });
            w.waiters.push(tx);
            b.generation += 1;
            if b.hosts.len() >= b.expected {
                // Everyone is here: no need to wait.
                let hosts = b.take();
                let me = self.clone();
                tokio::spawn(async move { me.run_batch(hosts).await });
            }
            (b.generation, b.expected == usize::MAX)
        };
        let (generation, unknown) = generation;
        if !unknown {
            // The batch starts when every expected host is there.
            return rx.await.unwrap_or_else(|_| HostOutcome::no_answer());
        }
        // Without a count, the last host to arrive starts the batch once
        // nobody came for `quiet`.
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.setup.quiet).await;
            let hosts = {
                let mut b = me.batch.lock().await;
                if b.generation != generation || b.hosts.is_empty() {
                    return;
                }
                b.take()
            };
            me.run_batch(hosts).await;
        });
        rx.await.unwrap_or_else(|_| HostOutcome::no_answer())
    }

    async fn run_batch(&self, hosts: BTreeMap<String, Waiting>) {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let contexts: BTreeMap<String, BTreeMap<String, String>> = hosts
            .iter()
            .map(|(h, w)| (h.clone(), w.context.clone()))
            .collect();
        let setup = self.setup.clone();
        let progress = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = tokio::task::spawn_blocking(move || {
            run_playbook(&setup, &contexts, n, progress.as_deref())
        })
        .await;
        let (log, output) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => (PathBuf::new(), Err(e)),
            Err(e) => (PathBuf::new(), Err(format!("internal error: {e}"))),
        };
        for (host, Waiting { waiters, .. }) in hosts {
            let outcome = match &output {
                Err(e) => HostOutcome {
                    recap: None,
                    log: log.clone(),
                    error: Some(e.clone()),
                },
                Ok((recaps, failures)) => {
                    let recap = recaps.get(&host).cloned();
                    let error = match &recap {
                        None => Some("the play did not reach it".into()),
                        // A failure the counts do not show (and no rescue
                        // explains) still fails the host.
                        Some(r)
                            if r.failed > 0
                                || r.unreachable > 0
                                || (r.rescued == 0 && failures.contains_key(&host)) =>
                        {
                            Some(failures.get(&host).cloned().unwrap_or_else(|| {
                                format!(
                                    "{} task(s) failed, unreachable {}",
                                    r.failed, r.unreachable
                                )
                            }))
                        }
                        Some(_) => None,
                    };
                    HostOutcome {
                        recap,
                        log: log.clone(),
                        error,
                    }
                }
            };
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        }
    }
}

/// Each host's recap and the first failure of each host that failed, or
/// why there is none.
type Recaps = Result<(BTreeMap<String, HostRecap>, BTreeMap<String, String>), String>;

/// How often the events file is read while the playbook runs.
const POLL: Duration = Duration::from_millis(150);

/// Run the playbook over `hosts` (with each one's nesting context),
/// reporting each task result to `progress` as it happens; the log file
/// (the whole output) and each host's counts.
fn run_playbook(
    s: &Setup,
    hosts: &BTreeMap<String, BTreeMap<String, String>>,
    n: u64,
    progress: Option<&(dyn Fn(&TaskEvent) + Send + Sync)>,
) -> Result<(PathBuf, Recaps), String> {
    let at = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(&s.logs).map_err(|e| at(&s.logs, e))?;
    let stem = format!("{}-{n}", crate::journal::timestamp());
    let log = s.logs.join(format!("{stem}.log"));
    let events = s.logs.join(format!("{stem}-events.jsonl"));
    // Each host's nesting context, as the host variable anklume_context, in
    // a second inventory kept beside the log (JSON is YAML: Ansible's yaml
    // inventory plugin reads it).
    let context = s.logs.join(format!("{stem}-context.yml"));
    let inventory = serde_json::json!({
        "all": {
            "hosts": hosts
                .iter()
                .map(|(h, c)| (h.clone(), serde_json::json!({"anklume_context": c})))
                .collect::<serde_json::Map<String, serde_json::Value>>()
        }
    });
    std::fs::write(&context, inventory.to_string()).map_err(|e| at(&context, e))?;
    std::fs::write(&events, b"").map_err(|e| at(&events, e))?;
    // stdout and stderr both go to the log, in the order they are written.
    let out = std::fs::File::create(&log).map_err(|e| at(&log, e))?;
    let err = out.try_clone().map_err(|e| at(&log, e))?;
    let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
    let mut child = std::process::Command::new(&s.ansible_playbook)
        .arg(s.content.join("site.yml"))
        .arg("-i")
        .arg(s.tree.join("inventory"))
        .arg("-i")
        .arg(&context)
        .arg("--limit")
        .arg(names.join(","))
        .arg("-f")
        .arg(s.forks.max(1).to_string())
        .env("ANSIBLE_CONFIG", s.content.join("ansible.cfg"))
        .env("ANKLUME_TREE", &s.tree)
        .env("ANKLUME_EVENTS_FILE", &events)
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", s.ansible_playbook.display()))?;
    let mut reader = events::Reader::default();
    let mut failures = BTreeMap::new();
    let mut report = |reader: &mut events::Reader| {
        for e in reader.poll(&events) {
            if matches!(e.status, TaskStatus::Failed | TaskStatus::Unreachable) && !e.ignored {
                failures.entry(e.host.clone()).or_insert_with(|| {
                    let what = if e.status == TaskStatus::Unreachable {
                        "could not reach it"
                    } else {
                        "failed"
                    };
                    match &e.msg {
                        Some(m) => format!(
                            "task '{}' {what}: {}",
                            e.task,
                            m.lines().next().unwrap_or("")
                        ),
                        None => format!("task '{}' {what}", e.task),
                    }
                });
            }
            if let Some(p) = progress {
                p(&e);
            }
        }
    };
    let status = loop {
        report(&mut reader);
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(format!("waiting for ansible-playbook: {e}")),
        }
    };
    report(&mut reader);
    // The plugin's final counts; else the recap of the text output (the
    // plugin did not load, e.g. a changed ansible.cfg).
    let recaps = match reader.stats.take() {
        Some(stats) if !stats.is_empty() => stats,
        _ => recap::parse(&String::from_utf8_lossy(
            &std::fs::read(&log).map_err(|e| at(&log, e))?,
        )),
    };
    if recaps.is_empty() {
        return Ok((
            log.clone(),
            Err(format!(
                "ansible-playbook ended with {status} and no recap (see {})",
                log.display()
            )),
        ));
    }
    Ok((log, Ok((recaps, failures))))
}

/// The default places: the venv of `scripts/ansible-setup.sh`
/// (`ANKLUME_ANSIBLE_VENV`), anklume's `ansible/` (`ANKLUME_ANSIBLE_DIR`).
pub fn default_playbook() -> PathBuf {
    default_venv().join("bin/ansible-playbook")
}

/// The venv of `scripts/ansible-setup.sh`: `ANKLUME_ANSIBLE_VENV`, else
/// `~/.cache/anklume/ansible-venv`.
pub fn default_venv() -> PathBuf {
    std::env::var_os("ANKLUME_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/anklume/ansible-venv")
        })
}
