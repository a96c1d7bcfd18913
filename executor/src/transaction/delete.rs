//! Deleting what anklume manages: the orphans `apply --prune` removes,
//! everything `flush` removes, the instances `remove` names. Every delete
//! is journaled like an apply's change (an intent with the object's prior
//! state, then its outcome), and an instance is first kept as an Incus
//! backup in the state directory, so that `anklume rollback` brings all of
//! it back: bridges, projects and profiles from their prior state,
//! instances from their kept copy, with their data, configuration,
//! snapshots and address.
//!
//! [`order`] decides what goes and in which order (instances, profiles,
//! projects, bridges: the reverse of creation), sparing what a survivor
//! still uses; [`run_deletions`] carries it out (apply's prune runs it
//! inside its own journal); [`prepare`] and [`Prepared::run`] are the
//! standalone transaction of `flush` and `remove`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{Event, Sink, TxError};
use crate::incus::{dec, Api};
use crate::journal::{self, Journal, Record, Verb};
use crate::kind::{self, instance, Kept, Orphan, RunContext, StepResult, Target};
use crate::live::{self, Live};
use crate::schedule::Interrupt;
use crate::state::{self, ApplyLock};

/// One object to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deletion {
    /// Its id, as a plan names it (`instance/<project>/<name>`,
    /// `profile/<project>/<name>`, `project/<name>`, `network/<name>`).
    pub id: String,
    /// What it is.
    #[serde(skip)]
    pub target: Target,
    /// Kind name (`instance`, `profile`, `project`, `network`).
    pub kind: &'static str,
    /// An instance with `security.protection.delete` (deleted only with
    /// `--force`).
    pub protected: bool,
    /// Its domain (`user.anklume.domain`), when it names one.
    pub domain: Option<String>,
}

/// An object that was to be deleted and is kept, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Spared {
    /// The object.
    #[serde(flatten)]
    pub deletion: Deletion,
    /// Why it stays.
    pub why: String,
}

impl Deletion {
    /// The deletion of an orphan (or of any managed object, for flush).
    pub fn of(o: &Orphan) -> Option<Deletion> {
        let (target, id) = match o.kind {
            "instance" => (
                Target::Instance(instance::Address {
                    project: o.project.clone(),
                    name: o.name.clone(),
                }),
                format!("instance/{}/{}", o.project, o.name),
            ),
            "profile" => (
                Target::Profile(kind::profile::Address {
                    project: o.project.clone(),
                    name: o.name.clone(),
                }),
                format!("profile/{}/{}", o.project, o.name),
            ),
            "project" => (
                Target::Project(kind::project::Address {
                    name: o.name.clone(),
                }),
                format!("project/{}", o.name),
            ),
            "network" => (
                Target::Network(kind::network::Address {
                    name: o.name.clone(),
                }),
                format!("network/{}", o.name),
            ),
            _ => return None,
        };
        Some(Deletion {
            id,
            target,
            kind: o.kind,
            protected: o.protected,
            domain: o.domain.clone(),
        })
    }
}

/// What a `used_by` entry names: (`instances`|`profiles`|…, project,
/// name).
fn used_by_entry(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix("/1.0/")?;
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (collection, name) = base.split_once('/')?;
    let project = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("project="))
        .map_or_else(|| "default".to_string(), dec);
    Some((collection.to_string(), project, dec(name)))
}

fn used_by(v: &Value) -> Vec<(String, String, String)> {
    v.get("used_by")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(used_by_entry)
        .collect()
}

