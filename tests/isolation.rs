//! Isolation proven with packets: three domains of busybox containers, the
//! ruleset loaded by `anklume apply`, and real connections (busybox `nc`,
//! `ping`) between them. Every probe expected to be dropped has a positive
//! control: the same listener reached from an allowed side in the same run,
//! so broken routing cannot pass for isolation. Prints the matrix it
//! measured.
//!
//! Needs root, a running Incus (scripts/incus-setup.sh) and `nft`; skipped
//! without a daemon unless `ANKLUME_REQUIRE_INCUS=1`. It loads its own
//! `inet anklume` table while it runs and deletes it at the end; it refuses
//! to run when the host has a table (or other anklume state) it did not
//! create (`common::live::daemon`, `common::live::claim_nft_table`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anklume_executor::Incus;
use common::{anklume, incus_available, live, text as show, IMAGE};

const DOMAINS: [&str; 3] = ["ankt-x", "ankt-y", "ankt-z"];

/// One test at a time: both load or inspect the host's `inet anklume` table.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn infra(with_bidirectional: bool) -> String {
    let bidi = if with_bidirectional {
        "  - description: \"ankt-x1 and ankt-z2 talk freely\"\n    from: ankt-x1\n    to: ankt-z2\n    ports: all\n    bidirectional: true\n"
    } else {
        ""
    };
    format!(
        r#"project_name: isolation
global:
  addressing: {{zone_base: 207}}
  default_os_image: {IMAGE}
network_policies:
  - description: "ankt-y reaches the ankt-x web port"
    from: ankt-y
    to: ankt-x
    ports: [8080]
  - description: "only ankt-y1 reaches ankt-z1 on 2222"
    from: ankt-y1
    to: ankt-z1
    ports: [2222]
  - description: "ankt-z pings ankt-y"
    from: ankt-z
    to: ankt-y
    protocol: icmp
{bidi}domains:
  ankt-x:
    trust_level: admin
    ephemeral: true
    machines: {{ankt-x1: {{}}, ankt-x2: {{}}}}
  ankt-y:
    trust_level: admin
    ephemeral: true
    machines: {{ankt-y1: {{}}, ankt-y2: {{}}}}
  ankt-z:
    trust_level: admin
    ephemeral: true
    machines: {{ankt-z1: {{}}, ankt-z2: {{}}}}
"#
    )
}

/// The domain of a machine: its name without the host number.
fn domain(machine: &str) -> &str {
    &machine[..machine.len() - 1]
}

/// Address of a machine: domain index = third octet (the domains sort in
/// `DOMAINS` order), host number = last octet.
fn addr(machine: &str) -> String {
    let d = DOMAINS.iter().position(|d| *d == domain(machine)).unwrap();
    let host = &machine[machine.len() - 1..];
    format!("10.207.{d}.{host}")
}

async fn exec(incus: &Incus, machine: &str, cmd: &str) -> i64 {
    live::exec(incus, domain(machine), machine, cmd).await
}

async fn cleanup(incus: &Incus) {
    live::cleanup(incus, &DOMAINS).await;
    live::delete_nft_table();
}

/// Can `from` open a TCP connection to `to:port` (or ping it)?
async fn reach(incus: &Incus, from: &str, to: &str, port: Option<u16>) -> bool {
    let target = addr(to);
    let cmd = match port {
        Some(p) => format!("nc -w 2 {target} {p} </dev/null >/dev/null 2>&1"),
        None => format!("ping -c 1 -W 2 {target} >/dev/null 2>&1"),
    };
    exec(incus, from, &cmd).await == 0
}

