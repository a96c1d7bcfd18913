//! An in-memory Incus for unit tests: [`Fake`] implements [`Api`] over
//! plain maps, and answers like the real Incus 6.0 daemon.
//!
//! Its shapes are not written here: every object it returns (network,
//! project, profile, custom volume, instance, snapshot, image alias), every
//! success metadata and every error code and message comes from the
//! responses recorded from a real daemon in `executor/fixtures/incus-6.0/`
//! (one JSON file per scenario step, embedded with `include_str!`). The fake
//! takes the recorded object as a template, puts in the request's values
//! (name, project, config, devices, …) and fills the placeholders the
//! recorder left for volatile values (`<uuid>`, `<mac>`, `<hash>`, `<time>`,
//! `<ifname>`, `<ula>`) with deterministic ones. `tests/fake_fidelity.rs`
//! replays the recording scenario against the fake and checks every answer
//! equals the fixture, and against the real daemon to check the fixtures are
//! current.
//!
//! What it models:
//! - networks (the default project), projects (a new project gets its own
//!   `default` profile when `features.profiles` is true), profiles,
//!   custom volumes in pool `default`, instances and their snapshots, local
//!   image aliases;
//! - lists (`recursion=0/1/2`, `project=`, `all-projects=true`), computed
//!   `used_by`, `expanded_config` / `expanded_devices`, `volatile.*` keys;
//! - PATCH (merges config keys and devices), PUT (replaces the writable
//!   fields; an instance keeps volatile keys the body omits, but refuses to
//!   drop `volatile.idmap.*`), ETags (412 on a mismatch), start / stop,
//!   snapshot restore;
//! - the refusals Incus gives: 404s, creating an existing name, deleting a
//!   running or protected instance, a non-empty project, a network,
//!   profile or volume in use, starting a running / stopping a stopped
//!   instance, an unknown image alias or profile, no root disk, and a remote
//!   image pull (the fake is offline);
//! - request counting: [`Api::counters`] counts what the real client sends,
//!   as recorded per step (a background operation adds its wait, a failed
//!   one the wait and a re-read).
//!
//! Not recorded, so best guesses (no fixture says otherwise): a network
//! created without `ipv4.address` gets a free `10.x.y.1/24` with NAT (the
//! recording host had no free subnet); an instance created with
//! `start: false` carries the stopped volatile keys; an unknown state
//! action, an unknown storage pool and [`Api::wait`] answer with invented
//! messages.
//!
//! What it does not model: background operations (a request returns its
//! finished result at once; `/1.0/operations` lists none, [`Api::wait`]
//! answers 404), clustering, storage pools other than `default`, network
//! types other than bridges and their address allocation beyond filling
//! `ipv4.address` / `ipv6.address` when not given, device validation
//! (a NIC naming a missing network is accepted), images other than
//! aliases in the default project's store (a project with
//! `features.images=true` has its own, empty, store), runtime state (`state` of
//! `recursion=2` carries the recorded keys, not real counters), and any
//! endpoint the executor does not use (answered 404 `not found`).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{json, Map, Value};

use super::{dec, enc, Api, Counters, IncusError, Method, Reply};

/// The recorded scenario steps the fake reads, by label.
const FIXTURES: &[(&str, &str)] = &{
    macro_rules! fx {
        ($($l:literal),* $(,)?) => {
            [$(($l, include_str!(concat!("../../fixtures/incus-6.0/", $l, ".json")))),*]
        };
    }
    fx![
        "default-profile-get",
        "default-project-get",
        "network-create",
        "network-get",
        "network-create-exists",
        "network-patch-wrong-etag",
        "network-patch",
        "network-put",
        "network-missing",
        "network-delete-used",
        "network-delete",
        "network-delete-missing",
        "project-create",
        "project-create-exists",
        "project-get",
        "project-get-defaults",
        "project-missing",
        "project-put",
        "project-default-profile-get",
        "project-delete-nonempty",
        "project-delete",
        "project-delete-missing",
        "profile-create",
        "profile-create-exists",
        "profile-get",
        "profile-patch",
        "profile-put",
        "profile-missing",
        "profile-delete-used",
        "profile-delete",
        "profile-delete-missing",
        "profile-missing-project",
        "volume-create",
        "volume-create-exists",
        "volume-get",
        "volume-get-used",
        "volume-patch",
        "volume-put",
        "volume-missing",
        "volume-delete-used",
        "volume-delete",
        "volume-missing-project",
        "instance-create",
        "instance-get",
        "instance-get-stopped",
        "instance-create-exists",
        "instance-create-unknown-alias",
        "instance-create-remote",
        "instance-create-unknown-profile",
        "instance-create-no-root",
        "instance-missing",
        "instance-missing-project",
        "instance-delete-running",
        "instance-start-running",
        "instance-stop",
        "instance-stop-stopped",
        "instance-patch",
        "instance-put",
        "instance-put-without-volatile",
        "instance-restore",
        "instance-restore-missing",
        "instance-delete-protected",
        "instance-delete",
        "instances-list-snapshots",
        "snapshot-create",
        "snapshot-create-exists",
        "snapshot-get",
        "snapshot-missing",
        "snapshot-delete",
        "aliases",
        "resources",
    ]
};

/// The scenario's names, replaced in recorded messages by the request's.
const REC_PROJECT: &str = "ankfx-proj";
const REC_NETWORK: &str = "ankfx-net";
const REC_PROFILE: &str = "ankfx-prof";
const REC_INSTANCE: &str = "ankfx-c1";
const REC_SNAPSHOT: &str = "ankfx-s1";

fn fixtures() -> &'static HashMap<&'static str, Value> {
    static F: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    F.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|(l, t)| {
                let v = serde_json::from_str(t)
                    .unwrap_or_else(|e| panic!("fixture {l} is not JSON: {e}"));
                (*l, v)
            })
            .collect()
    })
}

fn fixture(label: &str) -> &'static Value {
    fixtures()
        .get(label)
        .unwrap_or_else(|| panic!("no fixture {label}"))
}

/// The recorded success metadata of a step.
fn ok_of(label: &str) -> Value {
    fixture(label)["response"]["metadata"].clone()
}

/// The recorded object of a step (a single-object GET).
fn template(label: &str) -> Map<String, Value> {
    match ok_of(label) {
        Value::Object(o) => o,
        other => panic!("fixture {label} holds no object: {other}"),
    }
}

/// The recorded error of a step, its scenario names replaced: each
/// `(recorded, actual)` pair is replaced where it appears quoted, or as a
/// whole `a/b` pair.
fn err_of(label: &str, names: &[(&str, &str)]) -> IncusError {
    let r = &fixture(label)["response"];
    let mut message = r["error"]
        .as_str()
        .unwrap_or_else(|| panic!("fixture {label} is no error"))
        .to_string();
    for (from, to) in names {
        message = message.replace(&format!("\"{from}\""), &format!("\"{to}\""));
    }
    IncusError {
        code: r["error_code"].as_u64().unwrap_or(500) as u16,
        message,
    }
}

/// An instance and its snapshots, oldest first.
#[derive(Clone)]
struct Inst {
    obj: Map<String, Value>,
    snapshots: Vec<Map<String, Value>>,
    /// Names of its backups (their content is made at export).
    backups: Vec<String>,
}

#[derive(Default)]
struct State {
    networks: BTreeMap<String, Map<String, Value>>,
    projects: BTreeMap<String, Map<String, Value>>,
    profiles: BTreeMap<(String, String), Map<String, Value>>,
    instances: BTreeMap<(String, String), Inst>,
    volumes: BTreeMap<(String, String, String), Map<String, Value>>,
    aliases: BTreeMap<String, Map<String, Value>>,
    log: Vec<(Method, String)>,
    fails: Vec<(Method, String, IncusError)>,
    seq: u64,
    /// The recorded step the last reply came from: the real client sent
    /// as many requests for it as the fixture counted (an operation's wait
    /// is one more read), and so does the fake's counter.
    replied: Cell<Option<&'static str>>,
}

/// An in-memory Incus (see the module doc). Clones share one state.
#[derive(Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake::new()
    }
}

type Res = Result<Value, IncusError>;

impl Fake {
    /// A fresh daemon: project `default` with its `default` profile (a root
    /// disk in pool `default`, as recorded), storage pool `default`, no
    /// networks, no instances, no images.
    pub fn new() -> Fake {
        let mut st = State::default();
        st.projects
            .insert("default".into(), template("default-project-get"));
        let mut profile = template("default-profile-get");
        profile.remove("used_by");
        st.profiles
            .insert(("default".into(), "default".into()), profile);
        Fake {
            state: Arc::new(Mutex::new(st)),
            counters: Arc::new(Counters::default()),
        }
    }

    /// With a local image under `alias`, in the default project's image
    /// store (shared by the projects with `features.images=false`, as
    /// anklume creates them).
    pub fn with_image(self, alias: &str) -> Fake {
        {
            let mut st = self.lock();
            let mut a = fixture("aliases")["response"]["metadata"][0]
                .as_object()
                .cloned()
                .expect("a recorded alias");
            a.insert("name".into(), json!(alias));
            let a = st.fill(Value::Object(a));
            if let Value::Object(a) = a {
                st.aliases.insert(alias.to_string(), a);
            }
        }
        self
    }

    /// Every request so far, in order (path with its query, as sent).
    pub fn requests(&self) -> Vec<(Method, String)> {
        self.lock().log.clone()
    }

    /// The requests that are not GETs.
    pub fn writes(&self) -> Vec<(Method, String)> {
        self.lock()
            .log
            .iter()
            .filter(|(m, _)| *m != Method::Get)
            .cloned()
            .collect()
    }

    /// Forget the requests so far.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// The next request with this method and a path starting with
    /// `path_prefix` fails with `error` (once), and changes nothing.
    pub fn fail(&self, method: Method, path_prefix: &str, error: IncusError) {
        self.lock()
            .fails
            .push((method, path_prefix.to_string(), error));
    }

