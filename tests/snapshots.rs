//! Snapshots at scale against a real Incus daemon: `anklume snapshot
//! create|restore|delete --domain D | --all` over two domains applied by
//! anklume, the restore journaled so that `anklume rollback` undoes it, and
//! the instance's configuration (its protection) kept across a restore.
//!
//! Like the other real-daemon tests: own domain names (`ankt-na`,
//! `ankt-nb`) and subnets, leftovers removed first, skipped without an
//! Incus socket unless `ANKLUME_REQUIRE_INCUS=1`, refused on a host with
//! anklume state of its own. Run it under `flock /tmp/anklume-incus.lock`.

mod common;

use std::path::Path;
use std::process::Output;

use anklume_executor::journal::{self, Record, Verb};
use anklume_executor::kind::Target;
use anklume_executor::Incus;
use common::live::{cleanup, daemon, exec, get, planned, replan, rt};
use common::{anklume, text, IMAGE};
use serde_json::Value;

const A: &str = "ankt-na";
const B: &str = "ankt-nb";

fn infra(protected_one: bool) -> String {
    format!(
        r#"project_name: ntest
global:
  addressing: {{zone_base: 217}}
  default_os_image: {IMAGE}
domains:
  {A}:
    trust_level: admin
    machines:
      {A}-one:
        ephemeral: {}
      {A}-two:
        ephemeral: true
  {B}:
    trust_level: admin
    machines:
      {B}-one:
        ephemeral: true
"#,
        !protected_one
    )
}

fn apply(dir: &Path) {
    let o = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--allow-stale",
            "--no-nftables",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The JSON events of a `--format json` run.
fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", text(o))))
        .collect()
}

