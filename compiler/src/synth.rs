//! Synthetic infrastructures for benchmarks and tests: `domains` domains of
//! `machines` machines each, with network policies, shared volumes,
//! persistent data, profiles and a mix of containers and VMs. Deterministic.

use std::fmt::Write;

use anklume_schema::ast::TRUST_LEVELS;

/// The YAML text of a synthetic infrastructure (zone addressing).
pub fn infra_yaml(domains: usize, machines: usize) -> String {
    let mut s = String::with_capacity(domains * machines * 160);
    s.push_str("project_name: synthetic\nglobal:\n  addressing:\n    zone_base: 100\n");
    s.push_str("  default_os_image: \"images:debian/13\"\n  default_connection: community.general.incus\n  default_user: root\n");
    s.push_str("shared_volumes:\n");
    for v in 0..domains.div_ceil(10) {
        let _ = writeln!(s, "  share-{v}:\n    consumers:");
        let _ = writeln!(s, "      d{}: ro", v * 10);
        if v * 10 + 1 < domains {
            let _ = writeln!(s, "      d{}: rw", v * 10 + 1);
        }
        if machines > 0 {
            let _ = writeln!(s, "      d{}-m0: rw", v * 10);
        }
    }
    s.push_str("network_policies:\n");
    for d in 0..domains {
        let to = (d + 1) % domains;
        let _ = writeln!(
            s,
            "  - description: \"d{d} reaches d{to} web\"\n    from: d{d}\n    to: d{to}\n    ports: [80, 443]\n    protocol: tcp"
        );
        if machines > 1 && d % 4 == 0 {
            let _ = writeln!(
                s,
                "  - description: \"d{d}-m1 reaches d{to}-m0 database\"\n    from: d{d}-m1\n    to: d{to}-m0\n    ports: [5432]\n    bidirectional: true"
            );
        }
    }
    s.push_str("domains:\n");
    for d in 0..domains {
        let zone = TRUST_LEVELS[d % TRUST_LEVELS.len()];
        let _ = writeln!(
            s,
            "  d{d}:\n    description: \"Synthetic domain {d}\"\n    trust_level: {zone}\n    ephemeral: {}\n    profiles:\n      big:\n        config:\n          limits.cpu: \"4\"\n    machines:",
            d % 3 == 0
        );
        for m in 0..machines {
            let kind = if m % 4 == 3 { "vm" } else { "lxc" };
            let _ = writeln!(
                s,
                "      d{d}-m{m}:\n        description: \"Machine {m} of domain {d}\"\n        type: {kind}\n        roles: [base_system]"
            );
            if m % 5 == 0 {
                s.push_str("        profiles: [default, big]\n");
            }
            if m % 7 == 0 {
                let _ = writeln!(
                    s,
                    "        persistent_data:\n          data:\n            path: /srv/data\n        config:\n          security.nesting: \"true\""
                );
            }
            if m % 10 == 9 {
                s.push_str("        boot_autostart: true\n        boot_priority: 10\n        snapshots_schedule: \"0 2 * * *\"\n        snapshots_expiry: 30d\n");
            }
        }
    }
    s
}
