//! A container or VM (`/1.0/instances/<name>?project=<p>`), with its run
//! state and its pre-apply snapshot.

use std::collections::BTreeSet;

use anklume_plan::{ImageSource, Instance};
use serde_json::{json, Map, Value};

use super::common::{
    config_changes, config_json, description_change, device_changes, devices_json, domain_of,
    is_managed, pick, same, str_of, verdict,
};
use super::{Action, Change, Kept, NodeError, Orphan, StepResult, Target, Undo};
use crate::incus::{project_query, Api, IncusError};
use crate::live::Live;
use crate::snapshot::{self, InstanceRef};

/// Where it is: project and name (the instance the snapshot functions
/// name too).
pub type Address = InstanceRef;

/// The writable fields the journal keeps and rollback puts back; the run
/// state (`status`) is kept too.
pub const FIELDS: &[&str] = &["config", "devices", "profiles", "description"];

/// Its address.
pub fn address(i: &Instance) -> Address {
    Address {
        project: i.project.clone(),
        name: i.name.clone(),
    }
}

/// Everything that differs between the plan and the instance Incus has:
/// declared config keys and devices, the profile list, the description,
/// the run state and the type. Apply's re-check reads the instance the same
/// way.
pub fn changes(i: &Instance, live: &Value) -> Vec<Change> {
    let mut c = Vec::new();
    config_changes("config", &i.config, live.get("config"), &mut c);
    device_changes("devices", &i.devices, live.get("devices"), &mut c);
    let profiles: Vec<&str> = live
        .get("profiles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if profiles != i.profiles {
        c.push(Change {
            key: "profiles".into(),
            old: Some(profiles.join(", ")),
            new: Some(i.profiles.join(", ")),
        });
    }
    description_change(&i.description, live, &mut c);
    let status = str_of(live, "status");
    if status != "Running" {
        c.push(Change {
            key: "state".into(),
            old: Some(status.to_string()),
            new: Some("Running".into()),
        });
    }
    let ltype = live
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("container");
    if ltype != i.instance_type.incus_name() {
        c.push(Change {
            key: "type".into(),
            old: Some(ltype.to_string()),
            new: Some(i.instance_type.incus_name().to_string()),
        });
    }
    c
}

/// Compare with Incus.
pub fn decide(i: &Instance, live: &Live) -> Action {
    match live.instances.get(&(i.project.clone(), i.name.clone())) {
        None => Action::Create,
        Some(l) => verdict(changes(i, l)),
    }
}

/// Create and start it, or bring it back to the plan: its declared
/// settings (one PATCH), then started. Incus cannot change an instance's
/// type: that is an error, before anything is sent.
pub async fn apply<A: Api>(api: &A, i: &Instance, create: bool) -> Result<(), NodeError> {
    let a = address(i);
    if create {
        return create_started(api, i, &a).await;
    }
    let cur = api.get(&a.path()).await?;
    let c = changes(i, &cur.metadata);
    if let Some(t) = c.iter().find(|c| c.key == "type") {
        return Err(NodeError::new(format!(
            "is a {} but the plan wants a {}: Incus cannot convert an instance; delete it (after saving its data) and apply again",
            t.old.as_deref().unwrap_or(""),
            i.instance_type.incus_name()
        )));
    }
    // A NIC address that changes takes effect when the guest leases
    // again: a running instance is stopped first, its old leases are
    // released, and it starts with the new one.
    let moves = changes_address(&c);
    let mut held: Vec<(String, String)> = nic_addresses(&cur.metadata)
        .into_iter()
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect();
    let mut start = c.iter().any(|c| c.key == "state");
    let mut etag = cur.etag.clone();
    if moves && str_of(&cur.metadata, "status") == "Running" {
        held.extend(held_addresses(api, &a).await);
        stop(api, &a)
            .await
            .map_err(|e| NodeError::new(format!("failed to stop it for its new address: {e}")))?;
        start = true;
        // Stopping changes what the ETag covers.
        etag = api.get(&a.path()).await?.etag;
    }
    if c.iter().any(|c| c.key != "state") {
        let body = json!({
            "config": config_json(&i.config),
            "devices": devices_json(&i.devices),
            "profiles": i.profiles,
            "description": i.description,
        });
        api.patch(&a.path(), &body, etag.as_deref()).await?;
    }
    if moves {
        held.sort();
        held.dedup();
        // Best effort: a lease left makes its address unavailable to
        // another instance until it ends, not this one's new address.
        let _ = release_leases(api, &a, &held).await;
    }
    if start {
        api.put(&a.state(), &json!({"action": "start"}), None)
            .await
            .map_err(|e| NodeError::new(format!("failed to start: {e}")))?;
    }
    Ok(())
}

