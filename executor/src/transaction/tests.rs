//! The transactions and the scheduler against the in-memory [`Fake`]
//! Incus (no daemon): ordering, failures, interruption, the journal, and a
//! rollback planned from a partial journal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anklume_plan::codec::{Header, SourceDigest};
use anklume_plan::{Plan, Resource};

use super::{apply, rollback, Event, Sink, TxError};
use crate::decide::Action;
use crate::incus::fake::Fake;
use crate::incus::{Api, Counters, IncusError, Method, Reply};
use crate::journal::{self, Record, Verb};
use crate::kind::tests::{chain, instance, live_of, network, profile, project, volume, IMAGE};
use crate::kind::{RunContext, Target};
use crate::nft::fake::FakeNft;
use crate::schedule::{self, Interrupt, NodeResult};
use crate::undo::{self, StepResult, Undo};
use serde_json::Value;

/// A domain: bridge → project → profile, volume → two instances (each
/// node depends on the ones before it).
fn domain(desc: &str) -> Plan {
    chain(vec![
        network("net-kt", desc),
        project("kt", desc),
        profile("kt", "kt-extra", desc),
        volume("kt", "kt-data", "1GiB"),
        instance("kt", "kt-a", desc),
        instance("kt", "kt-b", desc),
    ])
}

fn recorder() -> (Sink, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |e: &Event| s.lock().unwrap().push(e.clone())),
        seen,
    )
}

fn opts(dir: &std::path::Path) -> apply::Options {
    apply::Options {
        state_dir: dir.to_path_buf(),
        nftables: false,
        sources_dir: dir.to_path_buf(),
        ..apply::Options::default()
    }
}

async fn apply_plan(fake: &Fake, plan: Plan, dir: &std::path::Path) -> apply::Summary {
    let (sink, _) = recorder();
    let p = apply::prepare(fake.clone(), plan, &Header::default(), opts(dir), &sink)
        .await
        .unwrap();
    p.run(&sink).await.unwrap()
}

/// Creates go in dependency order, each after what it depends on.
#[tokio::test]
async fn creates_follow_the_dependencies() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let s = apply_plan(&fake, domain("one"), dir.path()).await;
    assert!(s.ok(), "{:?}", s.report);
    assert_eq!(s.count("created"), 6);
    let posts: Vec<String> = fake
        .writes()
        .into_iter()
        .filter(|(m, _)| *m == Method::Post)
        .map(|(_, p)| p)
        .collect();
    let at = |prefix: &str| posts.iter().position(|p| p.starts_with(prefix)).unwrap();
    assert!(at("/1.0/networks") < at("/1.0/projects"), "{posts:?}");
    assert!(at("/1.0/projects") < at("/1.0/profiles"), "{posts:?}");
    assert!(at("/1.0/profiles") < at("/1.0/storage-pools"), "{posts:?}");
    assert!(at("/1.0/storage-pools") < at("/1.0/instances"), "{posts:?}");
    // Converged: the second apply only reads.
    fake.clear_log();
    let s = apply_plan(&fake, domain("one"), dir.path()).await;
    assert_eq!(s.count("unchanged"), 6);
    assert_eq!(fake.writes(), vec![]);
    assert!(s.journal.is_none(), "no change, no journal");
}

/// The fake, but each write first looks at the newest journal in `dir`
/// and notes the writes made while no intent was open.
#[derive(Clone)]
struct Watched {
    fake: Fake,
    dir: PathBuf,
    unjournaled: Arc<Mutex<Vec<(Method, String)>>>,
}

impl Api for Watched {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, IncusError> {
        let open = journal::unfinished(&self.dir)
            .is_some_and(|j| j.changes().iter().any(|(_, done)| done.is_none()));
        if method != Method::Get && !open {
            self.unjournaled
                .lock()
                .unwrap()
                .push((method, path.to_string()));
        }
        self.fake.call(method, path, body, if_match).await
    }

    async fn wait(&self, op: &str) -> Result<Reply, IncusError> {
        self.fake.wait(op).await
    }

    fn counters(&self) -> &Counters {
        self.fake.counters()
    }

