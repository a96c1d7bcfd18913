//! `anklume apply` against a real Incus daemon (set up by
//! `scripts/incus-setup.sh`), checked through the REST API.
//!
//! Every test uses its own domain names (`ankt-<letters>`, the tests'
//! prefix: `common::PREFIX`) and its own subnets, removes its leftovers
//! first and cleans up after itself, deleting only what carries the prefix.
//! Without an Incus socket the tests are skipped, unless
//! `ANKLUME_REQUIRE_INCUS=1` (as in CI), where a missing daemon is a
//! failure; on a host with anklume state of its own they refuse to run
//! (`common::live::daemon`).

mod common;

use anklume_executor::{Api, Incus};
use common::live::{
    apply_json, cleanup, daemon, foreign_state, get, planned, refusal, replan, rt,
    state as snapshot, summary,
};
use common::{anklume, text, IMAGE};
use serde_json::{json, Value};

/// One test at a time against the daemon: concurrent network and project
/// churn from several tests has been seen to wedge incusd 6.0.4.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn infra_two_domains(zone_base: u8, a: &str, b: &str) -> String {
    format!(
        r#"project_name: itest
global:
  addressing: {{zone_base: {zone_base}}}
  default_os_image: {IMAGE}
domains:
  {a}:
    description: "first test domain"
    trust_level: admin
    profiles:
      small:
        config:
          limits.memory: 256MiB
    machines:
      {a}-web:
        description: "web server"
        ip: 10.{zone_base}.0.10
        profiles: [default, small]
        boot_autostart: true
        boot_priority: 20
        snapshots_schedule: "0 3 * * *"
        snapshots_expiry: 7d
        config:
          user.note: hello
      {a}-tmp:
        ephemeral: true
  {b}:
    trust_level: trusted
    machines:
      {b}-one: {{}}
"#
    )
}

