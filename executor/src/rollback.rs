//! Undo an apply from its journal alone: in reverse order, delete what it
//! created, restore the prior configuration of what it updated, restore the
//! pre-apply snapshots of the instances it changed and then re-apply their
//! prior configuration (a restore brings back the snapshot's configuration,
//! which is not always the one anklume saw).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::incus::{enc, project_query, Api, Incus, IncusError};
use crate::journal::{self, Change, Record, Target, PROFILE_FIELDS};
use crate::snapshot::{self, InstanceRef};

/// One undo step.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The plan node id (or `instance/<project>/<name>` for snapshot-only
    /// rollbacks).
    pub node: String,
    /// What it acts on.
    pub target: Target,
    /// What it does.
    pub kind: StepKind,
    /// Node ids that depended on this one in the apply.
    #[serde(skip)]
    pub dependents: Vec<String>,
}

/// What a step does.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepKind {
    /// The apply created it: delete it.
    Delete,
    /// The apply updated it: put its prior state back.
    Restore {
        /// The prior state (`None` for a snapshot-only rollback).
        prior: Option<Value>,
        /// The pre-apply snapshot to restore first (instances).
        snapshot: Option<String>,
    },
}

impl Step {
    /// A line for the confirmation list.
    pub fn describe(&self) -> String {
        match &self.kind {
            StepKind::Delete if self.target == Target::Nftables => {
                format!("- {}: remove the table the apply created", self.node)
            }
            StepKind::Delete => format!("- delete {} (created by the apply)", self.node),
            StepKind::Restore {
                prior,
                snapshot: Some(s),
            } => format!(
                "~ restore {} (snapshot {s}{})",
                self.node,
                if prior.is_some() {
                    ", then its prior configuration"
                } else {
                    ""
                }
            ),
            StepKind::Restore { .. } => {
                format!("~ restore {} (prior configuration)", self.node)
            }
        }
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepResult {
    /// Undone.
    Restored {
        /// What was done.
        detail: String,
    },
    /// Nothing to undo (already as before).
    AlreadyDone {
        /// Why.
        detail: String,
    },
    /// Deliberately not undone.
    Skipped {
        /// Why.
        why: String,
    },
    /// Tried and failed.
    Failed {
        /// Incus's error.
        error: String,
    },
}

/// The undo steps of a journal, in the order they run (reverse of the
/// apply's). An intent without an outcome (the apply died during it) is
/// undone too: rollback checks what exists.
pub fn steps(j: &journal::Read) -> Vec<Step> {
    let mut snaps: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &j.records {
        if let Record::Snapshot {
            project,
            instance,
            name,
            ok: true,
            ..
        } = r
        {
            snaps.insert((project.clone(), instance.clone()), name.clone());
        }
    }
    let mut dependents: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &j.records {
        if let Record::Intent { node, deps, .. } = r {
            for d in deps {
                dependents.entry(d.as_str()).or_default().push(node.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in j.records.iter().rev() {
        let Record::Intent {
            node,
            target,
            change,
            prior,
            ..
        } = r
        else {
            continue;
        };
        if !seen.insert(node.clone()) {
            continue;
        }
        let kind = match (change, target) {
            (_, Target::Nftables) => StepKind::Restore {
                prior: prior.clone(),
                snapshot: None,
            },
            (Change::Create, _) => StepKind::Delete,
            (Change::Update, Target::Instance { project, name }) => StepKind::Restore {
                prior: prior.clone(),
                snapshot: snaps.get(&(project.clone(), name.clone())).cloned(),
            },
            (Change::Update, _) => StepKind::Restore {
                prior: prior.clone(),
                snapshot: None,
            },
        };
        out.push(Step {
            node: node.clone(),
            target: target.clone(),
            kind,
            dependents: dependents.get(node.as_str()).cloned().unwrap_or_default(),
        });
    }
    // The isolation table goes back last, once everything else is undone:
    // until then the table in force keeps isolating what the apply made,
    // and the last step knows what is left (`nft::after_rollback`).
    let (mut rest, nft): (Vec<Step>, Vec<Step>) =
        out.into_iter().partition(|s| s.target != Target::Nftables);
    rest.extend(nft);
    rest
}

/// Steps for a pre-apply snapshot without a journal (taken by anklume v1's
/// `snapshot-apply.sh`): restore every instance that has it, as v1 does.
pub async fn snapshot_only_steps(incus: &Incus, ts: &str) -> Result<Vec<Step>, String> {
    let name = format!("{}{ts}", snapshot::PRE_APPLY);
    let all = snapshot::list_all(incus).await.map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| Step {
            node: format!("instance/{}/{}", s.project, s.instance),
            target: Target::Instance {
                project: s.project,
                name: s.instance,
            },
            kind: StepKind::Restore {
                prior: None,
                snapshot: Some(name.clone()),
            },
            dependents: Vec::new(),
        })
        .collect())
}

/// Wait for Incus operations still running (those of a killed apply), so
/// that rollback does not race them.
pub async fn settle(incus: &Incus) -> Result<usize, IncusError> {
    let ops = incus
        .get("/1.0/operations?all-projects=true&recursion=1")
        .await?;
    let mut n = 0;
    for op in ops
        .metadata
        .get("running")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if op.get("class").and_then(Value::as_str) != Some("task") {
            continue;
        }
        if let Some(id) = op.get("id").and_then(Value::as_str) {
            n += 1;
            // Its own failure is not ours to report.
            let _ = incus.wait(&format!("/1.0/operations/{id}")).await;
        }
    }
    Ok(n)
}

/// Options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Delete protected instances too.
    pub force: bool,
    /// Instance steps in flight at once.
    pub parallelism: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            force: false,
            parallelism: 8,
        }
    }
}

