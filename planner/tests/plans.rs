//! Planner behaviour on real inputs: graph shape, determinism, minimal RON
//! diffs, and plan.bin round trips.

use anklume_compiler::{compile, synth, HostFacts};
use anklume_plan::codec::{decode, encode, PlanFile};
use anklume_plan::{render, Kind, Plan, Resource};
use proptest::prelude::*;

fn facts() -> HostFacts {
    HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    }
}

fn plan_of(text: &str) -> Plan {
    let loaded = anklume_schema::load_str("infra.yml", text);
    let c = compile(&loaded, &facts());
    assert!(!c.has_errors(), "{:#?}", c.diags);
    anklume_planner::plan(&c.ir, &c.provenance, &loaded.sources).expect("plans")
}

fn corpus() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/corpus/v1-examples");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn phase_order_is_a_topological_order_and_ids_are_stable() {
    for (name, text) in corpus() {
        let p = plan_of(&text);
        for &(a, b) in &p.edges {
            assert!(
                a < b,
                "{name}: edge {} -> {} goes backwards",
                p.nodes[a as usize].id,
                p.nodes[b as usize].id
            );
        }
        let kinds: Vec<Kind> = p.nodes.iter().map(|n| n.resource.kind()).collect();
        assert!(
            kinds.windows(2).all(|w| w[0] <= w[1]),
            "{name}: phases out of order"
        );
        for n in &p.nodes {
            let prefix = format!("{}/", n.resource.kind().name());
            assert!(n.id.starts_with(&prefix), "{name}: {}", n.id);
            match &n.resource {
                Resource::Instance(i) => {
                    assert_eq!(n.id, format!("instance/{}/{}", i.project, i.name));
                    let deps: Vec<&str> = p
                        .edges
                        .iter()
                        .filter(|e| p.nodes[e.1 as usize].id == n.id)
                        .map(|e| p.nodes[e.0 as usize].id.as_str())
                        .collect();
                    assert!(
                        deps.contains(&format!("project/{}", i.project).as_str()),
                        "{name}: {} lacks its project",
                        n.id
                    );
                    assert!(
                        deps.iter().any(|d| d.starts_with("network/")),
                        "{name}: {} lacks its network",
                        n.id
                    );
                    assert!(i.config.contains_key("security.protection.delete"));
                }
                Resource::Provision(pr) => assert_eq!(n.id, format!("provision/{}", pr.host)),
                _ => {}
            }
        }
        assert_eq!(
            p.nodes
                .iter()
                .filter(|n| n.resource.kind() == Kind::Nftables)
                .count(),
            1
        );
    }
}

#[test]
fn domains_without_machines_get_a_project_and_a_bridge() {
    let p = plan_of("project_name: x\nglobal: {addressing: {}}\ndomains:\n  empty: {}\n  other:\n    machines:\n      o1: {}\n");
    assert!(p.node("project/empty").is_some());
    assert!(p.node("network/net-empty").is_some());
}

#[test]
fn machine_policies_narrow_to_the_address_and_host_policies_are_explained() {
    let p = plan_of(
        "project_name: x\nglobal: {addressing: {}}\nnetwork_policies:\n  - {from: a1, to: b, ports: [443]}\n  - {from: host, to: b1, ports: [22], description: admin ssh}\ndomains:\n  a:\n    machines: {a1: {}, a2: {}}\n  b:\n    machines: {b1: {}}\n",
    );
    let Resource::Nftables(t) = &p.node("nftables/anklume").unwrap().resource else {
        panic!("no ruleset")
    };
    let text = t.text();
    assert!(
        text.contains(
            "iifname \"net-a\" oifname \"net-b\" ip saddr 10.120.0.1 tcp dport { 443 } accept"
        ),
        "{text}"
    );
    assert!(
        !text.contains("iifname \"net-a\" oifname \"net-b\" accept"),
        "{text}"
    );
    assert!(
        text.contains("# (no forward rule: host -> b1 is host traffic"),
        "{text}"
    );
    assert_eq!(
        t.paths,
        vec![
            "a1 -> b tcp/443",
            "host -> b1 tcp/22 (host traffic, not filtered by anklume)"
        ]
    );
}