#[test]
fn apply_creates_everything_then_converges_without_writes() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b) = ("ankt-a", "ankt-b");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[a, b]));
    let dir = planned(&infra_two_domains(201, a, b));

    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["created"], 8, "{s}"); // 2 networks, 2 projects, 1 profile, 3 instances
    assert_eq!(s["failed"], 0);

    rt.block_on(async {
        let net = get(&incus, &format!("/1.0/networks/net-{a}")).await;
        assert_eq!(net["config"]["ipv4.address"], "10.201.0.254/24");
        assert_eq!(
            net["config"]["ipv4.dhcp.ranges"],
            "10.201.0.100-10.201.0.199"
        );
        assert_eq!(net["config"]["ipv4.nat"], "true");
        assert_eq!(net["config"]["ipv6.address"], "none");
        assert_eq!(net["config"]["user.anklume.managed"], "true");
        let proj = get(&incus, &format!("/1.0/projects/{a}")).await;
        assert_eq!(proj["config"]["features.images"], "false");
        assert_eq!(proj["config"]["features.profiles"], "true");
        assert_eq!(proj["config"]["features.networks"], "false");
        assert_eq!(proj["description"], "first test domain");
        let defp = get(&incus, &format!("/1.0/profiles/default?project={a}")).await;
        assert_eq!(defp["devices"]["eth0"]["network"], format!("net-{a}"));
        assert_eq!(defp["devices"]["root"]["path"], "/");
        let small = get(&incus, &format!("/1.0/profiles/small?project={a}")).await;
        assert_eq!(small["config"]["limits.memory"], "256MiB");
        let web = get(&incus, &format!("/1.0/instances/{a}-web?project={a}")).await;
        assert_eq!(web["status"], "Running");
        assert_eq!(web["description"], "web server");
        assert_eq!(web["profiles"], json!(["default", "small"]));
        assert_eq!(web["config"]["security.protection.delete"], "true");
        assert_eq!(web["config"]["boot.autostart"], "true");
        assert_eq!(web["config"]["boot.autostart.priority"], "20");
        assert_eq!(web["config"]["snapshots.schedule"], "0 3 * * *");
        assert_eq!(web["config"]["snapshots.expiry"], "7d");
        assert_eq!(web["config"]["user.note"], "hello");
        assert_eq!(web["devices"]["eth0"]["ipv4.address"], "10.201.0.10");
        let tmp = get(&incus, &format!("/1.0/instances/{a}-tmp?project={a}")).await;
        assert_eq!(tmp["config"]["security.protection.delete"], "false");
        assert_eq!(tmp["devices"]["eth0"]["ipv4.address"], "10.201.0.1");
        let one = get(&incus, &format!("/1.0/instances/{b}-one?project={b}")).await;
        assert_eq!(one["status"], "Running");
        assert_eq!(one["devices"]["eth0"]["ipv4.address"], "10.211.0.1");
    });

    // Converged: nothing to do and not a single write request.
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["created"], 0, "{s}");
    assert_eq!(s["updated"], 0, "{s}");
    assert_eq!(s["unchanged"], 8, "{s}");
    assert_eq!(s["writes"], 0, "{s}");
    assert!(s["requests"].as_u64().unwrap() <= 6, "bulk reads only: {s}");

    // Drift is detected and repaired, and only declared keys count.
    rt.block_on(async {
        let path = format!("/1.0/instances/{a}-web?project={a}");
        incus
            .patch(&path, &json!({"config": {"boot.autostart": "false", "user.extra": "added-by-hand"}, "description": "web server"}), None)
            .await
            .unwrap();
    });
    let dry = anklume(
        dir.path(),
        &["apply", "plan.bin", "--dry-run", "--no-nftables"],
    );
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry_out.contains(&format!(
            "~ instance/{a}/{a}-web update: config.boot.autostart: \"false\" -> \"true\""
        )),
        "{dry_out}"
    );
    assert!(!dry_out.contains("user.extra"), "{dry_out}");
    // Nodes that will not run (the ruleset, provisioning without a tree):
    // one line per reason, not one per node; -v lists every node.
    let not_run: Vec<&str> = dry_out.lines().filter(|l| l.starts_with("  . ")).collect();
    let reasons: std::collections::BTreeSet<&str> = not_run
        .iter()
        .map(|l| l.split_once(": ").map_or(*l, |(_, r)| r))
        .collect();
    assert_eq!(not_run.len(), reasons.len(), "{dry_out}");
    assert!(
        not_run
            .iter()
            .any(|l| l.contains("nodes not run (provision/")),
        "{dry_out}"
    );
    let verbose = anklume(
        dir.path(),
        &["apply", "plan.bin", "--dry-run", "--no-nftables", "-v"],
    );
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    let provisions = verbose
        .lines()
        .filter(|l| l.starts_with("  . provision/"))
        .count();
    assert!(provisions >= 2, "{verbose}");
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["updated"], 1, "{s}");
    rt.block_on(async {
        let web = get(&incus, &format!("/1.0/instances/{a}-web?project={a}")).await;
        assert_eq!(web["config"]["boot.autostart"], "true");
        assert_eq!(web["config"]["user.extra"], "added-by-hand");
        // A stopped instance is started again.
        incus
            .put(
                &format!("/1.0/instances/{b}-one/state?project={b}"),
                &json!({"action": "stop", "force": true}),
                None,
            )
            .await
            .unwrap();
    });
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["updated"], 1, "{s}");
    rt.block_on(async {
        let one = get(&incus, &format!("/1.0/instances/{b}-one?project={b}")).await;
        assert_eq!(one["status"], "Running");
        cleanup(&incus, &[a, b]).await;
    });
}

#[test]
fn dry_run_changes_nothing() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b) = ("ankt-c", "ankt-d");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[a, b]));
    // Half of the infrastructure exists already: the dry run has creates and
    // updates to show.
    let dir = planned(&infra_two_domains(202, a, b).replace(
        &format!("  {b}:\n    trust_level: trusted\n    machines:\n      {b}-one: {{}}\n"),
        "",
    ));
    let (o, _) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    replan(
        dir.path(),
        &infra_two_domains(202, a, b).replace("boot_priority: 20", "boot_priority: 30"),
    );
    let before = rt.block_on(snapshot(&incus, &[a, b]));
    let o = anklume(
        dir.path(),
        &[
            "apply",
            "plan.bin",
            "--dry-run",
            "--format",
            "json",
            "--no-nftables",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = summary(&o);
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["writes"], 0, "{s}");
    assert_eq!(s["update"], 1, "{s}");
    assert_eq!(s["create"], 3, "{s}");
    let after = rt.block_on(snapshot(&incus, &[a, b]));
    assert_eq!(before, after, "the dry run changed Incus");
    rt.block_on(cleanup(&incus, &[a, b]));
}