async fn create_started<A: Api>(api: &A, i: &Instance, a: &Address) -> Result<(), NodeError> {
    let source = match &i.source {
        ImageSource::Remote {
            server,
            protocol,
            alias,
            ..
        } => {
            json!({"type": "image", "mode": "pull", "server": server, "protocol": protocol, "alias": alias})
        }
        ImageSource::Local { alias } => json!({"type": "image", "alias": alias}),
    };
    let body = json!({
        "name": i.name,
        "type": i.instance_type.incus_name(),
        "description": i.description,
        "source": source,
        "profiles": i.profiles,
        "config": config_json(&i.config),
        "devices": devices_json(&i.devices),
        "start": true,
    });
    let Err(e) = api
        .post(
            &format!("/1.0/instances?{}", project_query(&i.project)),
            &body,
        )
        .await
    else {
        return Ok(());
    };
    let mut msg = e.to_string();
    if let ImageSource::Remote { image, .. } = &i.source {
        if e.message.contains("remote image") || e.message.contains("Failed getting image") {
            msg = format!(
                "image '{image}' cannot be fetched from its remote: {msg} (offline? import the image locally and use its alias instead)"
            );
        }
    }
    // Created but not started? (`start: true` keeps the instance.)
    if matches!(api.get_opt(&a.path()).await, Ok(Some(_))) {
        return Err(NodeError {
            message: format!("created but failed to start: {msg}"),
            half_created: true,
        });
    }
    Err(NodeError::new(msg))
}

/// What the journal keeps before an update: the writable fields (without
/// the `volatile.*` keys Incus owns) and the run state.
pub async fn prior<A: Api>(api: &A, a: &Address) -> Result<Option<Value>, IncusError> {
    let Some(cur) = api.get_opt(&a.path()).await? else {
        return Ok(None);
    };
    let mut v = pick(&cur.metadata, FIELDS);
    v["status"] = cur.metadata.get("status").cloned().unwrap_or(Value::Null);
    if let Some(c) = v.get_mut("config").and_then(Value::as_object_mut) {
        c.retain(|k, _| !k.starts_with("volatile."));
    }
    Ok(Some(v))
}

/// Undo: delete what the apply created (protected ones only with
/// `force`); for what it updated, restore the pre-apply snapshot, then the
/// prior configuration and run state (a restore brings back the
/// snapshot's configuration, which is not always the one anklume saw).
pub async fn undo<A: Api>(
    api: &A,
    a: &Address,
    undo: &Undo,
    force: bool,
) -> Result<StepResult, IncusError> {
    let (prior, snapshot) = match undo {
        Undo::Delete => return delete(api, a, force).await,
        Undo::Recreate { prior, kept } => {
            return recreate(api, a, prior.as_ref(), kept.as_ref()).await
        }
        Undo::Restore { prior, snapshot } => (prior, snapshot),
    };
    if api.get_opt(&a.path()).await?.is_none() {
        return Ok(StepResult::Failed {
            error: "the instance no longer exists: nothing to restore".into(),
        });
    }
    let mut done = Vec::new();
    let mut note = None;
    if let Some(snap) = snapshot {
        if snapshot::exists(api, a, snap).await? {
            snapshot::restore(api, a, snap).await?;
            done.push(format!("snapshot {snap} restored"));
        } else {
            note = Some(format!(
                "snapshot {snap} is gone (cleaned up?): data not restored"
            ));
        }
    }
    if let Some(prior) = prior {
        if restore_config(api, a, prior).await? {
            done.push("configuration as before the apply".into());
        } else if done.is_empty() {
            done.push("configuration already as before the apply".into());
        }
    }
    let mut detail = done.join("; ");
    if let Some(n) = note {
        if detail.is_empty() {
            return Ok(StepResult::Skipped { why: n });
        }
        detail = format!("{detail}; {n}");
    }
    Ok(StepResult::Restored { detail })
}

