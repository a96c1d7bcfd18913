//! Provisioning in the plan, without a daemon: each instance's fingerprint
//! follows exactly what its provisioning depends on (its roles' files, its
//! variable files), and `apply` refuses a plan whose Ansible tree changed.

mod common;

use std::path::Path;

use common::{anklume_command, text};

const INFRA: &str = "project_name: demo
global:
  addressing: {}
domains:
  pro:
    machines:
      pro-a: {roles: [web]}
      pro-b: {}
";

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    anklume_command(dir, args)
        .env("ANKLUME_ANSIBLE_DIR", dir.join("shipped"))
        .output()
        .unwrap()
}

/// host → fingerprint, from `plan --format json`.
fn fingerprints(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let o = run(dir, &["plan", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "provision")
        .map(|n| {
            let p = &n["resource"]["Provision"];
            (
                p["host"].as_str().unwrap().to_string(),
                p["fingerprint"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn fingerprints_follow_roles_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "infra.yml", INFRA);
    write(
        d,
        "shipped/roles/base_system/tasks/main.yml",
        "- ansible.builtin.debug: {msg: base}\n",
    );
    write(
        d,
        "roles_custom/web/tasks/main.yml",
        "- ansible.builtin.debug: {msg: web}\n",
    );
    let o = run(d, &["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = fingerprints(d);
    assert_eq!(first.len(), 2);
    assert!(first.values().all(|f| f.len() == 64), "{first:?}");
    // Deterministic.
    assert_eq!(fingerprints(d), first);

    // One file of a role that only pro-a runs: only pro-a changes.
    write(
        d,
        "roles_custom/web/tasks/main.yml",
        "- ansible.builtin.debug: {msg: web2}\n",
    );
    let web = fingerprints(d);
    assert_ne!(web["pro-a"], first["pro-a"]);
    assert_eq!(web["pro-b"], first["pro-b"]);

    // A task file anklume's roles share (`tasks/` beside `roles/`) counts
    // for every instance running a shipped role: here both (base_system).
    write(
        d,
        "shipped/tasks/nodejs.yml",
        "- ansible.builtin.debug: {msg: node}\n",
    );
    let shared = fingerprints(d);
    assert_ne!(shared["pro-a"], web["pro-a"]);
    assert_ne!(shared["pro-b"], web["pro-b"]);
    let web = shared;

    // A role everyone runs: both change.
    write(d, "shipped/roles/base_system/defaults/main.yml", "x: 1\n");
    let base = fingerprints(d);
    assert_ne!(base["pro-a"], web["pro-a"]);
    assert_ne!(base["pro-b"], web["pro-b"]);

    // A variable written below pro-b's managed block: only pro-b.
    let hv = d.join("host_vars/pro-b.yml");
    let mut t = std::fs::read_to_string(&hv).unwrap();
    t.push_str("my_var: 1\n");
    std::fs::write(&hv, t).unwrap();
    let vars = fingerprints(d);
    assert_eq!(vars["pro-a"], base["pro-a"]);
    assert_ne!(vars["pro-b"], base["pro-b"]);

    // A role shadowed by the user's copy: from then on the user's counts.
    write(
        d,
        "roles_custom/base_system/tasks/main.yml",
        "- ansible.builtin.debug: {msg: mine}\n",
    );
    let shadow = fingerprints(d);
    assert_ne!(shadow["pro-b"], vars["pro-b"]);
}

#[test]
fn a_missing_role_is_said_and_apply_refuses_a_changed_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "infra.yml", INFRA);
    write(
        d,
        "shipped/roles/base_system/tasks/main.yml",
        "- ansible.builtin.debug: {msg: base}\n",
    );
    assert_eq!(run(d, &["sync"]).status.code(), Some(0));
    // `web` is nowhere: a warning naming the role and who uses it.
    let o = run(d, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("role 'web'") && err.contains("pro-a"), "{err}");

    // The tree changes after planning: apply refuses before asking Incus
    // anything, and names the file; --allow-stale is the way past it.
    let dry = ["apply", "plan.bin", "--dry-run", "--no-nftables"];
    let hv = d.join("host_vars/pro-a.yml");
    let mut t = std::fs::read_to_string(&hv).unwrap();
    t.push_str("my_var: 1\n");
    std::fs::write(&hv, t).unwrap();
    let o = run(d, &dry);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the plan is stale: ./host_vars/pro-a.yml"),
        "{}",
        text(&o)
    );
    // A file added to a user role after planning counts.
    write(
        d,
        "roles_custom/web2/tasks/main.yml",
        "- ansible.builtin.debug: {msg: x}\n",
    );
    let infra2 = INFRA.replace("roles: [web]", "roles: [web2]");
    write(d, "infra.yml", &infra2);
    assert_eq!(run(d, &["plan", "-o", "plan.bin"]).status.code(), Some(0));
    write(d, "roles_custom/web2/defaults/main.yml", "x: 1\n");
    let o = run(d, &dry);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("./roles_custom/web2/"), "{}", text(&o));
    write(d, "infra.yml", INFRA);

    // A user role that appears after planning counts too: the missing
    // `web`, or a copy of `base_system` that would shadow anklume's.
    for role in ["web", "base_system"] {
        assert_eq!(run(d, &["plan", "-o", "plan.bin"]).status.code(), Some(0));
        write(
            d,
            &format!("roles_custom/{role}/tasks/main.yml"),
            "- ansible.builtin.debug: {msg: x}\n",
        );
        let o = run(d, &dry);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("./roles_custom/{role}")),
            "{}",
            text(&o)
        );
    }
}

