//! Undoing an apply from its journal alone: the steps (in reverse order,
//! delete what it created, restore the prior state of what it updated,
//! restore the pre-apply snapshots of the instances it changed and then
//! their prior configuration), and running them. How each kind is undone is
//! in its module under [`crate::kind`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::incus::{Api, IncusError};
use crate::journal::{self, Record, Verb};
use crate::kind::{self, Target, UndoContext};
use crate::snapshot;

pub use crate::model::{StepResult, Undo};

/// One undo step.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The plan node id (or `instance/<project>/<name>` for snapshot-only
    /// rollbacks).
    pub node: String,
    /// What it acts on.
    pub target: Target,
    /// What it does.
    pub undo: Undo,
    /// Node ids that depended on this one in the apply.
    #[serde(skip)]
    pub dependents: Vec<String>,
}

impl Step {
    /// A line for the confirmation list.
    pub fn describe(&self) -> String {
        match &self.undo {
            Undo::Delete if self.target.is_nftables() => {
                format!("- {}: remove the table the apply created", self.node)
            }
            Undo::Delete => format!("- delete {} (created by the apply)", self.node),
            Undo::Restore {
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
            Undo::Restore { .. } => {
                format!("~ restore {} (prior configuration)", self.node)
            }
            Undo::Recreate { kept: Some(k), .. } => format!(
                "+ create {} again from its kept copy ({}; deleted by anklume)",
                self.node,
                kind::instance::human_bytes(k.bytes)
            ),
            Undo::Recreate { .. } if matches!(self.target, Target::Instance(_)) => format!(
                "! {} was deleted without a kept copy (--no-keep): it cannot come back",
                self.node
            ),
            Undo::Recreate { .. } => format!("+ create {} again (deleted by anklume)", self.node),
        }
    }
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
    // Instances updated by the apply: their own step restores the snapshot.
    let instance_steps: BTreeSet<(String, String)> = j
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Intent {
                target: Target::Instance(a),
                change: Verb::Update,
                ..
            } => Some((a.project.clone(), a.name.clone())),
            _ => None,
        })
        .collect();
    // A node changed more than once by one apply (an instance whose
    // address is freed first, then updated) is undone once, where its last
    // change was, back to the state before its first one.
    let mut first: BTreeMap<&str, (&Verb, &Option<serde_json::Value>, u64)> = BTreeMap::new();
    for r in &j.records {
        if let Record::Intent {
            node,
            change,
            prior,
            seq,
            ..
        } = r
        {
            first.entry(node.as_str()).or_insert((change, prior, *seq));
        }
    }
    let kept: BTreeMap<u64, &crate::model::Kept> = j
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Kept { seq, kept } => Some((*seq, kept)),
            _ => None,
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in j.records.iter().rev() {
        let Record::Intent { node, target, .. } = r else {
            continue;
        };
        if !seen.insert(node.clone()) {
            continue;
        }
        let (change, prior, seq) = first[node.as_str()];
        let undo = match (change, target) {
            (Verb::Delete, _) => Undo::Recreate {
                prior: prior.clone(),
                kept: kept.get(&seq).map(|k| (*k).clone()),
            },
            // The table's prior state is kept for a create too.
            (_, Target::Nftables(_)) => Undo::Restore {
                prior: prior.clone(),
                snapshot: None,
            },
            // Provisioning is undone by the instance's snapshot, unless
            // the instance's own step restores it (and its configuration,
            // fingerprint included), and by the fingerprint it had.
            (_, Target::Provision(a)) => Undo::Restore {
                prior: prior.clone(),
                snapshot: (!instance_steps.contains(&(a.project.clone(), a.instance.clone())))
                    .then(|| snaps.get(&(a.project.clone(), a.instance.clone())).cloned())
                    .flatten(),
            },
            (Verb::Create, _) => Undo::Delete,
            (Verb::Update, Target::Instance(a)) => Undo::Restore {
                prior: prior.clone(),
                snapshot: snaps.get(&(a.project.clone(), a.name.clone())).cloned(),
            },
            (Verb::Update, _) => Undo::Restore {
                prior: prior.clone(),
                snapshot: None,
            },
        };
        out.push(Step {
            node: node.clone(),
            target: target.clone(),
            undo,
            dependents: dependents.get(node.as_str()).cloned().unwrap_or_default(),
        });
    }
    // The isolation table goes back last, once everything else is undone:
    // until then the table in force keeps isolating what the apply made,
    // and the last step knows what is left (`nft::after_rollback`).
    let (mut rest, nft): (Vec<Step>, Vec<Step>) =
        out.into_iter().partition(|s| !s.target.is_nftables());
    rest.extend(nft);
    rest
}

