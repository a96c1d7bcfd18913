//! base_system's `anklume_files` module under the real Ansible of the
//! project's venv, on the local machine, in a temporary directory: it
//! writes files and links only where they differ (a second run changes
//! nothing), honours check mode, and a missing link target fails the task
//! before anything is written. Skipped without the venv, unless
//! `ANKLUME_REQUIRE_PROVISIONING=1`.

mod common;

use std::path::Path;

fn run(dir: &Path, args: &str, check: bool) -> (bool, String) {
    let venv = common::ansible_venv();
    let mut c = std::process::Command::new(venv.join("bin/ansible"));
    c.args([
        "localhost",
        "-c",
        "local",
        "-m",
        "anklume_files",
        "-a",
        args,
    ])
    .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
    .env(
        "ANSIBLE_LIBRARY",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible/roles/base_system/library"),
    )
    .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
    .env("ANSIBLE_HOME", dir.join("home"))
    .env("ANSIBLE_NOCOLOR", "1");
    if check {
        c.arg("--check");
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.success(), out)
}

#[test]
fn files_and_links_in_one_task_idempotent_checked_and_refused_whole() {
    let venv = common::ansible_venv();
    if !venv.join("bin/ansible").is_file()
        && !common::skip(
            "ANKLUME_REQUIRE_PROVISIONING",
            "no Ansible venv (scripts/ansible-setup.sh)",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |src: &str| {
        serde_json::json!({
            "dirs": [{"path": d.join("etc").to_str().unwrap(), "mode": "0755"}],
            "files": [{"path": d.join("etc/timezone").to_str().unwrap(), "content": "UTC\n", "mode": "0600"}],
            "links": [{"path": d.join("etc/localtime").to_str().unwrap(), "src": src, "require_src": true}],
        })
        .to_string()
    };
    let zone = d.join("zone");
    std::fs::write(&zone, "tz").unwrap();
    let zone = zone.to_str().unwrap().to_string();
    // A missing link target: failed, nothing written.
    let (ok, out) = run(d, &args("/nonexistent/zone"), false);
    assert!(!ok && out.contains("does not exist"), "{out}");
    assert!(!d.join("etc").exists());
    // Check mode: says it would change, writes nothing.
    let (ok, out) = run(d, &args(&zone), true);
    assert!(ok && out.contains("CHANGED"), "{out}");
    assert!(!d.join("etc").exists());
    // For real, then again: nothing to do.
    let (ok, out) = run(d, &args(&zone), false);
    assert!(ok && out.contains("CHANGED"), "{out}");
    assert_eq!(
        std::fs::read_to_string(d.join("etc/timezone")).unwrap(),
        "UTC\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("etc/timezone"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(
        std::fs::read_link(d.join("etc/localtime")).unwrap(),
        Path::new(&zone)
    );
    let (ok, out) = run(d, &args(&zone), false);
    assert!(
        ok && out.contains("SUCCESS") && !out.contains("CHANGED"),
        "{out}"
    );
}
