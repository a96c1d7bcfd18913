//! Property tests over generated infrastructures: addressing invariants,
//! determinism, sync idempotence and survival of user content.

use std::collections::HashSet;
use std::fmt::Write as _;

use anklume_compiler::ansible::sync::{sync, FileStatus, SyncOptions};
use anklume_compiler::{compile, HostFacts};
use anklume_schema::ast::TRUST_LEVELS;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Gen {
    legacy: bool,
    domains: Vec<GenDomain>,
    policies: Vec<(usize, usize, Option<u16>)>,
}

#[derive(Debug, Clone)]
struct GenDomain {
    zone: usize,
    enabled: bool,
    openclaw: bool,
    /// For each machine: an explicit host part, if any, and whether it is a VM.
    machines: Vec<(Option<u8>, bool)>,
}

fn gen() -> impl Strategy<Value = Gen> {
    let domain = (
        0..5usize,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.2),
        prop::collection::vec(
            (prop::option::weighted(0.3, 1u8..=99), any::<bool>()),
            0..12,
        ),
    )
        .prop_map(|(zone, enabled, openclaw, machines)| GenDomain {
            zone,
            enabled,
            openclaw,
            machines,
        });
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(domain, 1..8),
        prop::collection::vec((0..8usize, 0..8usize, prop::option::of(1u16..=65535)), 0..6),
    )
        .prop_map(|(legacy, domains, policies)| Gen {
            legacy,
            domains,
            policies,
        })
}

fn render(g: &Gen) -> String {
    let mut s = String::from("project_name: prop\nglobal:\n");
    if g.legacy {
        s.push_str("  base_subnet: \"10.100\"\n");
    } else {
        s.push_str("  addressing: {}\n");
    }
    s.push_str("  default_os_image: \"images:debian/13\"\n");
    if !g.policies.is_empty() {
        s.push_str("network_policies:\n");
        for (from, to, port) in &g.policies {
            let from = from % g.domains.len();
            let to = to % g.domains.len();
            let _ = write!(s, "  - from: d{from}\n    to: d{to}\n");
            match port {
                Some(p) => {
                    let _ = writeln!(s, "    ports: [{p}]");
                }
                None => s.push_str("    ports: all\n"),
            }
        }
    }
    s.push_str("domains:\n");
    for (di, d) in g.domains.iter().enumerate() {
        let _ = writeln!(s, "  d{di}:");
        if g.legacy {
            let _ = writeln!(s, "    subnet_id: {di}");
        } else {
            let _ = writeln!(s, "    trust_level: {}", TRUST_LEVELS[d.zone]);
        }
        let _ = writeln!(
            s,
            "    enabled: {}\n    openclaw: {}",
            d.enabled, d.openclaw
        );
        s.push_str("    machines:\n");
        let mut used = HashSet::new();
        for (mi, (host, vm)) in d.machines.iter().enumerate() {
            let _ = writeln!(
                s,
                "      d{di}-m{mi}:\n        type: {}",
                if *vm { "vm" } else { "lxc" }
            );
            let host = match (host, g.legacy) {
                (Some(h), _) if used.insert(*h) => Some(*h),
                // Legacy mode has no auto addresses: give every machine one.
                (_, true) => (100u8..250).find(|h| used.insert(*h)),
                _ => None,
            };
            if let Some(h) = host {
                let _ = writeln!(s, "        ip: \"{}.{h}\"", subnet_prefix(g, di));
            }
        }
    }
    s
}

/// The first three octets the compiler must give domain `di`.
fn subnet_prefix(g: &Gen, di: usize) -> String {
    if g.legacy {
        return format!("10.100.{di}");
    }
    let zone = g.domains[di].zone;
    let offset = [0, 10, 20, 40, 50][zone];
    // Sequence numbers follow the names' code-point order within a zone.
    let mut names: Vec<String> = (0..g.domains.len())
        .filter(|&i| g.domains[i].zone == zone)
        .map(|i| format!("d{i}"))
        .collect();
    names.sort();
    let seq = names
        .iter()
        .position(|n| *n == format!("d{di}"))
        .expect("own zone");
    format!("10.{}.{seq}", 100 + offset)
}

