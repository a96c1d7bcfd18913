//! Which Incus configuration keys exist.
//!
//! Incus describes its configuration keys at `GET /1.0/metadata/configuration`.
//! A [`Catalogue`] is built from that answer: [`Catalogue::recorded`] from the
//! copy recorded from Incus 6.0 (`data/metadata-configuration.json`, written
//! by `scripts/record-incus-keys.sh`), which `anklume check` uses offline, and
//! [`Catalogue::from_metadata`] from a live server's answer, which apply's
//! preflight uses.
//!
//! Keys are checked by [`Scope`]: instance config (also what a profile's
//! config holds), project config, and the options of the device types the
//! catalogue describes. A device type it does not describe (Incus 6.0 does
//! not describe `nic`, `gpu`, `proxy`…) is [`Verdict::Unchecked`]: Incus
//! checks those options itself.
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;

/// What a key is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Instance config, and the config of a profile (which holds instance
    /// keys).
    Instance,
    /// Project config.
    Project,
    /// The options of a device of this type (`disk`, `usb`…).
    Device(&'a str),
}

/// The answer for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Incus knows the key.
    Known,
    /// Incus does not know the key; the closest known key, when it is close
    /// enough to be a likely typo.
    Unknown {
        /// The likely intended key.
        suggestion: Option<String>,
    },
    /// Nothing to check it against (a device type the catalogue does not
    /// describe).
    Unchecked,
}

/// The keys of one scope: exact names and patterns (`environment.*`,
/// `volatile.<name>.hwaddr`, `limits.disk.pool.POOL_NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Keys {
    exact: BTreeSet<String>,
    patterns: Vec<Vec<Segment>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `<name>`, `POOL_NAME`: one segment.
    One,
    /// A trailing `*`: one segment or more.
    Rest,
}

impl Keys {
    fn insert(&mut self, key: &str) {
        let segments: Vec<Segment> = key
            .split('.')
            .map(|s| {
                if s == "*" {
                    Segment::Rest
                } else if (s.starts_with('<') && s.ends_with('>'))
                    || (s.len() > 1 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                {
                    Segment::One
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            self.exact.insert(key.to_string());
        } else {
            self.patterns.push(segments);
        }
    }

    fn contains(&self, key: &str) -> bool {
        if self.exact.contains(key) {
            return true;
        }
        let parts: Vec<&str> = key.split('.').collect();
        self.patterns.iter().any(|p| matches(p, &parts))
    }

    /// Names to suggest: the exact keys (a pattern such as `user.*` cannot
    /// be written as it is).
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.exact.iter().cloned()
    }
}

fn matches(pattern: &[Segment], parts: &[&str]) -> bool {
    match (pattern.split_first(), parts.split_first()) {
        (None, None) => true,
        (Some((Segment::Rest, _)), Some(_)) => parts.iter().all(|p| !p.is_empty()),
        (Some((Segment::One, rest)), Some((p, more))) => !p.is_empty() && matches(rest, more),
        (Some((Segment::Literal(l), rest)), Some((p, more))) => l == p && matches(rest, more),
        _ => false,
    }
}

/// The configuration keys an Incus server knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// The server version it was read from, when known.
    pub server_version: Option<String>,
    instance: Keys,
    project: Keys,
    devices: BTreeMap<String, Keys>,
}

/// Keys Incus accepts by prefix although its catalogue does not list them
/// (Incus 6.0 checks `image.*` and `limits.kernel.*` by prefix; the
/// catalogue lists only some `limits.kernel.*` keys and no `image.*`).
const INSTANCE_PREFIXES: [&str; 2] = ["image.*", "limits.kernel.*"];

/// The device types a catalogue group describes: `unix-char-block` is
/// both; `nic_bridged`, `gpu_physical`… are variants of `nic`, `gpu`.
fn device_types(name: &str) -> Vec<&str> {
    match name {
        "unix-char-block" => vec!["unix-char", "unix-block"],
        other => vec![other.split('_').next().unwrap_or(other)],
    }
}

/// The option that picks a variant of a device type, which the groups of
/// its variants do not list.
fn selector(device_type: &str) -> Option<&'static str> {
    match device_type {
        "nic" | "infiniband" => Some("nictype"),
        "gpu" => Some("gputype"),
        _ => None,
    }
}

/// The catalogue recorded from Incus 6.0, as `scripts/record-incus-keys.sh`
/// wrote it (what the executor's in-memory fake Incus serves too).
pub const RECORDED_JSON: &str = include_str!("../data/metadata-configuration.json");

