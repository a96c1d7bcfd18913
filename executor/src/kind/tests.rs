//! Unit tests of every kind against the in-memory [`Fake`] Incus (no
//! daemon): decide (create, unchanged, update, drift), apply, the prior
//! state the journal keeps, undo (delete, restore), delete, orphans; then
//! ordering, preflight and rollback planning across kinds.

use anklume_plan::{
    Config, Devices, ImageSource, Instance, InstanceType, Network, Nftables, Node, Plan, Profile,
    Project, Provision, Resource, Volume,
};
use serde_json::Value;

use super::*;
use crate::incus::fake::Fake;
use crate::incus::Method;
use crate::nft::NftLive;

pub(crate) const IMAGE: &str = "test-image";

pub(crate) fn cfg(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn devs(list: &[(&str, &[(&str, &str)])]) -> Devices {
    list.iter().map(|(n, c)| (n.to_string(), cfg(c))).collect()
}

pub(crate) fn network(name: &str, desc: &str) -> Resource {
    Resource::Network(Network {
        name: name.into(),
        description: desc.into(),
        config: cfg(&[
            ("ipv4.address", "10.140.0.254/24"),
            ("ipv4.nat", "true"),
            ("ipv6.address", "none"),
            ("user.anklume.managed", "true"),
        ]),
    })
}

pub(crate) fn project(name: &str, desc: &str) -> Resource {
    Resource::Project(Project {
        name: name.into(),
        description: desc.into(),
        config: cfg(&[
            ("features.images", "false"),
            ("features.profiles", "true"),
            ("user.anklume.managed", "true"),
        ]),
        default_profile_devices: devs(&[
            (
                "eth0",
                &[("type", "nic"), ("network", "net-kt"), ("name", "eth0")],
            ),
            (
                "root",
                &[("type", "disk"), ("path", "/"), ("pool", "default")],
            ),
        ]),
    })
}

pub(crate) fn profile(project: &str, name: &str, desc: &str) -> Resource {
    Resource::Profile(Profile {
        project: project.into(),
        name: name.into(),
        description: desc.into(),
        config: cfg(&[("limits.cpu", "1"), ("user.anklume.managed", "true")]),
        devices: Devices::new(),
    })
}

pub(crate) fn volume(project: &str, name: &str, size: &str) -> Resource {
    Resource::Volume(Volume {
        project: project.into(),
        pool: "default".into(),
        name: name.into(),
        config: cfg(&[("size", size)]),
    })
}

pub(crate) fn instance(project: &str, name: &str, desc: &str) -> Resource {
    Resource::Instance(Instance {
        project: project.into(),
        name: name.into(),
        instance_type: InstanceType::Container,
        description: desc.into(),
        source: ImageSource::Local {
            alias: IMAGE.into(),
        },
        profiles: vec!["default".into()],
        config: cfg(&[
            ("security.protection.delete", "false"),
            ("user.anklume.managed", "true"),
        ]),
        devices: Devices::new(),
        ip: None,
    })
}

fn node(r: Resource) -> Node {
    let id = match &r {
        Resource::Network(n) => format!("network/{}", n.name),
        Resource::Project(p) => format!("project/{}", p.name),
        Resource::Profile(p) => format!("profile/{}/{}", p.project, p.name),
        Resource::Volume(v) => format!("volume/{}/{}", v.project, v.name),
        Resource::Instance(i) => format!("instance/{}/{}", i.project, i.name),
        Resource::Nftables(_) => "nftables/anklume".into(),
        Resource::Provision(p) => format!("provision/{}", p.instance),
    };
    Node {
        id,
        domain: None,
        origin: None,
        resource: r,
    }
}

/// A plan of these resources, each depending on all the ones before it.
pub(crate) fn chain(rs: Vec<Resource>) -> Plan {
    let n = rs.len() as u32;
    Plan {
        nodes: rs.into_iter().map(node).collect(),
        edges: (1..n).map(|i| (i - 1, i)).collect(),
    }
}

pub(crate) async fn live_of(fake: &Fake) -> Live {
    crate::live::read(fake, &["default".to_string()])
        .await
        .expect("the fake answers the bulk read")
}

async fn decide_now(fake: &Fake, r: &Resource) -> Action {
    decide(r, &live_of(fake).await)
}

/// Whether the resource declares this config key.
fn first_sets(key: &str, r: &Resource) -> bool {
    let config = match r {
        Resource::Network(n) => &n.config,
        Resource::Project(p) => &p.config,
        Resource::Profile(p) => &p.config,
        Resource::Volume(v) => &v.config,
        Resource::Instance(i) => &i.config,
        Resource::Nftables(_) | Resource::Provision(_) => return false,
    };
    config.contains_key(key)
}

fn keys(a: &Action) -> Vec<String> {
    match a {
        Action::Update { changes } => changes.iter().map(|c| c.key.clone()).collect(),
        other => panic!("expected an update, got {other:?}"),
    }
}

/// The fake, with the test image, a project `kt` (for kinds that live in
/// one) and nothing else.
async fn fake_with_project() -> Fake {
    let fake = Fake::new().with_image(IMAGE);
    apply(&fake, &project("kt", "tests"), true, &RunContext::default())
        .await
        .unwrap();
    fake
}

/// The life of one object of a kind, as apply and rollback see it:
/// absent → create; created → unchanged; another desired state → update
/// with exactly `changed_keys`; the journal's prior state, the update, then
/// undoing it puts the first state back; a change made outside anklume is
/// drift; an undeclared key Incus adds is not; undo of the create deletes
/// it, and a second undo finds nothing to do.
async fn life_cycle(fake: &Fake, first: Resource, second: Resource, changed_keys: &[&str]) {
    let ctx = RunContext::default();
    let t = target(&first).expect("journaled kind");
    let path = t.path().expect("an Incus object");
    assert_eq!(decide_now(fake, &first).await, Action::Create);
    assert_eq!(fake.get_object(&path), None);
    apply(fake, &first, true, &ctx).await.unwrap();
    assert!(fake.get_object(&path).is_some(), "{path} created");
    assert_eq!(decide_now(fake, &first).await, Action::Unchanged);

    // An update: what changes is listed, the prior state is kept.
    let mut want: Vec<String> = changed_keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    let mut got = keys(&decide_now(fake, &second).await);
    got.sort();
    assert_eq!(got, want);
    let prior = prior(fake, &t, &RunContext::default())
        .await
        .unwrap()
        .expect("it exists");
    apply(fake, &second, false, &ctx).await.unwrap();
    assert_eq!(decide_now(fake, &second).await, Action::Unchanged);
    let r = undo(
        fake,
        &t,
        &Undo::Restore {
            prior: Some(prior.clone()),
            snapshot: None,
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert_eq!(decide_now(fake, &first).await, Action::Unchanged);
    // Restoring again writes nothing.
    fake.clear_log();
    let r = undo(
        fake,
        &t,
        &Undo::Restore {
            prior: Some(prior),
            snapshot: None,
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            r,
            StepResult::AlreadyDone { .. } | StepResult::Restored { .. }
        ),
        "{r:?}"
    );
    if matches!(r, StepResult::AlreadyDone { .. }) {
        assert_eq!(fake.writes(), vec![]);
    }

    // Drift: a declared key changed outside anklume is an update; a key
    // the plan does not declare is not.
    fake.set_object(&path, |v| {
        v["config"]["user.outside"] = Value::String("x".into());
    });
    assert_eq!(decide_now(fake, &first).await, Action::Unchanged);
    // An object not marked as anklume's that differs only by anklume's
    // marks is adopted; one differing by more, or one anklume marked, is
    // updated.
    fake.set_object(&path, |v| {
        v["config"]["user.anklume.managed"] = Value::String("false".into());
    });
    let adopt = decide_now(fake, &first).await;
    assert!(matches!(adopt, Action::Adopt { .. }), "{adopt:?}");
    assert_eq!(
        adopt
            .changes()
            .iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>(),
        ["config.user.anklume.managed"]
    );
    fake.set_object(&path, |v| {
        v["config"]["user.anklume.managed"] = Value::String("true".into());
        v["config"]["user.anklume.domain"] = Value::String("elsewhere".into());
    });
    if first_sets("user.anklume.domain", &first) {
        assert_eq!(
            keys(&decide_now(fake, &first).await),
            ["config.user.anklume.domain"]
        );
    }
    fake.set_object(&path, |v| {
        let c = v["config"].as_object_mut().unwrap();
        c.remove("user.anklume.managed");
        c.remove("user.anklume.domain");
        v["description"] = Value::String("changed by hand".into());
    });
    let both = decide_now(fake, &first).await;
    assert!(matches!(both, Action::Update { .. }), "{both:?}");

    // Undo of the create.
    let r = undo(fake, &t, &Undo::Delete, &UndoContext::default())
        .await
        .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert_eq!(fake.get_object(&path), None);
    let r = undo(fake, &t, &Undo::Delete, &UndoContext::default())
        .await
        .unwrap();
    assert!(matches!(r, StepResult::AlreadyDone { .. }), "{r:?}");
    assert_eq!(decide_now(fake, &first).await, Action::Create);
}

#[tokio::test]
async fn network_life_cycle() {
    let fake = Fake::new();
    life_cycle(
        &fake,
        network("net-kt", "one"),
        network("net-kt", "two"),
        &["description"],
    )
    .await;
}

#[tokio::test]
async fn project_life_cycle_and_its_default_profile() {
    let fake = Fake::new();
    let Resource::Project(mut changed) = project("kt", "one") else {
        unreachable!()
    };
    changed.config.insert("limits.instances".into(), "5".into());
    changed
        .default_profile_devices
        .get_mut("root")
        .unwrap()
        .insert("size".into(), "2GiB".into());
    life_cycle(
        &fake,
        project("kt", "one"),
        Resource::Project(changed),
        &[
            "config.limits.instances",
            "default_profile.devices.root.size",
        ],
    )
    .await;
}

/// A project's `features.*` are set when it is created, never compared
/// after: Incus refuses to change them once the project holds anything,
/// and a project made by hand keeps Incus's defaults when adopted.
#[tokio::test]
async fn project_features_are_set_at_creation_only() {
    let fake = Fake::new();
    let ctx = RunContext::default();
    let p = project("kt", "one");
    apply(&fake, &p, true, &ctx).await.unwrap();
    assert_eq!(
        fake.get_object("/1.0/projects/kt").unwrap()["config"]["features.images"],
        "false",
        "set at creation"
    );
    fake.set_object("/1.0/projects/kt", |v| {
        v["config"]["features.images"] = Value::String("true".into());
    });
    assert_eq!(decide_now(&fake, &p).await, Action::Unchanged);
    fake.clear_log();
    apply(&fake, &p, false, &ctx).await.unwrap();
    assert!(
        !fake
            .writes()
            .iter()
            .any(|(_, path)| path.starts_with("/1.0/projects/kt")),
        "{:?}",
        fake.writes()
    );
}

/// Incus replaces a project's whole config on PATCH: updates are GET,
/// merge, PUT, so keys anklume does not declare survive.
#[tokio::test]
async fn project_updates_are_put_never_patch() {
    let fake = Fake::new();
    let ctx = RunContext::default();
    apply(&fake, &project("kt", "one"), true, &ctx)
        .await
        .unwrap();
    fake.set_object("/1.0/projects/kt", |v| {
        v["config"]["user.outside"] = Value::String("kept".into());
    });
    fake.clear_log();
    apply(&fake, &project("kt", "two"), false, &ctx)
        .await
        .unwrap();
    let w = fake.writes();
    assert!(
        w.contains(&(Method::Put, "/1.0/projects/kt".to_string())),
        "{w:?}"
    );
    assert!(
        !w.iter()
            .any(|(m, p)| *m == Method::Patch && p.starts_with("/1.0/projects/")),
        "{w:?}"
    );
    let p = fake.get_object("/1.0/projects/kt").unwrap();
    assert_eq!(p["config"]["user.outside"], "kept");
    assert_eq!(p["description"], "two");
}

#[tokio::test]
async fn profile_life_cycle() {
    let fake = fake_with_project().await;
    let Resource::Profile(mut changed) = profile("kt", "kt-extra", "one") else {
        unreachable!()
    };
    changed.config.insert("limits.cpu".into(), "2".into());
    changed.devices = devs(&[("gpu", &[("type", "gpu")])]);
    life_cycle(
        &fake,
        profile("kt", "kt-extra", "one"),
        Resource::Profile(changed),
        &["config.limits.cpu", "devices.gpu"],
    )
    .await;
}

#[tokio::test]
async fn volume_life_cycle() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    let first = volume("kt", "kt-data", "1GiB");
    let t = target(&first).unwrap();
    let path = t.path().unwrap();
    assert_eq!(decide_now(&fake, &first).await, Action::Create);
    apply(&fake, &first, true, &ctx).await.unwrap();
    assert_eq!(decide_now(&fake, &first).await, Action::Unchanged);
    let second = volume("kt", "kt-data", "2GiB");
    assert_eq!(keys(&decide_now(&fake, &second).await), ["config.size"]);
    let before = prior(&fake, &t, &RunContext::default())
        .await
        .unwrap()
        .unwrap();
    apply(&fake, &second, false, &ctx).await.unwrap();
    assert_eq!(decide_now(&fake, &second).await, Action::Unchanged);
    let r = undo(
        &fake,
        &t,
        &Undo::Restore {
            prior: Some(before),
            snapshot: None,
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert_eq!(decide_now(&fake, &first).await, Action::Unchanged);
    fake.set_object(&path, |v| {
        v["config"]["size"] = Value::String("5GiB".into());
    });
    assert_eq!(keys(&decide_now(&fake, &first).await), ["config.size"]);
    let r = undo(&fake, &t, &Undo::Delete, &UndoContext::default())
        .await
        .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert_eq!(fake.get_object(&path), None);
}

#[tokio::test]
async fn instance_life_cycle() {
    let fake = fake_with_project().await;
    apply(
        &fake,
        &profile("kt", "kt-extra", ""),
        true,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let Resource::Instance(mut first) = instance("kt", "kt-a", "one") else {
        unreachable!()
    };
    first.devices = devs(&[(
        "eth0",
        &[
            ("type", "nic"),
            ("network", "br"),
            ("ipv4.address", "10.9.0.5"),
        ],
    )]);
    let mut changed = first.clone();
    changed
        .config
        .insert("limits.memory".into(), "256MiB".into());
    changed.profiles.push("kt-extra".into());
    // A device option changed, one added, one device new: the options one
    // by one, the new device whole.
    let eth0 = changed.devices.get_mut("eth0").expect("eth0");
    eth0.insert("ipv4.address".into(), "10.9.0.7".into());
    eth0.insert("mtu".into(), "1400".into());
    changed.devices.insert(
        "data".into(),
        cfg(&[("type", "disk"), ("path", "/data"), ("source", "/srv")]),
    );
    life_cycle(
        &fake,
        Resource::Instance(first),
        Resource::Instance(changed),
        &[
            "config.limits.memory",
            "profiles",
            "devices.eth0.ipv4.address",
            "devices.eth0.mtu",
            "devices.data",
        ],
    )
    .await;
}

/// The journal keeps an instance's settings without the `volatile.*` keys
/// Incus owns (they change on every start): restoring that prior state
/// keeps Incus's, and a second restore writes nothing.
#[tokio::test]
async fn instance_prior_leaves_out_volatile_keys() {
    let fake = fake_with_project().await;
    let i = instance("kt", "kt-a", "one");
    apply(&fake, &i, true, &RunContext::default())
        .await
        .unwrap();
    let t = target(&i).unwrap();
    let volatile = |v: &Value| {
        v["config"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("volatile."))
            .count()
    };
    let live = fake.get_object(&t.path().unwrap()).unwrap();
    assert!(volatile(&live) > 0, "Incus added volatile keys: {live}");
    let before = prior(&fake, &t, &RunContext::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(volatile(&before), 0, "{before}");
    let restore = Undo::Restore {
        prior: Some(before),
        snapshot: None,
    };
    fake.clear_log();
    undo(&fake, &t, &restore, &UndoContext::default())
        .await
        .unwrap();
    assert_eq!(fake.writes(), vec![]);
    assert_eq!(
        volatile(&fake.get_object(&t.path().unwrap()).unwrap()),
        volatile(&live)
    );
}

/// A stopped instance is started by the update, and its drift is the run
/// state; undo puts the prior run state back.
#[tokio::test]
async fn instance_run_state_is_decided_applied_and_undone() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    let i = instance("kt", "kt-a", "one");
    let t = target(&i).unwrap();
    apply(&fake, &i, true, &ctx).await.unwrap();
    fake.set_object(&t.path().unwrap(), |v| {
        v["status"] = Value::String("Stopped".into());
    });
    assert_eq!(keys(&decide_now(&fake, &i).await), ["state"]);
    let before = prior(&fake, &t, &RunContext::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before["status"], "Stopped");
    fake.clear_log();
    apply(&fake, &i, false, &ctx).await.unwrap();
    // Only the start: nothing else differed.
    let Target::Instance(a) = &t else {
        unreachable!()
    };
    assert_eq!(fake.writes(), vec![(Method::Put, a.state())]);
    assert_eq!(decide_now(&fake, &i).await, Action::Unchanged);
    let r = undo(
        &fake,
        &t,
        &Undo::Restore {
            prior: Some(before),
            snapshot: None,
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert_eq!(
        fake.get_object(&t.path().unwrap()).unwrap()["status"],
        "Stopped"
    );
}

/// Incus cannot convert a container into a VM: the update says so and
/// sends nothing.
#[tokio::test]
async fn instance_type_change_is_refused_without_a_write() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    let i = instance("kt", "kt-a", "one");
    apply(&fake, &i, true, &ctx).await.unwrap();
    let Resource::Instance(mut vm) = i.clone() else {
        unreachable!()
    };
    vm.instance_type = InstanceType::VirtualMachine;
    let vm = Resource::Instance(vm);
    assert!(keys(&decide_now(&fake, &vm).await).contains(&"type".to_string()));
    fake.clear_log();
    let e = apply(&fake, &vm, false, &ctx).await.unwrap_err();
    assert!(e.message.contains("cannot convert"), "{e}");
    assert_eq!(fake.writes(), vec![]);
}

/// A protected instance is deleted only with force, its protection lifted
/// first; a running one is stopped first.
#[tokio::test]
async fn instance_delete_with_and_without_force() {
    let fake = fake_with_project().await;
    let Resource::Instance(mut p) = instance("kt", "kt-p", "one") else {
        unreachable!()
    };
    p.config
        .insert("security.protection.delete".into(), "true".into());
    let p = Resource::Instance(p);
    apply(&fake, &p, true, &RunContext::default())
        .await
        .unwrap();
    let t = target(&p).unwrap();
    let r = delete(&fake, &t, false).await.unwrap();
    assert!(
        matches!(&r, StepResult::Skipped { why } if why.contains("protected")),
        "{r:?}"
    );
    assert!(fake.get_object(&t.path().unwrap()).is_some());
    let r = delete(&fake, &t, true).await.unwrap();
    assert!(
        matches!(&r, StepResult::Restored { detail } if detail.contains("--force")),
        "{r:?}"
    );
    assert_eq!(fake.get_object(&t.path().unwrap()), None);
}

/// Rollback of an updated instance restores its pre-apply snapshot, then
/// its prior configuration; a snapshot that is gone is said.
#[tokio::test]
async fn instance_undo_restores_the_snapshot_then_the_configuration() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    let i = instance("kt", "kt-a", "one");
    apply(&fake, &i, true, &ctx).await.unwrap();
    let t = target(&i).unwrap();
    let Target::Instance(a) = &t else {
        unreachable!()
    };
    let before = prior(&fake, &t, &RunContext::default())
        .await
        .unwrap()
        .unwrap();
    // The fake has no data to restore: a volatile key stands in for it
    // (the configuration restore keeps Incus's volatile keys; only the
    // snapshot brings this one back).
    let witness = |value: &str| {
        let value = Value::String(value.into());
        move |v: &mut Value| v["config"]["volatile.test.witness"] = value
    };
    fake.set_object(&t.path().unwrap(), witness("at the snapshot"));
    crate::snapshot::create(&fake, a, "pre-apply-20260101-000000")
        .await
        .unwrap();
    fake.set_object(&t.path().unwrap(), witness("after the snapshot"));
    apply(&fake, &instance("kt", "kt-a", "two"), false, &ctx)
        .await
        .unwrap();
    let restore = Undo::Restore {
        prior: Some(before),
        snapshot: Some("pre-apply-20260101-000000".into()),
    };
    let r = undo(&fake, &t, &restore, &UndoContext::default())
        .await
        .unwrap();
    let StepResult::Restored { detail } = &r else {
        panic!("{r:?}")
    };
    assert!(
        detail.contains("snapshot pre-apply-20260101-000000 restored"),
        "{detail}"
    );
    assert_eq!(
        fake.get_object(&t.path().unwrap()).unwrap()["config"]["volatile.test.witness"],
        "at the snapshot"
    );
    assert_eq!(decide_now(&fake, &i).await, Action::Unchanged);
    let gone = Undo::Restore {
        prior: None,
        snapshot: Some("pre-apply-20990101-000000".into()),
    };
    let r = undo(&fake, &t, &gone, &UndoContext::default())
        .await
        .unwrap();
    assert!(
        matches!(&r, StepResult::Skipped { why } if why.contains("is gone")),
        "{r:?}"
    );
}

/// A bridge Incus is still setting up (a killed apply's create in
/// flight) is deleted only once it is set up.
#[tokio::test]
async fn rollback_waits_for_a_bridge_still_being_set_up() {
    let fake = Fake::new();
    let n = network("net-kt", "x");
    apply(&fake, &n, true, &RunContext::default())
        .await
        .unwrap();
    let t = target(&n).unwrap();
    let path = t.path().unwrap();
    fake.set_object(&path, |v| v["status"] = Value::String("Pending".into()));
    let later = fake.clone();
    let p = path.clone();
    let start = std::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        later.set_object(&p, |v| v["status"] = Value::String("Created".into()));
    });
    fake.clear_log();
    let r = undo(&fake, &t, &Undo::Delete, &UndoContext::default())
        .await
        .unwrap();
    assert!(matches!(r, StepResult::Restored { .. }), "{r:?}");
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(fake.writes(), [(Method::Delete, path.clone())]);
    assert_eq!(fake.get_object(&path), None);
}

/// Undoing a provisioning: the instance's pre-apply snapshot comes back
/// (its data as before Ansible ran), then the fingerprint it recorded, so
/// the next apply provisions it again; none recorded before: none after.
#[tokio::test]
async fn provisioning_undo_restores_the_data_and_the_fingerprint() {
    let fake = fake_with_project().await;
    apply(
        &fake,
        &instance("kt", "kt-a", ""),
        true,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let a = provision::Address {
        project: "kt".into(),
        instance: "kt-a".into(),
    };
    let t = Target::Provision(a.clone());
    let path = a.path();
    // Before: provisioned with f1, data "before" (a volatile key stands in
    // for data: only a snapshot restore brings it back).
    fake.set_object(&path, |v| {
        v["config"][provision::PROVISIONED] = Value::String("f1".into());
        v["config"]["volatile.test.data"] = Value::String("before".into());
    });
    let before = prior(&fake, &t, &RunContext::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before["provisioned"], "f1");
    let i = crate::snapshot::InstanceRef {
        project: "kt".into(),
        name: "kt-a".into(),
    };
    crate::snapshot::create(&fake, &i, "pre-apply-20260101-000000")
        .await
        .unwrap();
    // Ansible ran: other data, fingerprint f2.
    fake.set_object(&path, |v| {
        v["config"][provision::PROVISIONED] = Value::String("f2".into());
        v["config"]["volatile.test.data"] = Value::String("after".into());
    });
    let r = undo(
        &fake,
        &t,
        &Undo::Restore {
            prior: Some(before),
            snapshot: Some("pre-apply-20260101-000000".into()),
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&r, StepResult::Restored { detail } if detail.contains("snapshot")),
        "{r:?}"
    );
    let now = fake.get_object(&path).unwrap();
    assert_eq!(now["config"]["volatile.test.data"], "before");
    assert_eq!(now["config"][provision::PROVISIONED], "f1");
    // Never provisioned before: after the undo, it records none.
    let none = Undo::Restore {
        prior: Some(serde_json::json!({"provisioned": null})),
        snapshot: None,
    };
    undo(&fake, &t, &none, &UndoContext::default())
        .await
        .unwrap();
    let p = Provision {
        host: "kt-a".into(),
        instance: "kt-a".into(),
        project: "kt".into(),
        roles: vec![],
        inventory: String::new(),
        context: Config::new(),
        vars: Vec::new(),
        fingerprint: "f1".into(),
    };
    let c = provision::needed(&p, &live_of(&fake).await).expect("needs a run again");
    assert_eq!(c.old, None);
}

fn race_error() -> IncusError {
    IncusError {
        code: 500,
        message: "Failed to delete bridge children interfaces: Failed to run: ip -d -j link show vethX: Device \"vethX\" does not exist".into(),
    }
}

/// Incus's transient bridge-setup failure is retried, on create and on
/// update; other errors are not.
#[tokio::test]
async fn network_create_retries_the_link_race_only() {
    let fake = Fake::new();
    fake.fail(Method::Post, "/1.0/networks", race_error());
    apply(&fake, &network("net-kt", "x"), true, &RunContext::default())
        .await
        .unwrap();
    let posts = fake
        .writes()
        .iter()
        .filter(|(m, p)| *m == Method::Post && p == "/1.0/networks")
        .count();
    assert_eq!(posts, 2);
    // A leftover of the failed attempt is deleted first; that delete races
    // too, and is retried.
    fake.fail(Method::Post, "/1.0/networks", race_error());
    fake.fail(Method::Delete, "/1.0/networks/net-kt", race_error());
    fake.clear_log();
    apply(&fake, &network("net-kt", "x"), true, &RunContext::default())
        .await
        .unwrap();
    assert_eq!(
        fake.writes(),
        [
            (Method::Post, "/1.0/networks".to_string()),
            (Method::Delete, "/1.0/networks/net-kt".to_string()),
            (Method::Delete, "/1.0/networks/net-kt".to_string()),
            (Method::Post, "/1.0/networks".to_string()),
        ]
    );
    // An update reruns the bridge setup: retried the same way.
    fake.fail(Method::Patch, "/1.0/networks/net-kt", race_error());
    fake.clear_log();
    apply(
        &fake,
        &network("net-kt", "y"),
        false,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let patches = fake
        .writes()
        .iter()
        .filter(|(m, _)| *m == Method::Patch)
        .count();
    assert_eq!(patches, 2);
    assert_eq!(
        decide_now(&fake, &network("net-kt", "y")).await,
        Action::Unchanged
    );
    // Four failures in a row are reported.
    for _ in 0..4 {
        fake.fail(Method::Patch, "/1.0/networks/net-kt", race_error());
    }
    let e = apply(
        &fake,
        &network("net-kt", "z"),
        false,
        &RunContext::default(),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");

    let fake = Fake::new();
    fake.fail(
        Method::Post,
        "/1.0/networks",
        IncusError {
            code: 400,
            message: "Invalid value".into(),
        },
    );
    let e = apply(&fake, &network("net-kt", "x"), true, &RunContext::default())
        .await
        .unwrap_err();
    assert!(e.message.contains("Invalid value"), "{e}");
    assert_eq!(fake.writes().len(), 1);
}

fn nft_plan() -> Nftables {
    Nftables {
        table: "inet anklume".into(),
        lines: vec![
            "table inet anklume {".into(),
            "  chain forward {".into(),
            "    iifname \"net-a\" oifname \"net-b\" drop".into(),
            "  }".into(),
            "}".into(),
        ],
        paths: Vec::new(),
    }
}

#[test]
fn nftables_decide_covers_every_case() {
    let t = nft_plan();
    let text = t.text();
    let mut live = Live::default();
    assert!(matches!(nftables::decide(&t, &live), Action::NotRun { .. }));
    live.nftables = Some(NftLive::default());
    assert_eq!(nftables::decide(&t, &live), Action::Create);
    live.nftables = Some(NftLive {
        live_table: Some("listing".into()),
        last_applied: Some(text.clone()),
        applied_listing: Some("listing".into()),
    });
    assert_eq!(nftables::decide(&t, &live), Action::Unchanged);
    // Changed by hand after anklume loaded it.
    live.nftables = Some(NftLive {
        live_table: Some("edited".into()),
        last_applied: Some(text.clone()),
        applied_listing: Some("listing".into()),
    });
    assert_eq!(keys(&nftables::decide(&t, &live)), ["table"]);
    // Another ruleset was loaded last: the rule lines that differ.
    live.nftables = Some(NftLive {
        live_table: Some("listing".into()),
        last_applied: Some(text.replace("net-b", "net-c")),
        applied_listing: Some("listing".into()),
    });
    let Action::Update { changes } = nftables::decide(&t, &live) else {
        panic!()
    };
    assert_eq!(changes.len(), 2);
    assert!(changes
        .iter()
        .any(|c| c.old.as_deref().is_some_and(|o| o.contains("net-c"))));
    assert!(changes
        .iter()
        .any(|c| c.new.as_deref().is_some_and(|n| n.contains("net-b"))));
    // The prior state is kept for a create too (rollback needs the table
    // that was there, or that there was none).
    assert!(prior_on_create(&Target::Nftables(nftables::Address {})));
    assert!(!prior_on_create(&target(&network("n", "")).unwrap()));
}

/// The isolation table the planner writes for these bridges: one drop
/// between every pair (what rollback's last step reads).
fn isolation(bridges: &[&str]) -> Vec<String> {
    let set = bridges
        .iter()
        .map(|b| format!("\"{b}\""))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        "table inet anklume;".into(),
        "delete table inet anklume;".into(),
        "table inet anklume {".into(),
        "\tchain isolation {".into(),
        "\t\ttype filter hook forward priority filter - 1; policy accept;".into(),
        format!("\t\tiifname {{ {set} }} oifname {{ {set} }} drop"),
        "\t}".into(),
        "}".into(),
    ]
}

/// The table's life: loaded (checked first) and recorded for the drift
/// check; changed by hand is drift; rollback's last step keeps it while
/// bridges it separates are left, removes it once they are gone, or loads
/// the table from before the apply.
#[tokio::test]
async fn nftables_apply_decide_and_undo() {
    use crate::nft::fake::FakeNft;
    use crate::nft::Nft;
    use std::sync::Arc;
    let state = tempfile::tempdir().unwrap();
    let incus = Fake::new();
    let host = FakeNft::new();
    let runner: Arc<dyn Nft> = Arc::new(host.clone());
    let ctx = RunContext {
        state_dir: state.path().to_path_buf(),
        nft: runner.clone(),
        ..RunContext::default()
    };
    for n in ["net-a", "net-b"] {
        apply(&incus, &network(n, ""), true, &ctx).await.unwrap();
    }
    let t = Nftables {
        table: "inet anklume".into(),
        lines: isolation(&["net-a", "net-b"]),
        paths: Vec::new(),
    };
    let table = Resource::Nftables(t.clone());
    let read = || Live {
        nftables: Some(crate::nft::read(&host, state.path()).unwrap()),
        ..Live::default()
    };
    assert_eq!(decide(&table, &read()), Action::Create);
    let target = target(&table).unwrap();
    // The state as apply reads it first, carried to the journal.
    let ctx = RunContext {
        nft_before: read().nftables,
        ..ctx
    };
    let before = prior(&incus, &target, &ctx).await.unwrap().unwrap();
    apply(&incus, &table, true, &ctx).await.unwrap();
    assert!(host.table().unwrap().contains("drop"));
    assert_eq!(decide(&table, &read()), Action::Unchanged);
    // Checked before it is loaded.
    let loads: Vec<Vec<String>> = host
        .calls()
        .into_iter()
        .filter(|c| c.contains(&"-f".to_string()))
        .map(|c| c[..c.len() - 1].to_vec())
        .collect();
    assert_eq!(loads, [vec!["-c", "-f"], vec!["-f"]]);

    // Changed by hand.
    let applied = host.table();
    host.set_table(Some("table inet anklume {\n}\n"));
    assert_eq!(keys(&decide(&table, &read())), ["table"]);
    host.set_table(applied.as_deref());

    // Rollback's last step: both bridges are still there, and there was
    // no table before: the table in force stays.
    let uctx = UndoContext {
        state_dir: state.path().to_path_buf(),
        nft: runner.clone(),
        networks: vec!["net-a".into(), "net-b".into()],
        ..UndoContext::default()
    };
    let restore = Undo::Restore {
        prior: Some(before.clone()),
        snapshot: None,
    };
    let r = undo(&incus, &target, &restore, &uctx).await.unwrap();
    assert!(
        matches!(&r, StepResult::Skipped { why } if why.contains("net-a and net-b")),
        "{r:?}"
    );
    assert_eq!(host.table(), applied);
    // Once they are gone, it is removed, and so are the state files.
    for n in ["net-a", "net-b"] {
        undo(&incus, &target_of_network(n), &Undo::Delete, &uctx)
            .await
            .unwrap();
    }
    let r = undo(&incus, &target, &restore, &uctx).await.unwrap();
    assert!(
        matches!(&r, StepResult::Restored { detail } if detail.contains("table removed")),
        "{r:?}"
    );
    assert_eq!(host.table(), None);
    assert!(!crate::nft::dir(state.path()).join("applied.nft").exists());
    // A table from before the apply is loaded again.
    let old = "table inet anklume {\n\tchain old {\n\t}\n}\n";
    let had = Undo::Restore {
        prior: Some(serde_json::json!({"table": old, "applied": null, "applied_listing": null})),
        snapshot: None,
    };
    let r = undo(&incus, &target, &had, &uctx).await.unwrap();
    assert!(
        matches!(&r, StepResult::Restored { detail } if detail.contains("previous table")),
        "{r:?}"
    );
    assert_eq!(host.table().as_deref(), Some(old));
}

fn target_of_network(name: &str) -> Target {
    Target::Network(network::Address { name: name.into() })
}

#[test]
fn provisioning_without_a_fingerprint_is_not_run() {
    let p = Resource::Provision(Provision {
        host: "kt-a".into(),
        instance: "kt-a".into(),
        project: "kt".into(),
        roles: vec!["base_system".into()],
        inventory: "inventory/kt.yml".into(),
        context: Config::new(),
        vars: Vec::new(),
        fingerprint: String::new(),
    });
    assert!(matches!(
        decide(&p, &Live::default()),
        Action::NotRun { .. }
    ));
    // Journaled as a change to its instance.
    assert_eq!(
        target(&p),
        Some(Target::Provision(provision::Address {
            project: "kt".into(),
            instance: "kt-a".into(),
        }))
    );
}

/// An instance that records the plan's fingerprint is provisioned already;
/// one that records none or another needs a run, and says which.
#[tokio::test]
async fn provisioning_is_needed_unless_the_fingerprint_matches() {
    let fake = fake_with_project().await;
    apply(
        &fake,
        &instance("kt", "kt-a", ""),
        true,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let p = Provision {
        host: "kt-a".into(),
        instance: "kt-a".into(),
        project: "kt".into(),
        roles: vec!["base_system".into()],
        inventory: "inventory/kt.yml".into(),
        context: Config::new(),
        vars: Vec::new(),
        fingerprint: "f1".into(),
    };
    let c = provision::needed(&p, &live_of(&fake).await).expect("never provisioned");
    assert_eq!((c.old, c.new.as_deref()), (None, Some("f1")));
    let path = "/1.0/instances/kt-a?project=kt";
    fake.set_object(path, |v| {
        v["config"][provision::PROVISIONED] = Value::String("f0".into())
    });
    let c = provision::needed(&p, &live_of(&fake).await).expect("another fingerprint");
    assert_eq!(c.old.as_deref(), Some("f0"));
    fake.set_object(path, |v| {
        v["config"][provision::PROVISIONED] = Value::String("f1".into())
    });
    assert_eq!(provision::needed(&p, &live_of(&fake).await), None);
    assert_eq!(
        decide(&Resource::Provision(p.clone()), &live_of(&fake).await),
        Action::Unchanged
    );
    // Needed, but provisioning is off in this apply: said, not run.
    let mut off = live_of(&fake).await;
    off.provisioning_off = Some("--no-provision".into());
    let other = Provision {
        fingerprint: "f2".into(),
        ..p.clone()
    };
    let Action::NotRun { reason } = decide(&Resource::Provision(other.clone()), &off) else {
        panic!()
    };
    assert!(reason.contains("--no-provision"), "{reason}");
    assert_eq!(
        keys(&decide(&Resource::Provision(other), &live_of(&fake).await)),
        [format!("config.{}", provision::PROVISIONED)]
    );
    // A plan made without the tree cannot tell.
    let blind = Provision {
        fingerprint: String::new(),
        ..p
    };
    let Action::NotRun { reason } = decide(&Resource::Provision(blind), &live_of(&fake).await)
    else {
        panic!()
    };
    assert!(reason.contains("--tree"), "{reason}");
}

/// Orphans: managed objects the plan lacks, of every kind that has them,
/// sorted; bridges named like anklume's count even unmarked (v1 did not
/// mark them); unmanaged objects never do.
#[tokio::test]
async fn orphans_of_every_kind_sorted() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    for r in [
        network("net-kt", ""),
        profile("kt", "kt-extra", ""),
        instance("kt", "kt-b", ""),
        instance("kt", "kt-a", ""),
    ] {
        apply(&fake, &r, true, &ctx).await.unwrap();
    }
    // Unmarked: only those named like anklume's bridges count.
    for name in ["lxdbr1", "net-old", "001-net-v1", "01-net-x", "net-host"] {
        let Resource::Network(mut unmarked) = network(name, "") else {
            unreachable!()
        };
        unmarked.config.remove("user.anklume.managed");
        apply(&fake, &Resource::Network(unmarked), true, &ctx)
            .await
            .unwrap();
    }
    // Named like one, but not managed by Incus (a host interface).
    fake.set_object("/1.0/networks/net-host", |v| {
        v["managed"] = Value::Bool(false)
    });
    let live = live_of(&fake).await;
    let plan = chain(vec![instance("kt", "kt-b", "")]);
    let found: Vec<(&str, String, String)> = orphans(&plan, &live)
        .into_iter()
        .map(|o| (o.kind, o.project, o.name))
        .collect();
    assert_eq!(
        found,
        [
            ("instance", "kt".to_string(), "kt-a".to_string()),
            ("network", "default".into(), "001-net-v1".into()),
            ("network", "default".into(), "net-kt".into()),
            ("network", "default".into(), "net-old".into()),
            ("profile", "kt".into(), "kt-extra".into()),
            ("project", "kt".into(), "kt".into()),
        ]
    );
}

#[tokio::test]
async fn preflight_refuses_missing_images_and_address_clashes() {
    let fake = fake_with_project().await;
    let Resource::Instance(mut a) = instance("kt", "kt-a", "") else {
        unreachable!()
    };
    a.config.insert("volatile.unused".into(), "x".into());
    a.devices = devs(&[(
        "eth0",
        &[
            ("type", "nic"),
            ("network", "net-kt"),
            ("ipv4.address", "10.140.0.10"),
        ],
    )]);
    apply(&fake, &Resource::Instance(a), true, &RunContext::default())
        .await
        .unwrap();
    let live = live_of(&fake).await;
    let Resource::Instance(mut b) = instance("kt", "kt-b", "") else {
        unreachable!()
    };
    b.ip = Some("10.140.0.10".into());
    b.source = ImageSource::Local {
        alias: "not-there".into(),
    };
    let plan = chain(vec![Resource::Instance(b.clone())]);
    let p = crate::decide::preflight(&plan, &live, &[Action::Create], &[]).unwrap_err();
    assert_eq!(p.problems.len(), 2, "{p}");
    assert!(
        p.problems[0].contains("'not-there' is not a local image alias"),
        "{p}"
    );
    assert!(
        p.problems[1].contains("already used by instance 'kt-a'"),
        "{p}"
    );
    // Positive control: the image exists and the address is the
    // instance's own.
    b.source = ImageSource::Local {
        alias: IMAGE.into(),
    };
    b.name = "kt-a".into();
    let plan = chain(vec![Resource::Instance(b)]);
    assert_eq!(
        crate::decide::preflight(&plan, &live, &[Action::Unchanged], &[]),
        Ok(())
    );
}

/// A holder of an address another instance takes is no clash only when
/// apply frees it first: left out of the run (`--limit`), it clashes.
#[tokio::test]
async fn preflight_lets_an_address_move_only_when_its_holder_is_freed() {
    let fake = fake_with_project().await;
    let Resource::Instance(mut a) = instance("kt", "kt-a", "") else {
        unreachable!()
    };
    a.devices = devs(&[(
        "eth0",
        &[
            ("type", "nic"),
            ("network", "net-kt"),
            ("ipv4.address", "10.140.0.1"),
        ],
    )]);
    apply(
        &fake,
        &Resource::Instance(a.clone()),
        true,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let live = live_of(&fake).await;
    // The plan moves kt-a to .2 and gives .1 to a new kt-n.
    a.ip = Some("10.140.0.2".into());
    a.devices
        .get_mut("eth0")
        .unwrap()
        .insert("ipv4.address".into(), "10.140.0.2".into());
    let Resource::Instance(mut n) = instance("kt", "kt-n", "") else {
        unreachable!()
    };
    n.ip = Some("10.140.0.1".into());
    let plan = chain(vec![Resource::Instance(a), Resource::Instance(n)]);
    let update = || Action::Update { changes: vec![] };
    let all = [update(), Action::Create];
    let moves = crate::decide::address_moves(&plan, &live, &all);
    assert_eq!(moves, vec![(0, vec!["eth0".to_string()])]);
    assert_eq!(crate::decide::preflight(&plan, &live, &all, &moves), Ok(()));
    // `--limit kt-n`: kt-a is not run, not freed: the clash is reported.
    let limited = [
        Action::NotRun {
            reason: "outside --limit kt-n".into(),
        },
        Action::Create,
    ];
    let moves = crate::decide::address_moves(&plan, &live, &limited);
    assert_eq!(moves, vec![]);
    let p = crate::decide::preflight(&plan, &live, &limited, &moves).unwrap_err();
    assert!(
        p.problems[0].contains("static address 10.140.0.1 of instance 'kt-n'"),
        "{p}"
    );
}

#[test]
fn journal_targets_keep_their_format() {
    // Lines as anklume wrote them before the kinds had their own modules.
    for (line, want) in [
        (
            r#"{"type":"network","name":"net-a"}"#,
            Target::Network(network::Address {
                name: "net-a".into(),
            }),
        ),
        (
            r#"{"type":"project","name":"a"}"#,
            Target::Project(project::Address { name: "a".into() }),
        ),
        (
            r#"{"type":"profile","project":"a","name":"p"}"#,
            Target::Profile(profile::Address {
                project: "a".into(),
                name: "p".into(),
            }),
        ),
        (
            r#"{"type":"volume","project":"a","pool":"default","name":"v"}"#,
            Target::Volume(volume::Address {
                project: "a".into(),
                pool: "default".into(),
                name: "v".into(),
            }),
        ),
        (
            r#"{"type":"instance","project":"a","name":"i"}"#,
            Target::Instance(instance::Address {
                project: "a".into(),
                name: "i".into(),
            }),
        ),
        (
            r#"{"type":"nftables"}"#,
            Target::Nftables(nftables::Address {}),
        ),
        (
            r#"{"type":"provision","project":"a","instance":"i"}"#,
            Target::Provision(provision::Address {
                project: "a".into(),
                instance: "i".into(),
            }),
        ),
    ] {
        let t: Target = serde_json::from_str(line).unwrap();
        assert_eq!(t, want);
        assert_eq!(serde_json::to_string(&t).unwrap(), line);
    }
}

#[test]
fn same_treats_empty_and_missing_alike() {
    use super::common::same;
    use serde_json::json;
    assert!(same(
        &json!({"config": {}, "description": ""}),
        &json!({"config": null}),
        &["config", "description"]
    ));
    assert!(!same(
        &json!({"config": {"a": "1"}}),
        &json!({"config": {}}),
        &["config"]
    ));
}

/// Incus 6.0 empties the description of an instance, a network or a
/// volume that a PATCH does not carry (measured; the fake does the same):
/// the config-only PATCHes (a provisioning fingerprint recorded or put
/// back, a volume's new size) keep the description they found.
#[tokio::test]
async fn config_only_patches_keep_the_description() {
    let fake = fake_with_project().await;
    let ctx = RunContext::default();
    apply(
        &fake,
        &instance("kt", "kt-a", "Development box"),
        true,
        &ctx,
    )
    .await
    .unwrap();
    let a = provision::Address {
        project: "kt".into(),
        instance: "kt-a".into(),
    };
    let path = a.path();
    // The fake is faithful: a bare PATCH empties it.
    let cur = fake.get(&path).await.unwrap();
    fake.patch(
        &path,
        &serde_json::json!({"config": {"user.x": "1"}}),
        cur.etag.as_deref(),
    )
    .await
    .unwrap();
    assert_eq!(fake.get_object(&path).unwrap()["description"], "");
    fake.set_object(&path, |v| {
        v["description"] = Value::String("Development box".into());
    });
    // What provisioning's apply sends after a successful run.
    common::patch(
        &fake,
        &path,
        &serde_json::json!({"config": {provision::PROVISIONED: "f2"}}),
    )
    .await
    .unwrap();
    let now = fake.get_object(&path).unwrap();
    assert_eq!(now["config"][provision::PROVISIONED], "f2");
    assert_eq!(now["description"], "Development box");
    // Provisioning's undo puts the old fingerprint back.
    undo(
        &fake,
        &Target::Provision(a.clone()),
        &Undo::Restore {
            prior: Some(serde_json::json!({"provisioned": "f1"})),
            snapshot: None,
        },
        &UndoContext::default(),
    )
    .await
    .unwrap();
    let now = fake.get_object(&path).unwrap();
    assert_eq!(now["config"][provision::PROVISIONED], "f1");
    assert_eq!(now["description"], "Development box");
    // A volume's update keeps the description its user gave it.
    let first = volume("kt", "kt-data", "1GiB");
    apply(&fake, &first, true, &ctx).await.unwrap();
    let vpath = target(&first).unwrap().path().unwrap();
    fake.set_object(&vpath, |v| {
        v["description"] = Value::String("photos".into());
    });
    apply(&fake, &volume("kt", "kt-data", "2GiB"), false, &ctx)
        .await
        .unwrap();
    let v = fake.get_object(&vpath).unwrap();
    assert_eq!(
        (v["config"]["size"].as_str(), v["description"].as_str()),
        (Some("2GiB"), Some("photos"))
    );
}

/// A misspelled instance name (snapshot, restore, delete) says which
/// instance was probably meant; a name like none says nothing more.
#[tokio::test]
async fn an_unknown_instance_name_suggests_the_close_one() {
    let fake = fake_with_project().await;
    apply(
        &fake,
        &instance("kt", "kt-web-dev", ""),
        true,
        &RunContext::default(),
    )
    .await
    .unwrap();
    let r = crate::snapshot::resolve(&fake, "kt-web-dev").await.unwrap();
    assert_eq!((r.project.as_str(), r.name.as_str()), ("kt", "kt-web-dev"));
    let e = crate::snapshot::resolve(&fake, "kt-web-dve")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean 'kt-web-dev'?"), "{e}");
    let e = crate::snapshot::resolve(&fake, "zzzzzz")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not found") && !e.contains("did you mean"),
        "{e}"
    );
}
