//! Helpers for the tests that drive a real Incus daemon.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anklume_executor::{Api, Incus};
use serde_json::{json, Value};

use super::{anklume, incus_available, is_test_bridge, is_test_name, text, ALLOW_FOREIGN, PREFIX};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Write infra.yml, plan it, return the temp dir.
pub fn planned(infra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    replan(dir.path(), infra);
    dir
}

/// Write infra.yml in `dir` (anew) and plan it into `plan.bin`.
pub fn replan(dir: &Path, infra: &str) {
    std::fs::write(dir.join("infra.yml"), infra).unwrap();
    let o = anklume(dir, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The summary event of `apply --format json`.
pub fn summary(o: &Output) -> Value {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary in\n{}", text(o)))
}

pub fn apply_json(dir: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "apply",
        "plan.bin",
        "--yes",
        "--format",
        "json",
        "--no-nftables",
    ];
    args.extend_from_slice(extra);
    let o = anklume(dir, &args);
    let s = summary(&o);
    (o, s)
}

pub async fn get(incus: &Incus, path: &str) -> Value {
    incus
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .metadata
}

/// Remove everything of these test domains: instances, profiles and custom
/// volumes of their projects, the projects, their bridges. Only the tests'
/// own objects: a name without [`PREFIX`] panics, and an object Incus
/// reports in another project (as it does when a project lacks a feature)
/// is left alone.
pub async fn cleanup(incus: &Incus, domains: &[&str]) {
    for d in domains {
        assert!(
            is_test_name(d),
            "refusing to clean up '{d}': the tests only delete what they created, named {PREFIX}…"
        );
    }
    for d in domains {
        let q = format!("project={d}");
        let own = |v: &Value| v["project"].as_str() == Some(d);
        if incus.get(&format!("/1.0/projects/{d}")).await.is_err() {
            let _ = incus.delete(&format!("/1.0/networks/net-{d}")).await;
            continue;
        }
        if let Ok(r) = incus.get(&format!("/1.0/instances?recursion=1&{q}")).await {
            for i in r
                .metadata
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| own(v))
            {
                let name = i["name"].as_str().unwrap_or("").to_string();
                let path = format!("/1.0/instances/{name}?{q}");
                let _ = incus
                    .patch(&path, &json!({"config": {"security.protection.delete": "false"}, "description": ""}), None)
                    .await;
                let _ = incus
                    .put(
                        &format!("/1.0/instances/{name}/state?{q}"),
                        &json!({"action": "stop", "force": true}),
                        None,
                    )
                    .await;
                let _ = incus.delete(&path).await;
            }
        }
        if let Ok(r) = incus.get(&format!("/1.0/profiles?recursion=1&{q}")).await {
            for p in r
                .metadata
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| own(v))
            {
                let name = p["name"].as_str().unwrap_or("");
                if name != "default" {
                    let _ = incus.delete(&format!("/1.0/profiles/{name}?{q}")).await;
                }
            }
        }
        if let Ok(r) = incus
            .get(&format!(
                "/1.0/storage-pools/default/volumes/custom?recursion=1&{q}"
            ))
            .await
        {
            for v in r
                .metadata
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| own(v))
            {
                let name = v["name"].as_str().unwrap_or("");
                let _ = incus
                    .delete(&format!(
                        "/1.0/storage-pools/default/volumes/custom/{name}?{q}"
                    ))
                    .await;
            }
        }
        let _ = incus.delete(&format!("/1.0/projects/{d}")).await;
        let _ = incus.delete(&format!("/1.0/networks/net-{d}")).await;
    }
}

fn managed(v: &Value) -> bool {
    v["config"]["user.anklume.managed"] == "true"
}