    /// What `GET path` answers as metadata; `None` on an error (404).
    /// Not logged, not counted.
    pub fn get_object(&self, path: &str) -> Option<Value> {
        let mut st = self.lock();
        let (segs, query) = parse(path);
        let r = st.route(Method::Get, &segs, &query, None, None);
        st.replied.set(None);
        r.ok().map(|(v, _)| v)
    }

    /// Edit the stored object at `path` (a change made outside anklume).
    /// Computed fields (`used_by`, `expanded_*`) are recomputed on read.
    /// Panics when there is no such object.
    pub fn set_object(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.lock();
        let (segs, query) = parse(path);
        let project = query_project(&query);
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let obj = match s.as_slice() {
            ["networks", n] => st.networks.get_mut(*n),
            ["projects", n] => st.projects.get_mut(*n),
            ["profiles", n] => st.profiles.get_mut(&(project, n.to_string())),
            ["instances", n] => st
                .instances
                .get_mut(&(project, n.to_string()))
                .map(|i| &mut i.obj),
            ["instances", n, "snapshots", sn] => st
                .instances
                .get_mut(&(project, n.to_string()))
                .and_then(|i| i.snapshots.iter_mut().find(|x| x["name"] == *sn)),
            ["storage-pools", pool, "volumes", "custom", n] => {
                st.volumes
                    .get_mut(&(project, pool.to_string(), n.to_string()))
            }
            _ => None,
        }
        .unwrap_or_else(|| panic!("Fake::set_object: no object at {path}"));
        let mut v = Value::Object(std::mem::take(obj));
        f(&mut v);
        *obj = match v {
            Value::Object(o) => o,
            other => panic!("Fake::set_object: {path} must stay an object, got {other}"),
        };
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Api for Fake {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, IncusError> {
        self.counters.count(method);
        let mut st = self.lock();
        st.log.push((method, path.to_string()));
        if let Some(i) = st
            .fails
            .iter()
            .position(|(m, p, _)| *m == method && path.starts_with(p.as_str()))
        {
            return Err(st.fails.remove(i).2);
        }
        let (segs, query) = parse(path);
        st.replied.set(None);
        let result = st.route(method, &segs, &query, body, if_match);
        if let Some(label) = st.replied.take() {
            let counted = &fixture(label)["counted"];
            let total =
                counted["reads"].as_u64().unwrap_or(0) + counted["writes"].as_u64().unwrap_or(0);
            for _ in 1..total {
                self.counters.count(Method::Get);
            }
        }
        let (metadata, etag) = result?;
        Ok(Reply { metadata, etag })
    }

    async fn wait(&self, op: &str) -> Result<Reply, IncusError> {
        self.counters.count(Method::Get);
        let mut st = self.lock();
        st.log.push((Method::Get, format!("{op}/wait")));
        // No operation runs in the fake.
        Err(not_found())
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A backup's export: the fake writes the instance and its snapshots
    /// as JSON (a real one is a tarball; only [`Fake::upload`] reads it).
    async fn download(&self, path: &str, to: &std::path::Path) -> Result<u64, IncusError> {
        self.counters.count(Method::Get);
        let mut st = self.lock();
        st.log.push((Method::Get, path.to_string()));
        let (segs, q) = parse(path);
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let ["instances", n, "backups", b, "export"] = s.as_slice() else {
            return Err(not_found());
        };
        let key = (query_project(&q), n.to_string());
        let Some(inst) = st.instances.get(&key) else {
            return Err(not_found());
        };
        if !inst.backups.iter().any(|x| x == b) {
            return Err(not_found());
        }
        let bytes = serde_json::to_vec(&json!({
            "instance": inst.obj,
            "snapshots": inst.snapshots,
        }))
        .expect("JSON values serialise");
        std::fs::write(to, &bytes)
            .map_err(|e| IncusError::transport(format!("writing {}: {e}", to.display())))?;
        Ok(bytes.len() as u64)
    }

    /// An instance import (`POST /1.0/instances` with `X-Incus-name`) of
    /// what [`Fake::download`] wrote: the instance comes back stopped,
    /// with its configuration, volatile keys and snapshots.
    async fn upload(
        &self,
        path: &str,
        from: &std::path::Path,
        headers: &[(&str, String)],
    ) -> Result<Reply, IncusError> {
        self.counters.count(Method::Post);
        let mut st = self.lock();
        st.log.push((Method::Post, path.to_string()));
        let (segs, q) = parse(path);
        if segs != ["instances"] {
            return Err(not_found());
        }
        let project = query_project(&q);
        if !st.project_exists(&project) {
            return Err(st.err("instance-missing-project", &[]));
        }
        let bytes = std::fs::read(from)
            .map_err(|e| IncusError::transport(format!("reading {}: {e}", from.display())))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| IncusError {
            code: 400,
            message: format!("not a backup: {e}"),
        })?;
        let mut obj = obj_of(v.get("instance"));
        let name = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("X-Incus-name"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| str_of(&obj, "name").to_string());
        let key = (project.clone(), name.clone());
        if st.instances.contains_key(&key) {
            return Err(st.err("instance-create-exists", &[]));
        }
        obj.insert("name".into(), json!(name));
        obj.insert("project".into(), json!(project));
        obj.insert("status".into(), json!("Stopped"));
        obj.insert("status_code".into(), json!(102));
        let snapshots = v
            .get("snapshots")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| obj_of(Some(s))).collect())
            .unwrap_or_default();
        st.instances.insert(
            key,
            Inst {
                obj,
                snapshots,
                backups: Vec::new(),
            },
        );
        Ok(Reply {
            metadata: json!({}),
            etag: None,
        })
    }
}

/// Incus's answer for an unknown path or operation.
/// `GET /1.0/metadata/configuration`: the catalogue recorded from Incus 6.0
/// (`scripts/record-incus-keys.sh`), in the server's shape
/// (`{configs: {section: {group: {keys: [{key: meta}]}}}}`).
fn key_catalogue() -> Value {
    let recorded: Value =
        serde_json::from_str(anklume_incus_keys::RECORDED_JSON).unwrap_or(Value::Null);
    let mut configs = Map::new();
    for (section, groups) in recorded["configs"].as_object().into_iter().flatten() {
        let mut out = Map::new();
        for (group, keys) in groups.as_object().into_iter().flatten() {
            let list: Vec<Value> = keys
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, meta)| json!({ k.clone(): meta.clone() }))
                .collect();
            out.insert(group.clone(), json!({ "keys": list }));
        }
        configs.insert(section.clone(), Value::Object(out));
    }
    json!({ "configs": configs })
}

fn not_found() -> IncusError {
    IncusError {
        code: 404,
        message: "not found".into(),
    }
}

/// Path segments after `/1.0/` (decoded) and the query.
fn parse(path: &str) -> (Vec<String>, HashMap<String, String>) {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let segs = p
        .trim_start_matches("/1.0")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(dec)
        .collect();
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (dec(k), dec(v))
        })
        .collect();
    (segs, query)
}

fn query_project(q: &HashMap<String, String>) -> String {
    q.get("project")
        .cloned()
        .unwrap_or_else(|| "default".into())
}