/// A plan applied from another directory is checked against the files
/// beside it, the sources and the Ansible tree alike (issue 12, item 3); a
/// file changed there is still stale, and the message says where the paths
/// were read. No daemon: the socket points nowhere, so an apply that gets
/// past the staleness check stops at "cannot reach Incus".
#[test]
fn a_plan_applied_from_elsewhere_reads_its_files_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("proj");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write(&proj, "infra.yml", INFRA);
    write(
        &proj,
        "shipped/roles/base_system/tasks/main.yml",
        "- ansible.builtin.debug: {msg: base}\n",
    );
    write(
        &proj,
        "roles_custom/web/tasks/main.yml",
        "- ansible.builtin.debug: {msg: web}\n",
    );
    assert_eq!(run(&proj, &["sync"]).status.code(), Some(0));
    let o = run(&proj, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan = proj.join("plan.bin");
    let apply = |cwd: &Path| {
        anklume_command(
            cwd,
            &[
                "apply",
                plan.to_str().unwrap(),
                "--dry-run",
                "--no-nftables",
            ],
        )
        .env("ANKLUME_ANSIBLE_DIR", proj.join("shipped"))
        .env("INCUS_SOCKET", dir.path().join("no-socket"))
        .output()
        .unwrap()
    };
    for cwd in [&proj, &elsewhere] {
        let o = apply(cwd);
        assert!(!text(&o).contains("stale"), "from {cwd:?}: {}", text(&o));
        assert!(text(&o).contains("cannot reach Incus"), "{}", text(&o));
    }
    // Another project's infra.yml where apply runs does not fool it.
    write(&elsewhere, "infra.yml", "project_name: other\n");
    let o = apply(&elsewhere);
    assert!(!text(&o).contains("stale"), "{}", text(&o));
    // A change beside the plan is stale from anywhere, and says where.
    let hv = proj.join("host_vars/pro-a.yml");
    let mut t = std::fs::read_to_string(&hv).unwrap();
    t.push_str("my_var: 1\n");
    std::fs::write(&hv, t).unwrap();
    for cwd in [&proj, &elsewhere] {
        let o = apply(cwd);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("the plan is stale: ./host_vars/pro-a.yml"),
            "{t}"
        );
        assert!(
            t.contains(&format!("relative to {}", proj.display())),
            "{t}"
        );
    }
}
