//! Deleting what anklume manages, against a real Incus daemon, and undoing
//! it: `apply --prune` of a domain removed from infra.yml, `flush` (and its
//! production guard), `remove`; each followed by `anklume rollback`, which
//! must bring everything back with the instances' data, configuration and
//! addresses.
//!
//! Own domain names (`ankt-l…`), subnets (zone 121), leftovers removed
//! first; skipped without an Incus socket unless `ANKLUME_REQUIRE_INCUS=1`;
//! refused on a host with anklume state of its own (flush deletes
//! everything anklume manages).

mod common;

use std::path::Path;

use anklume_executor::Incus;
use common::live::{cleanup, daemon, exec, get, replan, rt, state};
use common::{anklume, anklume_command, text, IMAGE};
use serde_json::Value;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const KEEP: &str = "ankt-lkeep";
const GONE: &str = "ankt-lgone";
const PROT: &str = "ankt-lprot";

/// Two or three domains: `KEEP` stays; `GONE` (an ephemeral instance with
/// a profile and a static address, and a second one) is the one removed;
/// `PROT` holds a protected instance.
fn infra(with_gone: bool, with_prot: bool) -> String {
    let mut s = format!(
        r#"project_name: ltest
global:
  addressing: {{zone_base: 121}}
  default_os_image: {IMAGE}
domains:
  {KEEP}:
    trust_level: admin
    machines:
      {KEEP}-one:
        ephemeral: true
"#
    );
    if with_gone {
        s.push_str(&format!(
            r#"  {GONE}:
    description: "the domain that goes"
    trust_level: trusted
    profiles:
      small:
        config:
          limits.memory: 256MiB
    machines:
      {GONE}-data:
        ephemeral: true
        profiles: [default, small]
        config:
          user.note: kept
      {GONE}-two:
        ephemeral: true
"#
        ));
    }
    if with_prot {
        s.push_str(&format!(
            r#"  {PROT}:
    trust_level: trusted
    machines:
      {PROT}-safe: {{}}
"#
        ));
    }
    s
}

/// Incus's view of these domains without what changes by itself:
/// `volatile.*` keys (but not the MAC addresses), timestamps, run state.
async fn config_of(incus: &Incus, domains: &[&str]) -> Value {
    fn clean(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| {
                    (!k.starts_with("volatile.") || k.ends_with(".hwaddr"))
                        && !matches!(k.as_str(), "created_at" | "last_used_at")
                });
                m.values_mut().for_each(clean);
            }
            Value::Array(a) => a.iter_mut().for_each(clean),
            _ => {}
        }
    }
    let mut v = state(incus, domains).await;
    clean(&mut v);
    v
}