/// The name of the backup a kept copy is exported from (deleted once the
/// copy is on disk).
const KEPT_BACKUP: &str = "anklume-kept";

/// Keep a copy of it in `dir` before it is deleted, so that rollback can
/// bring it back with its data, configuration, snapshots and identity:
/// an Incus backup (zstd-compressed; gzip on a server without zstd),
/// exported to `<dir>/<project>--<name>.backup` (written under a temporary
/// name, then renamed). Stop it first, cleanly if it can, for a consistent
/// copy: it is about to be deleted anyway.
pub async fn keep<A: Api>(api: &A, a: &Address, dir: &std::path::Path) -> Result<Kept, IncusError> {
    let io = |e: std::io::Error| IncusError::transport(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    stop_for_move(api, a, false).await?;
    let backups = format!(
        "/1.0/instances/{}/backups?{}",
        crate::incus::enc(&a.name),
        project_query(&a.project)
    );
    let one = format!(
        "/1.0/instances/{}/backups/{KEPT_BACKUP}",
        crate::incus::enc(&a.name)
    );
    let one = |suffix: &str| format!("{one}{suffix}?{}", project_query(&a.project));
    // A leftover of an earlier attempt goes first.
    let _ = api.delete(&one("")).await;
    let mut body = json!({
        "name": KEPT_BACKUP,
        "instance_only": false,
        "optimized_storage": false,
        "compression_algorithm": "zstd",
    });
    if let Err(e) = api.post(&backups, &body).await {
        if !e.message.to_lowercase().contains("zstd") && !e.message.contains("compress") {
            return Err(e);
        }
        body["compression_algorithm"] = json!("gzip");
        api.post(&backups, &body).await?;
    }
    let file = dir.join(format!("{}--{}.backup", a.project, a.name));
    let partial = dir.join(format!("{}--{}.backup.partial", a.project, a.name));
    let exported = api.download(&one("/export"), &partial).await;
    let _ = api.delete(&one("")).await;
    let bytes = match exported {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &file).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Kept { file, bytes })
}

/// Undo a delete: import the kept copy under its name and project, then
/// put back the configuration and run state it had. An instance that
/// exists (the delete never happened: the apply died before it) only gets
/// its configuration and run state back. The copy is removed once the
/// instance is back.
pub async fn recreate<A: Api>(
    api: &A,
    a: &Address,
    prior: Option<&Value>,
    kept: Option<&Kept>,
) -> Result<StepResult, IncusError> {
    if api.get_opt(&a.path()).await?.is_some() {
        if let Some(p) = prior {
            restore_config(api, a, p).await?;
        }
        if let Some(k) = kept {
            let _ = std::fs::remove_file(&k.file);
        }
        return Ok(StepResult::AlreadyDone {
            detail: "it was not deleted; configuration and run state as before".into(),
        });
    }
    let Some(k) = kept else {
        return Ok(StepResult::Skipped {
            why: "deleted without a kept copy (--no-keep): its data cannot come back".into(),
        });
    };
    if !k.file.exists() {
        return Ok(StepResult::Failed {
            error: format!(
                "its kept copy {} is gone (purged by `rollback --cleanup`?)",
                k.file.display()
            ),
        });
    }
    api.upload(
        &format!("/1.0/instances?{}", project_query(&a.project)),
        &k.file,
        &[("X-Incus-name", a.name.clone())],
    )
    .await?;
    if let Some(p) = prior {
        restore_config(api, a, p).await?;
    }
    let _ = std::fs::remove_file(&k.file);
    Ok(StepResult::Restored {
        detail: format!(
            "created again from its kept copy ({})",
            human_bytes(k.bytes)
        ),
    })
}

