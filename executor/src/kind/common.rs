//! What the kinds share: reading Incus's config maps one way, comparing the
//! declared keys, the JSON bodies apply sends, and the undo helpers (put a
//! prior state back, delete if it exists).

use std::collections::BTreeMap;

use anklume_plan::{Config, Devices};
use serde_json::{json, Map, Value};

use super::{Action, Change, StepResult, Undo};
use crate::incus::{Api, IncusError};

/// An Incus config map as strings. A non-string value (Incus sends only
/// strings, but a foreign tool may not) is compared by its JSON text, so it
/// is drift, never silently equal to `""`.
pub fn config_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub use crate::live::str_of;

/// The declared config keys whose live value differs, as `prefix.key`.
pub fn config_changes(prefix: &str, desired: &Config, live: Option<&Value>, out: &mut Vec<Change>) {
    let live = config_of(live);
    for (k, v) in desired {
        let cur = live.get(k);
        if cur != Some(v) {
            out.push(Change {
                key: format!("{prefix}.{k}"),
                old: cur.cloned(),
                new: Some(v.clone()),
            });
        }
    }
}

fn show_device(d: &BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The declared devices that are missing or differ, as `prefix.name`.
pub fn device_changes(
    prefix: &str,
    desired: &Devices,
    live: Option<&Value>,
    out: &mut Vec<Change>,
) {
    let live: BTreeMap<String, BTreeMap<String, String>> = live
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), config_of(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    for (name, dev) in desired {
        match live.get(name) {
            None => out.push(Change {
                key: format!("{prefix}.{name}"),
                old: None,
                new: Some(show_device(dev)),
            }),
            // Key by key, as `diff` shows it: `devices.eth0.ipv4.address`.
            Some(cur) if cur != dev => {
                let keys: std::collections::BTreeSet<&String> =
                    cur.keys().chain(dev.keys()).collect();
                for k in keys {
                    let (old, new) = (cur.get(k), dev.get(k));
                    if old != new {
                        out.push(Change {
                            key: format!("{prefix}.{name}.{k}"),
                            old: old.cloned(),
                            new: new.cloned(),
                        });
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// The description, when it differs.
pub fn description_change(desired: &str, live: &Value, out: &mut Vec<Change>) {
    let cur = str_of(live, "description");
    if cur != desired {
        out.push(Change {
            key: "description".into(),
            old: Some(cur.to_string()),
            new: Some(desired.to_string()),
        });
    }
}

/// Unchanged when nothing differs.
pub fn verdict(changes: Vec<Change>) -> Action {
    if changes.is_empty() {
        Action::Unchanged
    } else {
        Action::Update { changes }
    }
}

/// Whether anklume made it (`user.anklume.managed: "true"`).
pub fn is_managed(v: &Value) -> bool {
    v.get("config")
        .and_then(|c| c.get("user.anklume.managed"))
        .and_then(Value::as_str)
        == Some("true")
}

/// The domain an object anklume made belongs to: its
/// `user.anklume.domain` config, when set and not empty.
pub fn domain_of(v: &Value) -> Option<String> {
    v.get("config")
        .and_then(|c| c.get("user.anklume.domain"))
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

/// A config map as the JSON object Incus takes.
pub fn config_json(c: &Config) -> Value {
    Value::Object(
        c.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Devices as the JSON object Incus takes.
pub fn devices_json(d: &Devices) -> Value {
    Value::Object(d.iter().map(|(k, v)| (k.clone(), config_json(v))).collect())
}

/// The named fields of an object (null when absent): a journaled prior state.
pub fn pick(md: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), md.get(*k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

/// An object's current fields, when it exists.
pub async fn read_prior<A: Api>(
    api: &A,
    path: &str,
    keys: &[&str],
) -> Result<Option<Value>, IncusError> {
    Ok(api
        .get_opt(path)
        .await?
        .map(|cur| pick(&cur.metadata, keys)))
}

/// Whether `live` already has `prior`'s fields (empty and missing alike).
pub fn same(live: &Value, prior: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| {
        let a = live.get(*k).cloned().unwrap_or(Value::Null);
        let b = prior.get(*k).cloned().unwrap_or(Value::Null);
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        a == b
            || (empty(&a) && empty(&b))
            || (a.is_null() && b == json!(""))
            || (b.is_null() && a == json!(""))
    })
}

/// PUT `prior`'s fields back (GET first for the ETag). Returns whether it
/// wrote.
pub async fn put_back<A: Api>(
    api: &A,
    path: &str,
    prior: &Value,
    keys: &[&str],
) -> Result<bool, IncusError> {
    let cur = api.get(path).await?;
    if same(&cur.metadata, prior, keys) {
        return Ok(false);
    }
    let mut body = Map::new();
    for k in keys {
        let v = prior.get(*k).cloned().unwrap_or(Value::Null);
        let v = match (*k, v) {
            ("description", Value::Null) => json!(""),
            (_, Value::Null) => json!({}),
            (_, v) => v,
        };
        body.insert(k.to_string(), v);
    }
    api.put(path, &Value::Object(body), cur.etag.as_deref())
        .await?;
    Ok(true)
}

/// Undo an update by putting `prior` back: restored, already as before, or
/// skipped when the journal kept no prior state.
pub async fn restore_fields<A: Api>(
    api: &A,
    path: &str,
    prior: Option<&Value>,
    keys: &[&str],
) -> Result<StepResult, IncusError> {
    let Some(prior) = prior else {
        return Ok(StepResult::Skipped {
            why: "no prior state in the journal".into(),
        });
    };
    Ok(restored(put_back(api, path, prior, keys).await?))
}

/// The result of a configuration restore that wrote (or did not).
pub fn restored(wrote: bool) -> StepResult {
    if wrote {
        StepResult::Restored {
            detail: "configuration as before the apply".into(),
        }
    } else {
        StepResult::AlreadyDone {
            detail: "configuration already as before the apply".into(),
        }
    }
}

/// Undo for a kind whose prior state is its writable `keys`: delete what
/// the apply created, put back what it updated.
pub async fn undo_fields<A: Api>(
    api: &A,
    path: &str,
    undo: &Undo,
    keys: &[&str],
) -> Result<StepResult, IncusError> {
    match undo {
        Undo::Delete => delete_if_exists(api, path).await,
        Undo::Restore { prior, .. } => restore_fields(api, path, prior.as_ref(), keys).await,
        Undo::Recreate { prior, .. } => {
            let (collection, name) = split_path(path);
            recreate_fields(
                api,
                path,
                &collection,
                &name,
                prior.as_ref(),
                keys,
                json!({}),
            )
            .await
        }
    }
}

/// The collection an object's path is in (its project query kept) and its
/// name: `/1.0/profiles/p?project=x` → (`/1.0/profiles?project=x`, `p`).
pub fn split_path(path: &str) -> (String, String) {
    let (base, query) = path
        .split_once('?')
        .map_or((path, None), |(b, q)| (b, Some(q)));
    let (collection, name) = base.rsplit_once('/').unwrap_or(("", base));
    let collection = match query {
        Some(q) => format!("{collection}?{q}"),
        None => collection.to_string(),
    };
    (collection, crate::incus::dec(name))
}

/// Undo a delete: create the object at `path` again (POST to `collection`)
/// with its prior `keys` and the `extra` fields; already done when it
/// exists.
pub async fn recreate_fields<A: Api>(
    api: &A,
    path: &str,
    collection: &str,
    name: &str,
    prior: Option<&Value>,
    keys: &[&str],
    extra: Value,
) -> Result<StepResult, IncusError> {
    if api.get_opt(path).await?.is_some() {
        return Ok(StepResult::AlreadyDone {
            detail: "exists (created again already)".into(),
        });
    }
    let Some(prior) = prior else {
        return Ok(StepResult::Skipped {
            why: "no prior state in the journal".into(),
        });
    };
    api.post(collection, &recreate_body(name, prior, keys, extra))
        .await?;
    Ok(StepResult::Restored {
        detail: "created again as it was".into(),
    })
}

/// The body that creates `name` again with its prior `keys` (absent ones
/// left to Incus) and the `extra` fields.
pub fn recreate_body(name: &str, prior: &Value, keys: &[&str], extra: Value) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(name));
    for k in keys {
        if let Some(v) = prior.get(*k).filter(|v| !v.is_null()) {
            body.insert(k.to_string(), v.clone());
        }
    }
    if let Value::Object(e) = extra {
        body.extend(e);
    }
    Value::Object(body)
}

/// Delete the object at `path` unless it is already gone.
pub async fn delete_if_exists<A: Api>(api: &A, path: &str) -> Result<StepResult, IncusError> {
    if api.get_opt(path).await?.is_none() {
        return Ok(StepResult::AlreadyDone {
            detail: "does not exist".into(),
        });
    }
    api.delete(path).await?;
    Ok(StepResult::Restored {
        detail: "deleted".into(),
    })
}

/// PATCH `body` onto the object at `path`, guarded by its current ETag.
pub async fn patch<A: Api>(api: &A, path: &str, body: &Value) -> Result<(), IncusError> {
    let cur = api.get(path).await?;
    let body = keeping_description(body, &cur.metadata);
    api.patch(path, &body, cur.etag.as_deref()).await?;
    Ok(())
}

/// `body` for a PATCH of the object `current`, carrying its description
/// when `body` has none: Incus 6.0 empties the description of an instance,
/// a network or a volume that a PATCH does not give (a config-only PATCH
/// would erase the user's description).
pub fn keeping_description(body: &Value, current: &Value) -> Value {
    let mut body = body.clone();
    if let Value::Object(b) = &mut body {
        if !b.contains_key("description") {
            b.insert(
                "description".into(),
                current
                    .get("description")
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
            );
        }
    }
    body
}