/// What a probe expects. A drop names its positive control: a machine on a
/// side that is allowed to reach the same listener (same target, same port
/// or ping). The control is measured in the same run, and the drop counts
/// only when the control got through; so a drop cannot be written without
/// a control, and a target nobody reaches cannot pass for isolated.
#[derive(Clone, Copy)]
enum Want {
    Open,
    Drop { control: &'static str },
}

struct Probe {
    from: &'static str,
    to: &'static str,
    port: Option<u16>,
    want: Want,
    what: &'static str,
}

fn open(from: &'static str, to: &'static str, port: Option<u16>, what: &'static str) -> Probe {
    Probe {
        from,
        to,
        port,
        want: Want::Open,
        what,
    }
}

fn drop(
    from: &'static str,
    to: &'static str,
    port: Option<u16>,
    what: &'static str,
    control: &'static str,
) -> Probe {
    assert_ne!(from, control, "a control comes from another machine");
    assert_ne!(to, control, "a control comes from another machine");
    Probe {
        from,
        to,
        port,
        want: Want::Drop { control },
        what,
    }
}

/// Measure the probes; a matrix line per probe (and per control), and the
/// failures.
async fn measure(incus: &Incus, probes: &[Probe], matrix: &mut String, failures: &mut Vec<String>) {
    let word = |b: bool| if b { "open" } else { "drop" };
    for p in probes {
        let (from, to, what) = (p.from, p.to, p.what);
        let svc = p.port.map_or("ping".to_string(), |p| format!("tcp/{p}"));
        let control = match p.want {
            Want::Open => None,
            Want::Drop { control } => Some((control, reach(incus, control, to, p.port).await)),
        };
        let got = reach(incus, from, to, p.port).await;
        let want_open = matches!(p.want, Want::Open);
        matrix.push_str(&format!(
            "  {from:7} -> {to:7} {svc:9} expected {:5} measured {:5}  {what}\n",
            word(want_open),
            word(got)
        ));
        if let Some((c, c_got)) = control {
            matrix.push_str(&format!(
                "      control {c:7} -> {to:7} {svc:9} expected open  measured {:5}  (same listener, allowed side)\n",
                word(c_got)
            ));
            if !c_got {
                failures.push(format!(
                    "control {c} -> {to} {svc} failed: the drop of {from} -> {to} {svc} proves nothing ({what})"
                ));
                continue;
            }
        }
        if got != want_open {
            failures.push(format!(
                "{from} -> {to} {svc}: expected {}, got {} ({what})",
                word(want_open),
                word(got)
            ));
        }
    }
}

#[test]
fn isolation_matrix_with_real_traffic() {
    let _serial = serial();
    let Some(incus) = live::daemon() else {
        return;
    };
    let _nft = live::claim_nft_table().unwrap_or_else(|e| panic!("{e}"));
    let rt = live::rt();
    rt.block_on(cleanup(&incus));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), infra(true)).unwrap();
    let o = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = anklume(dir.path(), &["show", "plan.bin"]);
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        shown.contains("  ankt-z -> ankt-y icmp\n")
            && shown.contains("iifname \"net-ankt-z\" oifname \"net-ankt-y\" meta l4proto { icmp, ipv6-icmp } accept"),
        "{shown}"
    );
    let o = anklume(dir.path(), &["apply", "plan.bin", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("created nftables/anklume"),
        "{}",
        show(&o)
    );

    let machines = [
        "ankt-x1", "ankt-x2", "ankt-y1", "ankt-y2", "ankt-z1", "ankt-z2",
    ];
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

    let (x1, x2, y1, y2, z1, z2) = (
        "ankt-x1", "ankt-x2", "ankt-y1", "ankt-y2", "ankt-z1", "ankt-z2",
    );
    let probes = [
        open(x2, x1, Some(8080), "same domain"),
        open(x2, x1, None, "same domain ping"),
        drop(x1, y1, Some(8080), "cross-domain, no policy", y2),
        drop(x1, y1, None, "cross-domain ping, no policy", y2),
        open(y2, x1, Some(8080), "policy port"),
        open(y2, x2, Some(8080), "policy port, whole domain"),
        drop(y2, x1, Some(9090), "another port", x2),
        drop(x1, y2, Some(8080), "policy is one-way", y1),
        open(y1, z1, Some(2222), "machine policy"),
        drop(y2, z1, Some(2222), "machine policy, other source", y1),
        drop(y1, z2, Some(2222), "machine policy, other target", z1),
        open(x1, z2, Some(9090), "bidirectional, forward"),
        open(z2, x1, Some(9090), "bidirectional, reverse"),
        open(x1, z2, None, "ports: all includes ping"),
        drop(x2, z2, Some(9090), "bidirectional is machine-level", x1),
        open(z1, y1, None, "icmp policy: ping"),
        open(z2, y2, None, "icmp policy, whole domain"),
        drop(x2, y2, None, "no icmp policy from ankt-x: ping dropped", z2),
        drop(z1, y1, Some(9090), "icmp policy opens no tcp", y2),
        drop(
            y1,
            z1,
            None,
            "icmp policy is one-way; a tcp policy opens no ping",
            z2,
        ),
    ];
    let mut failures = Vec::new();
    let mut matrix = String::from(
        "isolation matrix (from -> to: expected / measured; each drop under its positive control):\n",
    );
    rt.block_on(measure(&incus, &probes, &mut matrix, &mut failures));

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
    matrix.push_str("  after removing the bidirectional policy:\n");
    let removed = [
        drop(x1, z2, Some(9090), "policy removed, forward", z1),
        drop(z2, x1, Some(9090), "policy removed, reverse", x2),
    ];
    rt.block_on(measure(&incus, &removed, &mut matrix, &mut failures));
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
    matrix.push_str("  after a hand flush of the table and a re-apply:\n");
    let reapplied = [
        drop(x1, y1, Some(8080), "cross-domain, no policy", y2),
        open(z1, y1, None, "icmp policy: ping"),
        drop(x1, y1, None, "cross-domain ping, no policy", z1),
    ];
    rt.block_on(measure(&incus, &reapplied, &mut matrix, &mut failures));
    println!("{matrix}");
    // Shown by scripts/test.sh after the run (cargo captures test output).
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("isolation-matrix.txt"),
        &matrix,
    );
    rt.block_on(cleanup(&incus));
    assert!(failures.is_empty(), "{matrix}\n{}", failures.join("\n"));
}