/// `12.3 MB`.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GB", n as f64 / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} kB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// Put the prior config, devices, profiles and description back, keeping
/// the `volatile.*` keys Incus has now, and the prior run state. Returns
/// whether it changed anything.
async fn restore_config<A: Api>(api: &A, a: &Address, prior: &Value) -> Result<bool, IncusError> {
    let path = a.path();
    let cur = api.get(&path).await?;
    let md = &cur.metadata;
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let mut live_cfg: Map<String, Value> = obj(md.get("config"));
    let volatile: Map<String, Value> = live_cfg
        .iter()
        .filter(|(k, _)| k.starts_with("volatile."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    live_cfg.retain(|k, _| !k.starts_with("volatile."));
    let prior_cfg = obj(prior.get("config"));
    let mut wrote = false;
    if live_cfg != prior_cfg || !same(md, prior, &["devices", "profiles", "description"]) {
        let mut config = prior_cfg;
        config.extend(volatile);
        let mut body = json!({
            "config": config,
            "devices": prior.get("devices").cloned().unwrap_or(json!({})),
            "profiles": prior.get("profiles").cloned().unwrap_or(json!([])),
            "description": prior.get("description").cloned().unwrap_or(json!("")),
        });
        for k in ["architecture", "ephemeral", "stateful"] {
            if let Some(v) = md.get(k) {
                body[k] = v.clone();
            }
        }
        api.put(&path, &body, cur.etag.as_deref()).await?;
        wrote = true;
    }
    let want = prior.get("status").and_then(Value::as_str);
    let now = api.get(&path).await?;
    match (want, now.metadata.get("status").and_then(Value::as_str)) {
        (Some("Running"), Some(s)) if s != "Running" => {
            api.put(&a.state(), &json!({"action": "start"}), None)
                .await?;
            wrote = true;
        }
        (Some("Stopped"), Some("Running")) => {
            stop(api, a).await?;
            wrote = true;
        }
        _ => {}
    }
    Ok(wrote)
}

/// Whether Incus reports it stopped (a failed read counts as not stopped).
async fn is_stopped<A: Api>(api: &A, a: &Address) -> bool {
    matches!(
        api.get(&a.path()).await,
        Ok(r) if str_of(&r.metadata, "status") != "Running"
    )
}

/// A forced stop. An error from a stop that finds the instance stopped
/// anyway (it stopped meanwhile) is not one.
async fn force_stop<A: Api>(api: &A, a: &Address) -> Result<(), IncusError> {
    match api
        .put(&a.state(), &json!({"action": "stop", "force": true}), None)
        .await
    {
        Ok(_) => Ok(()),
        Err(_) if is_stopped(api, a).await => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stop it when it runs, before its address moves: a running instance
/// keeps the address it leased until it starts again, and dnsmasq does not
/// hand an address that still answers to the instance taking it over.
/// Its update starts it again (the plan wants it running), with its new
/// address; rollback starts it from the run state the journal kept.
/// Returns whether it was running.
pub async fn stop_for_move<A: Api>(api: &A, a: &Address, force: bool) -> Result<bool, IncusError> {
    let cur = api.get(&a.path()).await?;
    if str_of(&cur.metadata, "status") != "Running" {
        return Ok(false);
    }
    if force {
        force_stop(api, a).await?;
    } else {
        stop(api, a).await?;
    }
    Ok(true)
}

/// A clean stop with a timeout, then a forced one.
async fn stop<A: Api>(api: &A, a: &Address) -> Result<(), IncusError> {
    if api
        .put(&a.state(), &json!({"action": "stop", "timeout": 10}), None)
        .await
        .is_ok()
        || is_stopped(api, a).await
    {
        return Ok(());
    }
    force_stop(api, a).await
}

/// Whether Incus would refuse to delete it (`security.protection.delete`).
pub fn is_protected(md: &Value) -> bool {
    md.get("config")
        .and_then(|c| c.get("security.protection.delete"))
        .and_then(Value::as_str)
        == Some("true")
}

/// Delete it: stopped first (no clean shutdown: it goes), a protected one
/// only with `force` (its protection lifted first).
pub async fn delete<A: Api>(api: &A, a: &Address, force: bool) -> Result<StepResult, IncusError> {
    let path = a.path();
    let Some(cur) = api.get_opt(&path).await? else {
        return Ok(StepResult::AlreadyDone {
            detail: "does not exist".into(),
        });
    };
    let md = &cur.metadata;
    let protected = is_protected(md);
    if protected && !force {
        return Ok(StepResult::Skipped {
            why: "protected (security.protection.delete, from ephemeral: false); `anklume rollback --force` deletes it".into(),
        });
    }
    if str_of(md, "status") == "Running" {
        force_stop(api, a).await?;
    }
    if protected {
        let cur = api.get(&path).await?;
        let body = json!({
            "config": {"security.protection.delete": "false"},
            "description": cur.metadata.get("description").cloned().unwrap_or(json!("")),
        });
        api.patch(&path, &body, cur.etag.as_deref()).await?;
    }
    api.delete(&path).await?;
    Ok(StepResult::Restored {
        detail: if protected {
            "deleted (protected; --force)".into()
        } else {
            "deleted".into()
        },
    })
}

/// Instances anklume marked that the plan lacks.
pub fn orphans(live: &Live, declared: &BTreeSet<Target>) -> Vec<Orphan> {
    live.instances
        .iter()
        .filter(|((project, name), v)| {
            is_managed(v)
                && !declared.contains(&Target::Instance(Address {
                    project: project.clone(),
                    name: name.clone(),
                }))
        })
        .map(|((project, name), v)| Orphan {
            kind: "instance",
            project: project.clone(),
            name: name.clone(),
            protected: is_protected(v),
            domain: domain_of(v),
        })
        .collect()
}

/// The static addresses of an instance's own NICs (its `devices`, not
/// those of its profiles): (NIC name, address), by NIC name.
pub fn nic_addresses(instance: &serde_json::Value) -> Vec<(&str, &str)> {
    instance
        .get("devices")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, d)| {
            Some((
                name.as_str(),
                d.get("ipv4.address").and_then(serde_json::Value::as_str)?,
            ))
        })
        .collect()
}

/// Free the static addresses of these NICs of the instance (drop their
/// `ipv4.address`), so that other instances can take them over; its own
/// update then sets its new ones.
pub async fn free_addresses<A: Api>(
    api: &A,
    a: &Address,
    nics: &[String],
) -> Result<Vec<(String, String)>, IncusError> {
    let cur = api.get(&a.path()).await?;
    let freed: Vec<(String, String)> = nic_addresses(&cur.metadata)
        .into_iter()
        .filter(|(n, _)| nics.iter().any(|x| x == n))
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect();
    let mut devices = cur
        .metadata
        .get("devices")
        .cloned()
        .unwrap_or_else(|| json!({}));
    for n in nics {
        if let Some(d) = devices
            .get_mut(n)
            .and_then(serde_json::Value::as_object_mut)
        {
            d.remove("ipv4.address");
        }
    }
    let body = super::common::keeping_description(&json!({"devices": devices}), &cur.metadata);
    api.patch(&a.path(), &body, cur.etag.as_deref()).await?;
    Ok(freed)
}

/// Why giving addresses up stopped short.
#[derive(Debug)]
pub enum MoveAwayError {
    /// The addresses could not be freed: nothing changed.
    Free(IncusError),
    /// They were freed, but the instance could not be stopped: it keeps
    /// its leases (releasing them under a running guest would let dnsmasq
    /// hand out an address still in use).
    Stop(IncusError),
}

impl std::fmt::Display for MoveAwayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoveAwayError::Free(e) | MoveAwayError::Stop(e) => e.fmt(f),
        }
    }
}

