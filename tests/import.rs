//! `anklume import` against a real Incus daemon (set up by
//! `scripts/incus-setup.sh`), and its errors without one.
//!
//! The real-daemon test builds a state by hand with the `incus` command
//! (never with anklume): a project `ankt-ia` following anklume's
//! conventions (its bridge, its default profile), a profile with a memory
//! limit, an unprotected container with a user key and a static address, a
//! protected one using the profile with a custom volume mounted and a
//! snapshot expiry, and a volume no instance mounts; then imports it, and
//! checks that `check` passes, that the plan's dry run has nothing to create
//! or change (only `adopt`, whose changes are only `user.anklume.*` keys),
//! that after one apply a dry run shows nothing at all, that no instance
//! was made again (same `volatile.uuid`), and that a file written inside
//! before the import is still there. A second project `ankt-ib` breaks the
//! conventions (no bridge of its own, no NIC in its default profile, the instance's own NIC on another domain's bridge):
//! its import warns and says so in the file. It uses only `ankt-ia` and
//! `ankt-ib` objects and cleans up after itself. Run it as the other
//! real-daemon tests: `flock /tmp/anklume-incus.lock cargo test --test
//! import`. Without an Incus socket it is skipped (a failure with
//! `ANKLUME_REQUIRE_INCUS=1`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::live::{apply_json, cleanup, daemon, exec, get, rt};
use common::{anklume, anklume_command, text, IMAGE};
use serde_json::Value;

const A: &str = "ankt-ia";
const B: &str = "ankt-ib";