#[test]
fn failures_skip_dependents_and_independent_nodes_finish() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b) = ("ankt-e", "ankt-f");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[a, b]));
    // The profile has a value Incus rejects (a known key: neither `check`
    // nor preflight knows Incus's value rules): the instance using it is
    // skipped; the other instance and the other domain are created.
    let infra =
        infra_two_domains(203, a, b).replace("limits.memory: 256MiB", "limits.memory: lots");
    let dir = planned(&infra);
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["skipped"], 2, "{s}"); // the instance and its provisioning
    let out = String::from_utf8_lossy(&o.stdout);
    let failed: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result" && v["node"]["result"] == "failed")
        .expect("a failed node event");
    assert_eq!(failed["node"]["id"], format!("profile/{a}/small"));
    assert!(
        failed["node"]["error"]
            .as_str()
            .unwrap()
            .contains("Invalid value: lots"),
        "{failed}"
    );
    let skipped: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result" && v["node"]["result"] == "skipped")
        .expect("a skipped node event");
    assert_eq!(skipped["node"]["id"], format!("instance/{a}/{a}-web"));
    assert_eq!(skipped["node"]["because"], format!("profile/{a}/small"));
    rt.block_on(async {
        assert!(incus
            .get(&format!("/1.0/instances/{a}-tmp?project={a}"))
            .await
            .is_ok());
        assert!(incus
            .get(&format!("/1.0/instances/{b}-one?project={b}"))
            .await
            .is_ok());
        assert!(incus
            .get(&format!("/1.0/instances/{a}-web?project={a}"))
            .await
            .is_err());
    });
    // The text summary names the failed node and Incus's error.
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 node(s) failed:"), "{err}");
    assert!(err.contains(&format!("FAILED profile/{a}/small")), "{err}");
    rt.block_on(cleanup(&incus, &[a, b]));
}

