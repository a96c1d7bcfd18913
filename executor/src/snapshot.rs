//! Instance snapshots: v1's `snap.sh` (create, restore, list, delete, with
//! instance-to-project resolution across all projects and `self`), and the
//! pre-apply snapshots of `snapshot-apply.sh` (naming, state files,
//! retention).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::incus::{dec, enc, Api, IncusError};
use crate::Error;

/// Prefix of the snapshots apply takes.
pub const PRE_APPLY: &str = "pre-apply-";
/// Prefix of the snapshots `anklume snapshot create` names by default.
pub const USER: &str = "snap-";

/// An instance, located: what snapshots name, and the address of the
/// instance kind ([`crate::kind::instance::Address`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceRef {
    /// Its project.
    pub project: String,
    /// Its name.
    pub name: String,
}

impl InstanceRef {
    /// Its REST path.
    pub fn path(&self) -> String {
        format!(
            "/1.0/instances/{}?project={}",
            enc(&self.name),
            enc(&self.project)
        )
    }

    /// The REST path of its run state.
    pub fn state(&self) -> String {
        format!(
            "/1.0/instances/{}/state?project={}",
            enc(&self.name),
            enc(&self.project)
        )
    }

    fn snapshots(&self) -> String {
        format!(
            "/1.0/instances/{}/snapshots?project={}",
            enc(&self.name),
            enc(&self.project)
        )
    }

