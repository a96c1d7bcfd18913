//! Isolation proven with packets: three domains of busybox containers, the
//! ruleset loaded by `anklume apply`, and real connections (busybox `nc`,
//! `ping`) between them. Prints the matrix it measured.
//!
//! Needs root, a running Incus (scripts/incus-setup.sh) and `nft`; skipped
//! without a daemon unless `ANKLUME_REQUIRE_INCUS=1`. It owns the host's
//! `inet anklume` table while it runs and deletes it at the end.

mod common;

use std::path::Path;
use std::process::Command;

use anklume_executor::Incus;
use common::{anklume, incus_available, live, text as show, IMAGE};
const DOMAINS: [&str; 3] = ["ztx", "zty", "ztz"];

fn infra(with_bidirectional: bool) -> String {
    let bidi = if with_bidirectional {
        "  - description: \"ztx-1 and ztz-2 talk freely\"\n    from: ztx-1\n    to: ztz-2\n    ports: all\n    bidirectional: true\n"
    } else {
        ""
    };
    format!(
        r#"project_name: isolation
global:
  addressing: {{zone_base: 207}}
  default_os_image: {IMAGE}
network_policies:
  - description: "zty reaches the ztx web port"
    from: zty
    to: ztx
    ports: [8080]
  - description: "only zty-1 reaches ztz-1 on 2222"
    from: zty-1
    to: ztz-1
    ports: [2222]
{bidi}domains:
  ztx:
    trust_level: admin
    ephemeral: true
    machines: {{ztx-1: {{}}, ztx-2: {{}}}}
  zty:
    trust_level: admin
    ephemeral: true
    machines: {{zty-1: {{}}, zty-2: {{}}}}
  ztz:
    trust_level: admin
    ephemeral: true
    machines: {{ztz-1: {{}}, ztz-2: {{}}}}
"#
    )
}

/// Address of a machine: domain index = third octet (names sort ztx, zty, ztz).
fn addr(machine: &str) -> String {
    let d = DOMAINS.iter().position(|d| machine.starts_with(d)).unwrap();
    let host = &machine[machine.len() - 1..];
    format!("10.207.{d}.{host}")
}

async fn exec(incus: &Incus, machine: &str, cmd: &str) -> i64 {
    live::exec(incus, &machine[..3], machine, cmd).await
}

async fn cleanup(incus: &Incus) {
    live::cleanup(incus, &DOMAINS).await;
    live::delete_nft_table();
}

/// One probe: can `from` open a TCP connection to `to:port` (or ping it)?
async fn probe(incus: &Incus, from: &str, to: &str, port: Option<u16>) -> bool {
    let target = addr(to);
    let cmd = match port {
        Some(p) => format!("nc -w 2 {target} {p} </dev/null >/dev/null 2>&1"),
        None => format!("ping -c 1 -W 2 {target} >/dev/null 2>&1"),
    };
    exec(incus, from, &cmd).await == 0
}