    async fn download(&self, path: &str, to: &std::path::Path) -> Result<u64, IncusError> {
        self.fake.download(path, to).await
    }

    async fn upload(
        &self,
        path: &str,
        from: &std::path::Path,
        headers: &[(&str, String)],
    ) -> Result<Reply, IncusError> {
        self.fake.upload(path, from, headers).await
    }
}

/// Every change is journaled before it is made: each write to Incus
/// happens while its intent is in the journal without an outcome.
#[tokio::test]
async fn each_change_is_journaled_before_it_is_made() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let watched = Watched {
        fake: fake.clone(),
        dir: dir.path().to_path_buf(),
        unjournaled: Arc::default(),
    };
    let (sink, _) = recorder();
    let p = apply::prepare(
        watched.clone(),
        domain("one"),
        &Header::default(),
        opts(dir.path()),
        &sink,
    )
    .await
    .unwrap();
    let s = p.run(&sink).await.unwrap();
    assert_eq!(s.count("created"), 6, "{:?}", s.report);
    assert!(!fake.writes().is_empty());
    assert_eq!(*watched.unjournaled.lock().unwrap(), vec![]);
}

/// A failed node skips what depends on it, names the cause, and the run
/// reports the failure; the journal records the failed intent.
#[tokio::test]
async fn a_failure_skips_its_dependents() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    fake.fail(
        Method::Post,
        "/1.0/profiles",
        IncusError {
            code: 400,
            message: "refused by the test".into(),
        },
    );
    let s = apply_plan(&fake, domain("one"), dir.path()).await;
    assert!(!s.ok());
    let results: Vec<(String, NodeResult)> = s
        .report
        .results
        .iter()
        .flatten()
        .map(|e| (e.id.clone(), e.result.clone()))
        .collect();
    assert_eq!(results[0].1, NodeResult::Created);
    assert_eq!(results[1].1, NodeResult::Created);
    assert!(
        matches!(&results[2].1, NodeResult::Failed { error, .. } if error.contains("refused by the test"))
    );
    // Each skipped node names the dependency that did not end well.
    for (k, (_, r)) in results.iter().enumerate().skip(3) {
        assert_eq!(
            *r,
            NodeResult::Skipped {
                because: results[k - 1].0.clone()
            }
        );
    }
    let (ts, _) = s.journal.clone().unwrap();
    let j = journal::read(&journal::path(dir.path(), &ts)).unwrap();
    assert_eq!(j.ended(), Some("failed"));
    let oks: Vec<Option<bool>> = j.changes().iter().map(|c| c.1).collect();
    assert_eq!(oks, [Some(true), Some(true), Some(false)]);
}

/// Raised before the run: nothing starts, every node says so.
#[tokio::test]
async fn an_interrupt_starts_nothing_new() {
    let fake = Fake::new().with_image(IMAGE);
    let plan = domain("one");
    let live = live_of(&fake).await;
    let decisions = crate::decide::decide(&plan, &live);
    let stop = Arc::new(Interrupt::default());
    stop.raise();
    let report = schedule::run(
        &fake,
        &plan,
        &decisions,
        8,
        &RunContext::default(),
        stop,
        |_, _, _| {},
    )
    .await;
    assert!(report.interrupted);
    assert!(report
        .results
        .iter()
        .flatten()
        .all(|e| e.result == NodeResult::Interrupted));
    assert_eq!(fake.writes(), vec![]);
}