/// Sort `candidates` into what is deleted, in order (instances, then
/// profiles, projects and bridges: each only once nothing that stays uses
/// it), and what is spared, with why: a protected instance without
/// `force`, and anything a survivor still uses. Deterministic.
pub fn order(candidates: &[Orphan], live: &Live, force: bool) -> (Vec<Deletion>, Vec<Spared>) {
    let mut all: Vec<Deletion> = candidates.iter().filter_map(Deletion::of).collect();
    let rank = |k: &str| match k {
        "instance" => 0,
        "profile" => 1,
        "project" => 2,
        _ => 3,
    };
    all.sort_by(|a, b| (rank(a.kind), &a.id).cmp(&(rank(b.kind), &b.id)));
    let mut go = Vec::new();
    let mut spared = Vec::new();
    let mut gone_instances: BTreeSet<(String, String)> = BTreeSet::new();
    let mut gone_profiles: BTreeSet<(String, String)> = BTreeSet::new();
    let mut gone_projects: BTreeSet<String> = BTreeSet::new();
    for d in all {
        let why: Option<String> = match &d.target {
            Target::Instance(a) => {
                if d.protected && !force {
                    Some("protected (security.protection.delete, from `ephemeral: false`); --force deletes it".into())
                } else {
                    gone_instances.insert((a.project.clone(), a.name.clone()));
                    None
                }
            }
            Target::Profile(a) => live
                .profiles
                .get(&(a.project.clone(), a.name.clone()))
                .map(used_by)
                .unwrap_or_default()
                .into_iter()
                .find(|(c, p, n)| {
                    c == "instances" && !gone_instances.contains(&(p.clone(), n.clone()))
                })
                .map(|(_, p, n)| format!("still used by instance/{p}/{n}, which stays")),
            Target::Project(a) => {
                let inst = live
                    .instances
                    .keys()
                    .find(|(p, n)| *p == a.name && !gone_instances.contains(&(p.clone(), n.clone())));
                let prof = live.profiles.keys().find(|(p, n)| {
                    *p == a.name
                        && n != "default"
                        && !gone_profiles.contains(&(p.clone(), n.clone()))
                });
                let vol = live.volumes.keys().find(|(p, _, _)| *p == a.name);
                if let Some((p, n)) = inst {
                    Some(format!("still holds instance/{p}/{n}, which stays"))
                } else if let Some((p, n)) = prof {
                    Some(format!("still holds profile/{p}/{n}, which stays"))
                } else if let Some((p, pool, n)) = vol {
                    Some(format!(
                        "still holds the custom volume {n} (pool {pool}, project {p}): anklume never deletes volumes (their data); delete it by hand to let the project go"
                    ))
                } else {
                    None
                }
            }
            Target::Network(a)
                if !live
                    .networks
                    .get(&a.name)
                    .is_some_and(kind::common::is_managed) =>
            {
                Some("named like an anklume bridge but not marked as anklume's (user.anklume.managed): delete it by hand if it is unused".into())
            }
            Target::Network(a) => live
                .networks
                .get(&a.name)
                .map(used_by)
                .unwrap_or_default()
                .into_iter()
                .find(|(c, p, n)| match c.as_str() {
                    "instances" => !gone_instances.contains(&(p.clone(), n.clone())),
                    "profiles" => {
                        let gone = gone_profiles.contains(&(p.clone(), n.clone()))
                            || (n == "default" && gone_projects.contains(p));
                        !gone
                    }
                    _ => true,
                })
                .map(|(c, p, n)| {
                    format!(
                        "still used by {}/{p}/{n}, which stays",
                        c.trim_end_matches('s')
                    )
                }),
            _ => None,
        };
        match why {
            Some(why) => spared.push(Spared { deletion: d, why }),
            None => {
                match &d.target {
                    Target::Profile(a) => {
                        gone_profiles.insert((a.project.clone(), a.name.clone()));
                    }
                    Target::Project(a) => {
                        gone_projects.insert(a.name.clone());
                    }
                    _ => {}
                }
                go.push(d)
            }
        }
    }
    (go, spared)
}

/// How deletions run.
#[derive(Clone, Debug)]
pub struct DeleteOptions {
    /// The state directory (kept copies go to `kept/<journal>/`).
    pub state_dir: PathBuf,
    /// Keep a copy of each instance first (`--no-keep` turns it off).
    pub keep: bool,
    /// Delete protected instances too.
    pub force: bool,
    /// Instances handled at once.
    pub parallelism: usize,
}

/// Where the kept copies of one journal's deletions go.
pub fn kept_dir(state_dir: &Path, ts: &str) -> PathBuf {
    state_dir.join("kept").join(ts)
}

/// What [`purge_kept`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Journals whose kept copies were removed.
    pub dirs: usize,
    /// Their size.
    pub bytes: u64,
}

/// The kept copies on disk, per journal, oldest first: (journal
/// timestamp, directory, bytes). Emptied directories (rollback took their
/// copies back) are removed on the way.
pub fn kept_copies(state_dir: &Path) -> Result<Vec<(String, PathBuf, u64)>, crate::Error> {
    let root = state_dir.join("kept");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io(&root, e)),
    };
    let mut dirs: Vec<(String, PathBuf, u64)> = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !journal::is_timestamp(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files: Vec<u64> = std::fs::read_dir(e.path())
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() {
            let _ = std::fs::remove_dir(e.path());
            continue;
        }
        dirs.push((name, e.path(), files.iter().sum()));
    }
    dirs.sort();
    Ok(dirs)
}