/// The anklume state on this host that the tests did not create: anklume
/// projects, bridges and instances without the test prefix, pre-apply
/// snapshots outside the tests' projects, and an `inet anklume` table that
/// names a bridge that is not the tests'. Empty on a host without anklume.
pub async fn foreign_state(incus: &Incus) -> Vec<String> {
    let mut out = Vec::new();
    let list = |path: &'static str| async move {
        incus
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .metadata
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    for p in list("/1.0/projects?recursion=1").await {
        let name = p["name"].as_str().unwrap_or("");
        if managed(&p) && !is_test_name(name) {
            out.push(format!("anklume project '{name}'"));
        }
    }
    for n in list("/1.0/networks?recursion=1").await {
        let name = n["name"].as_str().unwrap_or("");
        if managed(&n) && !is_test_bridge(name) {
            out.push(format!("anklume bridge '{name}'"));
        }
    }
    for i in list("/1.0/instances?all-projects=true&recursion=2").await {
        let project = i["project"].as_str().unwrap_or("default");
        if is_test_name(project) {
            continue;
        }
        let name = i["name"].as_str().unwrap_or("");
        if managed(&i) {
            out.push(format!("anklume instance '{name}' (project {project})"));
        }
        for s in i["snapshots"].as_array().into_iter().flatten() {
            let snap = s["name"].as_str().unwrap_or("");
            if snap.starts_with("pre-apply-") {
                out.push(format!(
                    "pre-apply snapshot '{snap}' of '{name}' (project {project})"
                ));
            }
        }
    }
    if let Some(t) = nft_table() {
        if !nft_table_is_tests(&t) {
            out.push(
                "an `inet anklume` nftables table that names bridges the tests did not create"
                    .into(),
            );
        }
    }
    out
}

/// The daemon, for a real-daemon test: `None` (skip) without an Incus
/// socket; a panic that says why and what to do when the host has anklume
/// state of its own ([`foreign_state`]), unless [`ALLOW_FOREIGN`]`=1`.
/// Such a host's state is at risk from what the tests run, not from what
/// they delete: an apply that snapshots prunes pre-apply snapshots
/// host-wide (it keeps the newest N across all projects), and the nft tests
/// replace the host's `inet anklume` table.
pub fn daemon() -> Option<Incus> {
    if !incus_available() {
        return None;
    }
    let incus = Incus::from_env();
    let foreign = rt().block_on(foreign_state(&incus));
    if !foreign.is_empty() && !allow_foreign() {
        panic!("{}", refusal(&foreign));
    }
    Some(incus)
}

fn allow_foreign() -> bool {
    std::env::var(ALLOW_FOREIGN).as_deref() == Ok("1")
}

/// Why the real-daemon tests do not run here, and how to run them.
pub fn refusal(foreign: &[String]) -> String {
    format!(
        "refusing to run: this host has anklume state the tests did not create:\n  - {}\n\
         The real-daemon tests load their own `inet anklume` nftables table (replacing the host's) \
         and their applies prune pre-apply snapshots host-wide, so they would destroy that state.\n\
         Run them on a machine without anklume state (a VM, a container, CI), or set {ALLOW_FOREIGN}=1 \
         to accept the risk: a foreign `inet anklume` table is then saved and put back after each \
         test that loads one, but pre-apply snapshots outside the tests' {PREFIX}… projects may be pruned.",
        foreign.join("\n  - ")
    )
}

