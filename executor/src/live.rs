//! Reading Incus's current state in bulk: one request per kind (all projects
//! at once where Incus allows it), never one per resource.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::incus::{enc, Api, IncusError};

/// What Incus has now.
#[derive(Debug, Default, Clone)]
pub struct Live {
    /// Networks of the default project, by name.
    pub networks: HashMap<String, Value>,
    /// Projects, by name.
    pub projects: HashMap<String, Value>,
    /// Profiles, by (project, name).
    pub profiles: HashMap<(String, String), Value>,
    /// Instances, by (project, name).
    pub instances: HashMap<(String, String), Value>,
    /// Custom storage volumes, by (project, pool, name).
    pub volumes: HashMap<(String, String, String), Value>,
    /// Local image aliases (the default project's image store, which anklume
    /// projects share).
    pub aliases: HashSet<String>,
    /// The host's nftables state; `None` when apply does not manage it
    /// (`--no-nftables`, or `nft` unusable here).
    pub nftables: Option<crate::nft::NftLive>,
    /// Why provisioning does not run in this apply (`--no-provision`,
    /// Ansible not set up, no tree); `None`: it runs.
    pub provisioning_off: Option<String>,
    /// The configuration keys the server knows (`GET
    /// /1.0/metadata/configuration`), read only when a run creates or
    /// updates something that has config; `None` otherwise, or when the
    /// server does not describe its keys.
    pub keys: Option<anklume_incus_keys::Catalogue>,
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A string field of an Incus object (`""` when absent).
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The project an object of an all-projects list is in, and its name.
fn project_and_name(v: &Value) -> (String, String) {
    let project = match str_of(v, "project") {
        "" => "default",
        other => other,
    };
    (project.to_string(), str_of(v, "name").to_string())
}

/// Read everything anklume compares. `pools` are the storage pools the plan
/// puts custom volumes in.
pub async fn read<A: Api>(incus: &A, pools: &[String]) -> Result<Live, IncusError> {
    let (networks, projects, profiles, instances, aliases) = tokio::try_join!(
        incus.get("/1.0/networks?recursion=1"),
        incus.get("/1.0/projects?recursion=1"),
        incus.get("/1.0/profiles?recursion=1&all-projects=true"),
        incus.get("/1.0/instances?recursion=1&all-projects=true"),
        incus.get("/1.0/images/aliases?recursion=1"),
    )?;
    let mut live = Live::default();
    for n in list(&networks.metadata) {
        live.networks
            .insert(str_of(n, "name").to_string(), n.clone());
    }
    for p in list(&projects.metadata) {
        live.projects
            .insert(str_of(p, "name").to_string(), p.clone());
    }
    for p in list(&profiles.metadata) {
        live.profiles.insert(project_and_name(p), p.clone());
    }
    for i in list(&instances.metadata) {
        live.instances.insert(project_and_name(i), i.clone());
    }
    for a in list(&aliases.metadata) {
        live.aliases.insert(str_of(a, "name").to_string());
    }
    for pool in pools {
        let r = incus
            .get(&format!(
                "/1.0/storage-pools/{}/volumes/custom?recursion=1&all-projects=true",
                enc(pool)
            ))
            .await?;
        for v in list(&r.metadata) {
            let (project, name) = project_and_name(v);
            live.volumes
                .insert((project, pool.clone(), name), v.clone());
        }
    }
    Ok(live)
}

/// The server's configuration key catalogue; `None` when it does not serve
/// one (an Incus older than the endpoint) or the answer is not one.
pub async fn read_keys<A: Api>(
    incus: &A,
) -> Result<Option<anklume_incus_keys::Catalogue>, IncusError> {
    Ok(incus
        .get_opt("/1.0/metadata/configuration")
        .await?
        .and_then(|r| anklume_incus_keys::Catalogue::from_metadata(&r.metadata)))
}

/// Every IPv4 address given to a NIC of an instance (its own devices and
/// those from profiles).
pub fn instance_ips(instance: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["devices", "expanded_devices"] {
        if let Some(devs) = instance.get(key).and_then(Value::as_object) {
            for d in devs.values() {
                if d.get("type").and_then(Value::as_str) == Some("nic") {
                    if let Some(ip) = d.get("ipv4.address").and_then(Value::as_str) {
                        if !out.iter().any(|x| x == ip) {
                            out.push(ip.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}
