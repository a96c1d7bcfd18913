//! The in-memory Incus ([`anklume_executor::incus::fake::Fake`]) against the
//! real daemon: one scenario of requests (create, read, update, delete each
//! kind the executor manages, and the refusals Incus answers) is replayed
//!
//! - against the real daemon: its normalised answers must equal the
//!   committed fixtures (`executor/fixtures/incus-6.0/`), so a changed Incus
//!   or a stale fixture fails here; with `ANKLUME_RECORD_FIXTURES=1` the
//!   answers are written as the new fixtures instead
//!   (`scripts/record-incus-fixtures.sh`);
//! - against the fake (no daemon needed): its normalised answers must equal
//!   the same fixtures.
//!
//! So real daemon == fixtures == fake, step by step: same codes, same
//! objects (key sets and values, volatile values replaced by placeholders),
//! same error messages.
//!
//! The real-daemon run creates only objects named `ankfx-…` and removes them
//! afterwards, also when it fails. Run it alone against the daemon:
//! `flock /tmp/anklume-incus.lock cargo test --test fake_fidelity`.

mod common;

use std::path::{Path, PathBuf};

use anklume_executor::incus::fake::Fake;
use anklume_executor::{Api, Incus, IncusError};
use common::live::{daemon, rt};
use common::IMAGE;
use serde_json::{json, Map, Value};

/// Set to `1`: write the real daemon's answers as the fixtures.
const RECORD: &str = "ANKLUME_RECORD_FIXTURES";

const NET: &str = "ankfx-net";
const PROJ: &str = "ankfx-proj";
const PROJ2: &str = "ankfx-proj2";
const PROF: &str = "ankfx-prof";
const VOL: &str = "ankfx-vol";
const INST: &str = "ankfx-c1";
const INST2: &str = "ankfx-c2";
const SNAP: &str = "ankfx-s1";

/// The `If-Match` a step sends.
#[derive(Clone, Copy)]
enum Tag {
    None,
    /// The ETag of the latest reply that had one.
    Last,
    /// A wrong one.
    Wrong,
}

/// How a step's answer is compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// All of it (normalised).
    Full,
    /// A list: only the items of the scenario (named `ankfx-…`, or the test
    /// image's alias); the host's own objects are left out.
    Ours,
    /// An error whose message ends with host details (DNS server, …): only
    /// its first two `: `-separated parts.
    MessageHead,
    /// Only the top-level keys (a host description).
    Keys,
    /// All but `used_by` (which names the host's own images and objects).
    NoUsedBy,
    /// Only the `running` operations (the daemon keeps other tests'
    /// finished ones for a while).
    Running,
}

struct Step {
    label: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    tag: Tag,
    cmp: Cmp,
    /// Add the `volatile.*` config keys of the latest object read to the
    /// body (as rollback's PUT does).
    keep_volatile: bool,
}

fn step(label: &'static str, method: &'static str, path: impl Into<String>) -> Step {
    Step {
        label,
        method,
        path: path.into(),
        body: None,
        tag: Tag::None,
        cmp: Cmp::Full,
        keep_volatile: false,
    }
}

impl Step {
    fn body(mut self, b: Value) -> Step {
        self.body = Some(b);
        self
    }
    fn tag(mut self, t: Tag) -> Step {
        self.tag = t;
        self
    }
    fn keep_volatile(mut self) -> Step {
        self.keep_volatile = true;
        self
    }
    fn cmp(mut self, c: Cmp) -> Step {
        self.cmp = c;
        self
    }
}

fn q(p: &str) -> String {
    format!("project={p}")
}