/// A table the tests loaded (a crashed run leaves one) is told from a
/// foreign one by the bridges it names.
#[test]
fn test_tables_are_told_from_foreign_ones() {
    let table = |rules: &str| {
        format!("table inet anklume {{\n\tchain isolation {{\n\t\ttype filter hook forward priority -1; policy accept;\n\t\tct state established,related accept\n{rules}\t}}\n}}\n")
    };
    let ours = table(
        "\t\tiifname \"net-ankt-x\" oifname \"net-ankt-x\" accept\n\t\tiifname { \"net-ankt-x\", \"net-ankt-y\" } oifname { \"net-ankt-x\", \"net-ankt-y\" } drop\n",
    );
    assert!(live::nft_table_is_tests(&ours), "{ours}");
    for foreign in [
        table("\t\tiifname \"net-pro\" oifname \"net-pro\" accept\n"),
        table("\t\tiifname { \"net-ankt-x\", \"net-pro\" } oifname { \"net-ankt-x\", \"net-pro\" } drop\n"),
        table("\t\tiifname \"001-net-ankt-x\" oifname \"001-net-ankt-x\" accept\n"),
        table("\t\tiifname \"net-ankt-\" oifname \"net-ankt-\" accept\n"),
        table(""),
    ] {
        assert!(!live::nft_table_is_tests(&foreign), "{foreign}");
    }
}

fn nft_load(text: &str) {
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success(), "nft -f failed on\n{text}");
}

/// With a foreign `inet anklume` table (one naming a bridge the tests did
/// not create, as on a real anklume host) the nft-loading tests refuse to
/// run and say how to run them, the tests' nft cleanup leaves the table
/// alone, and with the opt-in the table is put back after a test replaced
/// it. The decoy table is this test's own and is removed at the end.
#[test]
fn a_foreign_nft_table_makes_the_nft_tests_refuse_and_survives() {
    let _serial = serial();
    if !incus_available() {
        return;
    }
    if let Some(t) = live::nft_table() {
        assert!(
            live::nft_table_is_tests(&t),
            "{}",
            live::refusal(&["an `inet anklume` nftables table the tests did not create".into()])
        );
        live::delete_nft_table();
    }
    nft_load("table inet anklume {\n  chain isolation {\n    type filter hook forward priority -1; policy accept;\n    iifname \"net-pro\" oifname \"net-pro\" accept\n  }\n}\n");
    let foreign = live::nft_table().expect("the decoy table is loaded");
    let incus = Incus::from_env();
    let rt = live::rt();

    let refused = live::claim_nft_table_with(false).err();
    let deleted = live::delete_nft_table();
    rt.block_on(cleanup(&incus));
    let state = rt.block_on(live::foreign_state(&incus));
    let after_cleanup = live::nft_table();
    // With the opt-in: a test replaces the table, and the drop puts it back.
    let restored = {
        let claim = live::claim_nft_table_with(true);
        nft_load("table inet anklume\ndelete table inet anklume\ntable inet anklume {\n  chain isolation {\n    type filter hook forward priority -1; policy accept;\n    iifname \"net-ankt-x\" oifname \"net-ankt-x\" accept\n  }\n}\n");
        assert!(live::nft_table().is_some_and(|t| live::nft_table_is_tests(&t)));
        std::mem::drop(claim);
        live::nft_table()
    };
    // Remove the decoy.
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "anklume"])
        .output();

    let refused = refused.expect("the nft tests did not refuse a foreign table");
    assert!(
        refused.contains("refusing to run")
            && refused.contains("inet anklume")
            && refused.contains(common::ALLOW_FOREIGN),
        "{refused}"
    );
    assert!(!deleted, "the tests' nft cleanup deleted a foreign table");
    assert_eq!(
        after_cleanup.as_ref(),
        Some(&foreign),
        "the foreign table changed"
    );
    assert!(
        state.iter().any(|s| s.contains("inet anklume")),
        "the foreign table is not reported as foreign state: {state:?}"
    );
    assert_eq!(
        restored.as_ref(),
        Some(&foreign),
        "the opt-in did not put the foreign table back"
    );
}