/// The options of the device types Incus 6.0.4 does not describe (`nic`,
/// `gpu`, `proxy`, `infiniband`, `pci`, `tpm`), from the catalogue of
/// Incus 6.0.6, the same LTS line, which does; `tests/incus_keys.rs` checks
/// that the running daemon accepts every one of them.
pub const DEVICES_SUPPLEMENT_JSON: &str = include_str!("../data/devices-6.0.6.json");

impl Catalogue {
    /// The catalogue recorded from Incus 6.0 (parsed once).
    pub fn recorded() -> &'static Catalogue {
        static RECORDED: OnceLock<Catalogue> = OnceLock::new();
        RECORDED.get_or_init(|| {
            let v: Value = serde_json::from_str(RECORDED_JSON).unwrap_or(Value::Null);
            let mut c = Catalogue::from_metadata(&v).unwrap_or_default();
            let extra: Value = serde_json::from_str(DEVICES_SUPPLEMENT_JSON).unwrap_or(Value::Null);
            c.add_devices(extra.get("configs").and_then(|c| c.get("devices")), false);
            c
        })
    }

    /// A catalogue from the answer of `GET /1.0/metadata/configuration`
    /// (its `metadata`), or from the recorded file. `None` when it holds no
    /// instance keys (not a catalogue).
    pub fn from_metadata(v: &Value) -> Option<Catalogue> {
        let configs = v.get("configs")?;
        let mut c = Catalogue {
            server_version: v
                .get("server_version")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Catalogue::default()
        };
        for section in ["instance", "kernel"] {
            for key in keys_of(configs.get(section)) {
                c.instance.insert(&key);
            }
        }
        if c.instance.exact.is_empty() {
            return None;
        }
        for p in INSTANCE_PREFIXES {
            c.instance.insert(p);
        }
        for key in keys_of(configs.get("project")) {
            c.project.insert(&key);
        }
        c.add_devices(configs.get("devices"), true);
        Some(c)
    }

    /// Add the device types of a `devices` section; with `replace` false,
    /// only those the catalogue does not describe yet.
    fn add_devices(&mut self, devices: Option<&Value>, replace: bool) {
        let Some(Value::Object(devices)) = devices else {
            return;
        };
        let known: BTreeSet<String> = self.devices.keys().cloned().collect();
        for (name, group) in devices {
            for t in device_types(name) {
                if !replace && known.contains(t) {
                    continue;
                }
                let keys = self.devices.entry(t.to_string()).or_default();
                keys.insert("type");
                if let Some(sel) = selector(t) {
                    keys.insert(sel);
                }
                for key in keys_in_group(group) {
                    keys.insert(&key);
                }
            }
        }
    }

    /// The keys of a scope named exactly (no pattern), sorted.
    pub fn exact_keys(&self, scope: Scope<'_>) -> Vec<&str> {
        let keys = match scope {
            Scope::Instance => &self.instance,
            Scope::Project => &self.project,
            Scope::Device(t) => match self.devices.get(t) {
                Some(k) => k,
                None => return Vec::new(),
            },
        };
        keys.exact.iter().map(String::as_str).collect()
    }

    /// Whether two catalogues know the same keys (whatever server version
    /// they name).
    pub fn same_keys(&self, other: &Catalogue) -> bool {
        (&self.instance, &self.project, &self.devices)
            == (&other.instance, &other.project, &other.devices)
    }

    /// Whether the catalogue describes this device type's options.
    pub fn describes_device(&self, device_type: &str) -> bool {
        self.devices.contains_key(device_type)
    }

    /// Check one key.
    pub fn check(&self, scope: Scope<'_>, key: &str) -> Verdict {
        let keys = match scope {
            Scope::Instance => &self.instance,
            Scope::Project => &self.project,
            Scope::Device(t) => match self.devices.get(t) {
                Some(k) => k,
                None => return Verdict::Unchecked,
            },
        };
        if keys.contains(key) {
            return Verdict::Known;
        }
        Verdict::Unknown {
            suggestion: closest(key, keys.names()),
        }
    }
}

/// Key names in a section: `{group: {key: meta}}` (recorded file) or
/// `{group: {keys: [{key: meta}]}}` (the server's answer).
fn keys_of(section: Option<&Value>) -> Vec<String> {
    match section {
        Some(Value::Object(groups)) => groups.values().flat_map(keys_in_group).collect(),
        _ => Vec::new(),
    }
}