/// The scenario: every kind's create / read / update / delete, the lists
/// the executor reads, and the refusals.
fn scenario() -> Vec<Step> {
    let p = q(PROJ);
    let inst = format!("/1.0/instances/{INST}?{p}");
    let state = format!("/1.0/instances/{INST}/state?{p}");
    let prof = format!("/1.0/profiles/{PROF}?{p}");
    let vols = "/1.0/storage-pools/default/volumes/custom";
    let vol = format!("{vols}/{VOL}?{p}");
    let snaps = format!("/1.0/instances/{INST}/snapshots?{p}");
    let snap = format!("/1.0/instances/{INST}/snapshots/{SNAP}?{p}");
    let net = format!("/1.0/networks/{NET}");
    let nic = json!({"type": "nic", "network": NET, "name": "eth0"});
    let root = json!({"type": "disk", "path": "/", "pool": "default"});
    vec![
        // The daemon's own objects the fake starts with.
        step("default-profile-get", "GET", "/1.0/profiles/default?project=default"),
        step("default-project-get", "GET", "/1.0/projects/default").cmp(Cmp::NoUsedBy),
        // Networks.
        step("network-create", "POST", "/1.0/networks").body(json!({
            "name": NET, "type": "bridge", "description": "fx",
            "config": {"ipv4.address": "10.251.77.1/24", "user.fx": "a"}})),
        step("network-get", "GET", &net),
        step("network-create-exists", "POST", "/1.0/networks").body(json!({
            "name": NET, "type": "bridge", "description": "", "config": {"ipv4.address": "10.251.78.1/24"}})),
        step("network-patch-wrong-etag", "PATCH", &net)
            .body(json!({"config": {"user.fx": "b"}}))
            .tag(Tag::Wrong),
        step("network-patch", "PATCH", &net)
            .body(json!({"config": {"user.fx2": "b"}, "description": "fx2"}))
            .tag(Tag::Last),
        step("network-get-patched", "GET", &net),
        step("network-put", "PUT", &net)
            .body(json!({"config": {"ipv4.address": "10.251.77.1/24", "ipv6.address": "none"}, "description": "fx3"}))
            .tag(Tag::Last),
        step("network-get-put", "GET", &net),
        step("network-put-wrong-etag", "PUT", &net)
            .body(json!({"config": {"ipv4.address": "10.251.77.1/24"}, "description": ""}))
            .tag(Tag::Wrong),
        step("network-missing", "GET", "/1.0/networks/ankfx-nonet"),
        step("networks-list", "GET", "/1.0/networks?recursion=1").cmp(Cmp::Ours),
        // Projects.
        step("project-create", "POST", "/1.0/projects").body(json!({
            "name": PROJ, "description": "fx",
            "config": {"features.images": "false", "features.profiles": "true",
                       "features.storage.volumes": "true", "user.fx": "a"}})),
        step("project-create-defaults", "POST", "/1.0/projects")
            .body(json!({"name": PROJ2, "description": "", "config": {}})),
        step("project-create-exists", "POST", "/1.0/projects")
            .body(json!({"name": PROJ, "description": "", "config": {}})),
        step("project-get", "GET", format!("/1.0/projects/{PROJ}")),
        step("project-get-defaults", "GET", format!("/1.0/projects/{PROJ2}")),
        step("project-missing", "GET", "/1.0/projects/ankfx-noproj"),
        step("project-get-2", "GET", format!("/1.0/projects/{PROJ}")),
        step("project-put", "PUT", format!("/1.0/projects/{PROJ}"))
            .body(json!({"config": {"features.images": "false", "features.profiles": "true",
                       "features.storage.volumes": "true", "user.fx": "b"}, "description": "fx2"}))
            .tag(Tag::Last),
        step("project-get-put", "GET", format!("/1.0/projects/{PROJ}")),
        step("project-default-profile-get", "GET", format!("/1.0/profiles/default?{p}")),
        step("project-default-profile-patch", "PATCH", format!("/1.0/profiles/default?{p}"))
            .body(json!({"devices": {"root": root.clone()}}))
            .tag(Tag::Last),
        step("project-default-profile-get-patched", "GET", format!("/1.0/profiles/default?{p}")),
        step("projects-list", "GET", "/1.0/projects?recursion=1").cmp(Cmp::Ours),
        // Profiles.
        step("profile-create", "POST", format!("/1.0/profiles?{p}")).body(json!({
            "name": PROF, "description": "fx", "config": {"limits.cpu": "1", "user.fx": "a"},
            "devices": {"eth0": nic}})),
        step("profile-create-exists", "POST", format!("/1.0/profiles?{p}"))
            .body(json!({"name": PROF, "description": "", "config": {}, "devices": {}})),
        step("profile-get", "GET", &prof),
        step("profile-patch", "PATCH", &prof)
            .body(json!({"config": {"user.fx2": "b"}, "description": "fx2"}))
            .tag(Tag::Last),
        step("profile-get-patched", "GET", &prof),
        step("profile-put", "PUT", &prof)
            .body(json!({"config": {"limits.cpu": "1"}, "description": "fx3", "devices": {"eth0": nic}}))
            .tag(Tag::Last),
        step("profile-get-put", "GET", &prof),
        step("profile-missing", "GET", format!("/1.0/profiles/ankfx-noprof?{p}")),
        step("profiles-list", "GET", "/1.0/profiles?recursion=1&all-projects=true").cmp(Cmp::Ours),
        // Custom volumes.
        step("volume-create", "POST", format!("{vols}?{p}"))
            .body(json!({"name": VOL, "content_type": "filesystem", "config": {"user.fx": "a"}})),
        step("volume-create-exists", "POST", format!("{vols}?{p}"))
            .body(json!({"name": VOL, "content_type": "filesystem", "config": {}})),
        step("volume-get", "GET", &vol),
        step("volume-patch", "PATCH", &vol)
            .body(json!({"config": {"user.fx2": "b"}}))
            .tag(Tag::Last),
        step("volume-get-patched", "GET", &vol),
        step("volume-put", "PUT", &vol)
            .body(json!({"config": {"user.fx": "c"}, "description": "fx3"}))
            .tag(Tag::Last),
        step("volume-get-put", "GET", &vol),
        step("volume-missing", "GET", format!("{vols}/ankfx-novol?{p}")),
        step("volumes-list", "GET", format!("{vols}?recursion=1&all-projects=true")).cmp(Cmp::Ours),
        // Instances.
        step("instance-create", "POST", format!("/1.0/instances?{p}")).body(json!({
            "name": INST, "type": "container", "description": "fx",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default", PROF],
            "config": {"user.fx": "a"},
            "devices": {"data": {"type": "disk", "pool": "default", "source": VOL, "path": "/data"}},
            "start": true})),
        step("instance-get", "GET", &inst),
        step("instance-create-exists", "POST", format!("/1.0/instances?{p}")).body(json!({
            "name": INST, "type": "container", "description": "",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default"], "config": {}, "devices": {}, "start": true})),
        step("instance-create-unknown-alias", "POST", format!("/1.0/instances?{p}")).body(json!({
            "name": INST2, "type": "container", "description": "",
            "source": {"type": "image", "alias": "ankfx-noimage"},
            "profiles": ["default"], "config": {}, "devices": {}, "start": true})),
        step("instance-create-remote", "POST", format!("/1.0/instances?{p}"))
            .body(json!({
                "name": INST2, "type": "container", "description": "",
                "source": {"type": "image", "mode": "pull", "server": "https://images.ankfx.invalid",
                           "protocol": "simplestreams", "alias": "debian/12"},
                "profiles": ["default"], "config": {}, "devices": {}, "start": true}))
            .cmp(Cmp::MessageHead),
        step("instance-create-unknown-profile", "POST", format!("/1.0/instances?{p}")).body(json!({
            "name": INST2, "type": "container", "description": "",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default", "ankfx-noprof"], "config": {}, "devices": {}, "start": true})),
        step("instance-create-no-root", "POST", format!("/1.0/instances?{p}")).body(json!({
            "name": INST2, "type": "container", "description": "",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": [], "config": {}, "devices": {}, "start": true})),
        // ankfx-proj2 keeps its own image store (features.images unset):
        // the default project's alias is not there.
        step("instance-create-own-image-store", "POST", format!("/1.0/instances?{}", q(PROJ2))).body(json!({
            "name": INST2, "type": "container", "description": "",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default"], "config": {}, "devices": {"root": root}, "start": false})),
        step("instance-missing", "GET", format!("/1.0/instances/ankfx-noinst?{p}")),
        step("instances-list", "GET", "/1.0/instances?recursion=1&all-projects=true").cmp(Cmp::Ours),
        step("instances-urls", "GET", "/1.0/instances?all-projects=true").cmp(Cmp::Ours),
        step("instances-project-urls", "GET", format!("/1.0/instances?{p}")),
        step("instance-delete-running", "DELETE", &inst),
        step("instance-start-running", "PUT", &state).body(json!({"action": "start"})),
        step("network-get-used", "GET", &net),
        step("network-delete-used", "DELETE", &net),
        step("profile-get-used", "GET", &prof),
        step("profile-delete-used", "DELETE", &prof),
        step("volume-get-used", "GET", &vol),
        step("volume-delete-used", "DELETE", &vol),
        step("project-get-used", "GET", format!("/1.0/projects/{PROJ}")),
        step("project-delete-nonempty", "DELETE", format!("/1.0/projects/{PROJ}")),
        step("instance-get-2", "GET", &inst),
        step("instance-patch-wrong-etag", "PATCH", &inst)
            .body(json!({"config": {"user.fx2": "b"}}))
            .tag(Tag::Wrong),
        step("instance-patch", "PATCH", &inst)
            .body(json!({"config": {"user.fx2": "b"}, "description": "fx2"}))
            .tag(Tag::Last),
        step("instance-get-patched", "GET", &inst),
        // Snapshots.
        step("snapshot-create", "POST", &snaps).body(json!({"name": SNAP, "stateful": false})),
        step("snapshot-create-exists", "POST", &snaps).body(json!({"name": SNAP, "stateful": false})),
        step("snapshots-list", "GET", &snaps),
        step("snapshots-list-recursive", "GET", format!("{snaps}&recursion=1")),
        step("snapshot-get", "GET", &snap),
        step("snapshot-missing", "GET", format!("/1.0/instances/{INST}/snapshots/ankfx-nosnap?{p}")),
        step("instances-list-snapshots", "GET", "/1.0/instances?all-projects=true&recursion=2").cmp(Cmp::Ours),
        step("instance-get-3", "GET", &inst),
        step("instance-put-without-volatile", "PUT", &inst)
            .body(json!({"config": {"user.fx": "c"}, "devices": {}, "profiles": ["default", PROF], "description": "fx3"}))
            .tag(Tag::Last),
        step("instance-put", "PUT", &inst)
            .body(json!({"config": {"user.fx": "c"}, "devices": {}, "profiles": ["default", PROF], "description": "fx3"}))
            .tag(Tag::Last)
            .keep_volatile(),
        step("instance-get-put", "GET", &inst),
        step("instance-restore", "PUT", &inst)
            .body(json!({"restore": SNAP}))
            .tag(Tag::Last),
        step("instance-get-restored", "GET", &inst),
        step("instance-restore-missing", "PUT", &inst).body(json!({"restore": "ankfx-nosnap"})),
        step("instance-stop", "PUT", &state).body(json!({"action": "stop", "force": true})),
        step("instance-stop-stopped", "PUT", &state).body(json!({"action": "stop", "timeout": 10})),
        step("instance-get-stopped", "GET", &inst),
        step("instance-protect", "PATCH", &inst)
            .body(json!({"config": {"security.protection.delete": "true"}})),
        step("instance-delete-protected", "DELETE", &inst),
        step("instance-unprotect", "PATCH", &inst)
            .body(json!({"config": {"security.protection.delete": "false"}})),
        step("snapshot-delete", "DELETE", &snap),
        step("snapshot-delete-missing", "DELETE", &snap),
        step("instance-delete", "DELETE", &inst),
        step("instance-delete-missing", "DELETE", &inst),
        step("instance-state-missing", "PUT", &state).body(json!({"action": "start"})),
        // Lists and host facts.
        step("operations", "GET", "/1.0/operations?all-projects=true&recursion=1").cmp(Cmp::Running),
        step("aliases", "GET", "/1.0/images/aliases?recursion=1").cmp(Cmp::Ours),
        step("resources", "GET", "/1.0/resources").cmp(Cmp::Keys),
        // Deletes.
        step("profile-delete", "DELETE", &prof),
        step("profile-delete-missing", "DELETE", &prof),
        step("volume-delete", "DELETE", &vol),
        step("volume-delete-missing", "DELETE", &vol),
        step("project-delete", "DELETE", format!("/1.0/projects/{PROJ}")),
        step("project-delete-defaults", "DELETE", format!("/1.0/projects/{PROJ2}")),
        step("project-delete-missing", "DELETE", format!("/1.0/projects/{PROJ}")),
        step("profile-missing-project", "GET", format!("/1.0/profiles/default?{p}")),
        step("instance-missing-project", "GET", &inst),
        step("volume-missing-project", "GET", &vol),
        step("network-delete", "DELETE", &net),
        step("network-delete-missing", "DELETE", &net),
    ]
}

fn method(m: &str) -> anklume_executor::incus::Method {
    use anklume_executor::incus::Method;
    match m {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => panic!("method {other}"),
    }
}

/// Run the scenario; one fixture per step (request and normalised answer).
async fn run<A: Api>(api: &A) -> Vec<Value> {
    let mut last_etag: Option<String> = None;
    let mut last_object = Value::Null;
    let mut out = Vec::new();
    for (i, s) in scenario().into_iter().enumerate() {
        let tag = match s.tag {
            Tag::None => None,
            Tag::Last => last_etag.clone(),
            Tag::Wrong => Some("wrong".to_string()),
        };
        let mut body = s.body.clone();
        if s.keep_volatile {
            let cfg = body
                .as_mut()
                .and_then(|b| b["config"].as_object_mut())
                .expect("a config");
            for (k, v) in last_object["config"].as_object().into_iter().flatten() {
                if k.starts_with("volatile.") {
                    cfg.insert(k.clone(), v.clone());
                }
            }
        }
        let (reads, writes) = (api.counters().reads(), api.counters().writes());
        let r = api
            .call(method(s.method), &s.path, body.as_ref(), tag.as_deref())
            .await;
        // What the client sent for this call (an operation's wait is a read).
        let counted = json!({
            "reads": api.counters().reads() - reads,
            "writes": api.counters().writes() - writes,
        });
        if let Ok(reply) = &r {
            if reply.etag.is_some() {
                last_etag = reply.etag.clone();
                last_object = reply.metadata.clone();
            }
        }
        let response = answer(&s, r);
        out.push(json!({
            "step": i,
            "label": s.label,
            "request": {
                "method": s.method,
                "path": s.path,
                "body": s.body,
                "keep_volatile": s.keep_volatile,
                "if_match": match s.tag { Tag::None => Value::Null, Tag::Last => json!("<etag>"), Tag::Wrong => json!("wrong") },
            },
            "response": response,
            "counted": counted,
        }));
    }
    out
}

/// A reply as the fixture keeps it.
fn answer(s: &Step, r: Result<anklume_executor::incus::Reply, IncusError>) -> Value {
    match r {
        Ok(reply) => {
            let md = match s.cmp {
                Cmp::Ours => ours(reply.metadata),
                Cmp::Keys => {
                    let mut keys: Vec<&String> = reply
                        .metadata
                        .as_object()
                        .map(|o| o.keys().collect())
                        .unwrap_or_default();
                    keys.sort();
                    json!(keys)
                }
                Cmp::NoUsedBy => {
                    let mut md = reply.metadata;
                    if let Some(o) = md.as_object_mut() {
                        o.remove("used_by");
                    }
                    md
                }
                Cmp::Running => reply
                    .metadata
                    .get("running")
                    .cloned()
                    .unwrap_or(Value::Null),
                _ => reply.metadata,
            };
            json!({"status_code": 200, "metadata": normalise(&md), "etag": reply.etag.map(|_| "<etag>")})
        }
        Err(e) => {
            let mut msg = e.message;
            if s.cmp == Cmp::MessageHead {
                msg = msg.split(": ").take(2).collect::<Vec<_>>().join(": ");
            }
            json!({"error_code": e.code, "error": normalise(&Value::String(msg))})
        }
    }
}

fn is_ours(v: &Value) -> bool {
    let mine = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("ankfx-"))
    };
    match v {
        Value::String(s) => s.contains("ankfx-"),
        _ => mine("name") || mine("project") || v.get("name") == Some(&json!(IMAGE)),
    }
}

fn ours(v: Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.into_iter().filter(is_ours).collect()),
        other => other,
    }
}

/// Replace what changes from run to run (UUIDs, hashes, MACs, times,
/// interface names, generated addresses, progress, runtime state) by
/// placeholders, and sort the unordered lists (`used_by`).
fn normalise(v: &Value) -> Value {
    norm(None, v)
}

fn norm(key: Option<&str>, v: &Value) -> Value {
    let key_s = key.unwrap_or("");
    match v {
        Value::Object(o) => {
            if key_s == "state" {
                return Value::Object(o.keys().map(|k| (k.clone(), json!("<state>"))).collect());
            }
            if key_s == "progress" || key_s.ends_with("_progress") {
                return json!("<progress>");
            }
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.clone(), norm(Some(k), x));
            }
            Value::Object(m)
        }
        Value::Array(a) => {
            let mut items: Vec<Value> = a.iter().map(|x| norm(None, x)).collect();
            if key_s == "used_by" {
                items.sort_by_key(|x| x.to_string());
            }
            Value::Array(items)
        }
        Value::String(s) => {
            if key_s == "progress" || key_s.ends_with("_progress") {
                return json!("<progress>");
            }
            if key_s.ends_with(".host_name") {
                return json!("<ifname>");
            }
            if key_s == "ipv6.address" && s.starts_with("fd42:") {
                return json!("<ula>");
            }
            Value::String(norm_text(s))
        }
        other => other.clone(),
    }
}

/// Placeholders for volatile tokens inside a string.
fn norm_text(s: &str) -> String {
    let mut out = String::new();
    let mut tok = String::new();
    let flush = |tok: &mut String, out: &mut String| {
        out.push_str(&norm_token(tok));
        tok.clear();
    };
    for c in s.chars() {
        if matches!(
            c,
            ' ' | '/' | '?' | '=' | '"' | ',' | '&' | '[' | ']' | '{' | '}'
        ) {
            flush(&mut tok, &mut out);
            out.push(c);
        } else {
            tok.push(c);
        }
    }
    flush(&mut tok, &mut out);
    out
}

fn norm_token(t: &str) -> String {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = t.split('-').collect();
    if parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && hex(p))
    {
        return "<uuid>".into();
    }
    if t.len() == 64 && hex(t) {
        return "<hash>".into();
    }
    let bytes: Vec<&str> = t.split(':').collect();
    if bytes.len() == 6 && bytes.iter().all(|b| b.len() == 2 && hex(b)) {
        return "<mac>".into();
    }
    let b = t.as_bytes();
    if t.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && t.ends_with('Z')
        && t[..4].bytes().all(|c| c.is_ascii_digit())
    {
        return "<time>".into();
    }
    t.to_string()
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("executor/fixtures/incus-6.0")
}

fn fixture_file(fx: &Value) -> PathBuf {
    fixtures_dir().join(format!("{}.json", fx["label"].as_str().unwrap()))
}

fn write_fixtures(fixtures: &[Value]) {
    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::remove_file(p).unwrap();
        }
    }
    for fx in fixtures {
        let text = serde_json::to_string_pretty(fx).unwrap() + "\n";
        std::fs::write(fixture_file(fx), text).unwrap();
    }
}

/// Each step's answer equals the committed fixture's.
fn assert_matches_fixtures(who: &str, got: &[Value]) {
    let mut bad = Vec::new();
    for fx in got {
        let path = fixture_file(fx);
        let Ok(text) = std::fs::read_to_string(&path) else {
            bad.push(format!("{}: no fixture {}", fx["label"], path.display()));
            continue;
        };
        let want: Value = serde_json::from_str(&text).unwrap();
        if want != *fx {
            bad.push(format!(
                "step {} {}:\n  fixture: {}\n  {who}: {}",
                fx["step"],
                fx["label"],
                serde_json::to_string(&want["response"]).unwrap(),
                serde_json::to_string(&fx["response"]).unwrap()
            ));
        }
    }
    let count = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    if count != got.len() {
        bad.push(format!(
            "{count} fixture files but {} scenario steps (regenerate: scripts/record-incus-fixtures.sh)",
            got.len()
        ));
    }
    assert!(
        bad.is_empty(),
        "{who} differs from the recorded Incus 6.0 answers in {} step(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Remove every `ankfx-` object (before and after a real run; errors are
/// ignored: the object may not be there).
async fn cleanup(incus: &Incus) {
    let p = q(PROJ);
    for (m, path) in [
        ("PATCH", format!("/1.0/instances/{INST}?{p}")),
        ("PUT", format!("/1.0/instances/{INST}/state?{p}")),
        ("DELETE", format!("/1.0/instances/{INST}?{p}")),
        ("DELETE", format!("/1.0/instances/{INST2}?{p}")),
        ("DELETE", format!("/1.0/instances/{INST2}?{}", q(PROJ2))),
        ("DELETE", format!("/1.0/profiles/{PROF}?{p}")),
        (
            "DELETE",
            format!("/1.0/storage-pools/default/volumes/custom/{VOL}?{p}"),
        ),
        ("DELETE", format!("/1.0/projects/{PROJ}")),
        ("DELETE", format!("/1.0/projects/{PROJ2}")),
        ("DELETE", format!("/1.0/networks/{NET}")),
    ] {
        let body = match m {
            "PATCH" => Some(json!({"config": {"security.protection.delete": "false"}})),
            "PUT" => Some(json!({"action": "stop", "force": true})),
            _ => None,
        };
        let _ = incus.call(method(m), &path, body.as_ref(), None).await;
    }
}

/// Cleans up when dropped, also after a panic.
struct Cleanup(Incus);

impl Drop for Cleanup {
    fn drop(&mut self) {
        rt().block_on(cleanup(&self.0));
    }
}

#[test]
fn real_daemon_answers_as_recorded() {
    let Some(incus) = daemon() else { return };
    let rt = rt();
    rt.block_on(cleanup(&incus));
    let guard = Cleanup(incus.clone());
    let got = rt.block_on(run(&incus));
    drop(guard);
    if std::env::var(RECORD).as_deref() == Ok("1") {
        write_fixtures(&got);
        eprintln!(
            "recorded {} fixtures in {}",
            got.len(),
            fixtures_dir().display()
        );
        return;
    }
    assert_matches_fixtures("the real daemon", &got);
}

#[test]
fn fake_answers_as_recorded() {
    if std::env::var(RECORD).as_deref() == Ok("1") {
        return;
    }
    let fake = Fake::new().with_image(IMAGE);
    let got = rt().block_on(run(&fake));
    assert_matches_fixtures("the fake", &got);
}

#[test]
fn normalising_is_idempotent_and_hides_volatile_values() {
    let v = json!({
        "id": "761a7d39-67ba-40be-b517-0ce155193ad9",
        "created_at": "2026-12-03T12:52:25.233014909Z",
        "config": {"volatile.eth0.hwaddr": "10:66:6a:84:77:b6", "volatile.eth0.host_name": "veth1b2dc0c2"},
        "used_by": ["/1.0/profiles/b", "/1.0/images/8f0beccd0d89c3fb64a858e3993f55ddef2e04f12750c383ab9dcadd0f8ffae8"],
        "error": "ETag doesn't match: 6b4b4af62d2755b56b5ebe9f57761cb190a5e49a6c2881300b71e38ab676cf28 vs wrong",
    });
    let n = normalise(&v);
    assert_eq!(
        n,
        json!({
            "id": "<uuid>",
            "created_at": "<time>",
            "config": {"volatile.eth0.hwaddr": "<mac>", "volatile.eth0.host_name": "<ifname>"},
            "used_by": ["/1.0/images/<hash>", "/1.0/profiles/b"],
            "error": "ETag doesn't match: <hash> vs wrong",
        })
    );
    assert_eq!(normalise(&n), n);
}