    fn snapshot(&self, snap: &str) -> String {
        format!(
            "/1.0/instances/{}/snapshots/{}?project={}",
            enc(&self.name),
            enc(snap),
            enc(&self.project)
        )
    }
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapInfo {
    /// The instance's project.
    pub project: String,
    /// The instance.
    pub instance: String,
    /// The snapshot's name.
    pub name: String,
    /// When Incus took it (RFC 3339).
    pub created_at: String,
}

/// The project of an instance given by name alone. Instance names are
/// globally unique in anklume (ADR-008); a name found in several projects is
/// reported as ambiguous rather than guessed.
pub async fn resolve<A: Api>(incus: &A, name: &str) -> Result<InstanceRef, Error> {
    let all = incus
        .get("/1.0/instances?all-projects=true")
        .await
        .map_err(|source| Error::IncusWhile {
            doing: "listing instances",
            source,
        })?;
    let mut found = Vec::new();
    let mut names = Vec::new();
    for url in all.metadata.as_array().into_iter().flatten() {
        let Some(url) = url.as_str() else { continue };
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let Some(n) = path.strip_prefix("/1.0/instances/") else {
            continue;
        };
        if dec(n) != name {
            names.push(dec(n));
            continue;
        }
        let project = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("project="))
            .map_or_else(|| "default".to_string(), dec);
        found.push(InstanceRef {
            project,
            name: name.to_string(),
        });
    }
    match found.len() {
        0 => Err(Error::Lookup(format!(
            "instance '{name}' not found in any Incus project{}",
            match closest(name, &names) {
                Some(close) => format!("; did you mean '{close}'?"),
                None => String::new(),
            }
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Lookup(format!(
            "instance '{name}' exists in several projects ({}); anklume expects globally unique names",
            found
                .iter()
                .map(|r| r.project.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The name in `names` closest to `name`, when it is likely a typo of it.
fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), c.as_str()))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// This machine's host name: what `self` means.
pub fn hostname() -> Result<String, Error> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .map_err(Error::Hostname)
}

/// Resolve `instance`, where `self` is the instance this runs in.
pub async fn resolve_target<A: Api>(incus: &A, instance: &str) -> Result<InstanceRef, Error> {
    if instance == "self" {
        let host = hostname()?;
        return resolve(incus, &host).await.map_err(|_| {
            Error::Lookup(format!("'self' is this machine's host name '{host}', which is not an Incus instance (run it inside an instance, or name the instance)"))
        });
    }
    resolve(incus, instance).await
}

/// Take a snapshot (not stateful).
pub async fn create<A: Api>(incus: &A, i: &InstanceRef, snap: &str) -> Result<(), IncusError> {
    incus
        .post(&i.snapshots(), &json!({"name": snap, "stateful": false}))
        .await
        .map(|_| ())
}

/// Restore a snapshot: Incus stops a running instance, restores, and starts
/// it again. It also brings back the snapshot's configuration, devices and
/// profiles.
pub async fn restore<A: Api>(incus: &A, i: &InstanceRef, snap: &str) -> Result<(), IncusError> {
    let cur = incus.get(&i.path()).await?;
    incus
        .put(&i.path(), &json!({"restore": snap}), cur.etag.as_deref())
        .await
        .map(|_| ())
}

/// Delete a snapshot.
pub async fn delete<A: Api>(incus: &A, i: &InstanceRef, snap: &str) -> Result<(), IncusError> {
    incus.delete(&i.snapshot(snap)).await.map(|_| ())
}

/// Whether the snapshot exists.
pub async fn exists<A: Api>(incus: &A, i: &InstanceRef, snap: &str) -> Result<bool, IncusError> {
    Ok(incus.get_opt(&i.snapshot(snap)).await?.is_some())
}

/// What to say when an instance has no snapshot `snap`: the closest of
/// its snapshots when the name looks like a typo of it, else how to list
/// them.
pub async fn missing_hint<A: Api>(incus: &A, i: &InstanceRef, snap: &str) -> String {
    let names: Vec<String> = list_one(incus, i)
        .await
        .map(|v| v.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    match closest(snap, &names) {
        Some(c) => format!(
            "did you mean '{c}'? (`anklume snapshot list {}` shows its snapshots)",
            i.name
        ),
        None => format!("`anklume snapshot list {}` shows its snapshots", i.name),
    }
}

/// Snapshots of one instance, oldest first.
pub async fn list_one<A: Api>(incus: &A, i: &InstanceRef) -> Result<Vec<SnapInfo>, IncusError> {
    let r = incus.get(&format!("{}&recursion=1", i.snapshots())).await?;
    let mut v: Vec<SnapInfo> = r
        .metadata
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| snap_info(&i.project, &i.name, s))
        .collect();
    v.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
    Ok(v)
}

fn snap_info(project: &str, instance: &str, s: &Value) -> SnapInfo {
    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
    // Some listings name a snapshot `instance/snap`.
    let name = name.rsplit('/').next().unwrap_or(name);
    SnapInfo {
        project: project.to_string(),
        instance: instance.to_string(),
        name: name.to_string(),
        created_at: s
            .get("created_at")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// Every snapshot of every instance in every project (one request), sorted
/// by project, instance, then age.
pub async fn list_all<A: Api>(incus: &A) -> Result<Vec<SnapInfo>, IncusError> {
    let r = incus
        .get("/1.0/instances?all-projects=true&recursion=2")
        .await?;
    let mut v = Vec::new();
    for inst in r.metadata.as_array().into_iter().flatten() {
        let project = inst
            .get("project")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = inst.get("name").and_then(Value::as_str).unwrap_or("");
        for s in inst
            .get("snapshots")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            v.push(snap_info(project, name, s));
        }
    }
    v.sort_by(|a, b| {
        (&a.project, &a.instance, &a.created_at, &a.name).cmp(&(
            &b.project,
            &b.instance,
            &b.created_at,
            &b.name,
        ))
    });
    Ok(v)
}

/// Instances of one project (a domain), sorted.
pub async fn instances_of<A: Api>(incus: &A, project: &str) -> Result<Vec<InstanceRef>, Error> {
    let r = incus
        .get_opt(&format!("/1.0/projects/{}", enc(project)))
        .await?;
    if r.is_none() {
        return Err(Error::Lookup(format!(
            "domain '{project}' has no Incus project"
        )));
    }
    let list = incus
        .get(&format!("/1.0/instances?project={}", enc(project)))
        .await?;
    let mut v: Vec<InstanceRef> = list
        .metadata
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|u| {
            let path = u.split('?').next()?;
            Some(InstanceRef {
                project: project.to_string(),
                name: dec(path.strip_prefix("/1.0/instances/")?),
            })
        })
        .collect();
    v.sort();
    Ok(v)
}

/// v1's pre-apply state directory: `latest`, `latest-scope`, `history`.
pub fn state_dir(state: &Path) -> PathBuf {
    state.join("pre-apply-snapshots")
}

/// Record a pre-apply snapshot in v1's state files.
pub fn record(state: &Path, ts: &str, scope: &str) -> Result<(), Error> {
    let d = state_dir(state);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    let w = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    w("latest", &format!("{ts}\n"))?;
    w("latest-scope", &format!("{scope}\n"))?;
    let mut history = read_history(state);
    let name = format!("{PRE_APPLY}{ts}");
    if !history.contains(&name) {
        history.push(name);
    }
    w("history", &lines(&history))
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

/// The `history` file's snapshot names, oldest first.
pub fn read_history(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state_dir(state).join("history"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a retention pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cleanup {
    /// Pre-apply timestamps kept, newest first.
    pub kept: Vec<String>,
    /// Snapshots deleted.
    pub deleted: Vec<SnapInfo>,
    /// Snapshots that could not be deleted, with the error.
    pub failed: Vec<(SnapInfo, String)>,
}

/// What a cleanup will do: the snapshots it deletes, the timestamps it
/// keeps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CleanupPlan {
    /// Pre-apply timestamps kept, newest first.
    pub kept: Vec<String>,
    /// Snapshots to delete.
    pub delete: Vec<SnapInfo>,
}

/// Keep the newest `keep` pre-apply timestamps across all instances; delete
/// the older pre-apply snapshots and trim `history` to match. Only the
/// pre-apply snapshots this state directory took are considered (named in
/// its `history` or by one of its journals): another anklume's snapshots
/// (another user, a nested anklume, a test run) and user snapshots are
/// never touched.
pub async fn cleanup<A: Api>(incus: &A, state: &Path, keep: usize) -> Result<Cleanup, Error> {
    let plan = plan_cleanup(incus, state, keep).await?;
    run_cleanup(incus, state, &plan).await
}

/// What [`cleanup`] would delete and keep; nothing changes.
pub async fn plan_cleanup<A: Api>(
    incus: &A,
    state: &Path,
    keep: usize,
) -> Result<CleanupPlan, Error> {
    let all = list_all(incus).await?;
    let ours: BTreeSet<String> = read_history(state)
        .into_iter()
        .filter_map(|n| n.strip_prefix(PRE_APPLY).map(str::to_string))
        .chain(crate::journal::list(state))
        .collect();
    let pre: Vec<&SnapInfo> = all
        .iter()
        .filter(|s| {
            s.name
                .strip_prefix(PRE_APPLY)
                .is_some_and(|ts| crate::journal::is_timestamp(ts) && ours.contains(ts))
        })
        .collect();
    let stamps: BTreeSet<&str> = pre.iter().map(|s| &s.name[PRE_APPLY.len()..]).collect();
    let kept: Vec<String> = stamps
        .iter()
        .rev()
        .take(keep)
        .map(|s| s.to_string())
        .collect();
    let delete = pre
        .into_iter()
        .filter(|s| !kept.iter().any(|k| s.name[PRE_APPLY.len()..] == **k))
        .cloned()
        .collect();
    Ok(CleanupPlan { kept, delete })
}

/// Carry out a [`CleanupPlan`]: delete its snapshots, trim `history`.
pub async fn run_cleanup<A: Api>(
    incus: &A,
    state: &Path,
    plan: &CleanupPlan,
) -> Result<Cleanup, Error> {
    let mut out = Cleanup {
        kept: plan.kept.clone(),
        ..Cleanup::default()
    };
    for s in &plan.delete {
        let i = InstanceRef {
            project: s.project.clone(),
            name: s.instance.clone(),
        };
        match delete(incus, &i, &s.name).await {
            Ok(()) => out.deleted.push(s.clone()),
            Err(e) => out.failed.push((s.clone(), e.to_string())),
        }
    }
    // history keeps the kept names and any it listed that no instance has
    // any more only when they are among the newest `keep`.
    let history = read_history(state);
    let trimmed: Vec<String> = history
        .into_iter()
        .filter(|n| {
            n.strip_prefix(PRE_APPLY)
                .is_some_and(|ts| plan.kept.iter().any(|k| k == ts))
        })
        .collect();
    let d = state_dir(state);
    if d.exists() {
        let p = d.join("history");
        std::fs::write(&p, lines(&trimmed)).map_err(|e| Error::io(&p, e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_listed_names() {
        assert_eq!(dec("a%2Fb"), "a/b");
        assert_eq!(dec("plain"), "plain");
        assert_eq!(dec("bad%zz"), "bad%zz");
        assert_eq!(dec("end%4"), "end%4");
    }

    #[test]
    fn state_files_as_v1_keeps_them() {
        let dir = std::env::temp_dir().join(format!("anklume-snapstate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        record(&dir, "20260101-000000", "all").unwrap();
        record(&dir, "20260102-000000", "all").unwrap();
        record(&dir, "20260102-000000", "all").unwrap();
        let d = state_dir(&dir);
        assert_eq!(
            std::fs::read_to_string(d.join("latest")).unwrap(),
            "20260102-000000\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("latest-scope")).unwrap(),
            "all\n"
        );
        assert_eq!(
            read_history(&dir),
            vec!["pre-apply-20260101-000000", "pre-apply-20260102-000000"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