fn facts() -> HostFacts {
    HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn addressing_invariants_and_determinism(g in gen()) {
        let text = render(&g);
        let loaded = anklume_schema::load_str("infra.yml", &text);
        let c = compile(&loaded, &facts());
        prop_assert!(!c.has_errors(), "{text}\n{:#?}", c.diags);
        let mut seen = HashSet::new();
        for (di, d) in c.ir.domains.iter().enumerate() {
            let prefix = subnet_prefix(&g, di);
            prop_assert_eq!(d.cidr(), format!("{prefix}.0/24"));
            for (mi, m) in d.machines.iter().enumerate() {
                let Some(ip) = &m.ip else {
                    prop_assert!(g.legacy && m.auto, "{} has no address", m.name);
                    continue;
                };
                prop_assert!(seen.insert(ip.clone()), "duplicate address {ip}");
                let host: u32 = ip.strip_prefix(&format!("{prefix}.")).expect("in subnet").parse().unwrap();
                let declared = g.domains[di].machines.get(mi).is_some_and(|(h, _)| h.is_some()) || g.legacy;
                if !declared || m.auto {
                    prop_assert!((1..=99).contains(&host), "auto address {ip} outside .1-.99");
                }
            }
        }
        let again = compile(&anklume_schema::load_str("infra.yml", &text), &facts());
        prop_assert_eq!(&c.ir, &again.ir);
        prop_assert_eq!(&c.diags, &again.diags);
    }

    #[test]
    fn sync_is_idempotent_and_keeps_user_content(
        g in gen(),
        before in "[a-z_]{1,8}: [a-zA-Z0-9 ]{0,20}",
        after in "[a-z_]{1,8}: [a-zA-Z0-9 \\\\$]{0,20}",
    ) {
        let text = render(&g);
        let c = compile(&anklume_schema::load_str("infra.yml", &text), &facts());
        prop_assert!(!c.has_errors());
        let dir = tempfile::tempdir().unwrap();
        let opts = SyncOptions { base_dir: dir.path().to_path_buf(), ..SyncOptions::default() };
        // Put user content in some files before the first sync: one without
        // markers, one around an old managed block.
        std::fs::create_dir_all(dir.path().join("group_vars")).unwrap();
        let all = dir.path().join("group_vars/all.yml");
        std::fs::write(&all, format!("{before}\n")).unwrap();
        let d0 = dir.path().join("group_vars/d0.yml");
        std::fs::write(&d0, format!("---\n{before}\n# === MANAGED BY infra.yml ===\nold: 1\n# === END MANAGED ===\n{after}\n")).unwrap();
        let first = sync(&c.ir, &opts).unwrap();
        prop_assert!(first.files.iter().all(|(_, s)| *s == FileStatus::Written));
        let snapshot: Vec<(String, Vec<u8>)> = first
            .files
            .iter()
            .map(|(p, _)| (p.clone(), std::fs::read(dir.path().join(p)).unwrap()))
            .collect();
        let all_text = std::fs::read_to_string(&all).unwrap();
        prop_assert!(all_text.ends_with(&format!("{before}\n")), "{all_text}");
        if g.domains[0].enabled {
            let d0_text = std::fs::read_to_string(&d0).unwrap();
            prop_assert!(d0_text.starts_with(&format!("---\n{before}\n# === MANAGED BY infra.yml ===\n")), "{d0_text}");
            prop_assert!(d0_text.ends_with(&format!("# === END MANAGED ===\n{after}\n")), "{d0_text}");
            prop_assert!(!d0_text.contains("old: 1"));
        }
        let second = sync(&c.ir, &opts).unwrap();
        prop_assert!(second.files.iter().all(|(_, s)| *s == FileStatus::Unchanged));
        for (p, bytes) in snapshot {
            prop_assert_eq!(std::fs::read(dir.path().join(&p)).unwrap(), bytes, "{} changed", p);
        }
    }
}

/// The parallel parse of large files gives exactly the sequential tree.
#[test]
fn parallel_parse_matches_sequential_parse_on_a_large_infrastructure() {
    use anklume_schema::yaml::{parse, parse_fast};
    let text = anklume_compiler::synth::infra_yaml(200, 50);
    let id = anklume_schema::FileId(0);
    assert_eq!(parse_fast(id, &text).unwrap(), parse(id, &text).unwrap());
}