/// The addresses the restored instances had before the apply (address →
/// the instance), and those instances.
fn wanted_back(
    steps: &[Step],
) -> (
    BTreeMap<String, (String, String)>,
    Vec<&kind::instance::Address>,
) {
    let mut wanted: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut restored: Vec<&kind::instance::Address> = Vec::new();
    for s in steps {
        let (Target::Instance(a), Undo::Restore { prior, .. }) = (&s.target, &s.undo) else {
            continue;
        };
        restored.push(a);
        if let Some(p) = prior {
            for ip in crate::live::instance_ips(p) {
                wanted.insert(ip, (a.project.clone(), a.name.clone()));
            }
        }
    }
    (wanted, restored)
}

/// Instances the apply created that a rollback without `--force` keeps
/// (protected) although they hold an address a restored instance takes
/// back: that restore would fail (Incus refuses two NICs with one
/// address), so the rollback needs `--force`. One message each.
pub async fn kept_holders<A: Api>(api: &A, steps: &[Step]) -> Vec<String> {
    let (wanted, _) = wanted_back(steps);
    let mut out = Vec::new();
    for s in steps {
        let (Target::Instance(a), Undo::Delete) = (&s.target, &s.undo) else {
            continue;
        };
        let Ok(Some(cur)) = api.get_opt(&a.path()).await else {
            continue;
        };
        if !kind::instance::is_protected(&cur.metadata) {
            continue;
        }
        for (_, ip) in kind::instance::nic_addresses(&cur.metadata) {
            if let Some((p, n)) = wanted.get(ip) {
                out.push(format!(
                    "instance {}/{} (created by the apply, protected) holds {ip}, which {p}/{n} takes back",
                    a.project, a.name
                ));
            }
        }
    }
    out
}

/// Give an instance's addresses up ([`kind::instance::move_away`]; forced
/// stop for one deleted next): `(instance, NICs, stopped)`, or `None` when
/// the addresses could not be freed. What fails is said in `warnings`.
async fn move_away<A: Api>(
    api: &A,
    a: &kind::instance::Address,
    nics: &[String],
    force: bool,
    warnings: &mut Vec<String>,
) -> Option<(kind::instance::Address, Vec<String>, bool)> {
    use kind::instance::MoveAwayError;
    let stopped = match kind::instance::move_away(api, a, nics, force).await {
        Ok(moved) => {
            if let Err(e) = moved.released {
                warnings.push(format!(
                    "{}/{}: {e} (the instance taking the address back may get another one until the lease ends)",
                    a.project, a.name
                ));
            }
            moved.stopped
        }
        Err(MoveAwayError::Free(e)) => {
            warnings.push(format!(
                "freeing the address of {}/{}: {e} (the instance taking it back may fail)",
                a.project, a.name
            ));
            return None;
        }
        Err(MoveAwayError::Stop(e)) => {
            warnings.push(format!(
                "stopping {}/{} to give its address up: {e} (it keeps it until its lease ends)",
                a.project, a.name
            ));
            false
        }
    };
    Some((a.clone(), nics.to_vec(), stopped))
}

