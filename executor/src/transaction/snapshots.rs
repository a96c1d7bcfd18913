//! Snapshots at scale (`anklume snapshot create|restore|delete --domain D |
//! --all`, v1's `snapshot`, `restore-domain`, `snapshot-delete` targets):
//! [`prepare`] finds the instances (anklume-managed ones by their
//! `user.anklume.domain`, or one named instance), reads their snapshots and
//! says what will happen to each (nothing changes; the apply lock is held
//! from here for restore and delete); [`Prepared::run`] does it, a few
//! instances at a time, reporting [`SnapEvent`]s.
//!
//! A restore is a journaled transaction in the apply journal's format, so
//! that `anklume rollback` undoes it: a `begin` record, then per instance a
//! safety snapshot (`pre-apply-<journal ts>`, its `snapshot` record), an
//! `intent` (an instance update whose `prior` is the instance's
//! configuration and run state just before), the restore, the prior
//! configuration put back (Incus's restore brings back the snapshot's
//! configuration, protection and limits included; anklume's settings must
//! survive it), and a `done` record; an `end` record last.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::incus::{Api, IncusError};
use crate::journal::{Journal, Record, Verb};
use crate::kind::{self, Target, Undo};
use crate::schedule::Interrupt;
use crate::snapshot::{self, InstanceRef};
use crate::state::{self, ApplyLock};
use crate::Error;

/// What to do with the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Take it.
    Create,
    /// Restore it (journaled; `anklume rollback` undoes it).
    Restore,
    /// Delete it (cannot be undone).
    Delete,
}

impl Op {
    /// `create`, `restore`, `delete`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Restore => "restore",
            Op::Delete => "delete",
        }
    }
}

/// Which instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// One instance by name (or `self`), managed or not: v1's `snap.sh`.
    /// Stricter than the bulk forms: creating a name it already has, or
    /// deleting one it lacks, fails.
    One(String),
    /// The anklume-managed instances of these domains.
    Domains(Vec<String>),
    /// Every anklume-managed instance.
    All,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// What to do.
    pub op: Op,
    /// The snapshot name, the same for the whole run.
    pub name: String,
    /// Which instances.
    pub selection: Selection,
    /// Instances worked on at once.
    pub parallelism: usize,
    /// The state directory (lock, journal).
    pub state_dir: PathBuf,
    /// anklume's version, for the journal.
    pub anklume_version: String,
    /// Stop starting new instances on Ctrl-C (the CLI).
    pub ctrl_c: bool,
}

/// One instance the run concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its project.
    pub project: String,
    /// Its name.
    pub instance: String,
    /// Its `user.anklume.domain`, if any.
    pub domain: Option<String>,
}

impl Member {
    /// Its address.
    pub fn address(&self) -> InstanceRef {
        InstanceRef {
            project: self.project.clone(),
            name: self.instance.clone(),
        }
    }
}

/// What will happen to one instance, decided before anything changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// The snapshot will be taken.
    Create,
    /// It has the name already: left alone (bulk create).
    Exists,
    /// The snapshot will be restored.
    Restore,
    /// The snapshot will be deleted.
    Delete,
    /// It has no snapshot of that name: nothing to delete (bulk delete).
    Absent,
    /// It cannot be done (a restore or a single-instance delete of a name
    /// it lacks, a single-instance create of a name it has).
    Fail {
        /// Why, with the snapshots it has.
        reason: String,
    },
}

impl Plan {
    /// Whether it changes something.
    pub fn acts(&self) -> bool {
        matches!(self, Plan::Create | Plan::Restore | Plan::Delete)
    }
}

/// One instance and what will happen to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The instance.
    #[serde(flatten)]
    pub member: Member,
    /// What will happen.
    pub plan: Plan,
}

/// How one instance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Snapshot taken.
    Created,
    /// It had the name already; left alone.
    Skipped,
    /// Restored, its configuration as before the restore.
    Restored,
    /// Snapshot deleted.
    Deleted,
    /// It had no such snapshot: nothing to delete.
    Absent,
    /// Failed (see the detail).
    Failed,
    /// Not started: Ctrl-C.
    Interrupted,
}