fn recursion(q: &HashMap<String, String>) -> u8 {
    q.get("recursion").and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn all_projects(q: &HashMap<String, String>) -> bool {
    q.get("all-projects").map(String::as_str) == Some("true")
}

/// `?project=p` for URLs of objects outside the default project.
fn in_project(project: &str) -> String {
    if project == "default" {
        String::new()
    } else {
        format!("?project={}", enc(project))
    }
}

fn obj_of(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn str_of<'a>(v: &'a Map<String, Value>, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `PATCH` of an instance, a network or a volume: as [`merge_patch`], and
/// a description it is not given is emptied (Incus 6.0 does so, measured:
/// profiles and projects keep theirs).
fn merge_patch_clearing_description(obj: &mut Map<String, Value>, body: &Map<String, Value>) {
    merge_patch(obj, body);
    if !body.contains_key("description") {
        obj.insert("description".into(), json!(""));
    }
}

/// `PATCH`: config keys and devices merged one by one, other fields replaced.
fn merge_patch(obj: &mut Map<String, Value>, body: &Map<String, Value>) {
    for (k, v) in body {
        match (k.as_str(), obj.get_mut(k)) {
            ("config" | "devices", Some(Value::Object(cur))) => {
                for (ck, cv) in obj_of(Some(v)) {
                    cur.insert(ck, cv);
                }
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `PUT`: the writable `fields` replaced (absent ones emptied).
fn replace_put(obj: &mut Map<String, Value>, body: &Map<String, Value>, fields: &[&str]) {
    for f in fields {
        let empty = match *f {
            "description" => json!(""),
            "profiles" => json!([]),
            _ => json!({}),
        };
        obj.insert(f.to_string(), body.get(*f).cloned().unwrap_or(empty));
    }
}

/// A 64-hex-digit hash of a value (an ETag, a fingerprint).
fn hash64(v: &impl Hash) -> String {
    (0..4u8)
        .map(|seed| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut h);
            v.hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

fn etag_of(obj: &Map<String, Value>) -> String {
    hash64(&Value::Object(obj.clone()).to_string())
}

impl State {
    /// A recorded success reply; see [`State::replied`].
    fn ok(&self, label: &'static str) -> Value {
        self.replied.set(Some(label));
        ok_of(label)
    }

    /// A recorded error; see [`State::replied`].
    fn err(&self, label: &'static str, names: &[(&str, &str)]) -> IncusError {
        self.replied.set(Some(label));
        err_of(label, names)
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Replace the recorder's placeholders by fresh deterministic values.
    fn fill(&mut self, v: Value) -> Value {
        match v {
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, x)| (k, self.fill(x))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.fill(x)).collect()),
            Value::String(s) if s.contains('<') => {
                let mut s = s;
                while let Some(p) = ["<uuid>", "<mac>", "<hash>", "<time>", "<ifname>", "<ula>"]
                    .iter()
                    .find(|p| s.contains(**p))
                {
                    let n = self.next();
                    let value = match *p {
                        "<uuid>" => format!("00000000-0000-4000-8000-{n:012x}"),
                        "<mac>" => format!("10:66:6a:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff),
                        "<hash>" => hash64(&n),
                        "<time>" => self.time_of(n),
                        "<ifname>" => format!("veth{n:08x}"),
                        _ => format!("fd42:0:0:{n:x}::1/64"),
                    };
                    s = s.replacen(p, &value, 1);
                }
                Value::String(s)
            }
            other => other,
        }
    }

    /// A time that grows with each use (snapshots sort by it).
    fn time_of(&self, n: u64) -> String {
        format!(
            "2026-01-01T{:02}:{:02}:{:02}.{:09}Z",
            (n / 3600) % 24,
            (n / 60) % 60,
            n % 60,
            n
        )
    }

    fn now(&mut self) -> Value {
        let n = self.next();
        json!(self.time_of(n))
    }

    fn project_exists(&self, project: &str) -> bool {
        self.projects.contains_key(project)
    }

    fn route(
        &mut self,
        method: Method,
        segs: &[String],
        q: &HashMap<String, String>,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let body = obj_of(body);
        let p = query_project(q);
        let none = |r: Res| r.map(|v| (v, None));
        use Method::*;
        match (method, s.as_slice()) {
            (Get, ["networks"]) => none(Ok(self.list_networks(q))),
            (Post, ["networks"]) => none(self.create_network(&body)),
            (_, ["networks", n]) => self.one_network(method, n, &body, if_match),
            (Get, ["projects"]) => none(Ok(self.list_projects(q))),
            (Post, ["projects"]) => none(self.create_project(&body)),
            (_, ["projects", n]) => self.one_project(method, n, &body, if_match),
            (Get, ["profiles"]) => none(self.list_profiles(&p, q)),
            (Post, ["profiles"]) => none(self.create_profile(&p, &body)),
            (_, ["profiles", n]) => self.one_profile(method, &p, n, &body, if_match),
            // The one pool the fake has (its names, as Incus lists them).
            (Get, ["storage-pools"]) => none(Ok(json!(["/1.0/storage-pools/default"]))),
            (Get, ["storage-pools", pool, "volumes", "custom"]) => {
                none(self.list_volumes(&p, pool, q))
            }
            (Post, ["storage-pools", pool, "volumes", "custom"]) => {
                none(self.create_volume(&p, pool, &body))
            }
            (_, ["storage-pools", pool, "volumes", "custom", n]) => {
                self.one_volume(method, &p, pool, n, &body, if_match)
            }
            (Get, ["instances"]) => none(self.list_instances(&p, q)),
            (Post, ["instances"]) => none(self.create_instance(&p, &body)),
            (_, ["instances", n]) => self.one_instance(method, &p, n, &body, if_match),
            (Put, ["instances", n, "state"]) => none(self.instance_state(&p, n, &body)),
            (Get, ["instances", n, "snapshots"]) => none(self.list_snapshots(&p, n, q)),
            (Post, ["instances", n, "snapshots"]) => none(self.create_snapshot(&p, n, &body)),
            (_, ["instances", n, "snapshots", sn]) => self.one_snapshot(method, &p, n, sn),
            (Post, ["instances", n, "backups"]) => none(self.create_backup(&p, n, &body)),
            (Delete, ["instances", n, "backups", b]) => none(self.delete_backup(&p, n, b)),
            (Get, ["images", "aliases"]) => none(Ok(self.list_aliases(q))),
            (Get, ["operations"]) => none(Ok(json!({}))),
            (Get, ["metadata", "configuration"]) => none(Ok(key_catalogue())),
            (Get, ["resources"]) => none(Ok(Value::Object(
                fixture("resources")["response"]["metadata"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|k| (k.to_string(), json!({})))
                    .collect(),
            ))),
            _ => Err(not_found()),
        }
    }

    /// 412 when `if_match` is given and is not the object's ETag.
    fn check_etag(obj: &Map<String, Value>, if_match: Option<&str>) -> Result<(), IncusError> {
        match if_match {
            Some(given) if given != etag_of(obj) => Err(IncusError {
                code: 412,
                message: format!("ETag doesn't match: {} vs {given}", etag_of(obj)),
            }),
            _ => Ok(()),
        }
    }

    // ---- networks ----

    fn network_view(&self, name: &str) -> Value {
        let mut o = self.networks[name].clone();
        let mut used = Vec::new();
        for ((pp, pn), prof) in &self.profiles {
            if uses_network(prof.get("devices"), name) {
                used.push(format!("/1.0/profiles/{}{}", enc(pn), in_project(pp)));
            }
        }
        for ((ip, iname), inst) in &self.instances {
            if uses_network(Some(&self.expanded(ip, &inst.obj).1), name) {
                used.push(format!("/1.0/instances/{}{}", enc(iname), in_project(ip)));
            }
        }
        used.sort();
        o.insert("used_by".into(), json!(used));
        Value::Object(o)
    }

    fn list_networks(&self, q: &HashMap<String, String>) -> Value {
        if recursion(q) == 0 {
            return json!(self
                .networks
                .keys()
                .map(|n| format!("/1.0/networks/{}", enc(n)))
                .collect::<Vec<_>>());
        }
        json!(self
            .networks
            .keys()
            .map(|n| self.network_view(n))
            .collect::<Vec<_>>())
    }

    fn create_network(&mut self, body: &Map<String, Value>) -> Res {
        let name = str_of(body, "name").to_string();
        if self.networks.contains_key(&name) {
            return Err(self.err("network-create-exists", &[(REC_NETWORK, &name)]));
        }
        let mut o = template("network-get");
        let mut config = obj_of(body.get("config"));
        if !config.contains_key("ipv4.address") {
            // Not recorded (the recording host had no free subnet): Incus
            // picks a free /24 and NATs it.
            let n = self.next();
            config.insert(
                "ipv4.address".into(),
                json!(format!("10.{}.{}.1/24", 100 + (n / 256) % 100, n % 256)),
            );
            config.insert("ipv4.nat".into(), json!("true"));
        }
        if !config.contains_key("ipv6.address") {
            // As recorded: a random ULA /64, NATed.
            config.insert("ipv6.address".into(), json!("<ula>"));
            config.insert("ipv6.nat".into(), json!("true"));
        }
        o.insert("name".into(), json!(name));
        o.insert(
            "description".into(),
            body.get("description").cloned().unwrap_or(json!("")),
        );
        o.insert("config".into(), Value::Object(config));
        o.remove("used_by");
        let Value::Object(o) = self.fill(Value::Object(o)) else {
            unreachable!()
        };
        self.networks.insert(name, o);
        Ok(self.ok("network-create"))
    }

    fn one_network(
        &mut self,
        method: Method,
        name: &str,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        let Some(cur) = self.networks.get(name) else {
            let label = if method == Method::Get {
                "network-missing"
            } else {
                "network-delete-missing"
            };
            return Err(self.err(label, &[]));
        };
        let etag = etag_of(cur);
        match method {
            Method::Get => Ok((self.network_view(name), Some(etag))),
            Method::Patch | Method::Put => {
                Self::check_etag(cur, if_match)?;
                let cur = self.networks.get_mut(name).expect("checked");
                if method == Method::Patch {
                    merge_patch_clearing_description(cur, body);
                    Ok((self.ok("network-patch"), None))
                } else {
                    replace_put(cur, body, &["config", "description"]);
                    Ok((self.ok("network-put"), None))
                }
            }
            Method::Delete => {
                if self.network_view(name)["used_by"]
                    .as_array()
                    .is_some_and(|u| !u.is_empty())
                {
                    return Err(self.err("network-delete-used", &[]));
                }
                self.networks.remove(name);
                Ok((self.ok("network-delete"), None))
            }
            Method::Post => Err(not_found()),
        }
    }

    // ---- projects ----

    fn project_view(&self, name: &str) -> Value {
        let mut o = self.projects[name].clone();
        let mut used = Vec::new();
        if name == "default" {
            for a in self.aliases.values() {
                used.push(format!("/1.0/images/{}", str_of(a, "target")));
            }
        }
        let q = in_project(name);
        for (pp, pn) in self.profiles.keys() {
            if pp == name {
                used.push(format!("/1.0/profiles/{}{q}", enc(pn)));
            }
        }
        for (ip, iname) in self.instances.keys() {
            if ip == name {
                used.push(format!("/1.0/instances/{}{q}", enc(iname)));
            }
        }
        for (vp, pool, vn) in self.volumes.keys() {
            if vp == name {
                used.push(format!(
                    "/1.0/storage-pools/{}/volumes/custom/{}{q}",
                    enc(pool),
                    enc(vn)
                ));
            }
        }
        used.sort();
        o.insert("used_by".into(), json!(used));
        Value::Object(o)
    }

    fn list_projects(&self, q: &HashMap<String, String>) -> Value {
        if recursion(q) == 0 {
            return json!(self
                .projects
                .keys()
                .map(|n| format!("/1.0/projects/{}", enc(n)))
                .collect::<Vec<_>>());
        }
        json!(self
            .projects
            .keys()
            .map(|n| self.project_view(n))
            .collect::<Vec<_>>())
    }

    fn create_project(&mut self, body: &Map<String, Value>) -> Res {
        let name = str_of(body, "name").to_string();
        if self.projects.contains_key(&name) {
            return Err(self.err("project-create-exists", &[(REC_PROJECT, &name)]));
        }
        let mut o = template("project-get");
        let mut config = obj_of(body.get("config"));
        // As recorded (`project-get-defaults`): the features a project
        // leaves unset are on.
        for (k, v) in obj_of(template("project-get-defaults").get("config")) {
            config.entry(k).or_insert(v);
        }
        o.insert("name".into(), json!(name));
        o.insert(
            "description".into(),
            body.get("description").cloned().unwrap_or(json!("")),
        );
        let profiles = config.get("features.profiles") == Some(&json!("true"));
        o.insert("config".into(), Value::Object(config));
        o.remove("used_by");
        self.projects.insert(name.clone(), o);
        if profiles {
            let mut prof = template("project-default-profile-get");
            let d = str_of(&prof, "description").replace(REC_PROJECT, &name);
            prof.insert("description".into(), json!(d));
            prof.insert("project".into(), json!(name));
            prof.remove("used_by");
            self.profiles.insert((name, "default".into()), prof);
        }
        Ok(self.ok("project-create"))
    }

    fn one_project(
        &mut self,
        method: Method,
        name: &str,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        let Some(cur) = self.projects.get(name) else {
            return Err(match method {
                Method::Delete => self.err("project-delete-missing", &[(REC_PROJECT, name)]),
                _ => self.err("project-missing", &[]),
            });
        };
        let etag = etag_of(cur);
        match method {
            Method::Get => Ok((self.project_view(name), Some(etag))),
            Method::Patch | Method::Put => {
                Self::check_etag(cur, if_match)?;
                let cur = self.projects.get_mut(name).expect("checked");
                if method == Method::Patch {
                    merge_patch(cur, body);
                } else {
                    replace_put(cur, body, &["config", "description"]);
                }
                Ok((self.ok("project-put"), None))
            }
            Method::Delete => {
                let own_default = format!("/1.0/profiles/default{}", in_project(name));
                let busy = self.project_view(name)["used_by"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|u| u.as_str() != Some(&own_default));
                if busy {
                    return Err(self.err("project-delete-nonempty", &[]));
                }
                self.projects.remove(name);
                self.profiles.retain(|(p, _), _| p != name);
                Ok((self.ok("project-delete"), None))
            }
            Method::Post => Err(not_found()),
        }
    }

    // ---- profiles ----

    fn profile_view(&self, project: &str, name: &str) -> Value {
        let mut o = self.profiles[&(project.to_string(), name.to_string())].clone();
        let used: Vec<String> = self
            .instances
            .iter()
            .filter(|((ip, _), i)| {
                ip == project
                    && i.obj["profiles"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p == name))
            })
            .map(|((ip, n), _)| format!("/1.0/instances/{}{}", enc(n), in_project(ip)))
            .collect();
        o.insert("used_by".into(), json!(used));
        Value::Object(o)
    }

    fn list_profiles(&self, project: &str, q: &HashMap<String, String>) -> Res {
        let all = all_projects(q);
        if !all && !self.project_exists(project) {
            return Err(self.err("profile-missing-project", &[(REC_PROJECT, project)]));
        }
        let keys: Vec<&(String, String)> = self
            .profiles
            .keys()
            .filter(|(p, _)| all || p == project)
            .collect();
        if recursion(q) == 0 {
            return Ok(json!(keys
                .iter()
                .map(|(p, n)| format!("/1.0/profiles/{}{}", enc(n), in_project(p)))
                .collect::<Vec<_>>()));
        }
        Ok(json!(keys
            .iter()
            .map(|(p, n)| self.profile_view(p, n))
            .collect::<Vec<_>>()))
    }

    fn create_profile(&mut self, project: &str, body: &Map<String, Value>) -> Res {
        if !self.project_exists(project) {
            return Err(self.err("profile-missing-project", &[(REC_PROJECT, project)]));
        }
        let name = str_of(body, "name").to_string();
        let key = (project.to_string(), name.clone());
        if self.profiles.contains_key(&key) {
            return Err(self.err("profile-create-exists", &[(REC_PROFILE, &name)]));
        }
        let mut o = template("profile-get");
        o.insert("name".into(), json!(name));
        o.insert("project".into(), json!(project));
        replace_put(&mut o, body, &["config", "description", "devices"]);
        o.remove("used_by");
        self.profiles.insert(key, o);
        Ok(self.ok("profile-create"))
    }

    fn one_profile(
        &mut self,
        method: Method,
        project: &str,
        name: &str,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        if !self.project_exists(project) {
            return Err(self.err("profile-missing-project", &[(REC_PROJECT, project)]));
        }
        let key = (project.to_string(), name.to_string());
        let Some(cur) = self.profiles.get(&key) else {
            let label = if method == Method::Get {
                "profile-missing"
            } else {
                "profile-delete-missing"
            };
            return Err(self.err(label, &[]));
        };
        let etag = etag_of(cur);
        match method {
            Method::Get => Ok((self.profile_view(project, name), Some(etag))),
            Method::Patch | Method::Put => {
                Self::check_etag(cur, if_match)?;
                let cur = self.profiles.get_mut(&key).expect("checked");
                if method == Method::Patch {
                    merge_patch(cur, body);
                    Ok((self.ok("profile-patch"), None))
                } else {
                    replace_put(cur, body, &["config", "description", "devices"]);
                    Ok((self.ok("profile-put"), None))
                }
            }
            Method::Delete => {
                if self.profile_view(project, name)["used_by"]
                    .as_array()
                    .is_some_and(|u| !u.is_empty())
                {
                    return Err(self.err("profile-delete-used", &[]));
                }
                self.profiles.remove(&key);
                Ok((self.ok("profile-delete"), None))
            }
            Method::Post => Err(not_found()),
        }
    }

    // ---- custom volumes ----

    fn volume_view(&self, key: &(String, String, String)) -> Value {
        let mut o = self.volumes[key].clone();
        let (project, pool, name) = key;
        let used: Vec<String> = self
            .instances
            .iter()
            .filter(|((ip, _), i)| {
                ip == project && uses_volume(&self.expanded(ip, &i.obj).1, pool, name)
            })
            .map(|((ip, n), _)| format!("/1.0/instances/{}{}", enc(n), in_project(ip)))
            .collect();
        o.insert("used_by".into(), json!(used));
        Value::Object(o)
    }

    fn list_volumes(&self, project: &str, pool: &str, q: &HashMap<String, String>) -> Res {
        if pool != "default" {
            return Err(not_found());
        }
        let all = all_projects(q);
        if !all && !self.project_exists(project) {
            return Err(self.err("volume-missing-project", &[(REC_PROJECT, project)]));
        }
        let keys: Vec<&(String, String, String)> = self
            .volumes
            .keys()
            .filter(|(p, vp, _)| (all || p == project) && vp == pool)
            .collect();
        if recursion(q) == 0 {
            return Ok(json!(keys
                .iter()
                .map(|(p, vp, n)| format!(
                    "/1.0/storage-pools/{}/volumes/custom/{}{}",
                    enc(vp),
                    enc(n),
                    in_project(p)
                ))
                .collect::<Vec<_>>()));
        }
        Ok(json!(keys
            .iter()
            .map(|k| self.volume_view(k))
            .collect::<Vec<_>>()))
    }

    fn create_volume(&mut self, project: &str, pool: &str, body: &Map<String, Value>) -> Res {
        if pool != "default" {
            return Err(not_found());
        }
        if !self.project_exists(project) {
            return Err(self.err("volume-missing-project", &[(REC_PROJECT, project)]));
        }
        let name = str_of(body, "name").to_string();
        let key = (project.to_string(), pool.to_string(), name.clone());
        if self.volumes.contains_key(&key) {
            return Err(self.err("volume-create-exists", &[]));
        }
        let mut o = template("volume-get");
        o.insert("name".into(), json!(name));
        o.insert("project".into(), json!(project));
        o.insert(
            "content_type".into(),
            body.get("content_type")
                .cloned()
                .unwrap_or(json!("filesystem")),
        );
        replace_put(&mut o, body, &["config", "description"]);
        o.remove("used_by");
        let Value::Object(o) = self.fill(Value::Object(o)) else {
            unreachable!()
        };
        self.volumes.insert(key, o);
        Ok(self.ok("volume-create"))
    }

    fn one_volume(
        &mut self,
        method: Method,
        project: &str,
        pool: &str,
        name: &str,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        if !self.project_exists(project) {
            return Err(self.err("volume-missing-project", &[(REC_PROJECT, project)]));
        }
        let key = (project.to_string(), pool.to_string(), name.to_string());
        let Some(cur) = self.volumes.get(&key) else {
            return Err(self.err("volume-missing", &[]));
        };
        let etag = etag_of(cur);
        match method {
            Method::Get => Ok((self.volume_view(&key), Some(etag))),
            Method::Patch | Method::Put => {
                Self::check_etag(cur, if_match)?;
                let cur = self.volumes.get_mut(&key).expect("checked");
                if method == Method::Patch {
                    merge_patch_clearing_description(cur, body);
                    Ok((self.ok("volume-patch"), None))
                } else {
                    replace_put(cur, body, &["config", "description"]);
                    Ok((self.ok("volume-put"), None))
                }
            }
            Method::Delete => {
                if self.volume_view(&key)["used_by"]
                    .as_array()
                    .is_some_and(|u| !u.is_empty())
                {
                    return Err(self.err("volume-delete-used", &[]));
                }
                self.volumes.remove(&key);
                Ok((self.ok("volume-delete"), None))
            }
            Method::Post => Err(not_found()),
        }
    }

    // ---- instances ----

    /// `expanded_config` and `expanded_devices`: the profiles in order, then
    /// the instance's own keys.
    fn expanded(&self, project: &str, obj: &Map<String, Value>) -> (Value, Value) {
        let mut config = Map::new();
        let mut devices = Map::new();
        for p in obj
            .get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(prof) = self.profiles.get(&(project.to_string(), p.to_string())) {
                config.extend(obj_of(prof.get("config")));
                devices.extend(obj_of(prof.get("devices")));
            }
        }
        config.extend(obj_of(obj.get("config")));
        devices.extend(obj_of(obj.get("devices")));
        (Value::Object(config), Value::Object(devices))
    }

    fn instance_view(&self, project: &str, name: &str, recursion: u8) -> Value {
        let inst = &self.instances[&(project.to_string(), name.to_string())];
        let mut o = inst.obj.clone();
        let (c, d) = self.expanded(project, &o);
        o.insert("expanded_config".into(), c);
        o.insert("expanded_devices".into(), d);
        if recursion >= 2 {
            o.insert("backups".into(), Value::Null);
            let snaps: Vec<Value> = inst
                .snapshots
                .iter()
                .map(|s| self.snapshot_view(project, s))
                .collect();
            o.insert(
                "snapshots".into(),
                if snaps.is_empty() {
                    Value::Null
                } else {
                    json!(snaps)
                },
            );
            o.insert("state".into(), self.runtime_state(&o));
        }
        Value::Object(o)
    }

    /// The recorded `state` keys, with the status and no counters.
    fn runtime_state(&self, inst: &Map<String, Value>) -> Value {
        let rec = &fixture("instances-list-snapshots")["response"]["metadata"][0]["state"];
        let mut st = Map::new();
        for k in rec.as_object().into_iter().flatten().map(|(k, _)| k) {
            let v = match k.as_str() {
                "status" => inst["status"].clone(),
                "status_code" => inst["status_code"].clone(),
                "pid" | "processes" => json!(0),
                "started_at" => json!(""),
                "os_info" => Value::Null,
                _ => json!({}),
            };
            st.insert(k.clone(), v);
        }
        Value::Object(st)
    }

    fn snapshot_view(&self, project: &str, snap: &Map<String, Value>) -> Value {
        let mut o = snap.clone();
        let (c, d) = self.expanded(project, &o);
        o.insert("expanded_config".into(), c);
        o.insert("expanded_devices".into(), d);
        Value::Object(o)
    }

    fn list_instances(&self, project: &str, q: &HashMap<String, String>) -> Res {
        let all = all_projects(q);
        if !all && !self.project_exists(project) {
            return Err(self.err("instance-missing-project", &[]));
        }
        let keys: Vec<&(String, String)> = self
            .instances
            .keys()
            .filter(|(p, _)| all || p == project)
            .collect();
        let r = recursion(q);
        if r == 0 {
            return Ok(json!(keys
                .iter()
                .map(|(p, n)| format!("/1.0/instances/{}{}", enc(n), in_project(p)))
                .collect::<Vec<_>>()));
        }
        Ok(json!(keys
            .iter()
            .map(|(p, n)| self.instance_view(p, n, r))
            .collect::<Vec<_>>()))
    }

    /// The `volatile.*` keys for a state: the recorded ones, one hwaddr per
    /// NIC, and a host-side interface per NIC while running.
    fn set_volatile(&mut self, project: &str, obj: &mut Map<String, Value>, running: bool) {
        let (_, devices) = self.expanded(project, obj);
        let mut config = obj_of(obj.get("config"));
        let nics: Vec<String> = obj_of(Some(&devices))
            .iter()
            .filter(|(_, d)| d["type"] == "nic")
            .map(|(k, _)| k.clone())
            .collect();
        let rec_label = if running {
            "instance-get"
        } else {
            "instance-get-stopped"
        };
        let rec = obj_of(template(rec_label).get("config"));
        for (k, v) in &rec {
            if !k.starts_with("volatile.") || k.starts_with("volatile.eth0.") {
                continue;
            }
            if k.starts_with("volatile.last_state.") || !config.contains_key(k) {
                let v = self.fill(v.clone());
                config.insert(k.clone(), v);
            }
        }
        if running {
            config.remove("volatile.last_state.ready");
        }
        for nic in nics {
            let hw = format!("volatile.{nic}.hwaddr");
            if !config.contains_key(&hw) {
                let v = self.fill(json!("<mac>"));
                config.insert(hw, v);
            }
            let host = format!("volatile.{nic}.host_name");
            if running {
                let v = self.fill(json!("<ifname>"));
                config.insert(host, v);
            } else {
                config.remove(&host);
            }
        }
        let (status, code) = if running {
            ("Running", 103)
        } else {
            ("Stopped", 102)
        };
        obj.insert("config".into(), Value::Object(config));
        obj.insert("status".into(), json!(status));
        obj.insert("status_code".into(), json!(code));
        if running {
            let now = self.now();
            obj.insert("last_used_at".into(), now);
            // A started instance's custom volumes get its idmap, as recorded.
            let vol_cfg = obj_of(template("volume-get-used").get("config"));
            for (_, d) in obj_of(Some(&devices)) {
                if d["type"] == "disk" && d.get("source").is_some() && d.get("pool").is_some() {
                    let key = (
                        project.to_string(),
                        d["pool"].as_str().unwrap_or("").to_string(),
                        d["source"].as_str().unwrap_or("").to_string(),
                    );
                    if let Some(v) = self.volumes.get_mut(&key) {
                        if let Some(Value::Object(c)) = v.get_mut("config") {
                            for (k, x) in &vol_cfg {
                                if k.starts_with("volatile.") {
                                    c.insert(k.clone(), x.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn create_instance(&mut self, project: &str, body: &Map<String, Value>) -> Res {
        if !self.project_exists(project) {
            return Err(self.err("instance-missing-project", &[]));
        }
        let name = str_of(body, "name").to_string();
        let key = (project.to_string(), name.clone());
        if self.instances.contains_key(&key) {
            return Err(self.err("instance-create-exists", &[]));
        }
        let source = obj_of(body.get("source"));
        if source.get("mode") == Some(&json!("pull")) || source.contains_key("server") {
            let e = self.err("instance-create-remote", &[]);
            return Err(IncusError {
                message: format!("{}: the fake Incus is offline", e.message),
                ..e
            });
        }
        let alias = str_of(&source, "alias");
        let target = self
            .shares_default_images(project)
            .then(|| self.aliases.get(alias))
            .flatten()
            .map(|a| str_of(a, "target").to_string());
        let Some(target) = target else {
            return Err(self.err("instance-create-unknown-alias", &[]));
        };
        let profiles: Vec<String> = body
            .get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        for p in &profiles {
            if !self
                .profiles
                .contains_key(&(project.to_string(), p.clone()))
            {
                return Err(self.err("instance-create-unknown-profile", &[("ankfx-noprof", p)]));
            }
        }
        let mut o = template("instance-get");
        let mut config: Map<String, Value> = obj_of(o.get("config"))
            .into_iter()
            .filter(|(k, _)| k.starts_with("image."))
            .collect();
        config.extend(obj_of(body.get("config")));
        config.insert("volatile.base_image".into(), json!(target));
        o.insert("config".into(), Value::Object(config));
        o.insert("name".into(), json!(name));
        o.insert("project".into(), json!(project));
        o.insert("profiles".into(), json!(profiles));
        o.insert(
            "type".into(),
            body.get("type").cloned().unwrap_or(json!("container")),
        );
        o.insert(
            "description".into(),
            body.get("description").cloned().unwrap_or(json!("")),
        );
        o.insert("devices".into(), Value::Object(obj_of(body.get("devices"))));
        o.remove("expanded_config");
        o.remove("expanded_devices");
        let (_, devices) = self.expanded(project, &o);
        let has_root = obj_of(Some(&devices))
            .values()
            .any(|d| d["type"] == "disk" && d["path"] == "/");
        if !has_root {
            return Err(self.err("instance-create-no-root", &[]));
        }
        let Value::Object(mut o) = self.fill(Value::Object(o)) else {
            unreachable!()
        };
        let start = body.get("start") == Some(&json!(true));
        self.set_volatile(project, &mut o, start);
        self.instances.insert(
            key,
            Inst {
                obj: o,
                snapshots: Vec::new(),
                backups: Vec::new(),
            },
        );
        Ok(self.ok("instance-create"))
    }

    fn inst_missing(&self, project: &str, name: &str, label: &'static str) -> IncusError {
        self.err(
            label,
            &[
                (REC_INSTANCE, name),
                ("ankfx-noinst", name),
                (REC_PROJECT, project),
            ],
        )
    }

    fn one_instance(
        &mut self,
        method: Method,
        project: &str,
        name: &str,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), IncusError> {
        if !self.project_exists(project) {
            return Err(self.err("instance-missing-project", &[]));
        }
        let key = (project.to_string(), name.to_string());
        let Some(cur) = self.instances.get(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let etag = etag_of(&cur.obj);
        let running = cur.obj["status"] == "Running";
        match method {
            Method::Get => Ok((self.instance_view(project, name, 1), Some(etag))),
            Method::Patch => {
                Self::check_etag(&cur.obj, if_match)?;
                let cur = self.instances.get_mut(&key).expect("checked");
                merge_patch_clearing_description(&mut cur.obj, body);
                Ok((self.ok("instance-patch"), None))
            }
            Method::Put => {
                Self::check_etag(&cur.obj, if_match)?;
                if let Some(snap) = body.get("restore").and_then(Value::as_str) {
                    return self.restore(project, name, snap).map(|v| (v, None));
                }
                let new_cfg = obj_of(body.get("config"));
                let old_cfg = obj_of(cur.obj.get("config"));
                if old_cfg
                    .keys()
                    .any(|k| k.starts_with("volatile.idmap.") && !new_cfg.contains_key(k))
                {
                    return Err(self.err("instance-put-without-volatile", &[]));
                }
                let mut cfg = new_cfg;
                for (k, v) in old_cfg {
                    if k.starts_with("volatile.") {
                        cfg.entry(k).or_insert(v);
                    }
                }
                let cur = self.instances.get_mut(&key).expect("checked");
                replace_put(&mut cur.obj, body, &["devices", "profiles", "description"]);
                cur.obj.insert("config".into(), Value::Object(cfg));
                Ok((self.ok("instance-put"), None))
            }
            Method::Delete => {
                if running {
                    return Err(self.err("instance-delete-running", &[]));
                }
                if cur.obj["config"]["security.protection.delete"] == "true" {
                    return Err(self.err("instance-delete-protected", &[]));
                }
                self.instances.remove(&key);
                Ok((self.ok("instance-delete"), None))
            }
            Method::Post => Err(not_found()),
        }
    }

    fn restore(&mut self, project: &str, name: &str, snap: &str) -> Res {
        let key = (project.to_string(), name.to_string());
        let inst = self.instances.get(&key).expect("checked by the caller");
        let Some(s) = inst.snapshots.iter().find(|s| s["name"] == snap).cloned() else {
            let e = self.err("instance-restore-missing", &[]);
            return Err(IncusError {
                message: e.message.replace(
                    &format!("{REC_INSTANCE}/ankfx-nosnap"),
                    &format!("{name}/{snap}"),
                ),
                ..e
            });
        };
        let running = inst.obj["status"] == "Running";
        let mut obj = inst.obj.clone();
        for k in ["config", "devices", "profiles"] {
            obj.insert(k.into(), s[k].clone());
        }
        // As recorded: a snapshot has no description; restoring empties it.
        obj.insert("description".into(), json!(""));
        self.set_volatile(project, &mut obj, running);
        self.instances.get_mut(&key).expect("checked").obj = obj;
        Ok(self.ok("instance-restore"))
    }

    fn instance_state(&mut self, project: &str, name: &str, body: &Map<String, Value>) -> Res {
        let key = (project.to_string(), name.to_string());
        let Some(cur) = self.instances.get(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let running = cur.obj["status"] == "Running";
        let start = match str_of(body, "action") {
            "start" if running => return Err(self.err("instance-start-running", &[])),
            "stop" if !running => return Err(self.err("instance-stop-stopped", &[])),
            "start" => true,
            "stop" => false,
            "restart" => running,
            _ => {
                return Err(IncusError {
                    code: 400,
                    message: "Unknown action".into(),
                })
            }
        };
        let mut obj = cur.obj.clone();
        self.set_volatile(project, &mut obj, start);
        self.instances.get_mut(&key).expect("checked").obj = obj;
        Ok(self.ok("instance-stop"))
    }

    // ---- backups (not recorded: shaped as Incus 6.0 answers) ----

    fn create_backup(&mut self, project: &str, name: &str, body: &Map<String, Value>) -> Res {
        let key = (project.to_string(), name.to_string());
        let Some(inst) = self.instances.get_mut(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let b = str_of(body, "name").to_string();
        if inst.backups.contains(&b) {
            return Err(IncusError {
                code: 409,
                message: "Backup already exists".into(),
            });
        }
        inst.backups.push(b);
        Ok(json!({}))
    }

    fn delete_backup(&mut self, project: &str, name: &str, backup: &str) -> Res {
        let key = (project.to_string(), name.to_string());
        let Some(inst) = self.instances.get_mut(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let before = inst.backups.len();
        inst.backups.retain(|b| b != backup);
        if inst.backups.len() == before {
            return Err(not_found());
        }
        Ok(json!({}))
    }

    // ---- snapshots ----

    fn list_snapshots(&self, project: &str, name: &str, q: &HashMap<String, String>) -> Res {
        let Some(inst) = self.instances.get(&(project.to_string(), name.to_string())) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        if recursion(q) == 0 {
            return Ok(json!(inst
                .snapshots
                .iter()
                .map(|s| format!(
                    "/1.0/instances/{}/snapshots/{}{}",
                    enc(name),
                    enc(str_of(s, "name")),
                    in_project(project)
                ))
                .collect::<Vec<_>>()));
        }
        Ok(json!(inst
            .snapshots
            .iter()
            .map(|s| self.snapshot_view(project, s))
            .collect::<Vec<_>>()))
    }

    fn create_snapshot(&mut self, project: &str, name: &str, body: &Map<String, Value>) -> Res {
        let key = (project.to_string(), name.to_string());
        let Some(inst) = self.instances.get(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let snap = str_of(body, "name").to_string();
        if inst.snapshots.iter().any(|s| s["name"] == *snap) {
            return Err(self.err("snapshot-create-exists", &[(REC_SNAPSHOT, &snap)]));
        }
        let mut o = template("snapshot-get");
        for k in [
            "architecture",
            "config",
            "devices",
            "ephemeral",
            "profiles",
            "last_used_at",
        ] {
            if let Some(v) = inst.obj.get(k) {
                o.insert(k.into(), v.clone());
            }
        }
        o.insert("name".into(), json!(snap));
        o.insert("stateful".into(), json!(false));
        o.remove("expanded_config");
        o.remove("expanded_devices");
        let now = self.now();
        o.insert("created_at".into(), now);
        o.insert("expires_at".into(), json!("0001-01-01T00:00:00Z"));
        let Value::Object(o) = self.fill(Value::Object(o)) else {
            unreachable!()
        };
        self.instances
            .get_mut(&key)
            .expect("checked")
            .snapshots
            .push(o);
        Ok(self.ok("snapshot-create"))
    }

    fn one_snapshot(
        &mut self,
        method: Method,
        project: &str,
        name: &str,
        snap: &str,
    ) -> Result<(Value, Option<String>), IncusError> {
        let key = (project.to_string(), name.to_string());
        let Some(inst) = self.instances.get(&key) else {
            return Err(self.inst_missing(project, name, "instance-missing"));
        };
        let Some(i) = inst.snapshots.iter().position(|s| s["name"] == snap) else {
            return Err(self.err(
                "snapshot-missing",
                &[
                    ("ankfx-nosnap", snap),
                    (REC_INSTANCE, name),
                    (REC_PROJECT, project),
                ],
            ));
        };
        match method {
            Method::Get => {
                let s = &inst.snapshots[i];
                Ok((self.snapshot_view(project, s), Some(etag_of(s))))
            }
            Method::Delete => {
                self.instances
                    .get_mut(&key)
                    .expect("checked")
                    .snapshots
                    .remove(i);
                Ok((self.ok("snapshot-delete"), None))
            }
            _ => Err(not_found()),
        }
    }

    // ---- image aliases ----

    /// Whether `project` uses the default project's image store: it is the
    /// default project, or has `features.images=false`. (The fake's images
    /// all live in the default project's store.)
    fn shares_default_images(&self, project: &str) -> bool {
        project == "default"
            || self
                .projects
                .get(project)
                .is_some_and(|p| p["config"]["features.images"] != "true")
    }

    fn list_aliases(&self, q: &HashMap<String, String>) -> Value {
        if !self.shares_default_images(&query_project(q)) {
            return json!([]);
        }
        if recursion(q) == 0 {
            return json!(self
                .aliases
                .keys()
                .map(|n| format!("/1.0/images/aliases/{}", enc(n)))
                .collect::<Vec<_>>());
        }
        json!(self.aliases.values().cloned().collect::<Vec<_>>())
    }
}

/// Whether devices hold a NIC on `network`.
fn uses_network(devices: Option<&Value>, network: &str) -> bool {
    obj_of(devices)
        .values()
        .any(|d| d["type"] == "nic" && d["network"] == network)
}

/// Whether devices hold a disk of custom volume `pool`/`name`.
fn uses_volume(devices: &Value, pool: &str, name: &str) -> bool {
    obj_of(Some(devices))
        .values()
        .any(|d| d["type"] == "disk" && d["pool"] == pool && d["source"] == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: &str = "anklume-busybox";

    async fn ok(f: &Fake, m: Method, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        f.call(m, path, body.as_ref(), None)
            .await
            .unwrap_or_else(|e| panic!("{m} {path}: {e}"))
            .metadata
    }

    async fn err(f: &Fake, m: Method, path: &str, body: Value) -> IncusError {
        let body = (!body.is_null()).then_some(body);
        match f.call(m, path, body.as_ref(), None).await {
            Ok(r) => panic!("{m} {path} succeeded: {}", r.metadata),
            Err(e) => e,
        }
    }

    fn names(list: &Value) -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// A project `p` whose default profile has a root disk, a bridge
    /// `br`, a profile `web` on it and a volume `data`.
    async fn world() -> Fake {
        let f = Fake::new().with_image(IMG);
        ok(
            &f,
            Method::Post,
            "/1.0/networks",
            json!({"name": "br", "type": "bridge", "config": {"ipv4.address": "10.9.0.1/24"}}),
        )
        .await;
        ok(
            &f,
            Method::Post,
            "/1.0/projects",
            json!({"name": "p", "config": {"features.images": "false"}}),
        )
        .await;
        ok(
            &f,
            Method::Patch,
            "/1.0/profiles/default?project=p",
            json!({"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}}),
        )
        .await;
        ok(&f, Method::Post, "/1.0/profiles?project=p", json!({"name": "web", "config": {"limits.cpu": "1"}, "devices": {"eth0": {"type": "nic", "network": "br", "name": "eth0"}}})).await;
        ok(
            &f,
            Method::Post,
            "/1.0/storage-pools/default/volumes/custom?project=p",
            json!({"name": "data", "content_type": "filesystem", "config": {}}),
        )
        .await;
        f
    }

    async fn create_c1(f: &Fake, start: bool) {
        ok(
            f,
            Method::Post,
            "/1.0/instances?project=p",
            json!({
            "name": "c1", "type": "container", "source": {"type": "image", "alias": IMG},
            "profiles": ["default", "web"], "config": {"user.a": "1"},
            "devices": {"d": {"type": "disk", "pool": "default", "source": "data", "path": "/d"}},
            "start": start}),
        )
        .await;
    }

    #[tokio::test]
    async fn a_fresh_daemon_has_the_default_project_profile_and_nothing_else() {
        let f = Fake::new().with_image(IMG);
        assert_eq!(
            names(&ok(&f, Method::Get, "/1.0/projects?recursion=1", Value::Null).await),
            ["default"]
        );
        let profiles = ok(
            &f,
            Method::Get,
            "/1.0/profiles?recursion=1&all-projects=true",
            Value::Null,
        )
        .await;
        assert_eq!(names(&profiles), ["default"]);
        assert_eq!(profiles[0]["devices"]["root"]["pool"], "default");
        assert_eq!(
            ok(&f, Method::Get, "/1.0/networks?recursion=1", Value::Null).await,
            json!([])
        );
        assert_eq!(
            ok(
                &f,
                Method::Get,
                "/1.0/instances?recursion=1&all-projects=true",
                Value::Null
            )
            .await,
            json!([])
        );
        assert_eq!(
            names(
                &ok(
                    &f,
                    Method::Get,
                    "/1.0/images/aliases?recursion=1",
                    Value::Null
                )
                .await
            ),
            [IMG]
        );
        assert_eq!(
            ok(
                &f,
                Method::Get,
                "/1.0/operations?all-projects=true&recursion=1",
                Value::Null
            )
            .await,
            json!({})
        );
        assert!(ok(&f, Method::Get, "/1.0/resources", Value::Null)
            .await
            .get("cpu")
            .is_some());
        assert_eq!(
            err(&f, Method::Get, "/1.0/nothing-here", Value::Null)
                .await
                .code,
            404
        );
    }

    #[tokio::test]
    async fn networks_round_trip_with_etags_and_refusals() {
        let f = Fake::new();
        ok(&f, Method::Post, "/1.0/networks", json!({"name": "br", "type": "bridge", "description": "x", "config": {"ipv4.address": "10.9.0.1/24"}})).await;
        let r = f.get("/1.0/networks/br").await.unwrap();
        assert_eq!(r.metadata["managed"], true);
        assert_eq!(r.metadata["config"]["ipv6.nat"], "true", "Incus fills IPv6");
        assert!(r.metadata["config"]["ipv6.address"]
            .as_str()
            .unwrap()
            .starts_with("fd42:"));
        let e = err(
            &f,
            Method::Post,
            "/1.0/networks",
            json!({"name": "br", "type": "bridge"}),
        )
        .await;
        assert_eq!(
            (e.code, e.message.as_str()),
            (409, "Network \"br\" already exists")
        );
        let e = f
            .patch(
                "/1.0/networks/br",
                &json!({"config": {"user.x": "1"}}),
                Some("stale"),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 412);
        assert!(e.message.ends_with(" vs stale"), "{}", e.message);
        f.patch(
            "/1.0/networks/br",
            &json!({"config": {"user.x": "1"}}),
            r.etag.as_deref(),
        )
        .await
        .unwrap();
        let cfg = &f.get_object("/1.0/networks/br").unwrap()["config"];
        assert_eq!(
            (cfg["user.x"].as_str(), cfg["ipv4.address"].as_str()),
            (Some("1"), Some("10.9.0.1/24")),
            "PATCH merges"
        );
        let etag = f.get("/1.0/networks/br").await.unwrap().etag;
        assert_ne!(etag, r.etag, "a change changes the ETag");
        f.put(
            "/1.0/networks/br",
            &json!({"config": {"ipv4.address": "10.9.0.1/24"}}),
            etag.as_deref(),
        )
        .await
        .unwrap();
        let n = f.get_object("/1.0/networks/br").unwrap();
        assert_eq!(
            n["config"],
            json!({"ipv4.address": "10.9.0.1/24"}),
            "PUT replaces"
        );
        assert_eq!(n["description"], "", "PUT empties what it omits");
        ok(&f, Method::Delete, "/1.0/networks/br", Value::Null).await;
        assert_eq!(
            err(&f, Method::Get, "/1.0/networks/br", Value::Null)
                .await
                .message,
            "Network not found"
        );
        assert_eq!(
            err(&f, Method::Delete, "/1.0/networks/br", Value::Null)
                .await
                .code,
            404
        );
    }

    #[tokio::test]
    async fn a_project_gets_its_default_profile_and_is_deleted_only_empty() {
        let f = world().await;
        let p = f.get_object("/1.0/projects/p").unwrap();
        assert_eq!(p["config"]["features.images"], "false");
        assert_eq!(
            p["config"]["features.profiles"], "true",
            "unset features are on"
        );
        let d = f.get_object("/1.0/profiles/default?project=p").unwrap();
        assert_eq!(d["description"], "Default Incus profile for project p");
        let e = err(&f, Method::Post, "/1.0/projects", json!({"name": "p"})).await;
        assert!(e.message.contains("\"p\""), "{}", e.message);
        let e = err(&f, Method::Delete, "/1.0/projects/p", Value::Null).await;
        assert_eq!(e.message, "Only empty projects can be removed.");
        ok(
            &f,
            Method::Delete,
            "/1.0/profiles/web?project=p",
            Value::Null,
        )
        .await;
        ok(
            &f,
            Method::Delete,
            "/1.0/storage-pools/default/volumes/custom/data?project=p",
            Value::Null,
        )
        .await;
        ok(&f, Method::Delete, "/1.0/projects/p", Value::Null).await;
        assert_eq!(
            err(
                &f,
                Method::Get,
                "/1.0/profiles/default?project=p",
                Value::Null
            )
            .await
            .code,
            404
        );
        let e = err(
            &f,
            Method::Post,
            "/1.0/profiles?project=p",
            json!({"name": "x"}),
        )
        .await;
        assert_eq!(e.message, "Failed loading project \"p\": Project not found");
        // Without features.profiles, no own default profile.
        ok(
            &f,
            Method::Post,
            "/1.0/projects",
            json!({"name": "q", "config": {"features.profiles": "false"}}),
        )
        .await;
        assert!(f.get_object("/1.0/profiles/default?project=q").is_none());
    }

    #[tokio::test]
    async fn profiles_and_volumes_round_trip_and_refuse_deletion_in_use() {
        let f = world().await;
        assert_eq!(
            err(
                &f,
                Method::Post,
                "/1.0/profiles?project=p",
                json!({"name": "web"})
            )
            .await
            .code,
            500
        );
        assert_eq!(
            err(
                &f,
                Method::Post,
                "/1.0/storage-pools/default/volumes/custom?project=p",
                json!({"name": "data"})
            )
            .await
            .code,
            409
        );
        let v = f
            .get("/1.0/storage-pools/default/volumes/custom/data?project=p")
            .await
            .unwrap();
        f.patch(
            "/1.0/storage-pools/default/volumes/custom/data?project=p",
            &json!({"config": {"size": "1GiB"}}),
            v.etag.as_deref(),
        )
        .await
        .unwrap();
        let vols = ok(
            &f,
            Method::Get,
            "/1.0/storage-pools/default/volumes/custom?recursion=1&all-projects=true",
            Value::Null,
        )
        .await;
        assert_eq!(
            (
                vols[0]["config"]["size"].as_str(),
                vols[0]["project"].as_str()
            ),
            (Some("1GiB"), Some("p"))
        );
        create_c1(&f, true).await;
        assert_eq!(
            f.get_object("/1.0/profiles/web?project=p").unwrap()["used_by"],
            json!(["/1.0/instances/c1?project=p"])
        );
        assert_eq!(
            err(
                &f,
                Method::Delete,
                "/1.0/profiles/web?project=p",
                Value::Null
            )
            .await
            .message,
            "Profile is currently in use"
        );
        assert_eq!(
            err(
                &f,
                Method::Delete,
                "/1.0/storage-pools/default/volumes/custom/data?project=p",
                Value::Null
            )
            .await
            .message,
            "The storage volume is still in use"
        );
        let n = f.get_object("/1.0/networks/br").unwrap();
        assert_eq!(
            n["used_by"],
            json!(["/1.0/instances/c1?project=p", "/1.0/profiles/web?project=p"])
        );
        assert_eq!(
            err(&f, Method::Delete, "/1.0/networks/br", Value::Null)
                .await
                .message,
            "The network is currently in use"
        );
    }

    #[tokio::test]
    async fn instances_start_stop_and_refuse_as_incus_does() {
        let f = world().await;
        create_c1(&f, true).await;
        let i = f.get_object("/1.0/instances/c1?project=p").unwrap();
        assert_eq!(
            (i["status"].as_str(), i["status_code"].as_u64()),
            (Some("Running"), Some(103))
        );
        assert_eq!(i["expanded_config"]["limits.cpu"], "1", "from profile web");
        assert_eq!(
            i["expanded_devices"]["root"]["path"], "/",
            "from profile default"
        );
        assert!(i["config"]["volatile.eth0.hwaddr"].is_string());
        assert!(i["config"]["volatile.eth0.host_name"].is_string());
        assert_eq!(
            i["config"]["volatile.base_image"],
            f.get_object("/1.0/images/aliases?recursion=1").unwrap()[0]["target"]
        );
        assert_eq!(
            ok(
                &f,
                Method::Get,
                "/1.0/instances?all-projects=true",
                Value::Null
            )
            .await,
            json!(["/1.0/instances/c1?project=p"])
        );
        let e = err(&f, Method::Post, "/1.0/instances?project=p", json!({"name": "c2", "source": {"type": "image", "alias": "nope"}, "profiles": ["default"]})).await;
        assert_eq!(e.message, "Image not provided for instance creation");
        let e = err(&f, Method::Post, "/1.0/instances?project=p", json!({"name": "c2", "source": {"type": "image", "mode": "pull", "server": "https://x", "protocol": "simplestreams", "alias": "debian/12"}, "profiles": ["default"]})).await;
        assert!(e.message.contains("Failed getting image"), "{}", e.message);
        let e = err(&f, Method::Post, "/1.0/instances?project=p", json!({"name": "c2", "source": {"type": "image", "alias": IMG}, "profiles": ["default", "nope"]})).await;
        assert_eq!(e.message, "Requested profile \"nope\" doesn't exist");
        let e = err(
            &f,
            Method::Post,
            "/1.0/instances?project=p",
            json!({"name": "c2", "source": {"type": "image", "alias": IMG}, "profiles": []}),
        )
        .await;
        assert!(
            e.message.ends_with("No root device could be found"),
            "{}",
            e.message
        );
        assert!(
            f.get_object("/1.0/instances/c2?project=p").is_none(),
            "failed creates leave nothing"
        );
        let state = "/1.0/instances/c1/state?project=p";
        assert_eq!(
            err(
                &f,
                Method::Delete,
                "/1.0/instances/c1?project=p",
                Value::Null
            )
            .await
            .message,
            "Instance is running"
        );
        assert_eq!(
            err(&f, Method::Put, state, json!({"action": "start"}))
                .await
                .message,
            "The instance is already running"
        );
        ok(
            &f,
            Method::Put,
            state,
            json!({"action": "stop", "force": true}),
        )
        .await;
        let i = f.get_object("/1.0/instances/c1?project=p").unwrap();
        assert_eq!(i["status"], "Stopped");
        assert!(i["config"].get("volatile.eth0.host_name").is_none());
        assert_eq!(
            err(&f, Method::Put, state, json!({"action": "stop"}))
                .await
                .message,
            "The instance is already stopped"
        );
        ok(
            &f,
            Method::Patch,
            "/1.0/instances/c1?project=p",
            json!({"config": {"security.protection.delete": "true"}}),
        )
        .await;
        assert_eq!(
            err(
                &f,
                Method::Delete,
                "/1.0/instances/c1?project=p",
                Value::Null
            )
            .await
            .message,
            "Instance is protected"
        );
        ok(
            &f,
            Method::Patch,
            "/1.0/instances/c1?project=p",
            json!({"config": {"security.protection.delete": "false"}}),
        )
        .await;
        ok(
            &f,
            Method::Delete,
            "/1.0/instances/c1?project=p",
            Value::Null,
        )
        .await;
        let e = err(&f, Method::Get, "/1.0/instances/c1?project=p", Value::Null).await;
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                404,
                "Failed to fetch instance \"c1\" in project \"p\": Instance not found"
            )
        );
    }

    #[tokio::test]
    async fn a_project_with_its_own_image_store_does_not_see_the_default_aliases() {
        let f = world().await;
        ok(&f, Method::Post, "/1.0/projects", json!({"name": "own"})).await;
        let e = err(
            &f,
            Method::Post,
            "/1.0/instances?project=own",
            json!({"name": "c", "source": {"type": "image", "alias": IMG}, "profiles": ["default"],
                   "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}}),
        )
        .await;
        assert_eq!(e.message, "Image not provided for instance creation");
        let own = ok(
            &f,
            Method::Get,
            "/1.0/images/aliases?recursion=1&project=own",
            Value::Null,
        )
        .await;
        assert_eq!(own, json!([]));
        let shared = ok(
            &f,
            Method::Get,
            "/1.0/images/aliases?recursion=1&project=p",
            Value::Null,
        )
        .await;
        assert_eq!(names(&shared), [IMG]);
    }

    #[tokio::test]
    async fn instance_put_keeps_volatile_keys_but_refuses_to_drop_idmap() {
        let f = world().await;
        create_c1(&f, false).await;
        let path = "/1.0/instances/c1?project=p";
        let e = err(
            &f,
            Method::Put,
            path,
            json!({"config": {}, "devices": {}, "profiles": ["default"]}),
        )
        .await;
        assert_eq!(
            e.message,
            "Volatile idmap keys can't be deleted by the user"
        );
        let cur = f.get_object(path).unwrap();
        let idmap: Map<String, Value> = cur["config"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("volatile.idmap."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ok(
            &f,
            Method::Put,
            path,
            json!({"config": idmap, "devices": {}, "profiles": ["default"], "description": "d"}),
        )
        .await;
        let i = f.get_object(path).unwrap();
        assert!(i["config"].get("user.a").is_none(), "PUT replaces config");
        assert!(
            i["config"]["volatile.uuid"].is_string(),
            "volatile keys stay"
        );
        assert_eq!(i["profiles"], json!(["default"]));
        assert!(
            i["expanded_config"].get("limits.cpu").is_none(),
            "expanded follows profiles"
        );
    }

    #[tokio::test]
    async fn snapshots_are_listed_restored_and_deleted() {
        let f = world().await;
        create_c1(&f, true).await;
        let snaps = "/1.0/instances/c1/snapshots?project=p";
        ok(
            &f,
            Method::Post,
            snaps,
            json!({"name": "s1", "stateful": false}),
        )
        .await;
        ok(
            &f,
            Method::Post,
            snaps,
            json!({"name": "s2", "stateful": false}),
        )
        .await;
        assert_eq!(
            err(&f, Method::Post, snaps, json!({"name": "s1"}))
                .await
                .code,
            400
        );
        assert_eq!(
            ok(&f, Method::Get, snaps, Value::Null).await,
            json!([
                "/1.0/instances/c1/snapshots/s1?project=p",
                "/1.0/instances/c1/snapshots/s2?project=p"
            ])
        );
        let rec = ok(
            &f,
            Method::Get,
            &format!("{snaps}&recursion=1"),
            Value::Null,
        )
        .await;
        assert_eq!(names(&rec), ["s1", "s2"]);
        assert!(
            rec[0]["created_at"].as_str() < rec[1]["created_at"].as_str(),
            "creation times grow"
        );
        let all = ok(
            &f,
            Method::Get,
            "/1.0/instances?all-projects=true&recursion=2",
            Value::Null,
        )
        .await;
        assert_eq!(names(&all[0]["snapshots"]), ["s1", "s2"]);
        assert_eq!(all[0]["state"]["status"], "Running");
        // Drift, then restore brings the snapshot's config back.
        let path = "/1.0/instances/c1?project=p";
        f.set_object(path, |v| v["config"]["user.a"] = json!("drifted"));
        assert_eq!(f.get_object(path).unwrap()["config"]["user.a"], "drifted");
        let cur = f.get(path).await.unwrap();
        f.put(path, &json!({"restore": "s1"}), cur.etag.as_deref())
            .await
            .unwrap();
        let i = f.get_object(path).unwrap();
        assert_eq!(
            (i["config"]["user.a"].as_str(), i["status"].as_str()),
            (Some("1"), Some("Running"))
        );
        let e = err(&f, Method::Put, path, json!({"restore": "nope"})).await;
        assert_eq!(e.message, "Snapshot c1/nope does not exist");
        ok(
            &f,
            Method::Delete,
            "/1.0/instances/c1/snapshots/s1?project=p",
            Value::Null,
        )
        .await;
        let e = err(
            &f,
            Method::Get,
            "/1.0/instances/c1/snapshots/s1?project=p",
            Value::Null,
        )
        .await;
        assert_eq!(e.message, "Failed to fetch snapshot \"s1\" of instance \"c1\" in project \"p\": Instance_snapshot not found");
    }

    #[tokio::test]
    async fn requests_are_logged_and_counted_like_the_real_client() {
        let f = Fake::new();
        f.get("/1.0/projects?recursion=1").await.unwrap();
        f.post("/1.0/projects", &json!({"name": "p"}))
            .await
            .unwrap();
        let _ = f.get_opt("/1.0/networks/none").await.unwrap();
        let _ = f.delete("/1.0/networks/none").await;
        assert_eq!((f.counters().reads(), f.counters().writes()), (2, 2));
        assert_eq!(
            f.requests(),
            [
                (Method::Get, "/1.0/projects?recursion=1".to_string()),
                (Method::Post, "/1.0/projects".to_string()),
                (Method::Get, "/1.0/networks/none".to_string()),
                (Method::Delete, "/1.0/networks/none".to_string()),
            ]
        );
        assert_eq!(f.writes().len(), 2);
        f.clear_log();
        assert!(f.requests().is_empty());
        assert_eq!(
            f.counters().total(),
            4,
            "clearing the log keeps the counters"
        );
    }

    #[tokio::test]
    async fn an_operation_counts_its_wait_as_the_real_client_does() {
        let f = world().await;
        let before = (f.counters().reads(), f.counters().writes());
        create_c1(&f, true).await;
        let after = (f.counters().reads(), f.counters().writes());
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "POST + operation wait"
        );
        // A failed operation: the wait, then the operation read again.
        let e = err(
            &f,
            Method::Put,
            "/1.0/instances/c1/state?project=p",
            json!({"action": "start"}),
        )
        .await;
        assert_eq!(e.code, 400);
        let last = (f.counters().reads(), f.counters().writes());
        assert_eq!((last.0 - after.0, last.1 - after.1), (2, 1));
        // A sync reply (profile PATCH) and a sync error (404) are one request.
        ok(
            &f,
            Method::Patch,
            "/1.0/profiles/web?project=p",
            json!({"config": {}}),
        )
        .await;
        err(&f, Method::Delete, "/1.0/networks/none", Value::Null).await;
        assert_eq!(f.counters().total() - last.0 - last.1, 2);
        assert_eq!(
            f.requests().len(),
            9,
            "the log holds the caller's requests only"
        );
    }

    #[tokio::test]
    async fn an_injected_failure_fails_once_and_changes_nothing() {
        let f = Fake::new();
        let boom = IncusError {
            code: 500,
            message: "boom".into(),
        };
        f.fail(Method::Post, "/1.0/projects", boom.clone());
        let e = f
            .post("/1.0/projects", &json!({"name": "p"}))
            .await
            .unwrap_err();
        assert_eq!(e, boom);
        assert!(f.get_object("/1.0/projects/p").is_none());
        f.post("/1.0/projects", &json!({"name": "p"}))
            .await
            .unwrap();
        assert!(f.get_object("/1.0/projects/p").is_some());
        // Only the matching method fails.
        f.fail(Method::Delete, "/1.0/projects/p", boom.clone());
        f.get("/1.0/projects/p").await.unwrap();
        assert_eq!(f.delete("/1.0/projects/p").await.unwrap_err(), boom);
        assert_eq!(f.writes().len(), 3, "a failed request is still logged");
    }

    #[test]
    fn clones_share_state() {
        let f = Fake::new();
        let g = f.clone();
        g.set_object("/1.0/projects/default", |v| {
            v["description"] = json!("changed")
        });
        assert_eq!(
            f.get_object("/1.0/projects/default").unwrap()["description"],
            "changed"
        );
    }
}