/// Remove the kept copies of all but the newest `keep` journals that have
/// some (`kept/<journal timestamp>/`; anything else there is left alone).
pub fn purge_kept(state_dir: &Path, keep: usize) -> Result<Purged, crate::Error> {
    let dirs = kept_copies(state_dir)?;
    let old = dirs.len().saturating_sub(keep);
    let mut out = Purged::default();
    for (_, d, bytes) in dirs.into_iter().take(old) {
        std::fs::remove_dir_all(&d).map_err(|e| crate::Error::io(&d, e))?;
        out.dirs += 1;
        out.bytes += bytes;
    }
    Ok(out)
}

/// How one deletion ended: the event [`Event::Deleted`] carries it.
#[derive(Clone, Debug, Serialize)]
pub struct Deleted {
    /// The object.
    #[serde(flatten)]
    pub deletion: Deletion,
    /// How it ended (`restored` means deleted here).
    pub result: StepResult,
    /// The instance's kept copy.
    pub kept: Option<Kept>,
    /// Milliseconds (the copy included).
    pub ms: u64,
}

impl Deleted {
    /// Whether it is gone.
    pub fn ok(&self) -> bool {
        matches!(
            self.result,
            StepResult::Restored { .. } | StepResult::AlreadyDone { .. }
        )
    }
}

/// Delete one object, journaled: its intent (with its prior state), the
/// kept copy of an instance, the delete, its outcome.
async fn delete_one<A: Api>(
    api: &A,
    d: &Deletion,
    journal: &Journal,
    opts: &DeleteOptions,
) -> Deleted {
    let start = Instant::now();
    let end = |result: StepResult, kept: Option<Kept>| Deleted {
        deletion: d.clone(),
        result,
        kept,
        ms: start.elapsed().as_millis() as u64,
    };
    let failed = |error: String| StepResult::Failed { error };
    let prior = match kind::prior(api, &d.target, &RunContext::default()).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return end(
                StepResult::AlreadyDone {
                    detail: "does not exist".into(),
                },
                None,
            )
        }
        Err(e) => return end(failed(e.to_string()), None),
    };
    let seq = journal.next_seq();
    if let Err(e) = journal.append(&Record::Intent {
        seq,
        node: d.id.clone(),
        target: d.target.clone(),
        change: Verb::Delete,
        deps: Vec::new(),
        prior: Some(prior.clone()),
    }) {
        return end(failed(format!("journal: {e}")), None);
    }
    let done =
        |ok: bool, error: Option<String>| journal.append(&Record::Done { seq, ok, error }).err();
    let mut kept = None;
    if let (Target::Instance(a), true) = (&d.target, opts.keep) {
        match instance::keep(api, a, &kept_dir(&opts.state_dir, &journal.ts)).await {
            Ok(k) => {
                if let Err(e) = journal.append(&Record::Kept {
                    seq,
                    kept: k.clone(),
                }) {
                    let _ = std::fs::remove_file(&k.file);
                    let _ = instance::recreate(api, a, Some(&prior), None).await;
                    let msg = format!("journal: {e}");
                    done(false, Some(msg.clone()));
                    return end(failed(msg), None);
                }
                kept = Some(k);
            }
            Err(e) => {
                // Nothing is deleted without its copy; it runs again as
                // it did.
                let _ = instance::recreate(api, a, Some(&prior), None).await;
                let msg = format!(
                    "could not keep a copy for rollback, so it was not deleted: {e} (--no-keep deletes without one)"
                );
                done(false, Some(msg.clone()));
                return end(failed(msg), None);
            }
        }
    }
    let r = match kind::delete(api, &d.target, opts.force).await {
        Ok(r) => r,
        Err(e) => failed(e.to_string()),
    };
    let (ok, error) = match &r {
        StepResult::Restored { .. } | StepResult::AlreadyDone { .. } => (true, None),
        StepResult::Skipped { why } => (false, Some(why.clone())),
        StepResult::Failed { error } => (false, Some(error.clone())),
    };
    if let Some(e) = done(ok, error) {
        return end(failed(format!("deleted, but the journal: {e}")), kept);
    }
    end(
        match r {
            StepResult::Restored { .. } => StepResult::Restored {
                detail: if kept.is_some() {
                    "deleted (a copy is kept for rollback)".into()
                } else {
                    "deleted".into()
                },
            },
            other => other,
        },
        kept,
    )
}