/// Before the steps run: the addresses the restored instances will have
/// again that other instances of the same rollback hold now (an apply that
/// shifted or swapped addresses) are freed, so that each restore, in any
/// order, can take its own back (Incus refuses a snapshot restore or an
/// update whose NIC address another NIC holds), and those of them that run
/// are stopped: a running instance keeps its leased address until it
/// starts again (each restore starts it again, as the journal recorded it).
/// Returns the instances freed, their NICs, and whether they were stopped.
pub async fn free_taken_addresses<A: Api>(
    api: &A,
    steps: &[Step],
    force: bool,
) -> (
    Vec<(kind::instance::Address, Vec<String>, bool)>,
    Vec<String>,
) {
    let (wanted, restored) = wanted_back(steps);
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for a in restored {
        let Ok(Some(cur)) = api.get_opt(&a.path()).await else {
            continue;
        };
        let nics: Vec<String> = kind::instance::nic_addresses(&cur.metadata)
            .into_iter()
            .filter(|(_, ip)| {
                wanted
                    .get(*ip)
                    .is_some_and(|(p, n)| (p, n) != (&a.project, &a.name))
            })
            .map(|(name, _)| name.to_string())
            .collect();
        if nics.is_empty() {
            continue;
        }
        if let Some(done) = move_away(api, a, &nics, false, &mut warnings).await {
            out.push(done);
        }
    }
    // An instance the rollback deletes that holds an address a restored
    // one takes back is freed and stopped first (it goes anyway): the
    // restored one then gets its address whatever the order of the steps.
    // One kept (protected, without --force) keeps its address.
    for s in steps {
        let (Target::Instance(a), Undo::Delete) = (&s.target, &s.undo) else {
            continue;
        };
        let Ok(Some(cur)) = api.get_opt(&a.path()).await else {
            continue;
        };
        if kind::instance::is_protected(&cur.metadata) && !force {
            continue;
        }
        let nics: Vec<String> = kind::instance::nic_addresses(&cur.metadata)
            .into_iter()
            .filter(|(_, ip)| wanted.contains_key(*ip))
            .map(|(name, _)| name.to_string())
            .collect();
        if nics.is_empty() {
            continue;
        }
        if let Some(done) = move_away(api, a, &nics, true, &mut warnings).await {
            out.push(done);
        }
    }
    (out, warnings)
}

/// Steps for a pre-apply snapshot without a journal (taken by anklume v1's
/// `snapshot-apply.sh`): restore every instance that has it, as v1 does.
pub async fn snapshot_only_steps<A: Api>(api: &A, ts: &str) -> Result<Vec<Step>, IncusError> {
    let name = format!("{}{ts}", snapshot::PRE_APPLY);
    let all = snapshot::list_all(api).await?;
    Ok(all
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| Step {
            node: format!("instance/{}/{}", s.project, s.instance),
            target: Target::Instance(kind::instance::Address {
                project: s.project,
                name: s.instance,
            }),
            undo: Undo::Restore {
                prior: None,
                snapshot: Some(name.clone()),
            },
            dependents: Vec::new(),
        })
        .collect())
}