/// What giving addresses up did.
#[derive(Debug)]
pub struct MovedAway {
    /// It was running, and was stopped.
    pub stopped: bool,
    /// Whether its leases were released (a failure only delays the
    /// instance taking an address over: it gets another until the lease
    /// ends).
    pub released: Result<(), String>,
}

/// Give these NICs' addresses up for other instances (apply's address
/// moves, rollback's): read what its guest leased while it still runs,
/// free the addresses ([`free_addresses`]), stop it ([`stop_for_move`],
/// forced with `force`) and release those leases ([`release_leases`]).
pub async fn move_away<A: Api>(
    api: &A,
    a: &Address,
    nics: &[String],
    force: bool,
) -> Result<MovedAway, MoveAwayError> {
    let held = held_addresses(api, a).await;
    let mut freed = free_addresses(api, a, nics)
        .await
        .map_err(MoveAwayError::Free)?;
    freed.extend(held);
    freed.sort();
    freed.dedup();
    let stopped = stop_for_move(api, a, force)
        .await
        .map_err(MoveAwayError::Stop)?;
    let released = release_leases(api, a, &freed).await;
    Ok(MovedAway { stopped, released })
}

/// Whether these changes of an instance change a NIC's static address
/// (which takes effect only once its guest leases again).
pub fn changes_address(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| c.key.starts_with("devices.") && c.key.ends_with(".ipv4.address"))
}

