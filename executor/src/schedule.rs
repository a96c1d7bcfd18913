//! Carrying out the decisions: nodes run in dependency order with bounded
//! parallelism, each journaled before and after its change. A failed node
//! makes its dependents skipped while independent nodes finish. An
//! interrupt stops scheduling, lets in-flight operations finish, and
//! reports. How each kind's change is made is in [`crate::kind`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anklume_plan::{Node, Plan};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::decide::{Action, Decisions};
use crate::incus::Api;
use crate::journal::{Record, Verb};
use crate::kind::{self, NodeError, RunContext};

/// Set when the run is asked to stop: no new operation starts, those in
/// flight finish.
#[derive(Debug, Default)]
pub struct Interrupt {
    flag: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Ask the run to stop.
    pub fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Whether it was asked to stop.
    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// How one node ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum NodeResult {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Already as desired.
    Unchanged,
    /// Not executed by apply.
    NotRun {
        /// Why.
        reason: String,
    },
    /// Failed.
    Failed {
        /// Incus's error, with context.
        error: String,
        /// For instances: it was created but did not start.
        half_created: bool,
    },
    /// Not tried because a dependency failed or was skipped.
    Skipped {
        /// The dependency.
        because: String,
    },
    /// Not started because the run was interrupted.
    Interrupted,
}

impl NodeResult {
    /// Whether it ended well (its dependents may run).
    pub fn ok(&self) -> bool {
        matches!(
            self,
            NodeResult::Created
                | NodeResult::Updated
                | NodeResult::Unchanged
                | NodeResult::NotRun { .. }
        )
    }
}

/// One finished node, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct NodeEvent {
    /// Node id.
    pub id: String,
    /// Where it comes from in the sources (`infra.yml:12:7`), when the
    /// plan knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// How it ended.
    #[serde(flatten)]
    pub result: NodeResult,
    /// Time spent, in milliseconds.
    pub ms: u64,
    /// Something that went wrong after the change was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The result of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// One entry per node, in plan order.
    pub results: Vec<Option<NodeEvent>>,
    /// Whether an interrupt stopped the run.
    pub interrupted: bool,
    /// Internal errors: tasks that panicked (never expected).
    pub panicked: Vec<String>,
}

impl Report {
    /// Nodes that failed.
    pub fn failed(&self) -> impl Iterator<Item = &NodeEvent> {
        self.results
            .iter()
            .flatten()
            .filter(|e| matches!(e.result, NodeResult::Failed { .. }))
    }
}

/// Journal the change, carry it out, journal the outcome.
async fn run_journaled<A: Api>(
    api: &A,
    node: &Node,
    action: &Action,
    deps: Vec<String>,
    ctx: &RunContext,
) -> Result<(NodeResult, Option<String>), NodeError> {
    let create = matches!(action, Action::Create);
    let done = if create {
        NodeResult::Created
    } else {
        NodeResult::Updated
    };
    let (Some(journal), Some(target)) = (ctx.journal.as_ref(), kind::target(&node.resource)) else {
        kind::apply(api, &node.resource, create, ctx).await?;
        return Ok((done, None));
    };
    let prior = if !create || kind::prior_on_create(&target) {
        kind::prior(api, &target, ctx)
            .await
            .map_err(|e| NodeError::new(format!("reading its state for the journal: {e}")))?
    } else {
        None
    };
    let seq = journal.next_seq();
    journal
        .append(&Record::Intent {
            seq,
            node: node.id.clone(),
            target,
            change: if create { Verb::Create } else { Verb::Update },
            deps,
            prior,
        })
        .map_err(|e| NodeError::new(format!("not changed: cannot write the journal: {e}")))?;
    let result = kind::apply(api, &node.resource, create, ctx).await;
    let record = Record::Done {
        seq,
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| e.message.clone()),
    };
    // The change is made: a failure to record its end is a warning on the
    // node (rollback treats an intent without an end as possibly done).
    let warning = journal
        .append(&record)
        .err()
        .map(|e| format!("its end could not be journaled: {e}"));
    result.map(|()| (done, warning))
}