/// `incus ARGS`, which must succeed.
fn incus(args: &[&str]) {
    let o = Command::new("incus")
        .args(args)
        .output()
        .expect("incus runs");
    assert!(
        o.status.success(),
        "incus {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The state, made by hand.
fn build_by_hand() {
    let net_a = format!("net-{A}");
    incus(&[
        "network",
        "create",
        &net_a,
        "ipv4.address=10.219.7.254/24",
        "ipv4.nat=true",
        "ipv4.firewall=true",
        "ipv4.dhcp.ranges=10.219.7.100-10.219.7.199",
        "ipv6.address=none",
        "--description",
        "Imported lab",
    ]);
    for p in [A, B] {
        incus(&[
            "project",
            "create",
            p,
            "-c",
            "features.images=false",
            "-c",
            "features.profiles=true",
            "-c",
            "features.storage.volumes=true",
            "-c",
            "features.networks=false",
        ]);
        incus(&[
            "profile",
            "device",
            "add",
            "default",
            "root",
            "disk",
            "pool=default",
            "path=/",
            "--project",
            p,
        ]);
        if p == B {
            // B has no bridge of its own, and its default profile no NIC.
            continue;
        }
        incus(&[
            "profile",
            "device",
            "add",
            "default",
            "eth0",
            "nic",
            &format!("network={net_a}"),
            "name=eth0",
            "security.mac_filtering=true",
            "security.ipv4_filtering=true",
            "security.ipv6_filtering=true",
            "--project",
            p,
        ]);
    }
    incus(&[
        "project",
        "set",
        A,
        "description=Imported lab",
        "--property",
    ]);
    incus(&["profile", "create", "ankt-lim", "--project", A]);
    incus(&[
        "profile",
        "set",
        "ankt-lim",
        "limits.memory=256MiB",
        "--project",
        A,
    ]);
    for v in ["ankt-ia-data", "ankt-ia-loose"] {
        incus(&["storage", "volume", "create", "default", v, "--project", A]);
    }
    incus(&[
        "launch",
        IMAGE,
        "ankt-ia-web",
        "--project",
        A,
        "-c",
        "security.protection.delete=false",
        "-c",
        "user.note=hello: world",
        "-c",
        "boot.autostart=false",
    ]);
    incus(&[
        "config",
        "device",
        "override",
        "ankt-ia-web",
        "eth0",
        "ipv4.address=10.219.7.10",
        "--project",
        A,
    ]);
    incus(&[
        "launch",
        IMAGE,
        "ankt-ia-db",
        "--project",
        A,
        "--profile",
        "default",
        "--profile",
        "ankt-lim",
        "-c",
        "security.protection.delete=true",
        "-c",
        "snapshots.expiry=7d",
        "--description",
        "the database",
    ]);
    incus(&[
        "config",
        "device",
        "add",
        "ankt-ia-db",
        "ankt-ia-data",
        "disk",
        "pool=default",
        "source=ankt-ia-data",
        "path=/data",
        "--project",
        A,
    ]);
    incus(&[
        "launch",
        IMAGE,
        "ankt-ib-odd",
        "--project",
        B,
        "-c",
        "security.protection.delete=false",
    ]);
    incus(&[
        "config",
        "device",
        "add",
        "ankt-ib-odd",
        "eth0",
        "nic",
        &format!("network={net_a}"),
        "name=eth0",
        "--project",
        B,
    ]);
}

/// The decisions of `apply --dry-run --format json` for the Incus objects
/// (not the host ruleset, not provisioning), by id.
fn decisions(dir: &Path) -> Vec<(String, Value)> {
    let o = anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--dry-run",
            "--format",
            "json",
            "--no-nftables",
            "--no-provision",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "decision")
        .map(|v| {
            (
                v["id"].as_str().unwrap_or("").to_string(),
                v["decision"].clone(),
            )
        })
        .filter(|(id, _)| {
            ["network/", "project/", "profile/", "volume/", "instance/"]
                .iter()
                .any(|k| id.starts_with(k))
        })
        .collect()
}

async fn uuid(incus: &anklume_executor::Incus, name: &str) -> String {
    get(incus, &format!("/1.0/instances/{name}?project={A}")).await["config"]["volatile.uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn import_of_a_hand_made_state_is_only_adopted_and_keeps_instances_and_data() {
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    rt.block_on(cleanup(&incus, &[B, A]));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        build_by_hand();
        scenario(&incus, &rt)
    }));
    rt.block_on(cleanup(&incus, &[B, A]));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn scenario(incus: &anklume_executor::Incus, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // Data written inside before the import.
    assert_eq!(
        rt.block_on(exec(
            incus,
            A,
            "ankt-ia-db",
            "echo keep > /etc/imported-marker"
        )),
        0
    );
    let before = (
        rt.block_on(uuid(incus, "ankt-ia-web")),
        rt.block_on(uuid(incus, "ankt-ia-db")),
    );
    assert!(!before.0.is_empty() && !before.1.is_empty());

    // Import A only.
    let o = anklume(p, &["import", "--project", A, "-o", "infra.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let file = std::fs::read_to_string(p.join("infra.yml")).unwrap();
    assert!(file.contains(&format!("\n  {A}:\n")), "{file}");
    assert!(!file.contains(B), "only {A} was asked for:\n{file}");
    for expected in [
        "ip: 10.219.7.10",
        "user.note: \"hello: world\"",
        "boot_autostart: false",
        "snapshots_expiry: 7d",
        "profiles: [default, ankt-lim]",
        "limits.memory: 256MiB",
        "description: \"the database\"",
        "description: \"Imported lab\"",
        "base_subnet: \"10.219\"",
        "subnet_id: 7",
        "os_image: anklume-busybox",
        "path: /data",
        "# guessed: the custom volume 'ankt-ia-loose'",
    ] {
        assert!(file.contains(expected), "no `{expected}` in\n{file}");
    }
    assert!(
        !file.contains("# apply will") && !file.contains("# not expressed"),
        "a conventional state imports without differences:\n{file}\n{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("warning:"), "{}", text(&o));
    // web is unprotected, db protected (the default).
    let web = file.split("ankt-ia-web:").nth(1).unwrap();
    assert!(web.contains("ephemeral: true"), "{file}");
    let db = file.split("ankt-ia-db:").nth(1).unwrap();
    let db = db.split("ankt-ia-web:").next().unwrap();
    assert!(!db.contains("ephemeral"), "{file}");

    let o = anklume(p, &["check", "infra.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = anklume(p, &["plan", "infra.yml", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Nothing to create, nothing to change: only adoption.
    let ds = decisions(p);
    for kind in ["network/", "project/", "profile/", "volume/", "instance/"] {
        assert!(
            ds.iter().any(|(id, _)| id.starts_with(kind)),
            "no {kind} decision in {ds:?}"
        );
    }
    assert_eq!(
        ds.len(),
        7,
        "bridge, project, profile, two volumes, two instances: {ds:?}"
    );
    for (id, d) in &ds {
        assert_eq!(d["action"], "adopt", "{id}: {d}");
        for c in d["changes"].as_array().unwrap() {
            let key = c["key"].as_str().unwrap();
            assert!(
                key.starts_with("config.user.anklume."),
                "{id}: {key} changes: {d}"
            );
        }
    }

    // One apply; then nothing at all.
    let (o, s) = apply_json(p, &["--no-provision"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");
    let ds = decisions(p);
    for (id, d) in &ds {
        assert_eq!(d["action"], "unchanged", "{id}: {d}");
    }
    let after = (
        rt.block_on(uuid(incus, "ankt-ia-web")),
        rt.block_on(uuid(incus, "ankt-ia-db")),
    );
    assert_eq!(before, after, "an instance was made again");
    assert_eq!(
        rt.block_on(exec(
            incus,
            A,
            "ankt-ia-db",
            "test \"$(cat /etc/imported-marker)\" = keep"
        )),
        0,
        "the file written before the import is gone"
    );
    // Positive control of the probe above.
    assert_ne!(
        rt.block_on(exec(incus, A, "ankt-ia-db", "test -f /etc/no-such-marker")),
        0
    );
    let web = rt.block_on(get(
        incus,
        &format!("/1.0/instances/ankt-ia-web?project={A}"),
    ));
    assert_eq!(web["config"]["user.note"], "hello: world");
    assert_eq!(web["config"]["user.anklume.managed"], "true");
    assert_eq!(web["devices"]["eth0"]["ipv4.address"], "10.219.7.10");
    let lim = rt.block_on(get(incus, &format!("/1.0/profiles/ankt-lim?project={A}")));
    assert_eq!(lim["config"]["limits.memory"], "256MiB");

    // The output file exists: refused without --force, untouched.
    let o = anklume(p, &["import", "--project", A, "-o", "infra.yml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(p.join("infra.yml")).unwrap(), file);
    // With --force it is replaced (now with the adoption marks read back:
    // the same file).
    let o = anklume(p, &["import", "--project", A, "-o", "infra.yml", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(p.join("infra.yml")).unwrap(), file);

    // B breaks the conventions: warnings, and comments in the file.
    let o = anklume(p, &["import", "--domain", B, "-o", "b.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let b = std::fs::read_to_string(p.join("b.yml")).unwrap();
    let err = stderr(&o);
    assert!(!b.contains(&format!("  {A}:")), "{b}");
    assert!(
        err.contains("warning: domain ankt-ib, machine ankt-ib-odd: NIC 'eth0' is on the network 'net-ankt-ia'"),
        "{}",
        text(&o)
    );
    assert!(
        b.contains("# not anklume's convention: NIC 'eth0' is on the network 'net-ankt-ia'"),
        "{b}"
    );
    assert!(
        b.contains("# guessed: Incus has no bridge net-ankt-ib"),
        "{b}"
    );
    assert!(
        b.contains("# apply will create it (the bridge net-ankt-ib)"),
        "{b}"
    );
    assert!(
        b.contains("default_profile.devices.eth0: (none) -> "),
        "{b}"
    );
    assert!(
        err.contains("warning: domain ankt-ib: apply will create it"),
        "{err}"
    );
    let o = anklume(p, &["check", "b.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A selection Incus does not have.
    let o = anklume(p, &["import", "--project", "ankt-nope", "-o", "c.yml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("ankt-nope"), "{}", text(&o));
    assert!(!p.join("c.yml").exists());
}

#[test]
fn import_without_incus_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let o = anklume_command(p, &["import", "-o", "out.yml"])
        .env("INCUS_SOCKET", p.join("no-such.socket"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("cannot read Incus at"), "{}", text(&o));
    assert!(!p.join("out.yml").exists());
}

#[test]
fn an_existing_output_file_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("infra.imported.yml"), "mine\n").unwrap();
    let run = |args: &[&str]| {
        anklume_command(p, args)
            .env("INCUS_SOCKET", p.join("no-such.socket"))
            .output()
            .unwrap()
    };
    // The default output file.
    let o = run(&["import"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("exists; pass --force"), "{}", text(&o));
    assert!(!stderr(&o).contains("cannot read Incus"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(p.join("infra.imported.yml")).unwrap(),
        "mine\n"
    );
    // Control: with --force it gets as far as Incus (absent here).
    let o = run(&["import", "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("cannot read Incus at"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(p.join("infra.imported.yml")).unwrap(),
        "mine\n"
    );
}