/// An update journals the prior state first; rollback from the journal
/// alone brings every object back, then deletes what was created.
#[tokio::test]
async fn rollback_undoes_an_apply_from_its_journal() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let first = apply_plan(&fake, domain("one"), dir.path()).await;
    // A second apply: everything updated (and the instances snapshotted).
    let s = apply_plan(&fake, domain("two"), dir.path()).await;
    assert_eq!(s.count("updated"), 5, "{:?}", s.report);
    let (ts, _) = s.journal.clone().unwrap();
    let j = journal::read(&journal::path(dir.path(), &ts)).unwrap();
    assert_eq!(j.snapshot(), Some(format!("pre-apply-{ts}").as_str()));
    let intents: Vec<_> = j
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Intent { change, prior, .. } => Some((*change, prior.is_some())),
            _ => None,
        })
        .collect();
    assert!(
        intents.iter().all(|i| *i == (Verb::Update, true)),
        "{intents:?}"
    );
    // The instances it changed were snapshotted before, each journaled.
    let snap = format!("pre-apply-{ts}");
    for name in ["kt-a", "kt-b"] {
        let i = crate::snapshot::InstanceRef {
            project: "kt".into(),
            name: name.into(),
        };
        assert!(
            crate::snapshot::exists(&fake, &i, &snap).await.unwrap(),
            "{name}"
        );
    }
    let snapshots = j
        .records
        .iter()
        .filter(|r| matches!(r, Record::Snapshot { ok: true, name, .. } if *name == snap))
        .count();
    assert_eq!(snapshots, 2);

    let (sink, seen) = recorder();
    let opts = rollback::Options {
        state_dir: dir.path().to_path_buf(),
        timestamp: Some(ts.clone()),
        force: false,
        parallelism: 4,
        nft: Arc::new(FakeNft::new()),
    };
    let p = rollback::prepare(fake.clone(), opts, &sink).await.unwrap();
    assert_eq!(p.later, Vec::<String>::new());
    let summary = p.run(&sink).await;
    assert_eq!(summary.outcome, "complete", "{summary:?}");
    assert_eq!(seen.lock().unwrap().len(), summary.results.len());
    let live = live_of(&fake).await;
    for node in &domain("one").nodes {
        assert_eq!(
            crate::kind::decide(&node.resource, &live),
            Action::Unchanged,
            "{}",
            node.id
        );
    }
    // And the first apply's rollback deletes everything it created.
    let (first_ts, _) = first.journal.unwrap();
    let (sink, _) = recorder();
    let opts = rollback::Options {
        state_dir: dir.path().to_path_buf(),
        timestamp: Some(first_ts),
        force: false,
        parallelism: 4,
        nft: Arc::new(FakeNft::new()),
    };
    let p = rollback::prepare(fake.clone(), opts, &sink).await.unwrap();
    assert_eq!(p.later, vec![ts]);
    assert_eq!(p.run(&sink).await.outcome, "complete");
    let live = live_of(&fake).await;
    for node in &domain("one").nodes {
        assert_eq!(
            crate::kind::decide(&node.resource, &live),
            Action::Create,
            "{}",
            node.id
        );
    }
}

/// A journal cut short (the apply was killed during its third change):
/// the unfinished intent is undone too, in reverse order, and a deletion
/// whose dependent is kept is skipped.
#[tokio::test]
async fn rollback_planning_after_a_partial_journal() {
    let net = Target::Network(crate::kind::network::Address {
        name: "net-kt".into(),
    });
    let proj = Target::Project(crate::kind::project::Address { name: "kt".into() });
    let inst = Target::Instance(crate::kind::instance::Address {
        project: "kt".into(),
        name: "kt-a".into(),
    });
    let intent = |seq, node: &str, target: &Target, change, deps: &[&str]| Record::Intent {
        seq,
        node: node.into(),
        target: target.clone(),
        change,
        deps: deps.iter().map(|d| d.to_string()).collect(),
        prior: None,
    };
    let done = |seq| Record::Done {
        seq,
        ok: true,
        error: None,
    };
    let j = journal::Read {
        ts: "20260101-000000".into(),
        path: "x".into(),
        records: vec![
            intent(1, "network/net-kt", &net, Verb::Create, &[]),
            done(1),
            intent(2, "project/kt", &proj, Verb::Create, &["network/net-kt"]),
            done(2),
            intent(3, "instance/kt/kt-a", &inst, Verb::Create, &["project/kt"]),
        ],
    };
    let steps = undo::steps(&j);
    let order: Vec<&str> = steps.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(order, ["instance/kt/kt-a", "project/kt", "network/net-kt"]);
    assert!(steps.iter().all(|s| s.undo == Undo::Delete));
    assert_eq!(steps[1].dependents, ["instance/kt/kt-a"]);

    // Run against a fake where the killed create did happen, protected:
    // without --force the instance stays, and so does what it needs.
    let fake = Fake::new().with_image(IMAGE);
    let ctx = RunContext::default();
    let Resource::Instance(mut i) = instance("kt", "kt-a", "") else {
        unreachable!()
    };
    i.config
        .insert("security.protection.delete".into(), "true".into());
    for r in [
        network("net-kt", ""),
        project("kt", ""),
        Resource::Instance(i),
    ] {
        crate::kind::apply(&fake, &r, true, &ctx).await.unwrap();
    }
    let results = undo::run(
        &fake,
        &steps,
        &crate::kind::UndoContext::default(),
        4,
        |_, _, _| {},
    )
    .await;
    assert!(matches!(&results[0], StepResult::Skipped { why } if why.contains("protected")));
    assert!(
        matches!(&results[1], StepResult::Skipped { why } if why.contains("kept because instance/kt/kt-a"))
    );
    assert!(
        matches!(&results[2], StepResult::Skipped { why } if why.contains("kept because project/kt"))
    );
    // With --force, all of it goes.
    let ctx = crate::kind::UndoContext {
        force: true,
        ..Default::default()
    };
    let results = undo::run(&fake, &steps, &ctx, 4, |_, _, _| {}).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, StepResult::Restored { .. })),
        "{results:?}"
    );
    assert_eq!(fake.get_object("/1.0/networks/net-kt"), None);
}

