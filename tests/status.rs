//! `anklume status`: what is deployed, against a real Incus daemon (set
//! up by `scripts/incus-setup.sh`), and its errors without one.
//!
//! The real-daemon test applies a small source, then checks what status
//! says as things drift away from it: not provisioned, up to date, then a
//! key changed by hand, a machine added to the source and one removed from
//! it; in text and in JSON; and that status itself changes nothing (Incus,
//! the state directory). It uses only `ankt-st` and `ankt-su` objects and
//! cleans up after itself. Run it as the other real-daemon tests:
//! `flock /tmp/anklume-incus.lock cargo test --test status`. Without an
//! Incus socket it is skipped (a failure with `ANKLUME_REQUIRE_INCUS=1`).

mod common;

use std::path::Path;

use anklume_executor::Api;
use common::live::{apply_json, cleanup, daemon, get, planned, rt, state};
use common::{anklume, anklume_command, text, IMAGE};
use serde_json::{json, Value};

const A: &str = "ankt-st";
const B: &str = "ankt-su";

/// Two domains; `ankt-st` has `web` and either `old` (the first source) or
/// `new` (the second). Every machine has a fixed address, so that adding
/// or removing one renumbers no other.
fn infra(second: bool) -> String {
    let other = if second {
        format!("      {A}-new: {{ip: 10.236.0.12}}\n")
    } else {
        format!("      {A}-old: {{ip: 10.236.0.11}}\n")
    };
    format!(
        r#"project_name: status
global:
  addressing: {{zone_base: 236}}
  default_os_image: {IMAGE}
domains:
  {A}:
    trust_level: admin
    machines:
      {A}-web:
        ip: 10.236.0.10
        config:
          user.note: hello
{other}  {B}:
    trust_level: trusted
    machines:
      {B}-one: {{ip: 10.246.0.10}}
"#
    )
}

/// `anklume status ARGS` (the ruleset is the host's, not the test's:
/// `--no-nftables`).
fn status(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["status", "--no-nftables"];
    all.extend_from_slice(args);
    anklume(dir, &all)
}

/// The whole of stdout as one JSON document (nothing else on stdout).
fn document(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", text(o)))
}

/// The resources of a domain of the JSON document, by id.
fn resources(doc: &Value, domain: &str) -> Vec<(String, String)> {
    let d = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == domain)
        .unwrap_or_else(|| panic!("no domain {domain} in {doc}"));
    d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every file under `dir` with its size and modification time: what a