#[test]
fn isolation_matrix_with_real_traffic() {
    if !incus_available() {
        return;
    }
    let incus = Incus::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(cleanup(&incus));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), infra(true)).unwrap();
    let o = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("created nftables/anklume"),
        "{}",
        show(&o)
    );

    let machines = ["ztx-1", "ztx-2", "zty-1", "zty-2", "ztz-1", "ztz-2"];
    rt.block_on(async {
        // The test image has no DHCP client: set the planned addresses inside.
        for m in machines {
            let a = addr(m);
            let gw = format!("{}.254", &a[..a.rfind('.').unwrap()]);
            let rc = exec(&incus, m, &format!("ip link set eth0 up && ip addr add {a}/24 dev eth0 && ip route add default via {gw}")).await;
            assert_eq!(rc, 0, "network setup in {m}");
            for port in [8080, 2222, 9090] {
                let rc = exec(&incus, m, &format!("nc -ll -p {port} -e /bin/true </dev/null >/dev/null 2>&1 &")).await;
                assert_eq!(rc, 0, "listener {port} in {m}");
            }
        }
    });

    // (from, to, port or ping, expected)
    let expectations: Vec<(&str, &str, Option<u16>, bool, &str)> = vec![
        ("ztx-2", "ztx-1", Some(8080), true, "same domain"),
        ("ztx-2", "ztx-1", None, true, "same domain ping"),
        (
            "ztx-1",
            "zty-1",
            Some(8080),
            false,
            "cross-domain, no policy",
        ),
        (
            "ztx-1",
            "zty-1",
            None,
            false,
            "cross-domain ping, no policy",
        ),
        ("zty-2", "ztx-1", Some(8080), true, "policy port"),
        (
            "zty-2",
            "ztx-2",
            Some(8080),
            true,
            "policy port, whole domain",
        ),
        ("zty-2", "ztx-1", Some(9090), false, "another port"),
        ("ztx-1", "zty-2", Some(8080), false, "policy is one-way"),
        ("zty-1", "ztz-1", Some(2222), true, "machine policy"),
        (
            "zty-2",
            "ztz-1",
            Some(2222),
            false,
            "machine policy, other source",
        ),
        (
            "zty-1",
            "ztz-2",
            Some(2222),
            false,
            "machine policy, other target",
        ),
        ("ztx-1", "ztz-2", Some(9090), true, "bidirectional, forward"),
        ("ztz-2", "ztx-1", Some(9090), true, "bidirectional, reverse"),
        ("ztx-1", "ztz-2", None, true, "ports: all includes ping"),
        (
            "ztx-2",
            "ztz-2",
            Some(9090),
            false,
            "bidirectional is machine-level",
        ),
    ];
    let mut failures = Vec::new();
    let mut matrix = String::from("isolation matrix (from -> to: expected / measured):\n");
    rt.block_on(async {
        for (from, to, port, want, what) in &expectations {
            let got = probe(&incus, from, to, *port).await;
            let p = port.map_or("ping".to_string(), |p| format!("tcp/{p}"));
            matrix.push_str(&format!(
                "  {from:6} -> {to:6} {p:9} expected {:5} measured {:5}  {what}\n",
                if *want { "open" } else { "drop" },
                if got { "open" } else { "drop" }
            ));
            if got != *want {
                failures.push(format!(
                    "{from} -> {to} {p}: expected {want}, got {got} ({what})"
                ));
            }
        }
    });

    // Removing the bidirectional policy and re-applying closes that path.
    std::fs::write(dir.path().join("infra.yml"), infra(false)).unwrap();
    let o = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let dry = anklume(dir.path(), &["apply", "plan.bin", "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry_out.contains("~ nftables/anklume update"), "{dry_out}");
    assert!(
        dry_out.contains("ip saddr 10.207.0.1 ip daddr 10.207.2.2 accept"),
        "the rule diff names the removed rule: {dry_out}"
    );
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    rt.block_on(async {
        for (from, to) in [("ztx-1", "ztz-2"), ("ztz-2", "ztx-1")] {
            let got = probe(&incus, from, to, Some(9090)).await;
            matrix.push_str(&format!(
                "  {from:6} -> {to:6} tcp/9090  expected drop  measured {:5}  after removing the policy\n",
                if got { "open" } else { "drop" }
            ));
            if got {
                failures.push(format!("{from} -> {to} tcp/9090 still open after removing the policy"));
            }
        }
    });
    // Converged: the ruleset is unchanged on a second apply.
    let o = anklume(
        dir.path(),
        &["apply", "plan.bin", "--yes", "--format", "json"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("\"id\":\"nftables/anklume\"")
                && l.contains("\"result\":\"unchanged\"")),
        "{out}"
    );
    // A table changed by hand is drift: apply puts the planned one back.
    let flushed = Command::new("nft")
        .args(["flush", "chain", "inet", "anklume", "isolation"])
        .output()
        .unwrap();
    assert!(flushed.status.success());
    let dry = anklume(dir.path(), &["apply", "plan.bin", "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry_out.contains("table: \"changed outside anklume\" -> \"as planned\""),
        "{dry_out}"
    );
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let got = rt.block_on(probe(&incus, "ztx-1", "zty-1", Some(8080)));
    matrix.push_str(&format!(
        "  ztx-1  -> zty-1  tcp/8080  expected drop  measured {:5}  after a hand flush and re-apply\n",
        if got { "open" } else { "drop" }
    ));
    if got {
        failures.push("ztx-1 -> zty-1 open after the flushed table was re-applied".into());
    }
    println!("{matrix}");
    // Shown by scripts/test.sh after the run (cargo captures test output).
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("isolation-matrix.txt"),
        &matrix,
    );
    rt.block_on(cleanup(&incus));
    assert!(failures.is_empty(), "{matrix}\n{}", failures.join("\n"));
}