fn ok(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

fn json_lines(o: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The ids of the `deletion` events of a dry run.
fn deletions(o: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = json_lines(o)
        .iter()
        .filter(|e| e["event"] == "deletion")
        .map(|e| e["deletion"]["id"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

fn spared(o: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = json_lines(o)
        .iter()
        .filter(|e| e["event"] == "spared")
        .map(|e| e["spared"]["id"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

async fn exists(incus: &Incus, path: &str) -> bool {
    use anklume_executor::Api;
    incus.get_opt(path).await.unwrap().is_some()
}

async fn status(incus: &Incus, project: &str, name: &str) -> String {
    get(incus, &format!("/1.0/instances/{name}?project={project}")).await["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn kept_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("state/kept")) {
        for d in rd.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// A domain removed from infra.yml: the dry run of `--prune` shows each
/// deletion and what stays; a plain apply deletes nothing; `--prune`
/// deletes the domain's unprotected instances, profile, project and
/// bridge, keeping a copy of each instance; `rollback` brings all of it
/// back, with the data written inside, the configuration, the MAC and the
/// address. A protected orphan stays (with its project and bridge) until
/// `--force`.
#[test]
fn prune_deletes_a_removed_domain_and_rollback_brings_it_back() {
    let _g = serial();
    let Some(incus) = daemon() else { return };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[KEEP, GONE, PROT]));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    replan(dir, &infra(true, true));
    ok(&anklume(
        dir,
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    ));
    assert_eq!(
        rt.block_on(exec(
            &incus,
            GONE,
            &format!("{GONE}-data"),
            "echo precious > /root/data"
        )),
        0
    );
    let before = rt.block_on(config_of(&incus, &[GONE]));
    let keep_before = rt.block_on(config_of(&incus, &[KEEP]));

    // The domains GONE and PROT leave infra.yml. `--limit` names them
    // (domains of orphans only, allowed with --prune): other tests'
    // leftovers on this host are not this test's to delete.
    let limit = format!("{KEEP},{GONE},{PROT}");
    replan(dir, &infra(false, false));
    let dry = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--dry-run",
            "--prune",
            "--no-nftables",
            "--format",
            "json",
            "--limit",
            &limit,
        ],
    );
    ok(&dry);
    assert_eq!(
        deletions(&dry),
        [
            format!("instance/{GONE}/{GONE}-data"),
            format!("instance/{GONE}/{GONE}-two"),
            format!("network/net-{GONE}"),
            format!("profile/{GONE}/small"),
            format!("project/{GONE}"),
        ],
        "{}",
        text(&dry)
    );
    assert_eq!(
        spared(&dry),
        [
            format!("instance/{PROT}/{PROT}-safe"),
            format!("network/net-{PROT}"),
            format!("project/{PROT}"),
        ],
        "{}",
        text(&dry)
    );
    let dry_text = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--dry-run",
            "--prune",
            "--no-nftables",
            "--limit",
            &limit,
        ],
    );
    let t = text(&dry_text);
    assert!(
        t.contains(&format!(
            "- instance/{GONE}/{GONE}-data delete (a copy is kept for rollback)"
        )),
        "{t}"
    );
    assert!(t.contains("protected"), "{t}");
    assert!(
        rt.block_on(exists(&incus, &format!("/1.0/projects/{GONE}"))),
        "a dry run deletes nothing"
    );

    // Without --prune, the orphans stay.
    ok(&anklume(
        dir,
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    ));
    assert!(rt.block_on(exists(
        &incus,
        &format!("/1.0/instances/{GONE}-data?project={GONE}")
    )));

    // --prune.
    let o = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--no-nftables",
            "--prune",
            "--limit",
            &limit,
        ],
    );
    ok(&o);
    let t = text(&o);
    assert!(t.contains("Pruned: 5 deleted, 0 not"), "{t}");
    for path in [
        format!("/1.0/instances/{GONE}-data?project={GONE}"),
        format!("/1.0/instances/{GONE}-two?project={GONE}"),
        format!("/1.0/profiles/small?project={GONE}"),
        format!("/1.0/projects/{GONE}"),
        format!("/1.0/networks/net-{GONE}"),
    ] {
        assert!(!rt.block_on(exists(&incus, &path)), "{path} deleted\n{t}");
    }
    for path in [
        format!("/1.0/instances/{PROT}-safe?project={PROT}"),
        format!("/1.0/projects/{PROT}"),
        format!("/1.0/networks/net-{PROT}"),
    ] {
        assert!(rt.block_on(exists(&incus, &path)), "{path} spared\n{t}");
    }
    assert_eq!(
        rt.block_on(config_of(&incus, &[KEEP])),
        keep_before,
        "the kept domain is untouched"
    );
    let files = kept_files(dir);
    assert_eq!(files.len(), 2, "one copy per deleted instance: {files:?}");
    assert!(files.iter().all(|f| f.metadata().unwrap().len() > 0));

    // Rollback brings the domain back.
    let o = anklume(dir, &["rollback", "--yes"]);
    ok(&o);
    assert_eq!(
        rt.block_on(config_of(&incus, &[GONE])),
        before,
        "{}",
        text(&o)
    );
    assert_eq!(
        rt.block_on(status(&incus, GONE, &format!("{GONE}-data"))),
        "Running"
    );
    assert_eq!(
        rt.block_on(exec(
            &incus,
            GONE,
            &format!("{GONE}-data"),
            "grep -qx precious /root/data"
        )),
        0,
        "the data came back"
    );
    assert!(kept_files(dir).is_empty(), "a restored copy is removed");

    // A protected orphan goes with --force (here without a copy).
    replan(dir, &infra(true, false));
    let o = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--no-nftables",
            "--prune",
            "--force",
            "--no-keep",
            "--limit",
            &limit,
        ],
    );
    ok(&o);
    assert!(
        !rt.block_on(exists(&incus, &format!("/1.0/projects/{PROT}"))),
        "{}",
        text(&o)
    );
    assert!(kept_files(dir).is_empty(), "--no-keep keeps nothing");
    let o = anklume(dir, &["rollback", "--yes"]);
    let t = text(&o);
    assert!(t.contains("without a kept copy"), "{t}");
    assert!(
        rt.block_on(exists(&incus, &format!("/1.0/projects/{PROT}"))),
        "its project comes back: {t}"
    );

    rt.block_on(cleanup(&incus, &[KEEP, GONE, PROT]));
}

const FL: &str = "ankt-lflush";

