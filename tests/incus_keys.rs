//! The key catalogue `check` uses offline (recorded from Incus 6.0 by
//! `scripts/record-incus-keys.sh`) against the real daemon: the keys it
//! knows are keys Incus accepts, and a key it calls unknown Incus refuses
//! as unknown. Uses the profiles `ankt-keys` and `ankt-keys-dev` and the
//! bridge `ankt-kbr`, in the default project.

mod common;

use anklume_executor::{Api, Incus};
use anklume_incus_keys::{Catalogue, Scope, Verdict};
use common::live::{daemon, rt};
use serde_json::json;

/// Incus's answer to one config key set on the test profile: `None` when
/// accepted, else its error message.
async fn set(incus: &Incus, key: &str) -> Option<String> {
    incus
        .put(
            "/1.0/profiles/ankt-keys",
            &json!({"config": {key: "ankt-not-a-valid-value"}, "devices": {}}),
            None,
        )
        .await
        .err()
        .map(|e| e.message)
}

#[test]
fn the_recorded_catalogue_agrees_with_the_live_server() {
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let _ = incus.delete("/1.0/profiles/ankt-keys").await;
        incus
            .post("/1.0/profiles", &json!({"name": "ankt-keys", "config": {}, "devices": {}}))
            .await
            .unwrap();
        let recorded = Catalogue::recorded();
        let live = anklume_executor::live::read_keys(&incus)
            .await
            .unwrap()
            .expect("Incus 6.0 serves /1.0/metadata/configuration");
        let version: serde_json::Value = incus.get("/1.0").await.unwrap().metadata;
        if version["environment"]["server_version"] == recorded.server_version.as_deref().unwrap() {
            // The recorded answer alone, without the 6.0.6 device options.
            let answer: serde_json::Value =
                serde_json::from_str(anklume_incus_keys::RECORDED_JSON).unwrap();
            let answer = Catalogue::from_metadata(&answer).unwrap();
            assert!(
                live.same_keys(&answer),
                "the server's catalogue differs from the recorded one: run scripts/record-incus-keys.sh"
            );
        }
        // Negative control first: the daemon does refuse an unknown key,
        // and says so in the words the check below looks for.
        let refused = set(&incus, "limits.cpus").await.unwrap_or_default();
        assert!(refused.contains("Unknown configuration key"), "{refused}");
        assert!(matches!(
            recorded.check(Scope::Instance, "limits.cpus"),
            Verdict::Unknown { .. }
        ));
        // Every instance key the catalogue names is one Incus knows: it may
        // refuse the value, never the key.
        let mut unknown = Vec::new();
        for key in recorded.exact_keys(Scope::Instance) {
            if let Some(e) = set(&incus, key).await {
                if e.contains("Unknown configuration key") {
                    unknown.push(format!("{key}: {e}"));
                }
            }
        }
        // Keys taken by prefix, with a name filled in.
        for key in ["user.ankt.note", "environment.ANKT", "linux.sysctl.net.ipv4.ip_forward", "limits.kernel.nofile"] {
            assert_eq!(recorded.check(Scope::Instance, key), Verdict::Known, "{key}");
            if let Some(e) = set(&incus, key).await {
                if e.contains("Unknown configuration key") {
                    unknown.push(format!("{key}: {e}"));
                }
            }
        }
        let _ = incus.delete("/1.0/profiles/ankt-keys").await;
        assert!(unknown.is_empty(), "keys the catalogue knows and Incus refuses:\n{}", unknown.join("\n"));
    });
}

/// Incus's answer to a device of the test profile: `None` when accepted.
async fn put_device(incus: &Incus, device: &serde_json::Value) -> Option<String> {
    incus
        .put(
            "/1.0/profiles/ankt-keys-dev",
            &json!({"config": {}, "devices": {"d": device}}),
            None,
        )
        .await
        .err()
        .map(|e| e.message)
}