/// Carry `deletions` out in their order, journaled in `journal`: the
/// instances a few at a time, then profiles, projects and bridges one by
/// one. An object whose delete fails does not stop the others; one that
/// depends on it fails in Incus (still in use) and says so. Ctrl-C: no new
/// deletion starts. Reports each as [`Event::Deleted`]; returns them all.
pub async fn run_deletions<A: Api>(
    api: &A,
    deletions: &[Deletion],
    journal: &Journal,
    opts: &DeleteOptions,
    interrupt: &Interrupt,
    sink: &Sink,
) -> Vec<Deleted> {
    let (instances, rest): (Vec<&Deletion>, Vec<&Deletion>) = deletions
        .iter()
        .partition(|d| matches!(d.target, Target::Instance(_)));
    let mut out = Vec::new();
    let interrupted = |d: &Deletion| Deleted {
        deletion: d.clone(),
        result: StepResult::Skipped {
            why: "interrupted (Ctrl-C)".into(),
        },
        kept: None,
        ms: 0,
    };
    for chunk in instances.chunks(opts.parallelism.max(1)) {
        if interrupt.raised() {
            for d in chunk {
                out.push(interrupted(d));
            }
            continue;
        }
        let done =
            futures_util::future::join_all(chunk.iter().map(|d| delete_one(api, d, journal, opts)))
                .await;
        for d in done {
            sink(&Event::Deleted { deleted: d.clone() });
            out.push(d);
        }
    }
    for d in rest {
        let r = if interrupt.raised() {
            interrupted(d)
        } else {
            delete_one(api, d, journal, opts).await
        };
        sink(&Event::Deleted { deleted: r.clone() });
        out.push(r);
    }
    out
}

/// What `flush` and `remove` delete.
#[derive(Clone, Debug)]
pub enum Selection {
    /// Everything anklume manages on this Incus (`flush`).
    All,
    /// These instances (`remove NAME…`; `project/name` when a name is in
    /// more than one project).
    Instances(Vec<String>),
    /// Every instance of these domains (`remove --domain`).
    Domains(Vec<String>),
}

/// How `flush` and `remove` run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Deletion options (state directory, keep, force, parallelism).
    pub delete: DeleteOptions,
    /// Decide only: no lock, no change.
    pub dry_run: bool,
    /// Stop on Ctrl-C (the CLI).
    pub ctrl_c: bool,
    /// anklume's version, for the journal.
    pub anklume_version: String,
}

/// A flush or remove read and decided, about to run.
pub struct Prepared<A: Api> {
    api: A,
    opts: Options,
    _lock: Option<ApplyLock>,
    /// What is deleted, in order.
    pub deletions: Vec<Deletion>,
    /// What stays, with why.
    pub spared: Vec<Spared>,
    interrupt: Arc<Interrupt>,
}

/// Why `remove` cannot start: names that match nothing, or more than one
/// instance.
fn unknown(what: String) -> TxError {
    TxError::Select { message: what }
}

