//! The `PLAY RECAP` of `ansible-playbook`'s default output: one line per
//! host, `host : ok=5 changed=1 unreachable=0 failed=0 skipped=2 rescued=0
//! ignored=0`.

use std::collections::BTreeMap;

/// One host's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HostRecap {
    /// Tasks ok (changed included).
    pub ok: u32,
    /// Tasks that changed something.
    pub changed: u32,
    /// Unreachable.
    pub unreachable: u32,
    /// Failed tasks.
    pub failed: u32,
    /// Skipped tasks.
    pub skipped: u32,
    /// Failures a `rescue` handled.
    pub rescued: u32,
}

/// Every host of the last `PLAY RECAP` in `out`.
pub fn parse(out: &str) -> BTreeMap<String, HostRecap> {
    let mut recaps = BTreeMap::new();
    let Some(start) = out.rfind("PLAY RECAP") else {
        return recaps;
    };
    for line in out[start..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let mut r = HostRecap::default();
        let mut seen = false;
        for kv in counts.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u32>() else { continue };
            seen = true;
            match k {
                "ok" => r.ok = v,
                "changed" => r.changed = v,
                "unreachable" => r.unreachable = v,
                "failed" => r.failed = v,
                "skipped" => r.skipped = v,
                "rescued" => r.rescued = v,
                _ => {}
            }
        }
        if seen {
            recaps.insert(host.trim().to_string(), r);
        }
    }
    recaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_recap_is_read_per_host() {
        let out = "PLAY [provision] ***\n\nTASK [x] ***\nok: [a]\n\nPLAY RECAP *********\n\
a                          : ok=5    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0\n\
b-2                        : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0\n\n";
        let r = parse(out);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r["a"],
            HostRecap {
                ok: 5,
                changed: 1,
                unreachable: 0,
                failed: 0,
                skipped: 2,
                rescued: 0
            }
        );
        assert_eq!(r["b-2"].failed, 1);
        assert!(parse("no recap here").is_empty());
    }
}