impl Outcome {
    /// Every outcome, in summary order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Skipped,
        Outcome::Restored,
        Outcome::Deleted,
        Outcome::Absent,
        Outcome::Failed,
        Outcome::Interrupted,
    ];

    /// Its name in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Skipped => "skipped",
            Outcome::Restored => "restored",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Something that happened during a run, as it happens.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SnapEvent {
    /// A restore's journal was started; each instance gets a safety
    /// snapshot before it is restored.
    Journal {
        /// Its timestamp (`anklume rollback TS`).
        ts: String,
        /// The file.
        path: PathBuf,
        /// The safety snapshot's name.
        safety: String,
    },
    /// One instance ended.
    Result {
        /// The instance.
        #[serde(flatten)]
        member: Member,
        /// The snapshot name.
        snapshot: String,
        /// How.
        result: Outcome,
        /// What was done, or why it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Milliseconds it took.
        ms: u64,
        /// Instances ended so far.
        done: usize,
        /// Instances in the run.
        total: usize,
    },
    /// Ctrl-C: no new instance is started (`again`: the second one).
    Interrupted {
        /// Whether it is the second.
        again: bool,
    },
    /// Something went wrong that does not stop the run.
    Warning {
        /// What.
        message: String,
    },
}

/// Where runs report events.
pub type SnapSink = Arc<dyn Fn(&SnapEvent) + Send + Sync>;

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    /// The lock, or an instance named that is not there.
    #[error(transparent)]
    Executor(#[from] Error),
    /// Incus could not be read.
    #[error("reading Incus: {0}")]
    Incus(#[from] IncusError),
    /// `--domain` names a domain without any anklume-managed instance.
    #[error("{}", unknown_domains(names, known))]
    UnknownDomains {
        /// The names.
        names: Vec<String>,
        /// Domains that have managed instances.
        known: Vec<String>,
    },
    /// `--all` and there is no anklume-managed instance at all.
    #[error(
        "no anklume-managed instance on this Incus (user.anklume.managed=true): nothing to do"
    )]
    NoneManaged,
    /// The restore journal could not be started: nothing changed.
    #[error("cannot start the journal: {0}")]
    JournalStart(Error),
}

fn unknown_domains(names: &[String], known: &[String]) -> String {
    let mut s = format!(
        "no anklume-managed instance in domain {}",
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if known.is_empty() {
        s.push_str(" (this Incus has no anklume-managed instance)");
    } else {
        const SHOWN: usize = 10;
        let mut shown = known
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if known.len() > SHOWN {
            shown.push_str(&format!(", … ({} in all)", known.len()));
        }
        s.push_str(&format!(" (domains with instances: {shown})"));
        if let [one] = names {
            if let Some(c) = closest(one, known) {
                s.push_str(&format!("; did you mean '{c}'?"));
            }
        }
    }
    s
}

fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), c.as_str()))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The instances a selection names, sorted by domain, project and name.
/// Domains are matched on the instances' `user.anklume.domain`, among
/// anklume-managed instances only (`user.anklume.managed=true`): one
/// request for all projects.
pub async fn members<A: Api>(api: &A, selection: &Selection) -> Result<Vec<Member>, SnapError> {
    if let Selection::One(name) = selection {
        let a = snapshot::resolve_target(api, name).await?;
        let cur = api.get(&a.path()).await?;
        return Ok(vec![Member {
            domain: kind::common::domain_of(&cur.metadata),
            project: a.project,
            instance: a.name,
        }]);
    }
    let all = api
        .get("/1.0/instances?all-projects=true&recursion=1")
        .await?;
    let managed: Vec<Member> = all
        .metadata
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| kind::common::is_managed(i))
        .map(|i| Member {
            project: str_at(i, "project").unwrap_or("default").to_string(),
            instance: str_at(i, "name").unwrap_or("").to_string(),
            domain: kind::common::domain_of(i),
        })
        .collect();
    let mut out: Vec<Member> = match selection {
        Selection::All => {
            if managed.is_empty() {
                return Err(SnapError::NoneManaged);
            }
            managed
        }
        Selection::Domains(names) => {
            let known: BTreeSet<&str> =
                managed.iter().filter_map(|m| m.domain.as_deref()).collect();
            let mut unknown: Vec<String> = names
                .iter()
                .filter(|n| !known.contains(n.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                unknown.dedup();
                return Err(SnapError::UnknownDomains {
                    names: unknown,
                    known: known.into_iter().map(str::to_string).collect(),
                });
            }
            managed
                .into_iter()
                .filter(|m| m.domain.as_ref().is_some_and(|d| names.contains(d)))
                .collect()
        }
        Selection::One(_) => unreachable!("handled above"),
    };
    out.sort_by(|a, b| {
        (&a.domain, &a.project, &a.instance).cmp(&(&b.domain, &b.project, &b.instance))
    });
    Ok(out)
}

