//! Doing it: nodes run in dependency order with bounded parallelism. A failed
//! node makes its dependents skipped while independent nodes finish. An
//! interrupt stops scheduling, lets in-flight operations finish, and reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anklume_plan::{Config, Devices, ImageSource, Node, Plan, Resource};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::incus::{enc, project_query, Api, Incus, IncusError};
use crate::journal::{Change, Journal, Record, Target, PROFILE_FIELDS};
use crate::reconcile::{Action, Decisions};
use crate::snapshot::InstanceRef;

/// How one node ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
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

impl Outcome {
    fn ok(&self) -> bool {
        matches!(
            self,
            Outcome::Created | Outcome::Updated | Outcome::Unchanged | Outcome::NotRun { .. }
        )
    }
}

/// One finished node, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Node id.
    pub id: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Time spent, in milliseconds.
    pub ms: u64,
}

/// The result of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// One entry per node, in plan order.
    pub results: Vec<Option<Event>>,
    /// Whether an interrupt stopped the run.
    pub interrupted: bool,
}

impl Report {
    /// Nodes that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Event> {
        self.results
            .iter()
            .flatten()
            .filter(|e| matches!(e.outcome, Outcome::Failed { .. }))
    }
}

fn config_json(c: &Config) -> Value {
    Value::Object(
        c.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn devices_json(d: &Devices) -> Value {
    Value::Object(d.iter().map(|(k, v)| (k.clone(), config_json(v))).collect())
}

/// Create or update one node.
/// What apply needs besides Incus.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The state directory (last applied ruleset, saved previous tables).
    pub state_dir: std::path::PathBuf,
    /// The live `inet anklume` table before this apply, saved before the
    /// ruleset is replaced.
    pub nft_previous: Option<String>,
    /// The journal every change is recorded in first (none for tests that
    /// exercise the scheduler alone).
    pub journal: Option<Arc<Journal>>,
}

/// What a node changes, for the journal.
pub fn target(node: &Node) -> Option<Target> {
    Some(match &node.resource {
        Resource::Network(n) => Target::Network {
            name: n.name.clone(),
        },
        Resource::Project(p) => Target::Project {
            name: p.name.clone(),
        },
        Resource::Profile(p) => Target::Profile {
            project: p.project.clone(),
            name: p.name.clone(),
        },
        Resource::Volume(v) => Target::Volume {
            project: v.project.clone(),
            pool: v.pool.clone(),
            name: v.name.clone(),
        },
        Resource::Instance(i) => Target::Instance {
            project: i.project.clone(),
            name: i.name.clone(),
        },
        Resource::Nftables(_) => Target::Nftables,
        Resource::Provision(_) => return None,
    })
}

fn pick(md: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), md.get(*k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

/// The state of what `target` names, as rollback restores it: the writable
/// fields Incus has now (instance `volatile.*` keys left out: Incus owns
/// them). `None` when it does not exist.
pub async fn prior_state(
    incus: &Incus,
    target: &Target,
    ctx: &Context,
) -> Result<Option<Value>, IncusError> {
    if let Target::Nftables = target {
        let d = crate::nft::dir(&ctx.state_dir);
        let file = |n: &str| std::fs::read_to_string(d.join(n)).ok();
        return Ok(Some(json!({
            "table": ctx.nft_previous,
            "applied": file("applied.nft"),
            "applied_listing": file("applied.listing"),
        })));
    }
    let Some(path) = target.path() else {
        return Ok(None);
    };
    let Some(cur) = incus.get_opt(&path).await? else {
        return Ok(None);
    };
    let mut v = pick(&cur.metadata, target.fields());
    match target {
        Target::Project { name } => {
            let prof = incus
                .get_opt(&format!("/1.0/profiles/default?{}", project_query(name)))
                .await?;
            v["default_profile"] = prof.map_or(Value::Null, |r| pick(&r.metadata, PROFILE_FIELDS));
        }
        Target::Instance { .. } => {
            v["status"] = cur.metadata.get("status").cloned().unwrap_or(Value::Null);
            if let Some(c) = v.get_mut("config").and_then(Value::as_object_mut) {
                c.retain(|k, _| !k.starts_with("volatile."));
            }
        }
        _ => {}
    }
    Ok(Some(v))
}

/// Journal the change, run it, journal the outcome.
async fn run_journaled(
    incus: &Incus,
    node: &Node,
    action: &Action,
    deps: Vec<String>,
    ctx: &Context,
) -> Result<Outcome, (String, bool)> {
    let (Some(journal), Some(target)) = (ctx.journal.as_ref(), target(node)) else {
        return run_node(incus, node, action, ctx).await;
    };
    let change = if matches!(action, Action::Create) {
        Change::Create
    } else {
        Change::Update
    };
    let prior = match (change, &target) {
        (Change::Update, _) | (_, Target::Nftables) => prior_state(incus, &target, ctx)
            .await
            .map_err(|e| (format!("reading its state for the journal: {e}"), false))?,
        _ => None,
    };
    let seq = journal.next_seq();
    journal
        .append(&Record::Intent {
            seq,
            node: node.id.clone(),
            target,
            change,
            deps,
            prior,
        })
        .map_err(|e| (format!("not changed: cannot write the journal: {e}"), false))?;
    let result = run_node(incus, node, action, ctx).await;
    let record = Record::Done {
        seq,
        ok: result.is_ok(),
        error: result.as_ref().err().map(|(e, _)| e.clone()),
    };
    if let Err(e) = journal.append(&record) {
        eprintln!("warning: {e}");
    }
    result
}

/// The instances a run changes that exist already: what pre-apply
/// snapshots cover.
pub fn touched_instances(plan: &Plan, decisions: &Decisions) -> Vec<InstanceRef> {
    plan.nodes
        .iter()
        .zip(&decisions.actions)
        .filter_map(|(node, action)| match (&node.resource, action) {
            (Resource::Instance(i), Action::Update { .. }) => Some(InstanceRef {
                project: i.project.clone(),
                name: i.name.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Snapshot `instances` as `name`, a few at a time, journaling each. A
/// failed snapshot is reported and the apply goes on (v1's behaviour).
pub async fn pre_apply_snapshots(
    incus: &Incus,
    instances: &[InstanceRef],
    name: &str,
    parallelism: usize,
    journal: Option<&Journal>,
) -> Vec<(InstanceRef, Result<(), String>)> {
    let mut out = Vec::new();
    for chunk in instances.chunks(parallelism.max(1)) {
        let mut set = JoinSet::new();
        for (k, i) in chunk.iter().enumerate() {
            let incus = incus.clone();
            let i = i.clone();
            let name = name.to_string();
            set.spawn(async move {
                let r = crate::snapshot::create(&incus, &i, &name)
                    .await
                    .map_err(|e| e.to_string());
                (k, i, r)
            });
        }
        let mut done: Vec<(usize, InstanceRef, Result<(), String>)> = set.join_all().await;
        done.sort_by_key(|d| d.0);
        for (_, i, r) in done {
            if let Some(j) = journal {
                let rec = Record::Snapshot {
                    project: i.project.clone(),
                    instance: i.name.clone(),
                    name: name.to_string(),
                    ok: r.is_ok(),
                    error: r.as_ref().err().cloned(),
                };
                if let Err(e) = j.append(&rec) {
                    eprintln!("warning: {e}");
                }
            }
            out.push((i, r));
        }
    }
    out
}

async fn run_node(
    incus: &Incus,
    node: &Node,
    action: &Action,
    ctx: &Context,
) -> Result<Outcome, (String, bool)> {
    let fail = |e: IncusError| (e.to_string(), false);
    let create = matches!(action, Action::Create);
    match &node.resource {
        Resource::Network(n) => {
            if create {
                let body = json!({"name": n.name, "type": "bridge", "description": n.description, "config": config_json(&n.config)});
                create_network(incus, &n.name, &body).await.map_err(fail)?;
            } else {
                let path = format!("/1.0/networks/{}", enc(&n.name));
                let cur = incus.get(&path).await.map_err(fail)?;
                let body = json!({"config": config_json(&n.config), "description": n.description});
                incus
                    .patch(&path, &body, cur.etag.as_deref())
                    .await
                    .map_err(fail)?;
            }
        }
        Resource::Project(p) => {
            let profile = format!("/1.0/profiles/default?{}", project_query(&p.name));
            if create {
                let body = json!({"name": p.name, "description": p.description, "config": config_json(&p.config)});
                incus.post("/1.0/projects", &body).await.map_err(fail)?;
                let cur = incus.get(&profile).await.map_err(fail)?;
                let body = json!({"devices": devices_json(&p.default_profile_devices)});
                incus
                    .patch(&profile, &body, cur.etag.as_deref())
                    .await
                    .map_err(fail)?;
            } else {
                // Never PATCH a project's config (Incus replaces it all):
                // GET, merge, PUT with If-Match.
                let path = format!("/1.0/projects/{}", enc(&p.name));
                let cur = incus.get(&path).await.map_err(fail)?;
                let mut config: Map<String, Value> = cur
                    .metadata
                    .get("config")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut changed =
                    cur.metadata.get("description").and_then(Value::as_str) != Some(&p.description);
                for (k, v) in &p.config {
                    if config.get(k).and_then(Value::as_str) != Some(v) {
                        config.insert(k.clone(), Value::String(v.clone()));
                        changed = true;
                    }
                }
                if changed {
                    let body = json!({"config": config, "description": p.description});
                    incus
                        .put(&path, &body, cur.etag.as_deref())
                        .await
                        .map_err(fail)?;
                }
                let prof = incus.get(&profile).await.map_err(fail)?;
                let live_devs = prof.metadata.get("devices").cloned().unwrap_or(Value::Null);
                if live_devs != devices_json_subset(&p.default_profile_devices, &live_devs) {
                    let body = json!({"devices": devices_json(&p.default_profile_devices)});
                    incus
                        .patch(&profile, &body, prof.etag.as_deref())
                        .await
                        .map_err(fail)?;
                }
            }
        }
        Resource::Profile(p) => {
            let q = project_query(&p.project);
            if create {
                let body = json!({"name": p.name, "description": p.description, "config": config_json(&p.config), "devices": devices_json(&p.devices)});
                incus
                    .post(&format!("/1.0/profiles?{q}"), &body)
                    .await
                    .map_err(fail)?;
            } else {
                let path = format!("/1.0/profiles/{}?{q}", enc(&p.name));
                let cur = incus.get(&path).await.map_err(fail)?;
                let body = json!({"description": p.description, "config": config_json(&p.config), "devices": devices_json(&p.devices)});
                incus
                    .patch(&path, &body, cur.etag.as_deref())
                    .await
                    .map_err(fail)?;
            }
        }
        Resource::Volume(v) => {
            let q = project_query(&v.project);
            let base = format!("/1.0/storage-pools/{}/volumes/custom", enc(&v.pool));
            if create {
                let body = json!({"name": v.name, "content_type": "filesystem", "config": config_json(&v.config)});
                incus
                    .post(&format!("{base}?{q}"), &body)
                    .await
                    .map_err(fail)?;
            } else {
                let path = format!("{base}/{}?{q}", enc(&v.name));
                let cur = incus.get(&path).await.map_err(fail)?;
                let body = json!({"config": config_json(&v.config)});
                incus
                    .patch(&path, &body, cur.etag.as_deref())
                    .await
                    .map_err(fail)?;
            }
        }
        Resource::Instance(i) => {
            let q = project_query(&i.project);
            let path = format!("/1.0/instances/{}?{q}", enc(&i.name));
            if create {
                let source = match &i.source {
                    ImageSource::Remote {
                        server,
                        protocol,
                        alias,
                        ..
                    } => {
                        json!({"type": "image", "mode": "pull", "server": server, "protocol": protocol, "alias": alias})
                    }
                    ImageSource::Local { alias } => json!({"type": "image", "alias": alias}),
                };
                let body = json!({
                    "name": i.name,
                    "type": i.instance_type.incus_name(),
                    "description": i.description,
                    "source": source,
                    "profiles": i.profiles,
                    "config": config_json(&i.config),
                    "devices": devices_json(&i.devices),
                    "start": true,
                });
                if let Err(e) = incus.post(&format!("/1.0/instances?{q}"), &body).await {
                    let mut msg = e.to_string();
                    if let ImageSource::Remote { image, .. } = &i.source {
                        if e.message.contains("remote image")
                            || e.message.contains("Failed getting image")
                        {
                            msg = format!(
                                "image '{image}' cannot be fetched from its remote: {msg} (offline? import the image locally and use its alias instead)"
                            );
                        }
                    }
                    // Created but not started? (`start: true` keeps the instance.)
                    let exists = matches!(incus.get_opt(&path).await, Ok(Some(_)));
                    if exists {
                        return Err((format!("created but failed to start: {msg}"), true));
                    }
                    return Err((msg, false));
                }
            } else {
                let cur = incus.get(&path).await.map_err(fail)?;
                let md = &cur.metadata;
                let live_type = md
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("container");
                if live_type != i.instance_type.incus_name() {
                    return Err((
                        format!(
                            "is a {live_type} but the plan wants a {}: Incus cannot convert an instance; delete it (after saving its data) and apply again",
                            i.instance_type.incus_name()
                        ),
                        false,
                    ));
                }
                let live_config: BTreeMap<String, String> = md
                    .get("config")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let config_drift = i.config.iter().any(|(k, v)| live_config.get(k) != Some(v));
                let live_devs = md.get("devices").cloned().unwrap_or(Value::Null);
                let devices_drift = live_devs != devices_json_subset(&i.devices, &live_devs);
                let live_profiles: Vec<&str> = md
                    .get("profiles")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let desc_drift =
                    md.get("description").and_then(Value::as_str) != Some(&i.description);
                if config_drift || devices_drift || desc_drift || live_profiles != i.profiles {
                    let body = json!({
                        "config": config_json(&i.config),
                        "devices": devices_json(&i.devices),
                        "profiles": i.profiles,
                        "description": i.description,
                    });
                    incus
                        .patch(&path, &body, cur.etag.as_deref())
                        .await
                        .map_err(fail)?;
                }
                if md.get("status").and_then(Value::as_str) != Some("Running") {
                    let state = format!("/1.0/instances/{}/state?{q}", enc(&i.name));
                    incus
                        .put(&state, &json!({"action": "start"}), None)
                        .await
                        .map_err(|e| (format!("failed to start: {e}"), false))?;
                }
            }
        }
        Resource::Nftables(t) => {
            let text = t.text();
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || {
                crate::nft::load(&text, &ctx.state_dir, ctx.nft_previous.as_deref())
            })
            .await
            .map_err(|e| (format!("internal error: {e}"), false))?
            .map_err(|e| (e, false))?;
        }
        Resource::Provision(_) => {}
    }
    Ok(if create {
        Outcome::Created
    } else {
        Outcome::Updated
    })
}

/// The live devices with the desired ones merged in: equal to the live
/// devices exactly when every desired device is already there as desired.
/// Create a bridge, retrying Incus's transient bridge-setup failures.
///
/// Incus 6.0 lists the host's links while it sets a new bridge up and then
/// queries each one; a veth that vanishes in between (an instance starting or
/// stopping anywhere on the host) fails the whole create with "Device ... does
/// not exist". Incus reverts the half-made network, so the create is retried
/// (after removing any leftover) a few times before it is reported.
async fn create_network(incus: &Incus, name: &str, body: &Value) -> Result<(), IncusError> {
    let mut attempt = 0u32;
    loop {
        match incus.post("/1.0/networks", body).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 3 && is_transient_link_race(&e) => {
                attempt += 1;
                let path = format!("/1.0/networks/{}", enc(name));
                if incus.get_opt(&path).await?.is_some() {
                    incus.delete(&path).await?;
                }
                tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient_link_race(e: &IncusError) -> bool {
    let m = e.to_string();
    m.contains("does not exist") && (m.contains("link show") || m.contains("children interfaces"))
}

fn devices_json_subset(desired: &Devices, live: &Value) -> Value {
    let mut m = live.as_object().cloned().unwrap_or_default();
    for (k, v) in desired {
        m.insert(k.clone(), config_json(v));
    }
    Value::Object(m)
}

/// Run the decided actions. `on_event` gets every finished node as it ends.
pub async fn execute(
    incus: &Incus,
    plan: &Plan,
    decisions: &Decisions,
    parallelism: usize,
    ctx: &Context,
    interrupt: Arc<AtomicBool>,
    mut on_event: impl FnMut(&Event, usize, usize),
) -> Report {
    let n = plan.nodes.len();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &plan.edges {
        deps[b as usize].push(a as usize);
    }
    let mut results: Vec<Option<Event>> = vec![None; n];
    let mut started = vec![false; n];
    let mut running = 0usize;
    let mut done = 0usize;
    let mut set: JoinSet<(usize, Outcome, u64)> = JoinSet::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.store(true, Ordering::SeqCst);
                let _ = tx.send(());
                eprintln!("interrupted: no new operation is started; waiting for those in flight (Ctrl-C again to quit now)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted again: quitting without waiting; operations in flight continue in Incus");
                    std::process::exit(130);
                }
            }
        })
    };
    let parallelism = parallelism.max(1);
    let is_network: Vec<bool> = plan
        .nodes
        .iter()
        .map(|node| matches!(node.resource, Resource::Network(_)))
        .collect();
    loop {
        let stop = interrupt.load(Ordering::SeqCst);
        let networks_pending = (0..n)
            .filter(|&i| {
                is_network[i]
                    && results[i].is_none()
                    && matches!(decisions.actions[i], Action::Create | Action::Update { .. })
            })
            .count();
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
                .find(|&d| results[d].as_ref().is_some_and(|e| !e.outcome.ok()));
            if let Some(d) = bad_dep {
                started[i] = true;
                let outcome = match results[d].as_ref().map(|e| &e.outcome) {
                    Some(Outcome::Interrupted) => Outcome::Interrupted,
                    _ => Outcome::Skipped {
                        because: plan.nodes[d].id.clone(),
                    },
                };
                let ev = Event {
                    id: plan.nodes[i].id.clone(),
                    outcome,
                    ms: 0,
                };
                done += 1;
                on_event(&ev, done, n);
                results[i] = Some(ev);
                continue;
            }
            let action = &decisions.actions[i];
            let immediate = match action {
                Action::Unchanged => Some(Outcome::Unchanged),
                Action::NotRun { reason } => Some(Outcome::NotRun {
                    reason: reason.clone(),
                }),
                _ if stop => Some(Outcome::Interrupted),
                _ => None,
            };
            if let Some(outcome) = immediate {
                started[i] = true;
                let ev = Event {
                    id: plan.nodes[i].id.clone(),
                    outcome,
                    ms: 0,
                };
                done += 1;
                on_event(&ev, done, n);
                results[i] = Some(ev);
                continue;
            }
            if running >= parallelism {
                continue;
            }
            // Host bridges are set up before anything else runs: Incus's
            // bridge setup races with veths that instances create and remove.
            if !is_network[i] && networks_pending > 0 {
                continue;
            }
            started[i] = true;
            running += 1;
            let incus = incus.clone();
            let node = plan.nodes[i].clone();
            let action = action.clone();
            let ctx = ctx.clone();
            let dep_ids: Vec<String> = deps[i].iter().map(|&d| plan.nodes[d].id.clone()).collect();
            set.spawn(async move {
                let t = Instant::now();
                let outcome = match run_journaled(&incus, &node, &action, dep_ids, &ctx).await {
                    Ok(o) => o,
                    Err((error, half_created)) => Outcome::Failed {
                        error,
                        half_created,
                    },
                };
                (i, outcome, t.elapsed().as_millis() as u64)
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
                    let ev = Event {
                        id: node.id.clone(),
                        outcome: Outcome::Interrupted,
                        ms: 0,
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
                if let Some(Ok((i, outcome, ms))) = joined {
                    running -= 1;
                    let ev = Event { id: plan.nodes[i].id.clone(), outcome, ms };
                    done += 1;
                    on_event(&ev, done, n);
                    results[i] = Some(ev);
                } else if let Some(Err(e)) = joined {
                    // A task panicked: should never happen; keep going.
                    running = running.saturating_sub(1);
                    eprintln!("internal error: a task failed: {e}");
                }
            }
            _ = rx.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
    watcher.abort();
    Report {
        results,
        interrupted: interrupt.load(Ordering::SeqCst),
    }
}