#[test]
fn icmp_policies_open_icmp_of_both_families_and_nothing_else() {
    let p = plan_of(
        "project_name: x\nglobal: {addressing: {}}\nnetwork_policies:\n  - {from: a, to: b, protocol: icmp}\n  - {from: a1, to: b1, protocol: icmp, ports: all, bidirectional: true}\n  - {from: b, to: a, ports: all, protocol: udp}\ndomains:\n  a:\n    machines: {a1: {}}\n  b:\n    machines: {b1: {}}\n",
    );
    let Resource::Nftables(t) = &p.node("nftables/anklume").unwrap().resource else {
        panic!("no ruleset")
    };
    let rules: Vec<&str> = t
        .lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.ends_with(" accept") && l.contains("oifname \"net-"))
        .filter(|l| !l.starts_with("iifname \"net-a\" oifname \"net-a\""))
        .filter(|l| !l.starts_with("iifname \"net-b\" oifname \"net-b\""))
        .collect();
    assert_eq!(
        rules,
        vec![
            "iifname \"net-a\" oifname \"net-b\" meta l4proto { icmp, ipv6-icmp } accept",
            "iifname \"net-a\" oifname \"net-b\" ip saddr 10.120.0.1 ip daddr 10.120.1.1 meta l4proto { icmp, ipv6-icmp } accept",
            "iifname \"net-b\" oifname \"net-a\" ip saddr 10.120.1.1 ip daddr 10.120.0.1 meta l4proto { icmp, ipv6-icmp } accept",
            // `ports: all` with tcp or udp still opens every protocol (v1).
            "iifname \"net-b\" oifname \"net-a\" accept",
        ],
        "{}",
        t.text()
    );
    assert_eq!(
        t.paths,
        vec![
            "a -> b icmp",
            "a1 -> b1 icmp",
            "b1 -> a1 icmp",
            "b -> a all"
        ]
    );
}

#[test]
fn one_config_change_in_200_domains_touches_only_that_machines_ron_lines() {
    let base = synth::infra_yaml(200, 5);
    let needle = "      d123-m2:\n        description: \"Machine 2 of domain 123\"\n";
    assert!(base.contains(needle));
    let changed = base.replace(
        needle,
        &format!("{needle}        config:\n          limits.cpu: \"3\"\n"),
    );
    let a = render::ron(&plan_of(&base));
    let b = render::ron(&plan_of(&changed));
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    assert_eq!(bl.len(), al.len() + 1, "one line added");
    let first = al
        .iter()
        .zip(&bl)
        .position(|(x, y)| x != y)
        .expect("a difference");
    assert_eq!(&al[first..], &bl[first + 1..], "only one line inserted");
    assert_eq!(bl[first].trim(), "\"limits.cpu\": \"3\",");
    let owner = bl[..first]
        .iter()
        .rev()
        .find(|l| l.starts_with("  \""))
        .unwrap();
    assert_eq!(owner.trim(), "\"instance/d123/d123-m2\": NodeView(");
}

#[test]
fn plans_are_deterministic() {
    let text = synth::infra_yaml(20, 10);
    let f = |p: Plan| {
        encode(&PlanFile {
            header: Default::default(),
            plan: p,
        })
    };
    assert_eq!(f(plan_of(&text)), f(plan_of(&text)));
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    (1usize..6, 0usize..6, any::<bool>()).prop_map(|(d, m, pol)| {
        let mut text = synth::infra_yaml(d, m);
        if !pol {
            text = text.replace("network_policies:\n", "network_policies: []\nx_unused:\n");
            let start = text.find("x_unused:\n").unwrap();
            let end = text.find("domains:\n").unwrap();
            text.replace_range(start..end, "");
        }
        plan_of(&text)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip(p in arb_plan(), version in "[0-9.]{1,8}") {
        let file = PlanFile { header: anklume_plan::codec::Header { anklume_version: version, ..Default::default() }, plan: p };
        let bytes = encode(&file);
        prop_assert_eq!(decode(&bytes).unwrap(), file);
    }

    #[test]
    fn decoding_damaged_plans_never_panics(p in arb_plan(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = encode(&PlanFile { header: Default::default(), plan: p });
        let _ = decode(&bytes[..cut.index(bytes.len())]);
        let mut damaged = bytes.clone();
        let i = flip.index(damaged.len());
        damaged[i] ^= 1 << bit;
        prop_assert!(decode(&damaged).is_err());
    }
}