/// The storage pools Incus has (their custom volumes keep projects).
pub async fn pools<A: Api>(api: &A) -> Vec<String> {
    api.get("/1.0/storage-pools")
        .await
        .ok()
        .and_then(|r| r.metadata.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(|p| dec(p.rsplit('/').next().unwrap_or(p)))
        .collect()
}

/// Take the lock (not for a dry run), read Incus, report an unfinished
/// apply, select and order. Nothing changes.
pub async fn prepare<A: Api>(
    api: A,
    selection: &Selection,
    opts: Options,
    sink: &Sink,
) -> Result<Prepared<A>, TxError> {
    let lock = if opts.dry_run {
        None
    } else {
        Some(state::lock(&opts.delete.state_dir)?)
    };
    let live = live::read(&api, &pools(&api).await)
        .await
        .map_err(TxError::ReadLive)?;
    if let Some(j) = journal::unfinished(&opts.delete.state_dir)
        .filter(|_| !(opts.dry_run && state::lock(&opts.delete.state_dir).is_err()))
    {
        let changes = j.changes();
        sink(&Event::UnfinishedApply {
            journal: j.ts.clone(),
            started: changes.len(),
            finished: changes.iter().filter(|c| c.1.is_some()).count(),
        });
    }
    let everything = kind::orphans(&anklume_plan::Plan::default(), &live);
    let candidates: Vec<Orphan> = match selection {
        Selection::All => everything,
        Selection::Instances(names) => {
            let mut out = Vec::new();
            for n in names {
                let (project, name) = match n.split_once('/') {
                    Some((p, n)) => (Some(p), n),
                    None => (None, n.as_str()),
                };
                let found: Vec<&Orphan> = everything
                    .iter()
                    .filter(|o| {
                        o.kind == "instance"
                            && o.name == name
                            && project.is_none_or(|p| o.project == p)
                    })
                    .collect();
                match found.as_slice() {
                    [one] => out.push((*one).clone()),
                    [] => {
                        let unmanaged = live
                            .instances
                            .keys()
                            .any(|(p, i)| i == name && project.is_none_or(|x| p == x));
                        return Err(unknown(if unmanaged {
                            format!("{n}: this instance was not made by anklume (no user.anklume.managed): remove it with `incus delete`")
                        } else {
                            format!("{n}: no instance of that name")
                        }));
                    }
                    many => {
                        return Err(unknown(format!(
                        "{n}: more than one instance has that name ({}): name it as project/name",
                        many.iter()
                            .map(|o| format!("{}/{}", o.project, o.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                    }
                }
            }
            out.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
            out.dedup();
            out
        }
        Selection::Domains(domains) => {
            let unknown_domains: Vec<&String> = domains
                .iter()
                .filter(|d| {
                    !everything
                        .iter()
                        .any(|o| o.domain.as_deref() == Some(d.as_str()))
                })
                .collect();
            if !unknown_domains.is_empty() {
                return Err(unknown(format!(
                    "--domain {}: no instance anklume manages is in that domain",
                    unknown_domains
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            everything
                .into_iter()
                .filter(|o| {
                    o.kind == "instance" && o.domain.as_ref().is_some_and(|d| domains.contains(d))
                })
                .collect()
        }
    };
    let (deletions, spared) = order(&candidates, &live, opts.delete.force);
    Ok(Prepared {
        api,
        opts,
        _lock: lock,
        deletions,
        spared,
        interrupt: Arc::new(Interrupt::default()),
    })
}

/// What a flush or remove did.
#[derive(Debug)]
pub struct Summary {
    /// Each deletion.
    pub deleted: Vec<Deleted>,
    /// The journal's timestamp, when anything was to be deleted.
    pub journal: Option<String>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
}

impl<A: Api> Prepared<A> {
    /// Raise it to stop the run: nothing new starts.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// Journal and delete.
    pub async fn run(self, sink: &Sink) -> Result<Summary, TxError> {
        if self.deletions.is_empty() {
            return Ok(Summary {
                deleted: Vec::new(),
                journal: None,
                interrupted: false,
            });
        }
        let j = Journal::create(&self.opts.delete.state_dir).map_err(TxError::JournalStart)?;
        j.append(&Record::Begin {
            ts: j.ts.clone(),
            anklume: self.opts.anklume_version.clone(),
            changes: self.deletions.len(),
            snapshot: None,
        })
        .map_err(TxError::JournalWrite)?;
        let watcher = self
            .opts
            .ctrl_c
            .then(|| super::apply::watch_ctrl_c(self.interrupt.clone(), sink.clone()));
        let deleted = run_deletions(
            &self.api,
            &self.deletions,
            &j,
            &self.opts.delete,
            &self.interrupt,
            sink,
        )
        .await;
        let interrupted = self.interrupt.raised();
        let outcome = if interrupted {
            "interrupted"
        } else if deleted.iter().all(Deleted::ok) {
            "ok"
        } else {
            "failed"
        };
        if let Err(e) = j.append(&Record::End {
            outcome: outcome.into(),
        }) {
            sink(&Event::Warning {
                message: e.to_string(),
            });
        }
        if let Some(w) = watcher {
            w.abort();
        }
        Ok(Summary {
            deleted,
            journal: Some(j.ts.clone()),
            interrupted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_by_entries_name_their_project() {
        assert_eq!(
            used_by_entry("/1.0/instances/web?project=work"),
            Some(("instances".into(), "work".into(), "web".into()))
        );
        assert_eq!(
            used_by_entry("/1.0/profiles/default"),
            Some(("profiles".into(), "default".into(), "default".into()))
        );
        assert_eq!(used_by_entry("nonsense"), None);
    }
}