/// `instance → result` of the result events.
fn results(o: &Output) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = events(o)
        .into_iter()
        .filter(|e| e["event"] == "result")
        .map(|e| {
            (
                e["instance"].as_str().unwrap().to_string(),
                e["project"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn r(i: &str, p: &str, res: &str) -> (String, String, String) {
    (i.into(), p.into(), res.into())
}

/// The snapshot names of one instance, as Incus lists them.
async fn snaps(incus: &Incus, project: &str, name: &str) -> Vec<String> {
    let v = get(
        incus,
        &format!("/1.0/instances/{name}/snapshots?project={project}&recursion=1"),
    )
    .await;
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["name"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    out
}

async fn protection(incus: &Incus, project: &str, name: &str) -> Option<String> {
    get(incus, &format!("/1.0/instances/{name}?project={project}"))
        .await
        .get("config")
        .and_then(|c| c.get("security.protection.delete"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[test]
fn bulk_snapshots_by_domain_restore_undone_by_rollback() {
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[A, B]));
    let dir = planned(&infra(false));
    let p = dir.path();
    apply(p);
    let (a1, a2, b1) = (format!("{A}-one"), format!("{A}-two"), format!("{B}-one"));
    let sh = |project: &str, m: &str, cmd: &str| rt.block_on(exec(&incus, project, m, cmd));

    // Unknown domain: exit 1, a did-you-mean, nothing done.
    let o = anklume(p, &["snapshot", "create", "--domain", "ankt-nx", "s0"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no anklume-managed instance in domain 'ankt-nx'"),
        "{}",
        text(&o)
    );
    let o = anklume(
        p,
        &[
            "snapshot",
            "create",
            "--domain",
            &format!("{A},ankt-nq"),
            "s0",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("'ankt-nq'"), "{}", text(&o));
    for (pr, m) in [(A, &a1), (A, &a2), (B, &b1)] {
        assert!(rt.block_on(snaps(&incus, pr, m)).is_empty(), "{m}");
    }
    let o = anklume(
        p,
        &["snapshot", "restore", "--domain", "ankt-nx", "s0", "--yes"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // create --domain A: only A's instances, in A's project, one name.
    assert_eq!(sh(A, &a1, "echo v1 > /root/f"), 0);
    let o = anklume(
        p,
        &[
            "snapshot", "create", "--domain", A, "s1", "--format", "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        results(&o),
        [r(&a1, A, "created"), r(&a2, A, "created")],
        "{}",
        text(&o)
    );
    assert_eq!(rt.block_on(snaps(&incus, A, &a1)), ["s1"]);
    assert_eq!(rt.block_on(snaps(&incus, A, &a2)), ["s1"]);
    assert!(rt.block_on(snaps(&incus, B, &b1)).is_empty());
    // Again: skipped, reported, not a failure.
    let o = anklume(p, &["snapshot", "create", "--domain", A, "s1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        text(&o).matches("already has a snapshot").count(),
        2,
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("2 skipped"), "{}", text(&o));

    // One default name, computed once for the whole run.
    let o = anklume(
        p,
        &[
            "snapshot", "create", "--domain", A, "--domain", B, "--format", "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&o);
    let ours: Vec<&Value> = ev.iter().filter(|e| e["event"] == "result").collect();
    assert_eq!(ours.len(), 3, "{}", text(&o));
    let auto = ours[0]["snapshot"].as_str().unwrap().to_string();
    assert!(auto.starts_with("snap-") && auto.len() == 20, "{auto}");
    assert!(ours
        .iter()
        .all(|e| e["snapshot"] == auto.as_str() && e["result"] == "created"));
    assert_eq!(rt.block_on(snaps(&incus, B, &b1)), [auto.as_str()]);

    // --all covers both domains. Checked without writing (the host may
    // have other anklume instances, which a test must not touch): a delete
    // of a name no instance has lists every managed instance, deletes
    // nothing and needs no confirmation.
    let o = anklume(
        p,
        &[
            "snapshot",
            "delete",
            "--all",
            "ankt-none-such",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let planned: Vec<(String, String)> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "planned" && (e["project"] == A || e["project"] == B))
        .map(|e| {
            (
                e["instance"].as_str().unwrap().to_string(),
                e["plan"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            (a1.clone(), "absent".to_string()),
            (a2.clone(), "absent".to_string()),
            (b1.clone(), "absent".to_string())
        ],
        "{}",
        text(&o)
    );
    assert!(events(&o)
        .iter()
        .filter(|e| e["event"] == "result")
        .all(|e| e["result"] == "absent"));

    // list --domain B: B's instance only.
    let o = anklume(p, &["snapshot", "list", "--domain", B, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed = events(&o);
    assert_eq!(listed.len(), 1, "{}", text(&o));
    assert_eq!(listed[0]["instance"], b1.as_str());

    // A-one becomes protected after s1 was taken (s1 holds "false").
    replan(p, &infra(true));
    apply(p);
    assert_eq!(
        rt.block_on(protection(&incus, A, &a1)).as_deref(),
        Some("true")
    );
    let s1 = rt.block_on(get(
        &incus,
        &format!("/1.0/instances/{a1}/snapshots/s1?project={A}"),
    ));
    assert_eq!(
        s1["config"]["security.protection.delete"], "false",
        "the snapshot's own protection differs (positive control): {s1}"
    );
    for (pr, m) in [(A, &a1), (A, &a2), (B, &b1)] {
        assert_eq!(sh(pr, m, "echo v2 > /root/f"), 0);
    }

    // Without a terminal, restore needs --yes: nothing changes.
    let o = anklume(p, &["snapshot", "restore", "--domain", A, "s1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("~ {a1} ({A}) restore")),
        "{}",
        text(&o)
    );
    assert_eq!(sh(A, &a1, "grep -qx v2 /root/f"), 0);

    let journals_before = journal::list(&p.join("state"));
    let o = anklume(p, &["snapshot", "restore", "--domain", A, "s1", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sh(A, &a1, "grep -qx v1 /root/f"), 0, "{}", text(&o));
    assert_ne!(sh(A, &a2, "test -e /root/f"), 0, "written after s1");
    assert_eq!(sh(B, &b1, "grep -qx v2 /root/f"), 0, "B untouched");
    assert_eq!(
        rt.block_on(protection(&incus, A, &a1)).as_deref(),
        Some("true"),
        "the protection the instance had before the restore"
    );
    // The journal: the apply journal's format.
    let js = journal::list(&p.join("state"));
    assert_eq!(js.len(), journals_before.len() + 1);
    let ts = js.last().unwrap().clone();
    let read = journal::read(&journal::path(&p.join("state"), &ts)).unwrap();
    let safety = format!("pre-apply-{ts}");
    let recs = &read.records;
    assert!(
        matches!(&recs[0], Record::Begin { changes: 2, snapshot: Some(s), .. } if *s == safety)
    );
    assert_eq!(
        recs.iter()
            .filter(|x| matches!(x, Record::Snapshot { ok: true, name, .. } if *name == safety))
            .count(),
        2
    );
    let intents: Vec<&Record> = recs
        .iter()
        .filter(|x| {
            matches!(
                x,
                Record::Intent {
                    change: Verb::Update,
                    target: Target::Instance(_),
                    prior: Some(_),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(intents.len(), 2, "{recs:?}");
    assert!(matches!(recs.last(), Some(Record::End { outcome }) if outcome == "ok"));
    for (pr, m) in [(A, &a1), (A, &a2)] {
        assert!(
            rt.block_on(snaps(&incus, pr, m)).contains(&safety),
            "{m} has its safety snapshot"
        );
    }
    assert!(!rt.block_on(snaps(&incus, B, &b1)).contains(&safety));

    // rollback undoes the restore: the data written after s1 is back.
    let o = anklume(p, &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sh(A, &a1, "grep -qx v2 /root/f"), 0, "{}", text(&o));
    assert_eq!(sh(A, &a2, "grep -qx v2 /root/f"), 0, "{}", text(&o));
    assert_eq!(
        rt.block_on(protection(&incus, A, &a1)).as_deref(),
        Some("true")
    );

    // A name one instance lacks: that one fails (with its snapshots), the
    // other is restored, exit 1.
    let o = anklume(p, &["snapshot", "create", &a1, "s3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sh(A, &a1, "echo v3 > /root/f"), 0);
    let o = anklume(
        p,
        &[
            "snapshot", "restore", "--domain", A, "s3", "--yes", "--format", "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        results(&o),
        [r(&a1, A, "restored"), r(&a2, A, "failed")],
        "{}",
        text(&o)
    );
    let failed = events(&o)
        .into_iter()
        .find(|e| e["event"] == "result" && e["result"] == "failed")
        .unwrap();
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("has no snapshot 's3'")
            && detail.contains("it has: ")
            && detail.contains("s1"),
        "{detail}"
    );
    assert_eq!(sh(A, &a1, "grep -qx v2 /root/f"), 0, "{}", text(&o));

    // delete: asks; then idempotent (absent is reported, not a failure).
    let o = anklume(p, &["snapshot", "delete", "--domain", A, "s1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot be undone"), "{}", text(&o));
    assert!(rt
        .block_on(snaps(&incus, A, &a2))
        .contains(&"s1".to_string()));
    let o = anklume(p, &["snapshot", "delete", "--domain", A, "s1", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("2 deleted"), "{}", text(&o));
    let o = anklume(
        p,
        &[
            "snapshot", "delete", "--domain", A, "s1", "--yes", "--format", "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(results(&o), [r(&a1, A, "absent"), r(&a2, A, "absent")]);
    assert!(!rt
        .block_on(snaps(&incus, A, &a1))
        .contains(&"s1".to_string()));
    let o = anklume(
        p,
        &[
            "snapshot", "delete", "--domain", A, "--domain", B, &auto, "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(rt.block_on(snaps(&incus, B, &b1)).is_empty());

    rt.block_on(cleanup(&incus, &[A, B]));
}