/// Run the decided actions. `on_event` gets every finished node as it ends.
pub async fn run<A: Api>(
    api: &A,
    plan: &Plan,
    decisions: &Decisions,
    parallelism: usize,
    ctx: &RunContext,
    interrupt: Arc<Interrupt>,
    mut on_event: impl FnMut(&NodeEvent, usize, usize),
) -> Report {
    let n = plan.nodes.len();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &plan.edges {
        deps[b as usize].push(a as usize);
    }
    let mut results: Vec<Option<NodeEvent>> = vec![None; n];
    let mut started = vec![false; n];
    let mut running = 0usize;
    let mut done = 0usize;
    let mut set: JoinSet<(usize, NodeResult, Option<String>, u64)> = JoinSet::new();
    let mut panicked: Vec<String> = Vec::new();
    let parallelism = parallelism.max(1);
    loop {
        let stop = interrupt.raised();
        // Schedule everything that is ready, in plan order.
        for i in 0..n {
            if started[i] {
                continue;
            }
            if deps[i].iter().any(|&d| results[d].is_none()) {
                continue; // a dependency is still pending
            }
            let bad_dep = deps[i]
                .iter()
                .copied()
                .find(|&d| results[d].as_ref().is_some_and(|e| !e.result.ok()));
            // Nodes that end without a request: after a dependency that did
            // not end well, unchanged, not run, or once interrupted.
            let immediate = match (bad_dep, &decisions.actions[i]) {
                (Some(d), _) => Some(match results[d].as_ref().map(|e| &e.result) {
                    Some(NodeResult::Interrupted) => NodeResult::Interrupted,
                    _ => NodeResult::Skipped {
                        because: plan.nodes[d].id.clone(),
                    },
                }),
                (None, Action::Unchanged) => Some(NodeResult::Unchanged),
                (None, Action::NotRun { reason }) => Some(NodeResult::NotRun {
                    reason: reason.clone(),
                }),
                (None, _) if stop => Some(NodeResult::Interrupted),
                (None, _) => None,
            };
            if let Some(result) = immediate {
                started[i] = true;
                // A provisioning that will not run: its batch stops waiting
                // for it.
                if let (
                    anklume_plan::Resource::Provision(_),
                    Action::Create | Action::Update { .. } | Action::Adopt { .. },
                    Some(p),
                ) = (
                    &plan.nodes[i].resource,
                    &decisions.actions[i],
                    &ctx.provisioner,
                ) {
                    p.forget().await;
                }
                let ev = NodeEvent {
                    id: plan.nodes[i].id.clone(),
                    origin: plan.nodes[i].origin.clone(),
                    result,
                    ms: 0,
                    warning: None,
                };
                done += 1;
                on_event(&ev, done, n);
                results[i] = Some(ev);
                continue;
            }
            // A provision node waits for its batch's `ansible-playbook`,
            // whose forks are the parallelism: it takes no slot.
            let provisioning =
                matches!(plan.nodes[i].resource, anklume_plan::Resource::Provision(_));
            if running >= parallelism && !provisioning {
                continue;
            }
            started[i] = true;
            if !provisioning {
                running += 1;
            }
            let api = api.clone();
            let node = plan.nodes[i].clone();
            let action = decisions.actions[i].clone();
            let ctx = ctx.clone();
            let dep_ids: Vec<String> = deps[i].iter().map(|&d| plan.nodes[d].id.clone()).collect();
            set.spawn(async move {
                let t = Instant::now();
                let (outcome, warning) =
                    match run_journaled(&api, &node, &action, dep_ids, &ctx).await {
                        Ok(o) => o,
                        Err(e) => (
                            NodeResult::Failed {
                                error: e.message,
                                half_created: e.half_created,
                            },
                            None,
                        ),
                    };
                (i, outcome, warning, t.elapsed().as_millis() as u64)
            });
        }
        if done == n {
            break;
        }
        if set.is_empty() {
            // Nothing running and nothing schedulable: only possible when
            // everything left waits on a node that will never finish.
            for (slot, node) in results.iter_mut().zip(&plan.nodes) {
                if slot.is_none() {
                    let ev = NodeEvent {
                        id: node.id.clone(),
                        origin: node.origin.clone(),
                        result: NodeResult::Interrupted,
                        ms: 0,
                        warning: None,
                    };
                    done += 1;
                    on_event(&ev, done, n);
                    *slot = Some(ev);
                }
            }
            break;
        }
        tokio::select! {
            joined = set.join_next() => {
                if let Some(Ok((i, outcome, warning, ms))) = joined {
                    if !matches!(plan.nodes[i].resource, anklume_plan::Resource::Provision(_)) {
                        running -= 1;
                    }
                    let ev = NodeEvent {
                        id: plan.nodes[i].id.clone(),
                        origin: plan.nodes[i].origin.clone(),
                        result: outcome,
                        ms,
                        warning,
                    };
                    done += 1;
                    on_event(&ev, done, n);
                    results[i] = Some(ev);
                } else if let Some(Err(e)) = joined {
                    // A task panicked: should never happen. Its node is
                    // unknown here; it ends as interrupted below, and the
                    // run goes on with the rest.
                    running = running.saturating_sub(1);
                    panicked.push(e.to_string());
                }
            }
            _ = interrupt.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
    Report {
        results,
        interrupted: interrupt.raised(),
        panicked,
    }
}
