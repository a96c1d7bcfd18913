//! `anklume apply` provisions, on a real Incus daemon with the
//! `anklume-debian` image and the Ansible venv of
//! `scripts/ansible-setup.sh`: a user role in `roles_custom/` runs, a
//! custom variable written below a managed block is honoured, a second
//! apply starts no Ansible process, editing one role reprovisions only the
//! instances that run it, and rollback brings back the data from before
//! provisioning.
//!
//! Skipped without an Incus socket, the image or the venv (a failure with
//! `ANKLUME_REQUIRE_PROVISIONING=1`). Creates and deletes only `ankt-…`
//! objects, also when it fails. Run it as the others:
//! `flock /tmp/anklume-incus.lock cargo test --test provision`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anklume_executor::{Api, Incus};
use common::live::{cleanup, daemon, rt, summary};
use common::{anklume_command, text};

const DOMAIN: &str = "ankt-pv";
const A: &str = "ankt-pv-a";
const B: &str = "ankt-pv-b";

fn infra() -> String {
    format!(
        r#"project_name: ptest
global:
  addressing: {{zone_base: 130}}
  default_os_image: anklume-debian
domains:
  {DOMAIN}:
    machines:
      {A}: {{roles: [hello]}}
      {B}: {{roles: [bye]}}
"#
    )
}

fn venv() -> PathBuf {
    common::ansible_venv()
}

/// Whether everything provisioning needs is here; otherwise skip (or fail
/// when it is required).
fn ready(incus: &Incus) -> bool {
    let image = rt()
        .block_on(incus.get("/1.0/images/aliases/anklume-debian"))
        .is_ok();
    let ansible = venv().join("bin/ansible-playbook").is_file();
    image && ansible
        || common::skip(
            "ANKLUME_REQUIRE_PROVISIONING",
            &format!("provisioning needs the anklume-debian image (scripts/image-debian.sh: {image}) and the Ansible venv (scripts/ansible-setup.sh: {ansible})"),
        )
}

struct Cleanup<'a>(&'a Incus);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        rt().block_on(cleanup(self.0, &[DOMAIN]));
    }
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    anklume_command(dir, args)
        .env("ANKLUME_ANSIBLE_VENV", venv())
        .output()
        .unwrap()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A role that writes `/root/<name>` from a variable with a default.
fn role(dir: &Path, name: &str, greeting: &str) {
    write(
        dir,
        &format!("roles_custom/{name}/tasks/main.yml"),
        &format!(
            "- name: {name} | write\n  ansible.builtin.copy:\n    dest: /root/{name}\n    content: \"{greeting} {{{{ {name}_word | default('world') }}}}\\n\"\n    mode: \"0644\"\n"
        ),
    );
}

