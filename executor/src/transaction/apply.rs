//! The apply transaction: [`prepare`] reads Incus and decides (nothing
//! changes; the lock is held from here unless it is a dry run), then
//! [`Prepared::run`] journals, snapshots, carries the decisions out, ends
//! the journal and prunes old pre-apply snapshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anklume_plan::codec::Header;
use anklume_plan::{Plan, Resource};

use super::delete::{self as del, Deleted, Deletion, Spared};
use super::{Event, Sink, TxError};
use crate::decide::{self, Action, Decisions, Preflight};
use crate::incus::Api;
use crate::journal::{self, Journal, Record};
use crate::kind::RunContext;
use crate::nft::Nft;
use crate::schedule::{self, Interrupt, NodeResult, Report};
use crate::state::{self, ApplyLock};
use crate::{live, nft, snapshot};

/// How to apply.
#[derive(Clone, Debug)]
pub struct Options {
    /// The state directory (lock, journals, rulesets, snapshot records).
    pub state_dir: PathBuf,
    /// Decide only: take no lock, change nothing.
    pub dry_run: bool,
    /// Operations in flight at once.
    pub parallelism: usize,
    /// Manage the host's nftables table (`--no-nftables` turns it off).
    pub nftables: bool,
    /// Snapshot the instances the apply changes first.
    pub snapshots: bool,
    /// Pre-apply snapshot timestamps to keep after a successful apply.
    pub keep: usize,
    /// Apply even if the plan's sources changed since it was made.
    pub allow_stale: bool,
    /// Where the plan's sources are (relative paths in its header).
    pub sources_dir: PathBuf,
    /// Stop on Ctrl-C (the CLI); tests raise [`Prepared::interrupt`]
    /// themselves.
    pub ctrl_c: bool,
    /// The version of anklume recorded in the journal (the CLI's).
    pub anklume_version: String,
    /// The host's `nft`.
    pub nft: Arc<dyn Nft>,
    /// Where Ansible and the content are, to run the provision nodes;
    /// `None` with `--no-provision`.
    pub provisioning: Option<crate::ansible::Setup>,
    /// Only these domains or machines (`--limit`), with what they depend
    /// on; empty: everything.
    pub limit: Vec<String>,
    /// Provision these domains or machines again even when their
    /// fingerprint matches (`--reprovision`; empty list: all); `None`: no.
    pub reprovision: Option<Vec<String>>,
    /// Delete the orphans (`--prune`), after the plan's changes.
    pub prune: bool,
    /// With `prune`: protected instances too (`--force`).
    pub force: bool,
    /// With `prune`: keep a copy of each deleted instance for rollback
    /// (`--no-keep` turns it off).
    pub keep_copies: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            state_dir: state::state_dir(),
            dry_run: false,
            parallelism: 8,
            nftables: true,
            snapshots: true,
            keep: 3,
            allow_stale: false,
            sources_dir: PathBuf::from("."),
            ctrl_c: false,
            anklume_version: env!("CARGO_PKG_VERSION").to_string(),
            nft: nft::system(),
            provisioning: None,
            limit: Vec::new(),
            reprovision: None,
            prune: false,
            force: false,
            keep_copies: true,
        }
    }
}

/// An apply read and decided, about to run.
pub struct Prepared<A: Api> {
    api: A,
    plan: Plan,
    opts: Options,
    nft_before: Option<nft::NftLive>,
    provisioner: Option<Arc<crate::ansible::Provisioner>>,
    _lock: Option<ApplyLock>,
    /// One action per plan node, and the orphans.
    pub decisions: Decisions,
    /// What stops the apply before any change, if anything.
    pub preflight: Option<Preflight>,
    /// Instances whose static address another takes over: freed first
    /// (plan node index, NIC names).
    pub address_moves: Vec<(usize, Vec<String>)>,
    /// With `--prune`: the orphans deleted after the plan's changes, in
    /// order.
    pub deletions: Vec<Deletion>,
    /// With `--prune`: the orphans that stay, with why.
    pub spared: Vec<Spared>,
    interrupt: Arc<Interrupt>,
}