#[test]
fn preflight_refuses_missing_images_and_address_clashes_before_any_change() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b, c) = ("ankt-g", "ankt-h", "ankt-i");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[a, b, c]));
    let missing = planned(&infra_two_domains(204, a, b).replace(
        &format!("default_os_image: {IMAGE}"),
        "default_os_image: no-such-image-zz",
    ));
    let o = anklume(
        missing.path(),
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("image 'no-such-image-zz' is not a local image alias"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    rt.block_on(async {
        assert!(
            incus.get(&format!("/1.0/networks/net-{a}")).await.is_err(),
            "a network was created"
        );
    });

    // An instance of another infrastructure already holds the address.
    let first = planned(&format!(
        "project_name: one\nglobal:\n  addressing: {{zone_base: 205}}\n  default_os_image: {IMAGE}\ndomains:\n  {c}:\n    trust_level: admin\n    machines:\n      {c}-x: {{ip: 10.205.0.10}}\n"
    ));
    let (o, _) = apply_json(first.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let second = planned(&format!(
        "project_name: two\nglobal:\n  addressing: {{zone_base: 205}}\n  default_os_image: {IMAGE}\ndomains:\n  {a}:\n    trust_level: admin\n    machines:\n      {a}-y: {{ip: 10.205.0.10}}\n"
    ));
    let o = anklume(
        second.path(),
        &["apply", "plan.bin", "--yes", "--no-nftables"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("static address 10.205.0.10 of instance '{a}-y' (project {a}) (infra.yml:9:7) is already used by instance '{c}-x' (project {c})")),
        "{err}"
    );
    rt.block_on(async {
        assert!(
            incus.get(&format!("/1.0/projects/{a}")).await.is_err(),
            "a project was created"
        );
        cleanup(&incus, &[a, b, c]).await;
    });
}

/// Rewrite plan.bin in `dir` with `edit` applied to its body (a plan made by
/// an anklume whose key catalogue differs from the server's, or edited).
fn edit_plan(dir: &std::path::Path, edit: impl FnOnce(&mut anklume_plan::Plan)) {
    let path = dir.join("plan.bin");
    let mut file = anklume_plan::codec::read(&path).unwrap();
    edit(&mut file.plan);
    std::fs::write(&path, anklume_plan::codec::encode(&file)).unwrap();
}

fn instance_mut<'a>(
    plan: &'a mut anklume_plan::Plan,
    name: &str,
) -> &'a mut anklume_plan::Instance {
    plan.nodes
        .iter_mut()
        .find_map(|n| match &mut n.resource {
            anklume_plan::Resource::Instance(i) if i.name == name => Some(i),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no instance {name} in the plan"))
}

#[test]
fn unknown_config_keys_are_refused_before_any_change_and_failures_name_their_source_line() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b) = ("ankt-ka", "ankt-kb");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[a, b]));
    let infra = infra_two_domains(206, a, b);
    // Where the machine is declared: what every message about it names.
    let line = infra
        .lines()
        .position(|l| l.trim() == format!("{a}-web:"))
        .unwrap()
        + 1;
    let origin = format!("infra.yml:{line}:7");

    // Positive control: the same plan with only known keys passes
    // preflight (a dry run that reads the catalogue: it creates things).
    let dir = planned(&infra);
    let o = anklume(
        dir.path(),
        &["apply", "plan.bin", "--dry-run", "--no-nftables"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A typo in a config key and in a disk option: preflight names both,
    // with the node and its source line, against the live catalogue.
    edit_plan(dir.path(), |plan| {
        let i = instance_mut(plan, &format!("{a}-web"));
        i.config.insert("limits.cpus".into(), "1".into());
        i.devices.insert(
            "data".into(),
            [
                ("type", "disk"),
                ("source", "/tmp"),
                ("path", "/mnt/x"),
                ("readonyl", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
    });
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let id = format!("instance/{a}/{a}-web");
    assert!(
        err.contains(&format!("error: {id} ({origin}): config key 'limits.cpus' is unknown to this Incus server (did you mean `limits.cpu`?)")),
        "{err}"
    );
    assert!(
        err.contains(&format!("error: {id} ({origin}): option 'readonyl' of device 'data' is unknown to this Incus server (did you mean `readonly`?)")),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    rt.block_on(async {
        assert!(
            incus.get(&format!("/1.0/networks/net-{a}")).await.is_err(),
            "a network was created"
        );
    });

    // What the live catalogue does not describe (a nic option, on Incus
    // 6.0.4; `check` knows it offline): Incus refuses it at
    // create time, and the failure names the node's source line.
    let dir = planned(&infra);
    edit_plan(dir.path(), |plan| {
        let i = instance_mut(plan, &format!("{a}-web"));
        let nic = i
            .devices
            .values_mut()
            .find(|d| d.get("type").map(String::as_str) == Some("nic"))
            .expect("the machine has a static-address nic");
        nic.insert("ipv4.adress".into(), "10.206.0.10".into());
    });
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("FAILED {id} ({origin}): ")) && err.contains("ipv4.adress"),
        "{err}"
    );
    let (o, _) = apply_json(dir.path(), &[]);
    let failed = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["node"]["id"] == id.as_str() && v["node"]["result"] == "failed")
        .unwrap_or_else(|| panic!("no failed event for {id} in\n{}", text(&o)));
    assert_eq!(failed["node"]["origin"], origin.as_str(), "{failed}");
    rt.block_on(cleanup(&incus, &[a, b]));
}

#[test]
fn stale_plans_and_concurrent_applies_are_refused() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (a, b) = ("ankt-j", "ankt-k");
    let dir = planned(&infra_two_domains(206, a, b));
    std::fs::write(
        dir.path().join("infra.yml"),
        infra_two_domains(206, a, b).replace("web server", "web"),
    )
    .unwrap();
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the plan is stale: infra.yml changed"),
        "{err}"
    );

    let o = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0));
    let lock = anklume_executor::state::lock(&dir.path().join("state")).unwrap();
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another anklume apply is running"));
    drop(lock);
    let rt = rt();
    rt.block_on(async {
        assert!(
            incus.get(&format!("/1.0/networks/net-{a}")).await.is_err(),
            "a refused apply changed Incus"
        );
    });
}