/// Wait for Incus operations still running (those of a killed apply), so
/// that rollback does not race them.
pub async fn settle<A: Api>(api: &A) -> Result<usize, IncusError> {
    let ops = api
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
            let _ = api.wait(&format!("/1.0/operations/{id}")).await;
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

/// Run the steps; results come back in the order of `steps`. What anklume
/// deleted and rollback creates again (bridges, projects, profiles) comes
/// first, in order; then the instance steps, `parallelism` at a time
/// (nothing the journal records depends on an instance, so their order
/// does not matter); the other steps follow one by one in order, and a
/// deletion is skipped while something that depended on it is kept. `on_step` sees each result as it
/// ends, with the milliseconds it took.
pub async fn run<A: Api>(
    api: &A,
    steps: &[Step],
    ctx: &UndoContext,
    parallelism: usize,
    mut on_step: impl FnMut(&Step, &StepResult, u64),
) -> Vec<StepResult> {
    let mut results: Vec<Option<StepResult>> = vec![None; steps.len()];
    // Nodes whose deletion did not happen: what they depend on stays too.
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut note = |i: usize, result: StepResult, ms: u64, kept: &mut BTreeSet<String>| {
        let step = &steps[i];
        if matches!(step.undo, Undo::Delete)
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
    // Every bridge the apply created or changed: with those the table in
    // force names, what the nftables step checks still exists.
    let ctx = UndoContext {
        networks: steps
            .iter()
            .filter_map(|s| match &s.target {
                Target::Network(a) => Some(a.name.clone()),
                _ => None,
            })
            .collect(),
        ..ctx.clone()
    };
    let is_instance = |s: &Step| matches!(s.target, Target::Instance(_));
    // What anklume deleted (prune, flush, remove) comes back first, in
    // order (bridges, projects, profiles: the reverse of the deletes), so
    // that the instances it held can be created again in it.
    let recreated = |s: &Step| !is_instance(s) && matches!(s.undo, Undo::Recreate { .. });
    for (i, step) in steps.iter().enumerate().filter(|(_, s)| recreated(s)) {
        let t = Instant::now();
        let r = failed_on_error(kind::undo(api, &step.target, &step.undo, &ctx).await);
        note(i, r, t.elapsed().as_millis() as u64, &mut kept);
    }
    let instances: Vec<usize> = (0..steps.len())
        .filter(|&i| is_instance(&steps[i]))
        .collect();
    for chunk in instances.chunks(parallelism.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let (api, step, ctx) = (api.clone(), steps[i].clone(), ctx.clone());
            set.spawn(async move {
                let t = Instant::now();
                let r = kind::undo(&api, &step.target, &step.undo, &ctx).await;
                (i, r, t.elapsed().as_millis() as u64)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((i, r, ms)) = joined else { continue };
            note(i, failed_on_error(r), ms, &mut kept);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if is_instance(step) || recreated(step) {
            continue;
        }
        let t = Instant::now();
        let result = match (
            &step.undo,
            step.dependents.iter().find(|d| kept.contains(*d)),
        ) {
            (Undo::Delete, Some(user)) if !step.target.is_nftables() => StepResult::Skipped {
                why: format!("kept because {user} is kept"),
            },
            _ => failed_on_error(kind::undo(api, &step.target, &step.undo, &ctx).await),
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

fn failed_on_error(r: Result<StepResult, IncusError>) -> StepResult {
    r.unwrap_or_else(|e| StepResult::Failed {
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(seq: u64, node: &str, target: Target, change: Verb, deps: &[&str]) -> Record {
        Record::Intent {
            seq,
            node: node.into(),
            target,
            change,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            prior: (change == Verb::Update).then(|| json!({"config": {}})),
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
                    Target::Network(kind::network::Address {
                        name: "net-pro".into(),
                    }),
                    Verb::Create,
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
                    Target::Instance(kind::instance::Address {
                        project: "pro".into(),
                        name: "pro-dev".into(),
                    }),
                    Verb::Update,
                    &["network/net-pro"],
                ),
            ],
        };
        let s = steps(&j);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].node, "instance/pro/pro-dev");
        assert!(matches!(
            &s[0].undo,
            Undo::Restore { snapshot: Some(n), prior: Some(_) } if n == "pre-apply-20260101-000000"
        ));
        assert_eq!(s[1].node, "network/net-pro");
        assert!(matches!(s[1].undo, Undo::Delete));
        assert_eq!(s[1].dependents, vec!["instance/pro/pro-dev".to_string()]);
        assert!(s[0].describe().contains("then its prior configuration"));
    }

    /// A node changed twice by one apply (an instance whose address is
    /// freed before its update) is one step, where its last change was,
    /// back to the state before its first change.
    #[test]
    fn a_node_changed_twice_goes_back_to_before_its_first_change() {
        let inst = |name: &str| {
            Target::Instance(kind::instance::Address {
                project: "pro".into(),
                name: name.into(),
            })
        };
        let update = |seq, name: &str, prior: serde_json::Value| Record::Intent {
            seq,
            node: format!("instance/pro/{name}"),
            target: inst(name),
            change: Verb::Update,
            deps: Vec::new(),
            prior: Some(prior),
        };
        let j = journal::Read {
            ts: "20260101-000000".into(),
            path: "x".into(),
            records: vec![
                update(
                    1,
                    "a",
                    json!({"devices": {"eth0": {"ipv4.address": "10.0.0.1"}}}),
                ),
                update(
                    2,
                    "b",
                    json!({"devices": {"eth0": {"ipv4.address": "10.0.0.2"}}}),
                ),
                update(3, "a", json!({"devices": {"eth0": {}}})),
                update(4, "b", json!({"devices": {"eth0": {}}})),
            ],
        };
        let s = steps(&j);
        let got: Vec<(&str, String)> = s
            .iter()
            .map(|st| match &st.undo {
                Undo::Restore { prior: Some(p), .. } => (
                    st.node.as_str(),
                    p["devices"]["eth0"]["ipv4.address"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("instance/pro/b", "10.0.0.2".to_string()),
                ("instance/pro/a", "10.0.0.1".to_string())
            ]
        );
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
                Target::Network(kind::network::Address { name: name.into() }),
                Verb::Create,
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
                    Target::Nftables(kind::nftables::Address {}),
                    Verb::Create,
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
}
