//! Helpers for the tests that drive a real Incus daemon.

use std::path::Path;
use std::process::Output;

use anklume_executor::Incus;
use serde_json::{json, Value};

use super::{anklume, text};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Write infra.yml, plan it, return the temp dir.
pub fn planned(infra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), infra).unwrap();
    let o = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    dir
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

/// Remove everything of these domains (instances, profiles, projects, bridges).
pub async fn cleanup(incus: &Incus, domains: &[&str]) {
    for d in domains {
        let q = format!("project={d}");
        if let Ok(r) = incus.get(&format!("/1.0/instances?recursion=1&{q}")).await {
            for i in r.metadata.as_array().cloned().unwrap_or_default() {
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
            for p in r.metadata.as_array().cloned().unwrap_or_default() {
                let name = p["name"].as_str().unwrap_or("");
                if name != "default" {
                    let _ = incus.delete(&format!("/1.0/profiles/{name}?{q}")).await;
                }
            }
        }
        if let Ok(r) = incus
            .get(&format!("/1.0/storage-pools/default/volumes/custom?{q}"))
            .await
        {
            for url in r.metadata.as_array().cloned().unwrap_or_default() {
                if let Some(name) = url.as_str().and_then(|u| u.split('?').next()) {
                    let _ = incus.delete(&format!("{name}?{q}")).await;
                }
            }
        }
        if incus.get(&format!("/1.0/projects/{d}")).await.is_ok() {
            let _ = incus.delete(&format!("/1.0/projects/{d}")).await;
        }
        let _ = incus.delete(&format!("/1.0/networks/net-{d}")).await;
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

/// Remove the host's `inet anklume` table, if any.
pub fn delete_nft_table() {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", "anklume"])
        .output();
}