/// Offline (as on this project's machines), an `images:` image cannot be
/// pulled: the failure names the image and suggests a local alias. With a
/// network the image would really be downloaded, so the test only runs when
/// the image server's name does not resolve.
#[test]
fn an_unreachable_remote_image_is_a_clear_error() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    use std::net::ToSocketAddrs;
    if ("images.linuxcontainers.org", 443)
        .to_socket_addrs()
        .is_ok()
    {
        eprintln!(
            "skipped: images.linuxcontainers.org resolves (online): the image would be downloaded"
        );
        return;
    }
    let d = "ankt-rm";
    let rt = rt();
    rt.block_on(cleanup(&incus, &[d]));
    let dir = planned(&format!(
        "project_name: remote\nglobal:\n  addressing: {{zone_base: 225}}\n  default_os_image: \"images:debian/13\"\ndomains:\n  {d}:\n    trust_level: admin\n    machines:\n      {d}-one: {{ephemeral: true}}\n"
    ));
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes", "--no-nftables"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains(&format!("FAILED instance/{d}/{d}-one (infra.yml:9:7): image 'images:debian/13' cannot be fetched from its remote")),
        "{all}"
    );
    assert!(
        all.contains("(offline? import the image locally and use its alias instead)"),
        "{all}"
    );
    // Independent nodes were created; nothing half-made is left.
    rt.block_on(async {
        assert!(incus
            .get_opt(&format!("/1.0/instances/{d}-one?project={d}"))
            .await
            .unwrap()
            .is_none());
        get(&incus, &format!("/1.0/projects/{d}")).await;
    });
    rt.block_on(cleanup(&incus, &[d]));
}

/// Cleanup never touches an object the tests did not create: a decoy
/// project (with a profile and a custom volume in it) and a decoy bridge,
/// named like a user's domain and marked as anklume's, survive the cleanup
/// even when it is handed their name; a decoy profile and volume in the
/// default project survive the cleanup of a test project that lacks those
/// features (Incus then lists the default project's for it). The decoys
/// (and a pre-apply snapshot of a decoy instance) are also what makes the
/// real-daemon tests refuse to run.
#[test]
fn cleanup_never_touches_objects_without_the_test_prefix() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    let (d, t) = ("zdecoy", "ankt-dc");
    let exists = |path: String| {
        let incus = &incus;
        async move { incus.get_opt(&path).await.unwrap().is_some() }
    };
    let decoys = [
        format!("/1.0/storage-pools/default/volumes/custom/decoy-vol?project={d}"),
        format!("/1.0/profiles/decoy?project={d}"),
        format!("/1.0/projects/{d}"),
        format!("/1.0/networks/net-{d}"),
        format!("/1.0/storage-pools/default/volumes/custom/{d}-vol?project=default"),
        format!("/1.0/profiles/{d}?project=default"),
        format!("/1.0/instances/{d}-i?project=default"),
    ];
    let snapshot = "pre-apply-20200101-000000";
    rt.block_on(async {
        for path in &decoys {
            assert!(
                !exists(path.clone()).await,
                "{path} exists already: not touching it"
            );
        }
        let post = |path: String, body: Value| {
            let incus = &incus;
            async move {
                incus
                    .post(&path, &body)
                    .await
                    .unwrap_or_else(|e| panic!("POST {path}: {e}"));
            }
        };
        let managed = json!({"user.anklume.managed": "true", "user.anklume.domain": d});
        post("/1.0/networks".into(), json!({"name": format!("net-{d}"), "type": "bridge", "config": {"ipv4.address": "none", "ipv6.address": "none", "user.anklume.managed": "true"}})).await;
        post("/1.0/projects".into(), json!({"name": d, "config": {"user.anklume.managed": "true", "features.profiles": "true", "features.storage.volumes": "true"}})).await;
        post(format!("/1.0/profiles?project={d}"), json!({"name": "decoy", "config": managed})).await;
        let volume = |name: String| json!({"name": name, "type": "custom", "content_type": "filesystem"});
        post(format!("/1.0/storage-pools/default/volumes/custom?project={d}"), volume("decoy-vol".into())).await;
        post("/1.0/profiles?project=default".into(), json!({"name": d})).await;
        post("/1.0/storage-pools/default/volumes/custom?project=default".into(), volume(format!("{d}-vol"))).await;
        // An instance of the default project with a pre-apply snapshot:
        // what a real anklume host has, and what snapshot retention prunes.
        post("/1.0/instances?project=default".into(), json!({"name": format!("{d}-i"), "type": "container", "source": {"type": "image", "alias": IMAGE}})).await;
        post(format!("/1.0/instances/{d}-i/snapshots?project=default"), json!({"name": snapshot})).await;
        // A test project without its own profiles and volumes.
        post("/1.0/projects".into(), json!({"name": t, "config": {"features.profiles": "false", "features.storage.volumes": "false"}})).await;
    });
    let foreign = rt.block_on(foreign_state(&incus));
    let handed =
        std::panic::catch_unwind(|| common::live::rt().block_on(cleanup(&Incus::from_env(), &[d])));
    rt.block_on(cleanup(&incus, &[t]));
    let survived: Vec<bool> = rt.block_on(async {
        let mut v = Vec::new();
        for path in &decoys {
            v.push(exists(path.clone()).await);
        }
        v
    });
    let test_project_left = rt.block_on(exists(format!("/1.0/projects/{t}")));
    // Remove the decoys (they are this test's own), contents first.
    rt.block_on(async {
        for path in &decoys {
            let _ = incus.delete(path).await;
        }
    });
    assert_eq!(
        survived,
        vec![true; decoys.len()],
        "cleanup deleted a decoy: {decoys:?}"
    );
    assert!(
        handed.is_err(),
        "cleanup accepted a name without the test prefix"
    );
    assert!(
        !test_project_left,
        "the test project {t} was not cleaned up"
    );
    assert!(
        foreign
            .iter()
            .any(|f| f.contains(&format!("project '{d}'")))
            && foreign
                .iter()
                .any(|f| f.contains(&format!("bridge 'net-{d}'")))
            && foreign
                .iter()
                .any(|f| f.contains(&format!("snapshot '{snapshot}' of '{d}-i'")))
            && !foreign.iter().any(|f| f.contains(t)),
        "the decoys are foreign state, the test project is not: {foreign:?}"
    );
    let refusal = refusal(&foreign);
    assert!(
        refusal.contains("refusing to run") && refusal.contains(common::ALLOW_FOREIGN),
        "{refusal}"
    );
}