/// prepare refuses before any change: a stale plan, a held lock, a failed
/// preflight (reported to run); a dry run takes no lock.
#[tokio::test]
async fn prepare_refusals() {
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recorder();
    let stale = Header {
        sources: vec![SourceDigest {
            path: "infra.yml".into(),
            sha256: "0".repeat(64),
        }],
        ..Header::default()
    };
    let e = apply::prepare(fake.clone(), domain("x"), &stale, opts(dir.path()), &sink)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, TxError::Stale { files } if files == &["infra.yml"]),
        "{e}"
    );
    // Positive control: --allow-stale.
    let allow = apply::Options {
        allow_stale: true,
        ..opts(dir.path())
    };
    assert!(
        apply::prepare(fake.clone(), domain("x"), &stale, allow, &sink)
            .await
            .is_ok()
    );

    let held = crate::state::lock(dir.path()).unwrap();
    let e = apply::prepare(
        fake.clone(),
        domain("x"),
        &Header::default(),
        opts(dir.path()),
        &sink,
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(e, TxError::Executor(crate::Error::Locked { .. })),
        "{e}"
    );
    let dry = apply::Options {
        dry_run: true,
        ..opts(dir.path())
    };
    assert!(
        apply::prepare(fake.clone(), domain("x"), &Header::default(), dry, &sink)
            .await
            .is_ok()
    );
    drop(held);

    // No image: preflight stops the run before any write.
    let p = apply::prepare(
        fake.clone(),
        domain("x"),
        &Header::default(),
        opts(dir.path()),
        &sink,
    )
    .await
    .unwrap();
    assert!(p.preflight.is_some());
    fake.clear_log();
    assert!(matches!(p.run(&sink).await, Err(TxError::Preflight(_))));
    assert_eq!(fake.writes(), vec![]);
}

/// A journal without an end is reported by the next apply.
#[tokio::test]
async fn an_unfinished_apply_is_reported() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let j = journal::Journal::create(dir.path()).unwrap();
    j.append(&Record::Intent {
        seq: 1,
        node: "network/net-kt".into(),
        target: Target::Network(crate::kind::network::Address {
            name: "net-kt".into(),
        }),
        change: Verb::Create,
        deps: vec![],
        prior: None,
    })
    .unwrap();
    drop(j);
    let (sink, seen) = recorder();
    apply::prepare(
        fake,
        domain("x"),
        &Header::default(),
        opts(dir.path()),
        &sink,
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        matches!(
            &seen[..],
            [Event::UnfinishedApply {
                started: 1,
                finished: 0,
                ..
            }]
        ),
        "{seen:?}"
    );
}