/// Run `f` over `items`, at most `n` at a time, calling `done` as each
/// ends; once `interrupt` is raised nothing new starts. Returns the items
/// not started.
async fn bounded<T, R, F, Fut>(
    items: Vec<T>,
    n: usize,
    interrupt: &Interrupt,
    f: F,
    mut done: impl FnMut(R),
) -> Vec<T>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut rest = items.into_iter();
    loop {
        while set.len() < n.max(1) && !interrupt.raised() {
            match rest.next() {
                Some(t) => {
                    set.spawn(f(t));
                }
                None => break,
            }
        }
        match set.join_next().await {
            Some(Ok(r)) => done(r),
            // A task that panicked: its instance is reported by the caller
            // as never ended.
            Some(Err(_)) => {}
            None => break,
        }
    }
    rest.collect()
}

/// A run read and decided, about to run.
pub struct Prepared<A: Api> {
    api: A,
    opts: Options,
    _lock: Option<ApplyLock>,
    /// One item per instance, in order.
    pub items: Vec<Item>,
    interrupt: Arc<Interrupt>,
}

/// Take the lock (restore, delete), find the instances, read their
/// snapshots, and decide what happens to each. Nothing changes.
pub async fn prepare<A: Api>(api: A, opts: Options) -> Result<Prepared<A>, SnapError> {
    let lock = match opts.op {
        Op::Create => None,
        Op::Restore | Op::Delete => Some(state::lock(&opts.state_dir)?),
    };
    let members = members(&api, &opts.selection).await?;
    let one = matches!(opts.selection, Selection::One(_));
    // Each instance's snapshot names, a few at a time.
    let mut names: BTreeMap<usize, Result<Vec<String>, IncusError>> = BTreeMap::new();
    let never = Interrupt::default();
    bounded(
        members.iter().cloned().enumerate().collect(),
        opts.parallelism,
        &never,
        |(k, m): (usize, Member)| {
            let api = api.clone();
            async move {
                let r = snapshot::list_one(&api, &m.address())
                    .await
                    .map(|v| v.into_iter().map(|s| s.name).collect::<Vec<_>>());
                (k, r)
            }
        },
        |(k, r)| {
            names.insert(k, r);
        },
    )
    .await;
    let mut items = Vec::new();
    for (k, member) in members.into_iter().enumerate() {
        let has = match names.remove(&k) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                items.push(Item {
                    member,
                    plan: Plan::Fail {
                        reason: format!("cannot list its snapshots: {e}"),
                    },
                });
                continue;
            }
            None => {
                items.push(Item {
                    member,
                    plan: Plan::Fail {
                        reason: "internal error: its snapshots were not listed".into(),
                    },
                });
                continue;
            }
        };
        let present = has.contains(&opts.name);
        let plan = match (opts.op, present, one) {
            (Op::Create, false, _) => Plan::Create,
            (Op::Create, true, false) => Plan::Exists,
            (Op::Create, true, true) => Plan::Fail {
                reason: format!("already has a snapshot '{}'", opts.name),
            },
            (Op::Restore, true, _) => Plan::Restore,
            (Op::Delete, true, _) => Plan::Delete,
            (Op::Delete, false, false) => Plan::Absent,
            (Op::Restore | Op::Delete, false, _) => Plan::Fail {
                reason: missing(&api, &member, &opts.name, &has).await,
            },
        };
        items.push(Item { member, plan });
    }
    Ok(Prepared {
        api,
        opts,
        _lock: lock,
        items,
        interrupt: Arc::new(Interrupt::default()),
    })
}