/// `flush` refuses at nesting level 0 without --force (nothing changes),
/// deletes everything anklume manages otherwise (only that: an instance
/// made by hand stays), and rollback brings it back.
#[test]
fn flush_refuses_in_production_and_is_undone_by_rollback() {
    let _g = serial();
    let Some(incus) = daemon() else { return };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[FL]));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let infra = format!(
        r#"project_name: ftest
global:
  addressing: {{zone_base: 122}}
  default_os_image: {IMAGE}
domains:
  {FL}:
    trust_level: admin
    machines:
      {FL}-a:
        ephemeral: true
      {FL}-b: {{}}
"#
    );
    replan(dir, &infra);
    ok(&anklume(
        dir,
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    ));
    assert_eq!(
        rt.block_on(exec(&incus, FL, &format!("{FL}-a"), "echo mine > /root/f")),
        0
    );
    let before = rt.block_on(config_of(&incus, &[FL]));
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let flush = |level: &str, args: &[&str]| {
        std::fs::write(ctx.join("absolute_level"), level).unwrap();
        let mut all = vec!["flush"];
        all.extend_from_slice(args);
        anklume_command(dir, &all)
            .env("ANKLUME_CONTEXT_DIR", &ctx)
            .output()
            .unwrap()
    };

    // Level 0: refused, nothing changed; a positive control at level 1.
    let o = flush("0", &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("production host"), "{}", text(&o));
    assert_eq!(rt.block_on(config_of(&incus, &[FL])), before);
    let o = flush("1", &["--dry-run", "--format", "json"]);
    ok(&o);
    let d = deletions(&o);
    assert!(d.contains(&format!("instance/{FL}/{FL}-a")), "{d:?}");
    // The protected one stays without --force.
    assert!(
        spared(&o).contains(&format!("instance/{FL}/{FL}-b")),
        "{}",
        text(&o)
    );
    assert!(
        d.iter().all(|id| id.contains("ankt-")),
        "only the tests' objects: {d:?}"
    );

    // Level 1, --force: all of it goes.
    let o = flush("1", &["--yes", "--force"]);
    ok(&o);
    assert!(
        !rt.block_on(exists(&incus, &format!("/1.0/projects/{FL}"))),
        "{}",
        text(&o)
    );
    assert!(!rt.block_on(exists(&incus, &format!("/1.0/networks/net-{FL}"))));

    let o = anklume(dir, &["rollback", "--yes", "--force"]);
    ok(&o);
    assert_eq!(
        rt.block_on(config_of(&incus, &[FL])),
        before,
        "{}",
        text(&o)
    );
    assert_eq!(
        rt.block_on(exec(
            &incus,
            FL,
            &format!("{FL}-a"),
            "grep -qx mine /root/f"
        )),
        0
    );
    // And the plan sees nothing to do.
    let o = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--dry-run",
            "--no-nftables",
            "--format",
            "json",
        ],
    );
    let s = common::live::summary(&o);
    assert_eq!(
        (s["create"].as_u64(), s["update"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        text(&o)
    );

    rt.block_on(cleanup(&incus, &[FL]));
}

const RM: &str = "ankt-lrm";

/// `remove NAME` and `remove --domain`: only the named instances go, a
/// protected one only with --force; unknown names are an error that
/// changes nothing; rollback brings them back.
#[test]
fn remove_deletes_named_instances_and_rollback_brings_them_back() {
    let _g = serial();
    let Some(incus) = daemon() else { return };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[RM]));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let infra = format!(
        r#"project_name: rmtest
global:
  addressing: {{zone_base: 123}}
  default_os_image: {IMAGE}
domains:
  {RM}:
    trust_level: admin
    machines:
      {RM}-a:
        ephemeral: true
      {RM}-b:
        ephemeral: true
      {RM}-p: {{}}
"#
    );
    replan(dir, &infra);
    ok(&anklume(
        dir,
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    ));
    let before = rt.block_on(config_of(&incus, &[RM]));

    let o = anklume(dir, &["remove", "ankt-lrm-nosuch", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no instance of that name"),
        "{}",
        text(&o)
    );
    assert_eq!(rt.block_on(config_of(&incus, &[RM])), before);

    let o = anklume(dir, &["remove", &format!("{RM}-a"), "--yes"]);
    ok(&o);
    assert!(!rt.block_on(exists(
        &incus,
        &format!("/1.0/instances/{RM}-a?project={RM}")
    )));
    assert!(rt.block_on(exists(
        &incus,
        &format!("/1.0/instances/{RM}-b?project={RM}")
    )));
    ok(&anklume(dir, &["rollback", "--yes"]));
    assert_eq!(rt.block_on(config_of(&incus, &[RM])), before);

    // The domain: the protected one stays without --force.
    let o = anklume(dir, &["remove", "--domain", RM, "--yes"]);
    ok(&o);
    assert!(text(&o).contains("stays: protected"), "{}", text(&o));
    assert!(!rt.block_on(exists(
        &incus,
        &format!("/1.0/instances/{RM}-b?project={RM}")
    )));
    assert!(rt.block_on(exists(
        &incus,
        &format!("/1.0/instances/{RM}-p?project={RM}")
    )));
    assert!(
        rt.block_on(exists(&incus, &format!("/1.0/projects/{RM}"))),
        "remove touches only instances"
    );
    ok(&anklume(dir, &["rollback", "--yes"]));
    assert_eq!(rt.block_on(config_of(&incus, &[RM])), before);

    rt.block_on(cleanup(&incus, &[RM]));
}
