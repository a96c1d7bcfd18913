//! The key catalogue `check` uses offline (recorded from Incus 6.0 by
//! `scripts/record-incus-keys.sh`) against the real daemon: the keys it
//! knows are keys Incus accepts, and a key it calls unknown Incus refuses
//! as unknown. Uses one profile, `ankt-keys`, in the default project.

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
            assert!(
                live.same_keys(recorded),
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