/// Why an instance cannot restore (or delete) `name`: the snapshots it has,
/// and a did-you-mean.
async fn missing<A: Api>(api: &A, m: &Member, name: &str, has: &[String]) -> String {
    let list = if has.is_empty() {
        "it has no snapshots".to_string()
    } else {
        const SHOWN: usize = 10;
        let mut s = format!(
            "it has: {}",
            has.iter()
                .rev()
                .take(SHOWN)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        if has.len() > SHOWN {
            s.push_str(&format!(" (the newest {SHOWN} of {})", has.len()));
        }
        s
    };
    let hint = if has.is_empty() {
        String::new()
    } else {
        format!(
            "; {}",
            snapshot::missing_hint(api, &m.address(), name).await
        )
    };
    format!("has no snapshot '{name}' ({list}){hint}")
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Instances per outcome.
    pub counts: BTreeMap<Outcome, usize>,
    /// The restore's journal: timestamp and file.
    pub journal: Option<(String, PathBuf)>,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
}

impl Summary {
    /// Instances that ended so.
    pub fn count(&self, o: Outcome) -> usize {
        self.counts.get(&o).copied().unwrap_or(0)
    }
}

/// One instance's run result.
type Ended = (usize, Outcome, Option<String>, u64);

impl<A: Api> Prepared<A> {
    /// Raise it to stop the run: nothing new starts.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// The Incus client (its request counters).
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Do it: report the instances that have nothing to do or cannot be
    /// done, then work on the others, `parallelism` at a time.
    pub async fn run(self, sink: &SnapSink) -> Result<Summary, SnapError> {
        let total = self.items.len();
        let name = self.opts.name.clone();
        let mut summary = Summary::default();
        let mut done = 0usize;
        let mut report = |item: &Item, outcome: Outcome, detail: Option<String>, ms: u64| {
            done += 1;
            *summary.counts.entry(outcome).or_default() += 1;
            sink(&SnapEvent::Result {
                member: item.member.clone(),
                snapshot: name.clone(),
                result: outcome,
                detail,
                ms,
                done,
                total,
            });
        };
        for item in &self.items {
            match &item.plan {
                Plan::Exists => report(
                    item,
                    Outcome::Skipped,
                    Some(format!("already has a snapshot '{name}'")),
                    0,
                ),
                Plan::Absent => report(
                    item,
                    Outcome::Absent,
                    Some(format!("has no snapshot '{name}': nothing to delete")),
                    0,
                ),
                Plan::Fail { reason } => report(item, Outcome::Failed, Some(reason.clone()), 0),
                _ => {}
            }
        }
        let work: Vec<usize> = (0..total).filter(|&k| self.items[k].plan.acts()).collect();
        if work.is_empty() {
            return Ok(summary);
        }
        let journal = match self.opts.op {
            Op::Restore => {
                let j = Journal::create(&self.opts.state_dir).map_err(SnapError::JournalStart)?;
                let safety = format!("{}{}", snapshot::PRE_APPLY, j.ts);
                j.append(&Record::Begin {
                    ts: j.ts.clone(),
                    anklume: self.opts.anklume_version.clone(),
                    changes: work.len(),
                    snapshot: Some(safety.clone()),
                })
                .map_err(SnapError::JournalStart)?;
                sink(&SnapEvent::Journal {
                    ts: j.ts.clone(),
                    path: j.path.clone(),
                    safety,
                });
                summary.journal = Some((j.ts.clone(), j.path.clone()));
                Some(Arc::new(j))
            }
            _ => None,
        };
        let watcher = self
            .opts
            .ctrl_c
            .then(|| watch_ctrl_c(self.interrupt.clone(), sink.clone()));
        let op = self.opts.op;
        let mut ended: BTreeSet<usize> = BTreeSet::new();
        // The journal's end says how its changes went; instances that
        // failed before (a missing snapshot) are not among them.
        let mut work_failed = false;
        let items = &self.items;
        let not_started = bounded(
            work,
            self.opts.parallelism,
            &self.interrupt,
            |k: usize| {
                let api = self.api.clone();
                let a = items[k].member.address();
                let name = name.clone();
                let journal = journal.clone();
                async move {
                    let t = Instant::now();
                    let (outcome, detail) = match (op, &journal) {
                        (Op::Create, _) => match snapshot::create(&api, &a, &name).await {
                            Ok(()) => (Outcome::Created, None),
                            Err(e) => (Outcome::Failed, Some(e.to_string())),
                        },
                        (Op::Delete, _) => match snapshot::delete(&api, &a, &name).await {
                            Ok(()) => (Outcome::Deleted, None),
                            // Deleted meanwhile: what was asked holds.
                            Err(e) if e.is_not_found() => (
                                Outcome::Absent,
                                Some(format!("has no snapshot '{name}': nothing to delete")),
                            ),
                            Err(e) => (Outcome::Failed, Some(e.to_string())),
                        },
                        (Op::Restore, Some(j)) => restore_one(&api, &a, &name, j).await,
                        (Op::Restore, None) => {
                            (Outcome::Failed, Some("internal error: no journal".into()))
                        }
                    };
                    (k, outcome, detail, t.elapsed().as_millis() as u64)
                }
            },
            |(k, outcome, detail, ms): Ended| {
                ended.insert(k);
                work_failed |= outcome == Outcome::Failed;
                report(&items[k], outcome, detail, ms);
            },
        )
        .await;
        for k in not_started {
            ended.insert(k);
            report(&items[k], Outcome::Interrupted, None, 0);
        }
        for (k, item) in items.iter().enumerate() {
            if item.plan.acts() && !ended.contains(&k) {
                work_failed = true;
                report(
                    item,
                    Outcome::Failed,
                    Some("internal error: its task panicked".into()),
                    0,
                );
            }
        }
        summary.interrupted = self.interrupt.raised();
        if let Some(j) = &journal {
            let outcome = if summary.interrupted {
                "interrupted"
            } else if work_failed {
                "failed"
            } else {
                "ok"
            };
            if let Err(e) = j.append(&Record::End {
                outcome: outcome.into(),
            }) {
                sink(&SnapEvent::Warning {
                    message: e.to_string(),
                });
            }
        }
        if let Some(w) = watcher {
            w.abort();
        }
        Ok(summary)
    }
}

/// Restore one instance, journaled: safety snapshot, intent with the
/// prior state, restore, prior configuration put back, done.
async fn restore_one<A: Api>(
    api: &A,
    a: &InstanceRef,
    name: &str,
    j: &Journal,
) -> (Outcome, Option<String>) {
    let fail = |s: String| (Outcome::Failed, Some(s));
    let safety = format!("{}{}", snapshot::PRE_APPLY, j.ts);
    let taken = snapshot::create(api, a, &safety).await;
    let rec = Record::Snapshot {
        project: a.project.clone(),
        instance: a.name.clone(),
        name: safety.clone(),
        ok: taken.is_ok(),
        error: taken.as_ref().err().map(ToString::to_string),
    };
    if let Err(e) = j.append(&rec) {
        return fail(format!("cannot write the journal: {e}; not restored"));
    }
    if let Err(e) = taken {
        return fail(format!(
            "safety snapshot {safety} failed: {e}; not restored (it could not be undone)"
        ));
    }
    let prior = match kind::instance::prior(api, a).await {
        Ok(Some(p)) => p,
        Ok(None) => return fail("the instance no longer exists".into()),
        Err(e) => return fail(format!("reading it: {e}; not restored")),
    };
    let seq = j.next_seq();
    let intent = Record::Intent {
        seq,
        node: format!("instance/{}/{}", a.project, a.name),
        target: Target::Instance(a.clone()),
        change: Verb::Update,
        deps: Vec::new(),
        prior: Some(prior.clone()),
    };
    if let Err(e) = j.append(&intent) {
        return fail(format!("cannot write the journal: {e}; not restored"));
    }
    let result: Result<String, String> = match snapshot::restore(api, a, name).await {
        Err(e) => Err(format!("restoring: {e}")),
        // Incus brought the snapshot's configuration back with its data:
        // put back what the instance had just before (protection, limits,
        // anklume's keys), and its run state.
        Ok(()) => match kind::instance::undo(
            api,
            a,
            &Undo::Restore {
                prior: Some(prior),
                snapshot: None,
            },
            false,
        )
        .await
        {
            Ok(kind::StepResult::Failed { error }) | Ok(kind::StepResult::Skipped { why: error }) => {
                Err(format!(
                    "restored, but its configuration could not be put back: {error} (`anklume rollback {}` undoes the restore)",
                    j.ts
                ))
            }
            Ok(_) => Ok(format!(
                "safety snapshot {safety}; configuration as before the restore"
            )),
            Err(e) => Err(format!(
                "restored, but its configuration could not be put back: {e} (`anklume rollback {}` undoes the restore)",
                j.ts
            )),
        },
    };
    if let Err(e) = j.append(&Record::Done {
        seq,
        ok: result.is_ok(),
        error: result.as_ref().err().cloned(),
    }) {
        let base = match &result {
            Ok(d) => d.clone(),
            Err(d) => d.clone(),
        };
        return fail(format!("{base}; and the journal could not record it: {e}"));
    }
    match result {
        Ok(d) => (Outcome::Restored, Some(d)),
        Err(e) => fail(e),
    }
}

/// Raise `interrupt` on Ctrl-C and report it; a second one too (the CLI
/// quits on it).
fn watch_ctrl_c(interrupt: Arc<Interrupt>, sink: SnapSink) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.raise();
            sink(&SnapEvent::Interrupted { again: false });
            if tokio::signal::ctrl_c().await.is_ok() {
                sink(&SnapEvent::Interrupted { again: true });
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incus::fake::Fake;
    use crate::journal;
    use crate::kind::tests::{chain, instance, network, project, IMAGE};
    use crate::transaction::{apply, Event, Sink};
    use anklume_plan::Resource;
    use serde_json::json;
    use std::sync::Mutex;

    /// An instance of domain `domain` in project `project`.
    fn member(project: &str, name: &str, domain: &str) -> Resource {
        let mut r = instance(project, name, "");
        if let Resource::Instance(i) = &mut r {
            i.config.insert("user.anklume.domain".into(), domain.into());
        }
        r
    }

    /// Two domains (`da` in project `pa`, `db` in `pb`) applied on a fake.
    async fn two_domains(dir: &std::path::Path) -> Fake {
        let fake = Fake::new().with_image(IMAGE);
        let plan = chain(vec![
            network("net-pa", ""),
            project("pa", ""),
            project("pb", ""),
            member("pa", "a1", "da"),
            member("pa", "a2", "da"),
            member("pb", "b1", "db"),
        ]);
        let sink: Sink = Arc::new(|_: &Event| {});
        let opts = apply::Options {
            state_dir: dir.to_path_buf(),
            nftables: false,
            sources_dir: dir.to_path_buf(),
            ..apply::Options::default()
        };
        let p = apply::prepare(fake.clone(), plan, &Default::default(), opts, &sink)
            .await
            .unwrap();
        assert!(p.run(&sink).await.unwrap().ok());
        fake
    }

    fn opts(dir: &std::path::Path, op: Op, name: &str, selection: Selection) -> Options {
        Options {
            op,
            name: name.into(),
            selection,
            parallelism: 2,
            state_dir: dir.to_path_buf(),
            anklume_version: "test".into(),
            ctrl_c: false,
        }
    }

    async fn run(fake: &Fake, o: Options) -> (Vec<Item>, Summary, Vec<SnapEvent>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink: SnapSink = Arc::new(move |e: &SnapEvent| s.lock().unwrap().push(e.clone()));
        let p = prepare(fake.clone(), o).await.unwrap();
        let items = p.items.clone();
        let summary = p.run(&sink).await.unwrap();
        let events = seen.lock().unwrap().clone();
        (items, summary, events)
    }

    fn domains(d: &[&str]) -> Selection {
        Selection::Domains(d.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn members_are_the_managed_instances_of_the_domains() {
        let dir = tempfile::tempdir().unwrap();
        let fake = two_domains(dir.path()).await;
        let names = |v: Vec<Member>| -> Vec<String> { v.into_iter().map(|m| m.instance).collect() };
        assert_eq!(
            names(members(&fake, &domains(&["da"])).await.unwrap()),
            ["a1", "a2"]
        );
        assert_eq!(
            names(members(&fake, &Selection::All).await.unwrap()),
            ["a1", "a2", "b1"]
        );
        let e = members(&fake, &domains(&["da", "dx"])).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "no anklume-managed instance in domain 'dx' (domains with instances: da, db)"
        );
        let e = members(&fake, &domains(&["dbb"])).await.unwrap_err();
        assert!(e.to_string().ends_with("did you mean 'db'?"), "{e}");
    }

    /// A restore is journaled as an apply is, puts the configuration the
    /// instance had just before back, and `undo::steps` of its journal
    /// restores the safety snapshot then that configuration.
    #[tokio::test]
    async fn restore_is_journaled_and_keeps_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let fake = two_domains(dir.path()).await;
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Create, "s1", domains(&["da"]))).await;
        assert_eq!(s.count(Outcome::Created), 2);
        // Protected after the snapshot.
        let a1 = InstanceRef {
            project: "pa".into(),
            name: "a1".into(),
        };
        let cur = fake.get(&a1.path()).await.unwrap();
        fake.patch(
            &a1.path(),
            &json!({"config": {"security.protection.delete": "true"}}),
            cur.etag.as_deref(),
        )
        .await
        .unwrap();
        let (items, s, events) =
            run(&fake, opts(dir.path(), Op::Restore, "s1", domains(&["da"]))).await;
        assert!(items.iter().all(|i| i.plan == Plan::Restore));
        assert_eq!(s.count(Outcome::Restored), 2, "{events:?}");
        let cfg = fake.get(&a1.path()).await.unwrap().metadata["config"].clone();
        assert_eq!(cfg["security.protection.delete"], "true", "{cfg}");
        let (ts, path) = s.journal.clone().unwrap();
        let read = journal::read(&path).unwrap();
        let steps = crate::undo::steps(&read);
        assert_eq!(steps.len(), 2);
        let safety = format!("pre-apply-{ts}");
        assert!(steps.iter().all(|st| matches!(
            &st.undo,
            Undo::Restore { prior: Some(p), snapshot: Some(n) }
                if *n == safety && p["config"]["user.anklume.domain"] == "da"
        )));
        assert!(matches!(read.records.last(), Some(Record::End { outcome }) if outcome == "ok"));
        // A second restore is another journal.
        let (_, s2, _) = run(&fake, opts(dir.path(), Op::Restore, "s1", domains(&["da"]))).await;
        assert_ne!(s2.journal.unwrap().0, ts);
    }

    /// Bulk: create skips an existing name, restore fails only the
    /// instance that lacks it, delete reports a missing one. One instance
    /// (snap.sh): create of an existing name and delete of a missing one
    /// fail.
    #[tokio::test]
    async fn missing_and_existing_names() {
        let dir = tempfile::tempdir().unwrap();
        let fake = two_domains(dir.path()).await;
        let one = |n: &str| Selection::One(n.into());
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Create, "s", one("a1"))).await;
        assert_eq!(s.count(Outcome::Created), 1);
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Create, "s", one("a1"))).await;
        assert_eq!(s.count(Outcome::Failed), 1);
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Create, "s", Selection::All)).await;
        assert_eq!(
            (s.count(Outcome::Skipped), s.count(Outcome::Created)),
            (1, 2)
        );
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Create, "t", one("a1"))).await;
        assert_eq!(s.count(Outcome::Created), 1);
        let (items, s, _) = run(&fake, opts(dir.path(), Op::Restore, "t", domains(&["da"]))).await;
        assert_eq!(
            (s.count(Outcome::Restored), s.count(Outcome::Failed)),
            (1, 1)
        );
        let Plan::Fail { reason } = &items[1].plan else {
            panic!("{items:?}")
        };
        assert!(
            reason.starts_with("has no snapshot 't' (it has: s)"),
            "{reason}"
        );
        // The journal's end concerns its changes: the one restored.
        let read = journal::read(&s.journal.clone().unwrap().1).unwrap();
        assert!(matches!(read.records.last(), Some(Record::End { outcome }) if outcome == "ok"));
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Delete, "t", Selection::All)).await;
        assert_eq!(
            (s.count(Outcome::Deleted), s.count(Outcome::Absent)),
            (1, 2)
        );
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Delete, "t", Selection::All)).await;
        assert_eq!(s.count(Outcome::Absent), 3);
        assert_eq!(s.journal, None);
        let (_, s, _) = run(&fake, opts(dir.path(), Op::Delete, "t", one("a1"))).await;
        assert_eq!(s.count(Outcome::Failed), 1);
    }

    #[tokio::test]
    async fn restore_and_delete_take_the_apply_lock() {
        let dir = tempfile::tempdir().unwrap();
        let fake = two_domains(dir.path()).await;
        let _held = state::lock(dir.path()).unwrap();
        for op in [Op::Restore, Op::Delete] {
            let e = prepare(fake.clone(), opts(dir.path(), op, "s", Selection::All))
                .await
                .err()
                .unwrap();
            assert!(
                matches!(e, SnapError::Executor(Error::Locked { .. })),
                "{e}"
            );
        }
        assert!(prepare(
            fake.clone(),
            opts(dir.path(), Op::Create, "s", Selection::All)
        )
        .await
        .is_ok());
    }
}