fn keys_in_group(group: &Value) -> Vec<String> {
    match group.get("keys") {
        Some(Value::Array(entries)) => entries
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|o| o.keys().cloned())
            .collect(),
        _ => group
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// The candidate closest to `key` (Jaro-Winkler, which weighs the common
/// prefix: `limits.cpus` → `limits.cpu`), when it is likely a typo of it.
fn closest(key: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    const MIN_SIMILARITY: f64 = 0.85;
    candidates
        .map(|c| (strsim::jaro_winkler(key, &c), c))
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(&a.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> &'static Catalogue {
        Catalogue::recorded()
    }

    #[test]
    fn the_recorded_catalogue_is_incus_6_0() {
        let c = c();
        assert!(c.server_version.as_deref().unwrap().starts_with("6.0"));
        assert_eq!(c.check(Scope::Instance, "limits.cpu"), Verdict::Known);
        assert_eq!(c.check(Scope::Project, "features.images"), Verdict::Known);
    }

    #[test]
    fn a_typo_is_unknown_with_the_key_meant() {
        assert_eq!(
            c().check(Scope::Instance, "limits.cpus"),
            Verdict::Unknown {
                suggestion: Some("limits.cpu".into())
            }
        );
        assert_eq!(
            c().check(Scope::Instance, "security.nestin"),
            Verdict::Unknown {
                suggestion: Some("security.nesting".into())
            }
        );
        assert_eq!(
            c().check(Scope::Device("disk"), "readonyl"),
            Verdict::Unknown {
                suggestion: Some("readonly".into())
            }
        );
        assert_eq!(
            c().check(Scope::Instance, "zzz.qqq"),
            Verdict::Unknown { suggestion: None }
        );
    }

    #[test]
    fn patterns_match_what_incus_accepts_by_prefix() {
        for key in [
            "user.anything.at.all",
            "environment.HTTP_PROXY",
            "linux.sysctl.net.ipv4.ip_forward",
            "limits.kernel.nofile",
            "limits.kernel.anything",
            "image.os",
            "volatile.eth0.hwaddr",
        ] {
            assert_eq!(c().check(Scope::Instance, key), Verdict::Known, "{key}");
        }
        assert_eq!(
            c().check(Scope::Project, "limits.disk.pool.default"),
            Verdict::Known
        );
        // A pattern needs its segments: `user.` alone, or a placeholder
        // left empty, is not a key.
        for key in ["user.", "user", "volatile..hwaddr", "environment"] {
            assert!(
                matches!(c().check(Scope::Instance, key), Verdict::Unknown { .. }),
                "{key}"
            );
        }
    }

    #[test]
    fn devices_are_checked_only_for_the_types_the_catalogue_describes() {
        let c = c();
        assert_eq!(c.check(Scope::Device("disk"), "type"), Verdict::Known);
        assert_eq!(c.check(Scope::Device("unix-char"), "major"), Verdict::Known);
        assert_eq!(
            c.check(Scope::Device("unix-block"), "minor"),
            Verdict::Known
        );
        assert_eq!(
            c.check(Scope::Device("none"), "whatever"),
            Verdict::Unchecked
        );
        assert!(!c.describes_device("none"));
        // From the 6.0.6 supplement: nic and gpu, their variants merged.
        for (t, key) in [
            ("nic", "nictype"),
            ("nic", "parent"),
            ("nic", "ipv4.address"),
            ("nic", "mode"),
            ("gpu", "gputype"),
            ("gpu", "pci"),
            ("proxy", "listen"),
        ] {
            assert_eq!(c.check(Scope::Device(t), key), Verdict::Known, "{t} {key}");
        }
        assert_eq!(
            c.check(Scope::Device("nic"), "ipv4.adress"),
            Verdict::Unknown {
                suggestion: Some("ipv4.address".into())
            }
        );
        assert_eq!(
            c.check(Scope::Device("gpu"), "pcii"),
            Verdict::Unknown {
                suggestion: Some("pci".into())
            }
        );
    }

    #[test]
    fn the_live_answer_shape_reads_the_same_as_the_recorded_one() {
        let live: Value = serde_json::json!({"configs": {
            "instance": {"resource-limits": {"keys": [{"limits.cpu": {"type": "string"}}]}},
            "devices": {"usb": {"keys": [{"vendorid": {}}]}},
        }});
        let c = Catalogue::from_metadata(&live).unwrap();
        assert_eq!(c.check(Scope::Instance, "limits.cpu"), Verdict::Known);
        assert_eq!(c.check(Scope::Instance, "image.os"), Verdict::Known);
        assert_eq!(c.check(Scope::Device("usb"), "vendorid"), Verdict::Known);
        assert!(matches!(
            c.check(Scope::Instance, "limits.cpus"),
            Verdict::Unknown { .. }
        ));
        assert_eq!(Catalogue::from_metadata(&serde_json::json!({})), None);
    }
}