/// `--limit`: the named machine (or domain) and what it depends on run;
/// the rest is not run and says why; an unknown name is refused.
#[tokio::test]
async fn limit_keeps_what_is_named_and_its_dependencies() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let mut plan = chain(vec![
        network("net-ka", ""),
        project("ka", ""),
        instance("ka", "ka-1", ""),
    ]);
    let other = chain(vec![
        network("net-kb", ""),
        project("kb", ""),
        instance("kb", "kb-1", ""),
    ]);
    for n in &mut plan.nodes {
        n.domain = Some("ka".into());
    }
    let base = plan.nodes.len() as u32;
    plan.nodes.extend(other.nodes.into_iter().map(|mut n| {
        n.domain = Some("kb".into());
        n
    }));
    plan.edges
        .extend(other.edges.iter().map(|(a, b)| (a + base, b + base)));
    let (sink, _) = recorder();
    let limited = |names: &[&str]| apply::Options {
        limit: names.iter().map(|s| s.to_string()).collect(),
        ..opts(dir.path())
    };
    let e = apply::prepare(
        fake.clone(),
        plan.clone(),
        &Header::default(),
        limited(&["nope"]),
        &sink,
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&e, TxError::Limit { names } if names == &["nope"]),
        "{e}"
    );
    let p = apply::prepare(
        fake.clone(),
        plan.clone(),
        &Header::default(),
        limited(&["kb-1"]),
        &sink,
    )
    .await
    .unwrap();
    let s = p.run(&sink).await.unwrap();
    let by_id: Vec<(String, String)> = s
        .report
        .results
        .iter()
        .flatten()
        .map(|e| (e.id.clone(), apply::result_name(&e.result).to_string()))
        .collect();
    assert_eq!(
        by_id,
        [
            ("network/net-ka".to_string(), "not_run".to_string()),
            ("project/ka".into(), "not_run".into()),
            ("instance/ka/ka-1".into(), "not_run".into()),
            ("network/net-kb".into(), "created".into()),
            ("project/kb".into(), "created".into()),
            ("instance/kb/kb-1".into(), "created".into()),
        ]
    );
    assert_eq!(fake.get_object("/1.0/networks/net-ka"), None);
    // A domain name selects all of it.
    let p = apply::prepare(
        fake.clone(),
        plan,
        &Header::default(),
        limited(&["ka"]),
        &sink,
    )
    .await
    .unwrap();
    assert_eq!(p.run(&sink).await.unwrap().count("created"), 3);
}

/// Preflight checks the plan's keys against the server's catalogue, read
/// only when the run sets configuration: a typo stops the run before any
/// write, naming the node and its origin; a converged run does not ask.
#[tokio::test]
async fn unknown_config_keys_stop_the_run_before_any_write() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let mut plan = domain("one");
    for n in &mut plan.nodes {
        if let Resource::Instance(i) = &mut n.resource {
            if i.name == "kt-a" {
                i.config.insert("limits.cpus".into(), "2".into());
                n.origin = Some("infra.yml:9:7".into());
            }
        }
    }
    let (sink, _) = recorder();
    let p = apply::prepare(
        fake.clone(),
        plan,
        &Header::default(),
        opts(dir.path()),
        &sink,
    )
    .await
    .unwrap();
    let problems = p.preflight.clone().expect("the typo is found").problems;
    assert_eq!(
        problems,
        vec!["instance/kt/kt-a (infra.yml:9:7): config key 'limits.cpus' is unknown to this Incus server (did you mean `limits.cpu`?)".to_string()]
    );
    assert!(matches!(p.run(&sink).await, Err(TxError::Preflight(_))));
    assert_eq!(fake.writes(), vec![], "nothing was changed");

    // The same plan without the typo runs, reading the catalogue once;
    // converged, it reads none.
    let asked = || {
        fake.requests()
            .into_iter()
            .filter(|(_, path)| path.starts_with("/1.0/metadata/configuration"))
            .count()
    };
    fake.clear_log();
    assert_eq!(
        apply_plan(&fake, domain("one"), dir.path())
            .await
            .count("created"),
        6
    );
    assert_eq!(asked(), 1, "a run that creates reads the catalogue");
    fake.clear_log();
    let s = apply_plan(&fake, domain("one"), dir.path()).await;
    assert_eq!(s.count("unchanged"), 6);
    assert_eq!(asked(), 0, "a converged run reads no catalogue");
}