/// `nft list table inet anklume`, when the table exists.
pub fn nft_table() -> Option<String> {
    let o = Command::new("nft")
        .args(["list", "table", "inet", "anklume"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether an `inet anklume` listing is one the tests loaded (a run that
/// crashed leaves one): it names at least one interface, and names only
/// the tests' bridges. A table naming no interface at all is taken as
/// foreign: nothing shows it is the tests'.
pub fn nft_table_is_tests(listing: &str) -> bool {
    let names: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("iifname") || l.contains("oifname"))
        .flat_map(|l| l.split('"').skip(1).step_by(2))
        .collect();
    !names.is_empty() && names.iter().all(|n| is_test_bridge(n))
}

/// Remove the host's `inet anklume` table if the tests loaded it; a foreign
/// table is left alone. Whether a table was deleted.
pub fn delete_nft_table() -> bool {
    match nft_table() {
        Some(t) if nft_table_is_tests(&t) => Command::new("nft")
            .args(["delete", "table", "inet", "anklume"])
            .output()
            .is_ok_and(|o| o.status.success()),
        _ => false,
    }
}

fn nft_load(text: &str) -> bool {
    let Ok(mut c) = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    let written = c
        .stdin
        .take()
        .is_some_and(|mut i| i.write_all(text.as_bytes()).is_ok());
    c.wait().is_ok_and(|s| s.success()) && written
}

/// A test's hold on the host's `inet anklume` table, taken before it loads
/// one; see [`claim_nft_table`].
pub struct NftClaim {
    saved: Option<String>,
}

/// Take the `inet anklume` table for a test that loads one. Refused (the
/// message says why and how to run) when a foreign table is there, unless
/// [`ALLOW_FOREIGN`]`=1`: then the foreign table is saved, and put back when
/// the claim is dropped (also when the test panics). The tests' own table
/// is removed on drop either way.
pub fn claim_nft_table() -> Result<NftClaim, String> {
    claim_nft_table_with(allow_foreign())
}

/// [`claim_nft_table`] with the opt-in given.
pub fn claim_nft_table_with(allow_foreign: bool) -> Result<NftClaim, String> {
    match nft_table() {
        Some(t) if !nft_table_is_tests(&t) => {
            if allow_foreign {
                Ok(NftClaim { saved: Some(t) })
            } else {
                Err(refusal(&[
                    "an `inet anklume` nftables table that names bridges the tests did not create"
                        .into(),
                ]))
            }
        }
        _ => Ok(NftClaim { saved: None }),
    }
}

impl Drop for NftClaim {
    fn drop(&mut self) {
        delete_nft_table();
        if let Some(t) = &self.saved {
            if !nft_load(&format!(
                "table inet anklume\ndelete table inet anklume\n{t}"
            )) {
                eprintln!("could not put the host's inet anklume table back; it was:\n{t}");
            }
        }
    }
}

/// Everything Incus reports about these domains, without fields that change
/// by themselves (timestamps, runtime state).
pub async fn state(incus: &Incus, domains: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            for k in ["last_used_at", "state", "used_by", "status", "status_code"] {
                o.remove(k);
            }
        }
        v
    };
    for d in domains {
        let q = format!("project={d}");
        let mut parts = Vec::new();
        for path in [
            format!("/1.0/instances?recursion=1&{q}"),
            format!("/1.0/profiles?recursion=1&{q}"),
        ] {
            let v = incus
                .get(&path)
                .await
                .map(|r| r.metadata)
                .unwrap_or(Value::Null);
            let v = match v {
                Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
                other => other,
            };
            parts.push(v);
        }
        parts.push(
            incus
                .get(&format!("/1.0/projects/{d}"))
                .await
                .map(|r| strip(r.metadata))
                .unwrap_or(Value::Null),
        );
        parts.push(
            incus
                .get(&format!("/1.0/networks/net-{d}"))
                .await
                .map(|r| strip(r.metadata))
                .unwrap_or(Value::Null),
        );
        out.insert(d.to_string(), Value::Array(parts));
    }
    Value::Object(out)
}

/// Run `sh -c cmd` in an instance; its exit code.
pub async fn exec(incus: &Incus, project: &str, machine: &str, cmd: &str) -> i64 {
    let body = json!({
        "command": ["sh", "-c", cmd],
        "record-output": false,
        "wait-for-websocket": false,
        "interactive": false,
        "environment": {"PATH": "/bin:/sbin"},
    });
    let r = incus
        .post(
            &format!("/1.0/instances/{machine}/exec?project={project}"),
            &body,
        )
        .await
        .unwrap_or_else(|e| panic!("exec in {machine}: {e}"));
    r.metadata
        .get("return")
        .and_then(Value::as_i64)
        .unwrap_or(-1)
}