/// The storage pools the plan puts custom volumes in.
fn pools(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.resource {
            Resource::Volume(v) => Some(v.pool.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Read what apply compares the plan with: Incus's state in bulk and,
/// given the host's `nft`, the `inet anklume` table and the rulesets the
/// state directory records (read only). `every_pool`: the custom volumes
/// of every storage pool, not only the plan's (a prune spares the projects
/// that hold one). The second value says why the
/// table could not be read (`nft` cannot be run here): `live.nftables` is
/// then `None`, as without `nft`. `anklume status` reads through here too.
pub async fn read_state<A: Api>(
    api: &A,
    plan: &Plan,
    nft: Option<&dyn Nft>,
    state_dir: &Path,
    every_pool: bool,
) -> Result<(live::Live, Option<String>), TxError> {
    let mut pools = pools(plan);
    if every_pool {
        pools.extend(del::pools(api).await);
        pools.sort();
        pools.dedup();
    }
    let mut live = live::read(api, &pools).await.map_err(TxError::ReadLive)?;
    let mut unusable = None;
    if let Some(nft) = nft {
        match nft::read(nft, state_dir) {
            Ok(s) => live.nftables = Some(s),
            Err(e) => unusable = Some(e.to_string()),
        }
    }
    Ok((live, unusable))
}

/// Check the plan is current, take the lock (not for a dry run), read
/// Incus and the host's table, report an unfinished apply, decide, and run
/// the preflight checks. Nothing changes.
pub async fn prepare<A: Api>(
    api: A,
    plan: Plan,
    header: &Header,
    opts: Options,
    sink: &Sink,
) -> Result<Prepared<A>, TxError> {
    let stale = state::stale_sources(header, &opts.sources_dir);
    if !stale.is_empty() && !opts.allow_stale {
        return Err(TxError::Stale { files: stale });
    }
    // `--limit` is checked before anything else is read; with `--prune`,
    // a name may also be the domain of orphans only (a domain removed from
    // infra.yml), known once Incus is read.
    let (keep, unknown) = if opts.limit.is_empty() {
        (None, Vec::new())
    } else {
        let (keep, unknown) = selected(&plan, &opts.limit);
        if !unknown.is_empty() && !opts.prune {
            return Err(TxError::Limit { names: unknown });
        }
        (Some(keep), unknown)
    };
    let lock = if opts.dry_run {
        None
    } else {
        Some(state::lock(&opts.state_dir)?)
    };
    let nft_runner = opts.nftables.then_some(&*opts.nft);
    let (mut live, nft_unusable) =
        read_state(&api, &plan, nft_runner, &opts.state_dir, opts.prune).await?;
    if let Some(reason) = nft_unusable {
        sink(&Event::NftablesNotManaged { reason });
    }
    // A journal without an end is a dead apply, unless an apply is running
    // right now (a dry run does not hold the lock: probe it).
    let unfinished = journal::unfinished(&opts.state_dir)
        .filter(|_| !(opts.dry_run && state::lock(&opts.state_dir).is_err()));
    if let Some(j) = unfinished {
        let changes = j.changes();
        sink(&Event::UnfinishedApply {
            journal: j.ts.clone(),
            started: changes.len(),
            finished: changes.iter().filter(|c| c.1.is_some()).count(),
        });
    }
    let provisioner = opts
        .provisioning
        .clone()
        .map(crate::ansible::Provisioner::new);
    live.provisioning_off = match &provisioner {
        None => Some("--no-provision".into()),
        Some(p) => p.unavailable(),
    };
    let provisioner = provisioner.filter(|_| live.provisioning_off.is_none());
    let nft_before = live.nftables.clone();
    let mut decisions = decide::decide(&plan, &live);
    let unknown: Vec<String> = unknown
        .into_iter()
        .filter(|n| {
            !decisions
                .orphans
                .iter()
                .any(|o| o.domain.as_deref() == Some(n.as_str()))
        })
        .collect();
    if !unknown.is_empty() {
        return Err(TxError::Limit { names: unknown });
    }
    if let Some(names) = &opts.reprovision {
        for (node, action) in plan.nodes.iter().zip(decisions.actions.iter_mut()) {
            let Resource::Provision(p) = &node.resource else {
                continue;
            };
            let named = names.is_empty()
                || names.iter().any(|n| {
                    *n == p.host || *n == p.instance || node.domain.as_deref() == Some(n.as_str())
                });
            if named && *action == Action::Unchanged && live.provisioning_off.is_none() {
                *action = Action::Update {
                    changes: vec![decide::Change {
                        key: "reprovision".into(),
                        old: None,
                        new: Some("requested (--reprovision)".into()),
                    }],
                };
            }
        }
    }
    if let Some(keep) = &keep {
        for (i, action) in decisions.actions.iter_mut().enumerate() {
            if !keep[i] && !matches!(action, Action::Unchanged) {
                *action = Action::NotRun {
                    reason: format!("outside --limit {}", opts.limit.join(",")),
                };
            }
        }
    }
    // The server's own key catalogue, read only when this run sets
    // configuration (a converged apply sends no extra request). A server
    // that cannot say leaves the check to Incus itself.
    let sets_config = plan
        .nodes
        .iter()
        .zip(&decisions.actions)
        .any(|(n, a)| a.is_change() && !crate::kind::incus_keys(&n.resource).is_empty());
    if sets_config {
        live.keys = live::read_keys(&api).await.ok().flatten();
    }
    let address_moves = decide::address_moves(&plan, &live, &decisions.actions);
    // A running instance whose NIC address changes is stopped and started
    // again with its new address (`kind::instance::apply`; the holders of
    // moving addresses, in the first phase): say so with its changes.
    for (node, action) in plan.nodes.iter().zip(decisions.actions.iter_mut()) {
        let (Resource::Instance(i), Action::Update { changes }) = (&node.resource, action) else {
            continue;
        };
        let moves = crate::kind::instance::changes_address(changes);
        let running = live
            .instances
            .get(&(i.project.clone(), i.name.clone()))
            .is_some_and(|l| live::str_of(l, "status") == "Running");
        if moves && running {
            changes.push(decide::Change {
                key: "state".into(),
                old: Some("Running".into()),
                new: Some("restarted with its new address".into()),
            });
        }
    }
    let preflight = decide::preflight(&plan, &live, &decisions.actions, &address_moves).err();
    // `--prune` deletes the orphans (with `--limit`, only those of the
    // named domains), in reverse dependency order, sparing what stays in
    // use.
    let (deletions, spared) = if opts.prune {
        let candidates: Vec<decide::Orphan> = decisions
            .orphans
            .iter()
            .filter(|o| {
                opts.limit.is_empty()
                    || o.domain
                        .as_ref()
                        .is_some_and(|d| opts.limit.iter().any(|l| l == d))
            })
            .cloned()
            .collect();
        del::order(&candidates, &live, opts.force)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Prepared {
        api,
        plan,
        opts,
        nft_before,
        provisioner,
        _lock: lock,
        decisions,
        preflight,
        address_moves,
        deletions,
        spared,
        interrupt: Arc::new(Interrupt::default()),
    })
}

/// The nodes `--limit` keeps: those of the named domains (a node's
/// domain) or machines (its instance and provisioning, by machine or
/// instance name), and everything they depend on, so that what is kept can
/// be carried out. A name that matches nothing is an error.
fn selected(plan: &Plan, limit: &[String]) -> (Vec<bool>, Vec<String>) {
    let named = |node: &anklume_plan::Node| -> Option<&String> {
        limit.iter().find(|l| {
            node.domain.as_deref() == Some(l.as_str())
                || match &node.resource {
                    Resource::Instance(i) => i.name == **l,
                    Resource::Provision(p) => p.host == **l || p.instance == **l,
                    _ => false,
                }
        })
    };
    let mut keep: Vec<bool> = plan.nodes.iter().map(|n| named(n).is_some()).collect();
    let unknown: Vec<String> = limit
        .iter()
        .filter(|l| !plan.nodes.iter().any(|n| named(n) == Some(*l)))
        .cloned()
        .collect();
    // Dependencies, transitively: edges go from dependency to dependent,
    // and the plan's order is a topological order, so one backward pass
    // over the edges sorted by dependent, repeated until stable, is enough.
    loop {
        let mut grew = false;
        for &(dep, of) in &plan.edges {
            if keep[of as usize] && !keep[dep as usize] {
                keep[dep as usize] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    (keep, unknown)
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// One event per node.
    pub report: Report,
    /// The journal's timestamp and file, when the apply changed anything.
    pub journal: Option<(String, PathBuf)>,
    /// With `--prune`: each deletion.
    pub deleted: Vec<Deleted>,
}

impl Summary {
    /// Nodes per result name (`created`, `updated`, `unchanged`, `not_run`,
    /// `failed`, `skipped`, `interrupted`).
    pub fn count(&self, name: &str) -> usize {
        self.report
            .results
            .iter()
            .flatten()
            .filter(|e| result_name(&e.result) == name)
            .count()
    }

    /// Whether every node ended well, nothing interrupted the run and no
    /// task panicked.
    pub fn ok(&self) -> bool {
        !self.report.interrupted
            && self.report.failed().next().is_none()
            && self.report.panicked.is_empty()
            && self.deleted.iter().all(Deleted::ok)
    }
}

/// The name of a node result, as counted in summaries.
pub fn result_name(r: &NodeResult) -> &'static str {
    match r {
        NodeResult::Created => "created",
        NodeResult::Updated => "updated",
        NodeResult::Unchanged => "unchanged",
        NodeResult::NotRun { .. } => "not_run",
        NodeResult::Failed { .. } => "failed",
        NodeResult::Skipped { .. } => "skipped",
        NodeResult::Interrupted => "interrupted",
    }
}

impl<A: Api> Prepared<A> {
    /// The Incus client (its request counters).
    pub fn api(&self) -> &A {
        &self.api
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Raise it to stop the run: nothing new starts.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// Journal, snapshot, execute, end the journal, prune old snapshots.
    pub async fn run(self, sink: &Sink) -> Result<Summary, TxError> {
        if let Some(p) = self.preflight {
            return Err(TxError::Preflight(p));
        }
        let opts = &self.opts;
        let changes = self.decisions.changes() + self.deletions.len();
        let journal = if changes > 0 {
            Some(Arc::new(
                Journal::create(&opts.state_dir).map_err(TxError::JournalStart)?,
            ))
        } else {
            None
        };
        let touched = self.decisions.touched_instances(&self.plan);
        let mut snapshot_taken = false;
        if let Some(j) = &journal {
            let snap_name = (opts.snapshots && !touched.is_empty())
                .then(|| format!("{}{}", snapshot::PRE_APPLY, j.ts));
            j.append(&Record::Begin {
                ts: j.ts.clone(),
                anklume: opts.anklume_version.clone(),
                changes,
                snapshot: snap_name.clone(),
            })
            .map_err(TxError::JournalWrite)?;
            if let Some(name) = &snap_name {
                let results =
                    pre_apply_snapshots(&self.api, &touched, name, opts.parallelism, j, sink).await;
                let ok = results.iter().filter(|r| **r).count();
                if ok > 0 {
                    snapshot_taken = true;
                    if let Err(e) = snapshot::record(&opts.state_dir, &j.ts, "all") {
                        sink(&Event::Warning {
                            message: e.to_string(),
                        });
                    }
                }
                sink(&Event::Snapshot {
                    name: name.clone(),
                    taken: ok,
                    failed: results.len() - ok,
                });
            }
        }
        let watcher = opts
            .ctrl_c
            .then(|| watch_ctrl_c(self.interrupt.clone(), sink.clone()));
        if let Some(p) = &self.provisioner {
            let hosts = self
                .plan
                .nodes
                .iter()
                .zip(&self.decisions.actions)
                .filter(|(n, a)| matches!(n.resource, Resource::Provision(_)) && a.is_change())
                .count();
            p.expect(hosts).await;
            let nodes: std::collections::BTreeMap<String, String> = self
                .plan
                .nodes
                .iter()
                .filter_map(|n| match &n.resource {
                    Resource::Provision(p) => Some((p.host.clone(), n.id.clone())),
                    _ => None,
                })
                .collect();
            let sink = sink.clone();
            p.set_progress(Arc::new(move |t: &crate::ansible::TaskEvent| {
                sink(&Event::Task {
                    node: nodes.get(&t.host).cloned(),
                    task: t.clone(),
                })
            }));
        }
        let ctx = RunContext {
            state_dir: opts.state_dir.clone(),
            nft_before: self.nft_before.clone(),
            journal: journal.clone(),
            nft: opts.nft.clone(),
            provisioner: self.provisioner.clone(),
        };
        // Addresses other instances take over are freed before anything
        // runs, so that shifts and swaps need no particular order.
        if let Some(j) = &journal {
            for (idx, nics) in &self.address_moves {
                // Ctrl-C: no further instance is stopped; those already
                // are the journal's, for rollback.
                if self.interrupt.raised() {
                    break;
                }
                let node = &self.plan.nodes[*idx];
                let Resource::Instance(i) = &node.resource else {
                    continue;
                };
                let a = crate::kind::instance::address(i);
                let target = crate::kind::Target::Instance(a.clone());
                let freed = async {
                    let prior = crate::kind::prior(&self.api, &target, &ctx)
                        .await
                        .map_err(|e| e.to_string())?;
                    let seq = j.next_seq();
                    j.append(&Record::Intent {
                        seq,
                        node: node.id.clone(),
                        target: target.clone(),
                        change: journal::Verb::Update,
                        deps: self
                            .plan
                            .edges
                            .iter()
                            .filter(|(_, b)| *b as usize == *idx)
                            .map(|(a, _)| self.plan.nodes[*a as usize].id.clone())
                            .collect(),
                        prior,
                    })
                    .map_err(|e| e.to_string())?;
                    let r = crate::kind::instance::move_away(&self.api, &a, nics, false).await;
                    j.append(&Record::Done {
                        seq,
                        ok: r.is_ok(),
                        error: r.as_ref().err().map(ToString::to_string),
                    })
                    .map_err(|e| e.to_string())?;
                    let moved = r.map_err(|e| e.to_string())?;
                    // Its lease goes too, or dnsmasq would not hand the
                    // address to the instance taking it over.
                    if let Err(e) = moved.released {
                        sink(&Event::Warning {
                            message: format!(
                                "{}/{}: {e} (the instance taking the address over may get another one until the lease ends)",
                                i.project, i.name
                            ),
                        });
                    }
                    let stopped = moved.stopped;
                    Ok::<bool, String>(stopped)
                }
                .await;
                match freed {
                    Ok(stopped) => sink(&Event::AddressFreed {
                        project: i.project.clone(),
                        instance: i.name.clone(),
                        nics: nics.clone(),
                        stopped,
                    }),
                    Err(e) => sink(&Event::Warning {
                        message: format!(
                            "moving the address of {}/{} away for another instance: {e} (its update may fail)",
                            i.project, i.name
                        ),
                    }),
                }
            }
        }
        let report = schedule::run(
            &self.api,
            &self.plan,
            &self.decisions,
            opts.parallelism,
            &ctx,
            self.interrupt.clone(),
            |node, done, total| {
                sink(&Event::Result {
                    node: node.clone(),
                    done,
                    total,
                })
            },
        )
        .await;
        for p in &report.panicked {
            sink(&Event::Internal {
                message: format!("a task failed: {p}"),
            });
        }
        // An instance stopped for its address that its own update did not
        // start again (skipped, failed, interrupted) stays stopped: say so.
        for (idx, _) in &self.address_moves {
            let updated = matches!(
                report
                    .results
                    .get(*idx)
                    .and_then(Option::as_ref)
                    .map(|e| &e.result),
                Some(NodeResult::Updated)
            );
            if !updated {
                sink(&Event::Warning {
                    message: format!(
                        "{} was stopped for its address to move and its update did not complete: it stays stopped until `anklume apply` runs again, or `anklume rollback` puts it back",
                        self.plan.nodes[*idx].id
                    ),
                });
            }
        }
        let mut summary = Summary {
            journal: journal.as_ref().map(|j| (j.ts.clone(), j.path.clone())),
            report,
            deleted: Vec::new(),
        };
        // The orphans go once the plan's changes are all made: a failed
        // or interrupted apply deletes nothing.
        if let (Some(j), false) = (&journal, self.deletions.is_empty()) {
            if summary.ok() {
                let dopts = del::DeleteOptions {
                    state_dir: opts.state_dir.clone(),
                    keep: opts.keep_copies,
                    force: opts.force,
                    parallelism: opts.parallelism,
                };
                summary.deleted = del::run_deletions(
                    &self.api,
                    &self.deletions,
                    j,
                    &dopts,
                    &self.interrupt,
                    sink,
                )
                .await;
            } else {
                sink(&Event::Warning {
                    message: format!(
                        "--prune: nothing deleted ({} orphan(s) stay), because the apply did not complete",
                        self.deletions.len()
                    ),
                });
            }
        }
        if let Some(j) = &journal {
            let outcome = if summary.report.interrupted {
                "interrupted"
            } else if summary.ok() {
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
        }
        if snapshot_taken && summary.ok() {
            retention(&self.api, &opts.state_dir, opts.keep, sink).await;
        }
        if summary.ok() {
            kept_retention(&opts.state_dir, opts.keep, sink);
        }
        // Ctrl-C is watched until the very end: once a handler is
        // installed, the default (quit) does not come back.
        if let Some(w) = watcher {
            w.abort();
        }
        Ok(summary)
    }
}

/// Snapshot `instances` as `name`, a few at a time, journaling each. A
/// failed snapshot is reported and the apply goes on (v1's behaviour).
/// Returns whether each was taken, in order.
async fn pre_apply_snapshots<A: Api>(
    api: &A,
    instances: &[snapshot::InstanceRef],
    name: &str,
    parallelism: usize,
    journal: &Journal,
    sink: &Sink,
) -> Vec<bool> {
    let mut out = Vec::new();
    for chunk in instances.chunks(parallelism.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for (k, i) in chunk.iter().enumerate() {
            let (api, i, name) = (api.clone(), i.clone(), name.to_string());
            set.spawn(async move {
                let r = snapshot::create(&api, &i, &name).await;
                (k, i, r)
            });
        }
        let mut done = set.join_all().await;
        done.sort_by_key(|d| d.0);
        for (_, i, r) in done {
            let rec = Record::Snapshot {
                project: i.project.clone(),
                instance: i.name.clone(),
                name: name.to_string(),
                ok: r.is_ok(),
                error: r.as_ref().err().map(|e| e.to_string()),
            };
            if let Err(e) = journal.append(&rec) {
                sink(&Event::Warning {
                    message: e.to_string(),
                });
            }
            if let Err(e) = &r {
                sink(&Event::SnapshotFailed {
                    project: i.project.clone(),
                    instance: i.name.clone(),
                    name: name.to_string(),
                    error: e.to_string(),
                });
            }
            out.push(r.is_ok());
        }
    }
    out
}

/// Keep the newest `keep` pre-apply timestamps.
async fn retention<A: Api>(api: &A, state_dir: &Path, keep: usize, sink: &Sink) {
    match snapshot::cleanup(api, state_dir, keep).await {
        Ok(c) => {
            for (s, e) in c.failed {
                sink(&Event::RetentionFailed {
                    snapshot: s,
                    error: e,
                });
            }
            if !c.deleted.is_empty() {
                sink(&Event::Retention {
                    deleted: c.deleted.len(),
                    keep,
                });
            }
        }
        Err(e) => sink(&Event::Warning {
            message: format!("pre-apply snapshot retention: {e}"),
        }),
    }
}

/// Keep the kept copies of the newest `keep` journals that have some; the
/// older ones are removed (as pre-apply snapshots are).
pub fn kept_retention(state_dir: &Path, keep: usize, sink: &Sink) {
    match del::purge_kept(state_dir, keep) {
        Ok(p) if p.dirs > 0 => sink(&Event::KeptRetention {
            removed: p.dirs,
            bytes: p.bytes,
            keep,
        }),
        Ok(_) => {}
        Err(e) => sink(&Event::Warning {
            message: format!("kept copies retention: {e}"),
        }),
    }
}

/// Raise `interrupt` on Ctrl-C and report it; report a second Ctrl-C too
/// (the CLI quits on it).
pub(super) fn watch_ctrl_c(interrupt: Arc<Interrupt>, sink: Sink) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.raise();
            sink(&Event::Interrupted { again: false });
            if tokio::signal::ctrl_c().await.is_ok() {
                sink(&Event::Interrupted { again: true });
            }
        }
    })
}