/// `--prune` of a domain removed from the plan: every delete is journaled
/// before it is made, each instance's copy is kept first, the project that
/// still holds a custom volume stays (with the bridge its default profile
/// uses), and rollback brings every deleted object back as it was.
#[tokio::test]
async fn prune_is_journaled_kept_and_undone() {
    let fake = Fake::new().with_image(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let s = apply_plan(&fake, domain("one"), dir.path()).await;
    assert!(s.ok(), "{:?}", s.report);
    let before = live_of(&fake).await;
    let watched = Watched {
        fake: fake.clone(),
        dir: dir.path().to_path_buf(),
        unjournaled: Arc::default(),
    };
    let (sink, seen) = recorder();
    let p = apply::prepare(
        watched.clone(),
        Plan::default(),
        &Header::default(),
        apply::Options {
            prune: true,
            ..opts(dir.path())
        },
        &sink,
    )
    .await
    .unwrap();
    let ids: Vec<&str> = p.deletions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "instance/kt/kt-a",
            "instance/kt/kt-b",
            "profile/kt/kt-extra"
        ]
    );
    let spared: Vec<(&str, &str)> = p
        .spared
        .iter()
        .map(|s| (s.deletion.id.as_str(), s.why.as_str()))
        .collect();
    assert_eq!(spared.len(), 2, "{spared:?}");
    assert!(
        spared[0].0 == "project/kt" && spared[0].1.contains("kt-data"),
        "{spared:?}"
    );
    assert!(spared[1].0 == "network/net-kt", "{spared:?}");
    let s = p.run(&sink).await.unwrap();
    assert!(s.ok(), "{:?}", s.deleted);
    assert_eq!(s.deleted.len(), 3);
    assert_eq!(*watched.unjournaled.lock().unwrap(), vec![]);
    assert!(fake.get_object("/1.0/instances/kt-a?project=kt").is_none());
    assert!(fake
        .get_object("/1.0/profiles/kt-extra?project=kt")
        .is_none());
    let kept: Vec<_> = s.deleted.iter().filter_map(|d| d.kept.clone()).collect();
    assert_eq!(kept.len(), 2, "a copy per instance");
    assert!(kept.iter().all(|k| k.file.exists() && k.bytes > 0));
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Deleted { .. }))
            .count(),
        3
    );
    let (ts, _) = s.journal.clone().unwrap();
    let j = journal::read(&journal::path(dir.path(), &ts)).unwrap();
    let steps = undo::steps(&j);
    assert!(steps
        .iter()
        .all(|s| matches!(s.undo, Undo::Recreate { .. })));

    let opts = rollback::Options {
        state_dir: dir.path().to_path_buf(),
        timestamp: Some(ts),
        force: false,
        parallelism: 4,
        nft: Arc::new(FakeNft::new()),
    };
    let p = rollback::prepare(fake.clone(), opts, &sink).await.unwrap();
    let summary = p.run(&sink).await;
    assert_eq!(summary.outcome, "complete", "{summary:?}");
    let after = live_of(&fake).await;
    for key in before.instances.keys() {
        // The veth name is new at each start, as in Incus; the rest
        // (identity, MAC, configuration) comes back.
        let strip = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| !k.ends_with(".host_name"));
            v
        };
        assert_eq!(
            strip(&after.instances[key]["config"]),
            strip(&before.instances[key]["config"]),
            "{key:?}"
        );
        assert_eq!(
            after.instances[key]["status"],
            before.instances[key]["status"]
        );
    }
    for node in &domain("one").nodes {
        assert_eq!(
            crate::kind::decide(&node.resource, &after),
            Action::Unchanged,
            "{}",
            node.id
        );
    }
    assert!(
        kept.iter().all(|k| !k.file.exists()),
        "restored copies are removed"
    );
}