/// The IPv4 addresses the instance's own NICs hold right now (what its
/// guest leased), as (NIC, address); empty when it does not run.
pub async fn held_addresses<A: Api>(api: &A, a: &Address) -> Vec<(String, String)> {
    let Ok(cur) = api.get(&a.path()).await else {
        return Vec::new();
    };
    let Ok(state) = api.get(&a.state()).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (nic, d) in cur
        .metadata
        .get("devices")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, d)| d.get("type").and_then(Value::as_str) == Some("nic"))
    {
        let name = d.get("name").and_then(Value::as_str).unwrap_or(nic);
        let addresses = state.metadata["network"][name]["addresses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for ad in addresses {
            if str_of(&ad, "family") == "inet" && str_of(&ad, "scope") == "global" {
                out.push((nic.clone(), str_of(&ad, "address").to_string()));
            }
        }
    }
    out
}

/// Release the DHCP leases of addresses the (stopped) instance gave up:
/// `freed` is (NIC, address), as [`free_addresses`] returns it. Each is
/// released on the NIC's bridge ([`crate::dhcp`]); a NIC whose bridge or
/// MAC cannot be read, or a bridge without an IPv4 address, is skipped.
pub async fn release_leases<A: Api>(
    api: &A,
    a: &Address,
    freed: &[(String, String)],
) -> Result<(), String> {
    let cur = api.get(&a.path()).await.map_err(|e| e.to_string())?;
    let md = &cur.metadata;
    for (nic, ip) in freed {
        let Some(mac) = md
            .get("expanded_devices")
            .and_then(|d| d.get(nic))
            .and_then(|d| d.get("hwaddr"))
            .or_else(|| {
                md.get("config")
                    .and_then(|c| c.get(format!("volatile.{nic}.hwaddr")))
            })
            .and_then(Value::as_str)
            .and_then(crate::dhcp::parse_mac)
        else {
            continue;
        };
        let Some(bridge) = md
            .get("expanded_devices")
            .and_then(|d| d.get(nic))
            .and_then(|d| d.get("network").or_else(|| d.get("parent")))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Ok(Some(net)) = api
            .get_opt(&format!("/1.0/networks/{}", crate::incus::enc(bridge)))
            .await
        else {
            continue;
        };
        let server = net
            .metadata
            .get("config")
            .and_then(|c| c.get("ipv4.address"))
            .and_then(Value::as_str)
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok());
        let (Some(server), Ok(ip)) = (server, ip.parse::<std::net::Ipv4Addr>()) else {
            continue;
        };
        crate::dhcp::release(bridge, server, mac, ip)
            .map_err(|e| format!("releasing the DHCP lease of {ip} on {bridge}: {e}"))?;
    }
    Ok(())
}