/// Renumbering (issue 12, item 1): a machine inserted above two others
/// shifts their automatic addresses, and two machines swap theirs; apply
/// carries both out (it frees the addresses taken over first), and
/// rollback puts every address back.
#[test]
fn address_shifts_and_swaps_are_applied_and_rolled_back() {
    let Some(incus) = daemon() else {
        return;
    };
    let _serial = serial();
    let rt = rt();
    let d = "ankt-ren";
    rt.block_on(cleanup(&incus, &[d]));
    let infra = |machines: &str| {
        format!(
            "project_name: itest\nglobal:\n  addressing: {{zone_base: 211}}\n  default_os_image: {IMAGE}\ndomains:\n  {d}:\n    machines:\n{machines}"
        )
    };
    let ips = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|m| {
                let v = rt.block_on(get(&incus, &format!("/1.0/instances/{d}-{m}?project={d}")));
                v["devices"]["eth0"]["ipv4.address"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string()
            })
            .collect()
    };
    let dir = planned(&infra(&format!("      {d}-b: {{}}\n      {d}-c: {{}}\n")));
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");
    let first = ips(&["b", "c"]);
    let prefix = first[0].rsplit_once('.').unwrap().0.to_string();
    assert_eq!(first, [format!("{prefix}.1"), format!("{prefix}.2")]);

    // `a` inserted above: b .1 -> .2, c .2 -> .3, a takes .1.
    replan(
        dir.path(),
        &infra(&format!(
            "      {d}-a: {{}}\n      {d}-b: {{}}\n      {d}-c: {{}}\n"
        )),
    );
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        (s["failed"].as_u64(), s["created"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert!(
        text(&o).contains("\"event\":\"address_freed\""),
        "{}",
        text(&o)
    );
    let shifted = ips(&["a", "b", "c"]);
    assert_eq!(
        shifted,
        [
            format!("{prefix}.1"),
            format!("{prefix}.2"),
            format!("{prefix}.3")
        ]
    );

    // b and c swap their (now explicit) addresses.
    replan(
        dir.path(),
        &infra(&format!(
            "      {d}-a: {{}}\n      {d}-b: {{ip: {prefix}.3}}\n      {d}-c: {{ip: {prefix}.2}}\n"
        )),
    );
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(
        ips(&["a", "b", "c"]),
        [
            format!("{prefix}.1"),
            format!("{prefix}.3"),
            format!("{prefix}.2")
        ]
    );

    // Rollback of the swap, then of the shift: every address as before.
    let o = anklume(dir.path(), &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(ips(&["a", "b", "c"]), shifted);
    let o = anklume(dir.path(), &["rollback", "--list", "--format", "json"]);
    let rows: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shift = rows[1]["ts"].as_str().unwrap().to_string();
    let o = anklume(dir.path(), &["rollback", &shift, "--yes", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(ips(&["b", "c"]), first);
    rt.block_on(cleanup(&incus, &[d]));
}