/// command that writes nothing leaves as it was.
fn files(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((
                e.path().display().to_string(),
                m.len(),
                m.modified().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// The provisioning fingerprint the plan gives each machine.
fn fingerprints(dir: &Path) -> Vec<(String, String, String)> {
    let o = anklume(dir, &["plan", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    document(&o)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| {
            let p = &n["resource"]["Provision"];
            Some((
                p["project"].as_str()?.to_string(),
                p["instance"].as_str()?.to_string(),
                p["fingerprint"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn status_reports_up_to_date_drifted_missing_orphaned_and_changes_nothing() {
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[A, B]));
    let dir = planned(&infra(false));
    let p = dir.path();
    let (o, s) = apply_json(p, &["--no-provision"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");

    // Applied but never provisioned: everything else is up to date.
    let o = status(p, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for m in [format!("{A}-web"), format!("{A}-old"), format!("{B}-one")] {
        assert!(
            out.contains(&format!("  + provision/{m} not provisioned\n")),
            "{out}"
        );
    }
    assert!(
        !out.contains("drifted") && !out.contains(" missing"),
        "{out}"
    );

    // Provisioned (the fingerprint recorded, as apply records it after a
    // successful run): up to date, exit 0.
    rt.block_on(async {
        for (project, instance, fp) in fingerprints(p) {
            incus
                .patch(
                    &format!("/1.0/instances/{instance}?project={project}"),
                    &json!({"config": {"user.anklume.provisioned": fp}}),
                    None,
                )
                .await
                .unwrap();
        }
    });
    let state_dir = p.join("state");
    let files_before = files(&state_dir);
    let live_before = rt.block_on(state(&incus, &[A, B]));
    let o = status(p, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // 1 network, 1 project, 2 instances; 2 provisioned.
    assert!(
        out.contains(&format!("{A}: 4 up to date; provisioning: 2 provisioned\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{B}: 3 up to date; provisioning: 1 provisioned\n")),
        "{out}"
    );
    assert!(
        out.contains("  . nftables/anklume not checked: --no-nftables"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "Status: up to date: 7 up to date; provisioning: 3 provisioned; 1 not checked.\n"
        ),
        "{out}"
    );
    let o = status(p, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = document(&o);
    assert_eq!(doc["schema"], "anklume.status/v1");
    assert_eq!(doc["in_sync"], true);
    assert_eq!(doc["summary"]["up_to_date"], 7, "{doc}");
    assert_eq!(doc["summary"]["provisioned"], 3, "{doc}");
    // -v lists the up-to-date ones too.
    let o = status(p, &["-v"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("  = instance/{A}/{A}-web up to date\n")),
        "{}",
        text(&o)
    );

    // A key changed by hand, a machine added to the source, one removed.
    rt.block_on(async {
        incus
            .patch(
                &format!("/1.0/instances/{A}-web?project={A}"),
                &json!({"config": {"user.note": "by hand"}, "description": ""}),
                None,
            )
            .await
            .unwrap();
    });
    std::fs::write(p.join("infra.yml"), infra(true)).unwrap();
    let live_changed = rt.block_on(state(&incus, &[A, B]));
    assert_ne!(live_before, live_changed, "the hand change shows");

    let o = status(p, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let expected = format!(
        "{A}: 2 up to date, 1 drifted, 1 missing, 1 orphaned; provisioning: 1 provisioned, 1 not provisioned\n\
         \x20 + instance/{A}/{A}-new missing (apply creates it)\n\
         \x20 ~ instance/{A}/{A}-web drifted: config.user.note: \"by hand\" -> \"hello\"\n\
         \x20 + provision/{A}-new not provisioned\n\
         \x20 - instance/{A}/{A}-old orphaned (protected; managed by anklume, not in the source; `apply --prune --force` deletes it)\n\
         {B}: 3 up to date; provisioning: 1 provisioned\n"
    );
    assert!(out.starts_with(&expected), "{out}");
    assert!(out.contains("Status: not up to date: "), "{out}");

    let o = status(p, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let doc = document(&o);
    assert_eq!(doc["in_sync"], false);
    let st = |id: &str, s: &str| (id.to_string(), s.to_string());
    assert_eq!(
        resources(&doc, A),
        [
            st(&format!("network/net-{A}"), "up_to_date"),
            st(&format!("project/{A}"), "up_to_date"),
            st(&format!("instance/{A}/{A}-new"), "missing"),
            st(&format!("instance/{A}/{A}-web"), "drifted"),
            st(&format!("provision/{A}-new"), "not_provisioned"),
            st(&format!("provision/{A}-web"), "provisioned"),
            st(&format!("instance/{A}/{A}-old"), "orphaned"),
        ]
    );
    let a = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == A)
        .unwrap();
    assert_eq!(
        a["resources"][3]["changes"],
        json!([{"key": "config.user.note", "old": "by hand", "new": "hello"}])
    );
    assert_eq!(a["resources"][6]["kind"], "instance");
    assert_eq!(a["resources"][6]["protected"], true, "protected by default");
    assert_eq!(
        (&a["in_source"], &a["enabled"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        a["summary"],
        json!({"up_to_date": 2, "drifted": 1, "missing": 1, "orphaned": 1, "provisioned": 1, "needs_provisioning": 0, "not_provisioned": 1, "not_checked": 0})
    );
    assert!(resources(&doc, B)
        .iter()
        .all(|(_, s)| s == "up_to_date" || s == "provisioned"));
    assert_eq!(doc["global"]["resources"][0]["id"], "nftables/anklume");
    assert_eq!(doc["global"]["resources"][0]["state"], "not_checked");

    // --domain: only that one (up to date: exit 0), no global block.
    let o = status(p, &["--domain", B, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = document(&o);
    assert_eq!(doc["domains"].as_array().unwrap().len(), 1);
    assert_eq!(doc["global"], Value::Null);
    let o = status(p, &["--domain", "ankt-nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));

    // Status changed nothing: Incus as it was after the hand change, the
    // state directory untouched, and none made where there was none.
    assert_eq!(rt.block_on(state(&incus, &[A, B])), live_changed);
    assert_eq!(files(&state_dir), files_before);
    let fresh = p.join("fresh-state");
    let o = anklume_command(p, &["status", "--no-nftables"])
        .env("ANKLUME_STATE_DIR", &fresh)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(!fresh.exists(), "status made a state directory");
    // A journal without an end (a killed apply) is reported, in text on
    // stderr and in JSON in the document; and the journal is left as is.
    let torn = p.join("torn-state");
    std::fs::create_dir_all(torn.join("journal")).unwrap();
    let journal = torn.join("journal/20260101-120000.jsonl");
    std::fs::write(
        &journal,
        "{\"record\":\"begin\",\"ts\":\"20260101-120000\",\"anklume\":\"0\",\"changes\":1,\"snapshot\":null}\n{\"record\":\"intent\",\"seq\":1,\"node\":\"network/net-a\",\"target\":{\"type\":\"network\",\"name\":\"net-a\"},\"change\":\"create\",\"deps\":[]}\n",
    )
    .unwrap();
    let before = files(&torn);
    let o = anklume_command(p, &["status", "--no-nftables"])
        .env("ANKLUME_STATE_DIR", &torn)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("warning: the apply journal 20260101-120000 has no end"),
        "{}",
        text(&o)
    );
    let o = anklume_command(p, &["status", "--no-nftables", "--format", "json"])
        .env("ANKLUME_STATE_DIR", &torn)
        .output()
        .unwrap();
    assert_eq!(
        document(&o)["unfinished_apply"],
        json!({"journal": "20260101-120000", "started": 1, "finished": 0})
    );
    assert_eq!(files(&torn), before);
    rt.block_on(async {
        let web = get(&incus, &format!("/1.0/instances/{A}-web?project={A}")).await;
        assert_eq!(web["config"]["user.note"], "by hand");
        assert!(incus
            .get_opt(&format!("/1.0/instances/{A}-new?project={A}"))
            .await
            .unwrap()
            .is_none());
        cleanup(&incus, &[A, B]).await;
    });
}

/// Bad sources and an unreachable Incus, without a daemon: the same
/// diagnostics and exit status as `plan` for the sources, exit 2 for Incus,
/// and nothing on stdout (JSON included: stdout is the document only).
#[test]
fn status_errors_bad_source_and_unreachable_incus() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let run = |args: &[&str]| {
        anklume_command(p, args)
            .env("INCUS_SOCKET", p.join("no-incus.socket"))
            .output()
            .unwrap()
    };
    std::fs::write(
        p.join("bad.yml"),
        "project_name: x\nglobal:\n  trust_levle: admin\ndomains: {}\n",
    )
    .unwrap();
    let o = run(&["status", "bad.yml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[E0201]"), "{err}");
    assert!(err.contains("bad.yml:3:3"), "{err}");
    assert!(err.contains("status aborted: 1 error, 0 warnings"), "{err}");
    assert!(o.stdout.is_empty());
    let o = run(&["status", "bad.yml", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stderr).lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "E0201");
    assert!(o.stdout.is_empty());

    let o = run(&["status", "nope.yml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    std::fs::write(p.join("infra.yml"), infra(false)).unwrap();
    let o = run(&["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: reading Incus state: cannot reach Incus at"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let o = run(&["status", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let e: Value = serde_json::from_str(String::from_utf8_lossy(&o.stderr).trim()).unwrap();
    assert_eq!(e["severity"], "error");
    assert!(!p.join("state").exists(), "nothing written");
}