/// The device options `check` takes from Incus 6.0.6's catalogue (for the
/// device types 6.0.4 does not describe) are options the running daemon
/// knows: added to a valid device of their variant, each may be refused
/// for its value, never as an unknown option.
#[test]
fn the_device_options_taken_from_6_0_6_are_known_to_the_live_server() {
    let Some(incus) = daemon() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let _ = incus.delete("/1.0/profiles/ankt-keys-dev").await;
        let _ = incus.delete("/1.0/networks/ankt-kbr").await;
        incus
            .post(
                "/1.0/networks",
                &json!({"name": "ankt-kbr", "type": "bridge", "config": {"ipv4.address": "10.248.0.254/24", "ipv6.address": "none"}}),
            )
            .await
            .unwrap();
        incus
            .post("/1.0/profiles", &json!({"name": "ankt-keys-dev", "config": {}, "devices": {}}))
            .await
            .unwrap();
        // A valid device of each variant the daemon can check here (OVN
        // needs an OVN setup; SR-IOV, mdev and MIG hardware is not needed
        // to validate a profile).
        let bases: Vec<(&str, serde_json::Value)> = vec![
            ("nic_bridged", json!({"type": "nic", "nictype": "bridged", "parent": "ankt-kbr"})),
            ("nic_macvlan", json!({"type": "nic", "nictype": "macvlan", "parent": "ankt-kbr"})),
            ("nic_ipvlan", json!({"type": "nic", "nictype": "ipvlan", "parent": "ankt-kbr"})),
            ("nic_p2p", json!({"type": "nic", "nictype": "p2p"})),
            ("nic_physical", json!({"type": "nic", "nictype": "physical", "parent": "ankt-kbr"})),
            ("nic_routed", json!({"type": "nic", "nictype": "routed"})),
            ("nic_sriov", json!({"type": "nic", "nictype": "sriov", "parent": "ankt-kbr"})),
            ("gpu_physical", json!({"type": "gpu", "gputype": "physical"})),
            ("gpu_mdev", json!({"type": "gpu", "gputype": "mdev", "mdev": "ankt"})),
            ("gpu_mig", json!({"type": "gpu", "gputype": "mig", "mig.uuid": "6f5b1a6e-0a4f-4c55-9d0d-2f6b3c1d7a10"})),
            ("gpu_sriov", json!({"type": "gpu", "gputype": "sriov"})),
            ("proxy", json!({"type": "proxy", "listen": "tcp:127.0.0.1:1", "connect": "tcp:127.0.0.1:2"})),
            ("tpm", json!({"type": "tpm", "path": "/dev/tpm0"})),
        ];
        let supplement: serde_json::Value =
            serde_json::from_str(anklume_incus_keys::DEVICES_SUPPLEMENT_JSON).unwrap();
        let groups = &supplement["configs"]["devices"];
        let mut refused = Vec::new();
        let mut probed = 0;
        for (group, base) in &bases {
            // Positive control: the base device alone is accepted.
            if let Some(e) = put_device(&incus, base).await {
                panic!("{group}: the base device is refused: {e}");
            }
            // Negative control: the daemon names an unknown option so.
            let mut typo = base.clone();
            typo["ankt-no-such-option"] = json!("1");
            let e = put_device(&incus, &typo).await.unwrap_or_default();
            assert!(
                e.contains("Invalid device option \"ankt-no-such-option\""),
                "{group}: {e}"
            );
            for key in groups[group].as_object().unwrap().keys() {
                if base.get(key).is_some() {
                    continue;
                }
                let mut d = base.clone();
                d[key] = json!("ankt-not-a-valid-value");
                probed += 1;
                if let Some(e) = put_device(&incus, &d).await {
                    if e.contains(&format!("Invalid device option \"{key}\"")) {
                        refused.push(format!("{group}.{key}: {e}"));
                    }
                }
            }
        }
        let _ = incus.delete("/1.0/profiles/ankt-keys-dev").await;
        let _ = incus.delete("/1.0/networks/ankt-kbr").await;
        assert!(probed > 100, "only {probed} options probed");
        assert!(
            refused.is_empty(),
            "options the catalogue knows and Incus refuses:\n{}",
            refused.join("\n")
        );
    });
}