/// plan, then apply; the summary and the provision results by host.
fn plan_apply(dir: &Path) -> (serde_json::Value, Vec<(String, String)>) {
    let o = run(dir, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(
        dir,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--format",
            "json",
            "--no-nftables",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (summary(&o), provision_results(&o))
}

/// A's provisioning unchanged, B's run again.
fn only_b_updated() -> [(String, String); 2] {
    [
        (A.to_string(), "unchanged".into()),
        (B.to_string(), "updated".into()),
    ]
}

/// The provision nodes' results of an apply's JSON events, by machine.
fn provision_results(o: &std::process::Output) -> Vec<(String, String)> {
    let mut results: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "result")
        .filter_map(|v| {
            let id = v["node"]["id"]
                .as_str()?
                .strip_prefix("provision/")?
                .to_string();
            Some((id, v["node"]["result"].as_str()?.to_string()))
        })
        .collect();
    results.sort();
    results
}

fn cat(instance: &str, file: &str) -> String {
    let o = Command::new("incus")
        .args(["exec", instance, "--project", DOMAIN, "--", "cat", file])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ansible_runs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/ansible"))
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn apply_provisions_once_and_again_only_what_changed() {
    let Some(incus) = daemon() else {
        return;
    };
    if !ready(&incus) {
        return;
    }
    rt().block_on(cleanup(&incus, &[DOMAIN]));
    let _guard = Cleanup(&incus);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "infra.yml", &infra());
    role(d, "hello", "hi");
    role(d, "bye", "bye");
    let o = run(d, &["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // First apply: both provisioned, in one Ansible run; the user roles ran.
    let (s, prov) = plan_apply(d);
    assert_eq!(
        prov,
        [
            (A.to_string(), "created".into()),
            (B.to_string(), "created".into())
        ],
        "{s}"
    );
    assert_eq!(ansible_runs(d), 1);
    assert_eq!(cat(A, "/root/hello"), "hi world\n");
    assert_eq!(cat(B, "/root/bye"), "bye world\n");
    // The nesting context, one level below this host (which has none).
    for (file, value) in [
        ("absolute_level", "1"),
        ("relative_level", "1"),
        ("vm_nested", "false"),
        ("yolo", "false"),
    ] {
        assert_eq!(
            cat(A, &format!("/etc/anklume/{file}")),
            format!("{value}\n")
        );
    }

    // Converged: no Ansible process, no write.
    let (s, prov) = plan_apply(d);
    assert_eq!(s["writes"], 0, "{s}");
    assert!(prov.iter().all(|(_, r)| r == "unchanged"), "{prov:?}");
    assert_eq!(ansible_runs(d), 1);

    // A variable below A's managed block: honoured, and only A runs again.
    let hv = d.join(format!("host_vars/{A}.yml"));
    let mut t = std::fs::read_to_string(&hv).unwrap();
    t.push_str("hello_word: anklume\n");
    std::fs::write(&hv, t).unwrap();
    let (_, prov) = plan_apply(d);
    assert_eq!(
        prov,
        [
            (A.to_string(), "updated".into()),
            (B.to_string(), "unchanged".into())
        ]
    );
    assert_eq!(cat(A, "/root/hello"), "hi anklume\n");
    // sync keeps the user's variable (and the next plan is unchanged).
    let o = run(d, &["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(std::fs::read_to_string(&hv)
        .unwrap()
        .contains("hello_word: anklume"));

    // One role edited: only the instance that runs it.
    role(d, "bye", "goodbye");
    let (_, prov) = plan_apply(d);
    assert_eq!(prov, only_b_updated());
    assert_eq!(cat(B, "/root/bye"), "goodbye world\n");
    assert_eq!(ansible_runs(d), 3);

    // Rollback of that apply: B's data as before it (its pre-apply
    // snapshot), and its fingerprint, so the next apply provisions it
    // again; A is left alone.
    let o = run(d, &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("restored provision/ankt-pv-b"),
        "{}",
        text(&o)
    );
    assert_eq!(cat(B, "/root/bye"), "bye world\n");
    assert_eq!(cat(A, "/root/hello"), "hi anklume\n");
    let (_, prov) = plan_apply(d);
    assert_eq!(prov, only_b_updated());
    assert_eq!(cat(B, "/root/bye"), "goodbye world\n");

    // --reprovision forces a run where the fingerprint matches: only the
    // named machine.
    let o = run(
        d,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--format",
            "json",
            "--no-nftables",
            "--reprovision",
            A,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let results = provision_results(&o);
    assert!(
        results.contains(&(A.to_string(), "updated".into())),
        "{results:?}"
    );
    assert!(
        results.contains(&(B.to_string(), "unchanged".into())),
        "{results:?}"
    );

    // Both roles edited, and B's now fails: still one Ansible run; A is
    // provisioned, B fails alone, its error names the task and where the
    // whole output is; every task is streamed as an event. B keeps its old
    // fingerprint, so the next apply runs B only.
    let before = ansible_runs(d);
    role(d, "hello", "hey");
    write(
        d,
        "roles_custom/bye/tasks/main.yml",
        "- name: bye | refuse\n  ansible.builtin.fail:\n    msg: bye refuses\n",
    );
    let o = run(d, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(
        d,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--format",
            "json",
            "--no-nftables",
        ],
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(ansible_runs(d), before + 1);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let task = |host: &str, name: &str| {
        events
            .iter()
            .find(|v| v["event"] == "task" && v["host"] == host && v["task"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no task event {host} {name}: {}", text(&o)))
    };
    assert_eq!(task(A, "hello | write")["status"], "changed");
    assert_eq!(task(A, "hello | write")["node"], format!("provision/{A}"));
    let refused = task(B, "bye | refuse");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["msg"], "bye refuses");
    let result = |id: &str| {
        events
            .iter()
            .find(|v| v["event"] == "result" && v["node"]["id"] == format!("provision/{id}"))
            .map(|v| v["node"].clone())
            .unwrap()
    };
    assert_eq!(result(A)["result"], "updated");
    let failed = result(B);
    assert_eq!(failed["result"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("task 'bye | refuse' failed: bye refuses"),
        "{error}"
    );
    let log = error.rsplit("its output is in ").next().unwrap();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("bye refuses"),
        "{log}"
    );
    assert_eq!(cat(A, "/root/hello"), "hey anklume\n");

    role(d, "bye", "farewell");
    let (_, prov) = plan_apply(d);
    assert_eq!(prov, only_b_updated());
    assert_eq!(cat(B, "/root/bye"), "farewell world\n");
}