/// Run the steps; results come back in the order of `steps`. Instance
/// steps go first, `parallelism` at a time (nothing the journal records
/// depends on an instance, so their order does not matter); the other
/// steps follow one by one in order, and a deletion is skipped while
/// something that depended on it is kept. `on_step` sees each result as it
/// ends.
pub async fn run(
    incus: &Incus,
    steps: &[Step],
    state_dir: &Path,
    opts: Options,
    mut on_step: impl FnMut(&Step, &StepResult, u64),
) -> Vec<StepResult> {
    let mut results: Vec<Option<StepResult>> = vec![None; steps.len()];
    // Nodes whose deletion did not happen: what they depend on stays too.
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut note = |i: usize, result: StepResult, ms: u64, kept: &mut BTreeSet<String>| {
        let step = &steps[i];
        if matches!(step.kind, StepKind::Delete)
            && matches!(
                result,
                StepResult::Skipped { .. } | StepResult::Failed { .. }
            )
        {
            kept.insert(step.node.clone());
        }
        on_step(step, &result, ms);
        results[i] = Some(result);
    };
    let is_instance = |s: &Step| matches!(s.target, Target::Instance { .. });
    let instances: Vec<usize> = (0..steps.len())
        .filter(|&i| is_instance(&steps[i]))
        .collect();
    for chunk in instances.chunks(opts.parallelism.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let (incus, step, dir) = (incus.clone(), steps[i].clone(), state_dir.to_path_buf());
            set.spawn(async move {
                let t = Instant::now();
                let r = run_step(&incus, &step, &dir, opts).await;
                (i, r, t.elapsed().as_millis() as u64)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((i, r, ms)) = joined else { continue };
            let result = r.unwrap_or_else(|e| StepResult::Failed {
                error: e.to_string(),
            });
            note(i, result, ms, &mut kept);
        }
    }
    // Every bridge the apply created or changed: with those the table in
    // force names, what the last step checks still exists.
    let networks: Vec<String> = steps
        .iter()
        .filter_map(|s| match &s.target {
            Target::Network { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    for (i, step) in steps.iter().enumerate() {
        if is_instance(step) {
            continue;
        }
        let t = Instant::now();
        let result = if let (StepKind::Restore { prior, .. }, Target::Nftables) =
            (&step.kind, &step.target)
        {
            restore_nftables(incus, prior.as_ref(), state_dir, &networks)
                .await
                .unwrap_or_else(|e| StepResult::Failed {
                    error: e.to_string(),
                })
        } else if let (StepKind::Delete, Some(user)) = (
            &step.kind,
            step.dependents.iter().find(|d| kept.contains(*d)),
        ) {
            StepResult::Skipped {
                why: format!("kept because {user} is kept"),
            }
        } else {
            run_step(incus, step, state_dir, opts)
                .await
                .unwrap_or_else(|e| StepResult::Failed {
                    error: e.to_string(),
                })
        };
        note(i, result, t.elapsed().as_millis() as u64, &mut kept);
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(StepResult::Failed {
                error: "internal error: the step did not run".into(),
            })
        })
        .collect()
}

/// The REST path of an Incus object (every target but the nftables table).
fn path_of(target: &Target) -> String {
    target.path().unwrap_or_default()
}

async fn run_step(
    incus: &Incus,
    step: &Step,
    state_dir: &Path,
    opts: Options,
) -> Result<StepResult, IncusError> {
    match (&step.kind, &step.target) {
        (StepKind::Restore { prior, .. }, Target::Nftables) => {
            restore_nftables(incus, prior.as_ref(), state_dir, &[]).await
        }
        (StepKind::Delete, Target::Instance { .. }) => delete_instance(incus, step, opts).await,
        (StepKind::Delete, target) => {
            let path = path_of(target);
            if incus.get_opt(&path).await?.is_none() {
                return Ok(StepResult::AlreadyDone {
                    detail: "does not exist".into(),
                });
            }
            incus.delete(&path).await?;
            Ok(StepResult::Restored {
                detail: "deleted".into(),
            })
        }
        (StepKind::Restore { prior, snapshot }, Target::Instance { project, name }) => {
            let i = InstanceRef {
                project: project.clone(),
                name: name.clone(),
            };
            if incus.get_opt(&path_of(&step.target)).await?.is_none() {
                return Ok(StepResult::Failed {
                    error: "the instance no longer exists: nothing to restore".into(),
                });
            }
            let mut done = Vec::new();
            let mut note = None;
            if let Some(snap) = snapshot {
                if snapshot::exists(incus, &i, snap).await? {
                    snapshot::restore(incus, &i, snap).await?;
                    done.push(format!("snapshot {snap} restored"));
                } else {
                    note = Some(format!(
                        "snapshot {snap} is gone (cleaned up?): data not restored"
                    ));
                }
            }
            if let Some(prior) = prior {
                if restore_instance_config(incus, &step.target, prior).await? {
                    done.push("configuration as before the apply".into());
                } else if done.is_empty() {
                    done.push("configuration already as before the apply".into());
                }
            }
            let mut detail = done.join("; ");
            if let Some(n) = note {
                if detail.is_empty() {
                    return Ok(StepResult::Skipped { why: n });
                }
                detail = format!("{detail}; {n}");
            }
            Ok(StepResult::Restored { detail })
        }
        (StepKind::Restore { prior, .. }, target) => {
            let Some(prior) = prior else {
                return Ok(StepResult::Skipped {
                    why: "no prior state in the journal".into(),
                });
            };
            let changed = restore_config(incus, target, prior).await?;
            Ok(if changed {
                StepResult::Restored {
                    detail: "configuration as before the apply".into(),
                }
            } else {
                StepResult::AlreadyDone {
                    detail: "configuration already as before the apply".into(),
                }
            })
        }
    }
}

/// Rollback's last step: put the `inet anklume` table back as it was before
/// the apply, unless that would leave bridges that still exist without the
/// isolation the table in force gives them ([`crate::nft::after_rollback`]):
/// then the table in force stays, and the step says why (skipped, so the
/// rollback is partial). `networks`: the bridges the journal names, checked
/// along with those the table in force isolates.
async fn restore_nftables(
    incus: &Incus,
    prior: Option<&Value>,
    state_dir: &Path,
    networks: &[String],
) -> Result<StepResult, IncusError> {
    let prior = prior.cloned().unwrap_or(Value::Null);
    let s = |k: &str| prior.get(k).and_then(Value::as_str).map(str::to_string);
    let (table, applied, listing) = (s("table"), s("applied"), s("applied_listing"));
    let internal =
        |e: tokio::task::JoinError| IncusError::transport(format!("internal error: {e}"));
    let dir = state_dir.to_path_buf();
    let live = tokio::task::spawn_blocking(move || crate::nft::read(&dir))
        .await
        .map_err(internal)?
        .map_err(IncusError::transport)?
        .live_table;
    let mut candidates: BTreeSet<String> = networks.iter().cloned().collect();
    if let Some(t) = &live {
        candidates.extend(crate::nft::isolated_bridges(t));
    }
    let mut existing = BTreeSet::new();
    for name in candidates {
        // A bridge whose state cannot be read counts as still there.
        let there = !matches!(
            incus
                .get_opt(&format!("/1.0/networks/{}", enc(&name)))
                .await,
            Ok(None)
        );
        if there {
            existing.insert(name);
        }
    }
    match crate::nft::after_rollback(&existing, table.as_deref(), live.as_deref()) {
        crate::nft::AfterRollback::KeepApplied { uncovered } => {
            let mut pairs: Vec<String> = uncovered
                .iter()
                .filter(|(a, b)| a < b || !uncovered.contains(&(b.clone(), a.clone())))
                .map(|(a, b)| format!("{a} and {b}"))
                .collect();
            pairs.dedup();
            Ok(StepResult::Skipped {
                why: format!(
                    "the table in force is kept: it separates bridges that are still there ({}), which the table from before the apply {}; roll back again once what keeps them is gone (`--force` deletes protected instances)",
                    pairs.join("; "),
                    if table.is_some() {
                        "does not separate"
                    } else {
                        "(none) would leave open"
                    }
                ),
            })
        }
        decision => {
            let had = decision == crate::nft::AfterRollback::LoadPrevious;
            let dir = state_dir.to_path_buf();
            tokio::task::spawn_blocking(move || {
                crate::nft::restore(
                    table.as_deref(),
                    applied.as_deref(),
                    listing.as_deref(),
                    &dir,
                )
            })
            .await
            .map_err(internal)?
            .map_err(IncusError::transport)?;
            Ok(StepResult::Restored {
                detail: if had {
                    "previous table loaded again".into()
                } else {
                    "table removed (there was none before, and no bridge it separated is left)"
                        .into()
                },
            })
        }
    }
}

fn obj(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn same(live: &Value, prior: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| {
        let a = live.get(*k).cloned().unwrap_or(Value::Null);
        let b = prior.get(*k).cloned().unwrap_or(Value::Null);
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        a == b
            || (empty(&a) && empty(&b))
            || (a.is_null() && b == json!(""))
            || (b.is_null() && a == json!(""))
    })
}

/// PUT `prior` back (GET first for the ETag). Returns whether it wrote.
async fn put_back(
    incus: &Incus,
    path: &str,
    prior: &Value,
    keys: &[&str],
) -> Result<bool, IncusError> {
    let cur = incus.get(path).await?;
    if same(&cur.metadata, prior, keys) {
        return Ok(false);
    }
    let mut body = Map::new();
    for k in keys {
        let v = prior.get(*k).cloned().unwrap_or(Value::Null);
        let v = match (*k, v) {
            ("description", Value::Null) => json!(""),
            (_, Value::Null) => json!({}),
            (_, v) => v,
        };
        body.insert(k.to_string(), v);
    }
    incus
        .put(path, &Value::Object(body), cur.etag.as_deref())
        .await?;
    Ok(true)
}

async fn restore_config(incus: &Incus, target: &Target, prior: &Value) -> Result<bool, IncusError> {
    match target {
        Target::Instance { .. } => restore_instance_config(incus, target, prior).await,
        Target::Nftables => Ok(false),
        _ => {
            let wrote = put_back(incus, &path_of(target), prior, target.fields()).await?;
            let profile = match (target, prior.get("default_profile")) {
                (Target::Project { name }, Some(p)) if !p.is_null() => {
                    let path = format!("/1.0/profiles/default?{}", project_query(name));
                    put_back(incus, &path, p, PROFILE_FIELDS).await?
                }
                _ => false,
            };
            Ok(wrote || profile)
        }
    }
}

/// Put an instance's prior config, devices, profiles and description back,
/// keeping the `volatile.*` keys Incus has now, and its prior run state.
async fn restore_instance_config(
    incus: &Incus,
    target: &Target,
    prior: &Value,
) -> Result<bool, IncusError> {
    let path = path_of(target);
    let cur = incus.get(&path).await?;
    let md = &cur.metadata;
    let mut live_cfg = obj(md.get("config"));
    let volatile: Map<String, Value> = live_cfg
        .iter()
        .filter(|(k, _)| k.starts_with("volatile."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    live_cfg.retain(|k, _| !k.starts_with("volatile."));
    let prior_cfg = obj(prior.get("config"));
    let mut wrote = false;
    let differs =
        live_cfg != prior_cfg || !same(md, prior, &["devices", "profiles", "description"]);
    if differs {
        let mut config = prior_cfg;
        config.extend(volatile);
        let mut body = json!({
            "config": config,
            "devices": prior.get("devices").cloned().unwrap_or(json!({})),
            "profiles": prior.get("profiles").cloned().unwrap_or(json!([])),
            "description": prior.get("description").cloned().unwrap_or(json!("")),
        });
        for k in ["architecture", "ephemeral", "stateful"] {
            if let Some(v) = md.get(k) {
                body[k] = v.clone();
            }
        }
        incus.put(&path, &body, cur.etag.as_deref()).await?;
        wrote = true;
    }
    // Its run state as before.
    let (project, name) = match target {
        Target::Instance { project, name } => (project, name),
        _ => return Ok(wrote),
    };
    let want = prior.get("status").and_then(Value::as_str);
    let now = incus.get(&path).await?;
    let is = now.metadata.get("status").and_then(Value::as_str);
    let state = state_path(project, name);
    match (want, is) {
        (Some("Running"), Some(s)) if s != "Running" => {
            incus.put(&state, &json!({"action": "start"}), None).await?;
            wrote = true;
        }
        (Some("Stopped"), Some("Running")) => {
            stop(incus, &path, &state).await?;
            wrote = true;
        }
        _ => {}
    }
    Ok(wrote)
}

/// The `/state` path of an instance.
fn state_path(project: &str, name: &str) -> String {
    format!(
        "/1.0/instances/{}/state?{}",
        enc(name),
        project_query(project)
    )
}

/// Whether Incus reports the instance at `path` stopped (a failed read
/// counts as not stopped).
async fn is_stopped(incus: &Incus, path: &str) -> bool {
    matches!(
        incus.get(path).await,
        Ok(r) if r.metadata.get("status").and_then(Value::as_str) != Some("Running")
    )
}

/// A forced stop. An error from a stop that finds the instance stopped
/// anyway (it stopped meanwhile) is not one.
async fn force_stop(incus: &Incus, path: &str, state: &str) -> Result<(), IncusError> {
    match incus
        .put(state, &json!({"action": "stop", "force": true}), None)
        .await
    {
        Ok(_) => Ok(()),
        Err(_) if is_stopped(incus, path).await => Ok(()),
        Err(e) => Err(e),
    }
}

/// A clean stop with a timeout, then a forced one.
async fn stop(incus: &Incus, path: &str, state: &str) -> Result<(), IncusError> {
    if incus
        .put(state, &json!({"action": "stop", "timeout": 10}), None)
        .await
        .is_ok()
        || is_stopped(incus, path).await
    {
        return Ok(());
    }
    force_stop(incus, path, state).await
}

async fn delete_instance(
    incus: &Incus,
    step: &Step,
    opts: Options,
) -> Result<StepResult, IncusError> {
    let Target::Instance { project, name } = &step.target else {
        unreachable!("called for instances")
    };
    let path = path_of(&step.target);
    let Some(cur) = incus.get_opt(&path).await? else {
        return Ok(StepResult::AlreadyDone {
            detail: "does not exist".into(),
        });
    };
    let md = &cur.metadata;
    let protected = md
        .get("config")
        .and_then(|c| c.get("security.protection.delete"))
        .and_then(Value::as_str)
        == Some("true");
    if protected && !opts.force {
        return Ok(StepResult::Skipped {
            why: "protected (security.protection.delete, from ephemeral: false); `anklume rollback --force` deletes it".into(),
        });
    }
    if md.get("status").and_then(Value::as_str) == Some("Running") {
        // It is deleted next: no need for a clean shutdown.
        force_stop(incus, &path, &state_path(project, name)).await?;
    }
    if protected {
        let cur = incus.get(&path).await?;
        let body = json!({
            "config": {"security.protection.delete": "false"},
            "description": cur.metadata.get("description").cloned().unwrap_or(json!("")),
        });
        incus.patch(&path, &body, cur.etag.as_deref()).await?;
    }
    incus.delete(&path).await?;
    Ok(StepResult::Restored {
        detail: if protected {
            "deleted (protected; --force)".into()
        } else {
            "deleted".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(seq: u64, node: &str, target: Target, change: Change, deps: &[&str]) -> Record {
        Record::Intent {
            seq,
            node: node.into(),
            target,
            change,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            prior: (change == Change::Update).then(|| json!({"config": {}})),
        }
    }

    #[test]
    fn steps_run_in_reverse_and_know_their_dependents() {
        let j = journal::Read {
            ts: "20260101-000000".into(),
            path: "x".into(),
            records: vec![
                Record::Snapshot {
                    project: "pro".into(),
                    instance: "pro-dev".into(),
                    name: "pre-apply-20260101-000000".into(),
                    ok: true,
                    error: None,
                },
                intent(
                    1,
                    "network/net-pro",
                    Target::Network {
                        name: "net-pro".into(),
                    },
                    Change::Create,
                    &[],
                ),
                Record::Done {
                    seq: 1,
                    ok: true,
                    error: None,
                },
                intent(
                    2,
                    "instance/pro/pro-dev",
                    Target::Instance {
                        project: "pro".into(),
                        name: "pro-dev".into(),
                    },
                    Change::Update,
                    &["network/net-pro"],
                ),
            ],
        };
        let s = steps(&j);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].node, "instance/pro/pro-dev");
        assert!(matches!(
            &s[0].kind,
            StepKind::Restore { snapshot: Some(n), prior: Some(_) } if n == "pre-apply-20260101-000000"
        ));
        assert_eq!(s[1].node, "network/net-pro");
        assert!(matches!(s[1].kind, StepKind::Delete));
        assert_eq!(s[1].dependents, vec!["instance/pro/pro-dev".to_string()]);
        assert!(s[0].describe().contains("then its prior configuration"));
    }

    /// The table goes back after everything else (bridges deleted or kept),
    /// so an interrupted rollback leaves the apply's table in force and the
    /// last step knows what is left.
    #[test]
    fn the_nftables_table_is_the_last_step() {
        let net = |seq, name: &str| {
            intent(
                seq,
                &format!("network/{name}"),
                Target::Network { name: name.into() },
                Change::Create,
                &[],
            )
        };
        let j = journal::Read {
            ts: "20260101-000000".into(),
            path: "x".into(),
            records: vec![
                net(1, "net-a"),
                intent(
                    2,
                    "nftables/anklume",
                    Target::Nftables,
                    Change::Create,
                    &["network/net-a"],
                ),
                net(3, "net-b"),
            ],
        };
        let s = steps(&j);
        let order: Vec<&str> = s.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(
            order,
            ["network/net-b", "network/net-a", "nftables/anklume"]
        );
    }

    #[test]
    fn equal_ignores_empty_versus_missing() {
        assert!(same(
            &json!({"config": {}, "description": ""}),
            &json!({"config": null}),
            &["config", "description"]
        ));
        assert!(!same(
            &json!({"config": {"a": "1"}}),
            &json!({"config": {}}),
            &["config"]
        ));
    }
}
