//! The `anklume-debian` image (`scripts/image-debian.sh`) on a real Incus
//! daemon, through anklume itself: plan and apply a domain of two machines
//! on the image (one with a static `ip:`, one with an address anklume
//! picks), then check from inside each instance that systemd is PID 1 and
//! the system is up, that eth0 got its planned address (the NIC's
//! `ipv4.address` reservation) by DHCP, that python3 runs, that the
//! hostname is the instance's name, and that apt reaches the Debian mirror
//! through the bridge's NAT.
//!
//! Skipped without an Incus socket or without the image (a failure with
//! `ANKLUME_REQUIRE_INCUS=1`). Like every real-daemon test it only creates
//! and deletes `ankt-…` objects, and it removes them even when it fails.
//! Run it as the others: `flock /tmp/anklume-incus.lock cargo test --test
//! image_debian`.

mod common;

use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use anklume_executor::{Api, Incus};
use common::live::{apply_json, cleanup, daemon, get, planned, replan, rt};
use common::text;

/// The alias `scripts/image-debian.sh` imports; both honour
/// `ANKLUME_IMAGE_ALIAS`.
fn alias() -> String {
    std::env::var("ANKLUME_IMAGE_ALIAS").unwrap_or_else(|_| "anklume-debian".into())
}
const DOMAIN: &str = "ankt-img";
const STATIC: &str = "ankt-img-st";
const DYNAMIC: &str = "ankt-img-dy";
/// How long systemd may take to answer once the instance runs.
const BOOT_WAIT: Duration = Duration::from_secs(60);
/// How long eth0 may take to get its lease once the instance runs.
const LEASE_WAIT: Duration = Duration::from_secs(20);

fn infra() -> String {
    let alias = alias();
    format!(
        r#"project_name: itest
global:
  addressing: {{zone_base: 243}}
  default_os_image: {alias}
domains:
  {DOMAIN}:
    description: "anklume-debian image test"
    trust_level: admin
    machines:
      {STATIC}:
        ip: 10.243.0.10
        os_image: {alias}
      {DYNAMIC}:
        os_image: {alias}
"#
    )
}

/// Whether the image is there; `None` means skip (a panic when Incus is
/// required).
fn image_present(incus: &Incus) -> bool {
    let alias = alias();
    if rt()
        .block_on(incus.get(&format!("/1.0/images/aliases/{alias}")))
        .is_ok()
    {
        return true;
    }
    common::skip(
        "ANKLUME_REQUIRE_INCUS",
        &format!(
            "no image '{alias}' in Incus: build and import it with `scripts/image-debian.sh` (as root)"
        ),
    )
}

/// Removes the test's domain when dropped, also when the test panics.
struct Cleanup<'a>(&'a Incus);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        rt().block_on(cleanup(self.0, &[DOMAIN]));
    }
}

/// `sh -c CMD` inside an instance of the test domain: exit code and stdout
/// (stderr appended), through the `incus` client.
fn sh(machine: &str, cmd: &str) -> (i32, String) {
    let o = Command::new("incus")
        .args(["exec", "--project", DOMAIN, machine, "--", "sh", "-c", cmd])
        .output()
        .expect("the incus client runs");
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), out)
}

/// The address Incus reserves for the machine's eth0: the NIC's
/// `ipv4.address`, from its expanded devices.
fn reserved(incus: &Incus, machine: &str) -> String {
    let i = rt().block_on(get(
        incus,
        &format!("/1.0/instances/{machine}?project={DOMAIN}"),
    ));
    i["expanded_devices"]["eth0"]["ipv4.address"]
        .as_str()
        .unwrap_or_else(|| panic!("{machine}: no eth0 ipv4.address in {i}"))
        .to_string()
}

/// Poll until eth0 holds `ip` as a DHCP (dynamic) address; the `ip` line
/// when it does, a panic with what eth0 and networkd show when not.
fn wait_for_lease(machine: &str, ip: &str) -> String {
    let start = Instant::now();
    loop {
        let (_, out) = sh(machine, "ip -4 -o addr show dev eth0");
        if let Some(line) = out.lines().find(|l| l.contains(&format!("inet {ip}/24"))) {
            return line.to_string();
        }
        if start.elapsed() > LEASE_WAIT {
            let (_, net) = sh(
                machine,
                "networkctl --no-pager; journalctl -u systemd-networkd --no-pager | tail -n 20",
            );
            panic!(
                "{machine}: eth0 has no {ip} after {LEASE_WAIT:?} (its addresses: {out:?})\n{net}"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `systemctl is-system-running` once boot is over: polled while systemd
/// does not answer yet (its socket appears a moment after start), then
/// `--wait` for the boot to finish; bounded.
fn system_state(machine: &str) -> String {
    let start = Instant::now();
    loop {
        let (_, state) = sh(machine, "timeout 60 systemctl is-system-running --wait");
        let state = state.trim().to_string();
        let answered = [
            "initializing",
            "starting",
            "running",
            "degraded",
            "maintenance",
            "stopping",
            "offline",
        ]
        .contains(&state.as_str());
        if answered || start.elapsed() > BOOT_WAIT {
            return state;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether this host reaches the mirror the image's apt uses: the positive
/// control that makes the instance's apt check meaningful.
fn host_reaches(sources: &str) -> Option<String> {
    let uri = sources
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let host = uri.strip_prefix("http://")?.split('/').next()?.to_string();
    let addr = (host.as_str(), 80).to_socket_addrs().ok()?.next()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .ok()
        .map(|_| uri)
}

#[test]
fn debian_image_boots_systemd_gets_its_planned_address_by_dhcp_and_reaches_the_mirror() {
    let Some(incus) = daemon() else {
        return;
    };
    if !image_present(&incus) {
        return;
    }
    rt().block_on(cleanup(&incus, &[DOMAIN]));
    let _cleanup = Cleanup(&incus);

    let dir = planned(&infra());
    let (o, s) = apply_json(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");

    let leases = format!("/var/lib/incus/networks/net-{DOMAIN}/dnsmasq.leases");
    let mut mirror_checked = false;
    for machine in [STATIC, DYNAMIC] {
        // systemd is PID 1, and boot finishes without a failed network unit.
        let (_, pid1) = sh(machine, "cat /proc/1/comm");
        assert_eq!(pid1.trim(), "systemd", "{machine}: PID 1 is {pid1:?}");
        let state = system_state(machine);
        let (_, failed) = sh(machine, "systemctl --failed --plain --no-legend --no-pager");
        assert!(
            matches!(state.trim(), "running" | "degraded"),
            "{machine}: system state {state:?}; failed units:\n{failed}"
        );
        for unit in ["network", "resolve", "udev", "dhcp", "ifup"] {
            assert!(
                !failed.contains(unit),
                "{machine}: a failed networking unit ({unit}):\n{failed}"
            );
        }

        // eth0 got the NIC's reservation by DHCP, and dnsmasq leased it.
        let ip = reserved(&incus, machine);
        if machine == STATIC {
            assert_eq!(ip, "10.243.0.10");
        }
        let line = wait_for_lease(machine, &ip);
        assert!(
            line.contains("dynamic"),
            "{machine}: {ip} is not a DHCP (dynamic) address: {line}"
        );
        let (_, link) = sh(
            machine,
            "for i in $(seq 1 40); do networkctl list eth0 --no-legend | grep -q ' configured' && break; sleep 0.25; done; networkctl list eth0 --no-legend",
        );
        assert!(
            link.contains(" configured"),
            "{machine}: networkd has not finished configuring eth0: {link:?}"
        );
        let (_, journal) = sh(machine, "journalctl -u systemd-networkd --no-pager");
        assert!(
            journal.contains(&format!("DHCPv4 address {ip}/24")),
            "{machine}: networkd did not log the lease of {ip}:\n{journal}"
        );
        if let Ok(l) = std::fs::read_to_string(&leases) {
            assert!(
                l.lines()
                    .any(|x| x.split_whitespace().nth(2) == Some(ip.as_str())),
                "{machine}: dnsmasq's lease file has no {ip}:\n{l}"
            );
        }

        // python3 for Ansible.
        let (rc, py) = sh(machine, "python3 --version");
        assert!(
            rc == 0 && py.starts_with("Python 3."),
            "{machine}: python3 --version gave {rc}: {py:?}"
        );

        // The hostname is the instance's name (the image's templates).
        let (_, host) = sh(machine, "cat /proc/sys/kernel/hostname /etc/hostname");
        assert_eq!(
            host.lines().collect::<Vec<_>>(),
            [machine, machine],
            "{machine}: kernel hostname, /etc/hostname"
        );
        let (_, hosts) = sh(machine, "cat /etc/hosts");
        assert!(
            hosts
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(machine)),
            "{machine}: /etc/hosts does not name it:\n{hosts}"
        );

        // apt reaches the mirror through the bridge's NAT, when this host
        // reaches it at all (the positive control). Once is enough.
        if !mirror_checked {
            let (_, sources) = sh(machine, "cat /etc/apt/sources.list.d/debian.sources");
            match host_reaches(&sources) {
                Some(uri) => {
                    let (rc, out) = sh(machine, "timeout 120 apt-get update 2>&1");
                    assert_eq!(
                        rc, 0,
                        "{machine}: apt-get update failed while this host reaches {uri}:\n{out}"
                    );
                    assert!(
                        !out.contains("Err:") && !out.contains("W: Failed"),
                        "{machine}: apt-get update:\n{out}"
                    );
                    mirror_checked = true;
                }
                None => eprintln!(
                    "note: this host does not reach the image's mirror, so apt inside is not checked"
                ),
            }
        }
    }
}

const MOVES: &str = "ankt-imv";

/// The IPv4 addresses eth0 holds in an instance of `project`, as
/// `a.b.c.d/nn` (empty while it has none, or does not run).
fn eth0_addresses(project: &str, machine: &str) -> Vec<String> {
    let o = Command::new("incus")
        .args([
            "exec",
            "--project",
            project,
            machine,
            "--",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .expect("the incus client runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .map(str::to_string)
        .collect()
}

/// Poll until each machine's eth0 holds exactly its address; a panic with
/// what they hold when it does not come.
fn wait_for_addresses(project: &str, want: &[(&str, String)]) {
    let start = Instant::now();
    loop {
        let now: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(m, _)| (m.to_string(), eth0_addresses(project, m)))
            .collect();
        let ok = want
            .iter()
            .zip(&now)
            .all(|((_, ip), (_, held))| held == &vec![format!("{ip}/24")]);
        if ok {
            return;
        }
        assert!(
            start.elapsed() < BOOT_WAIT,
            "eth0 addresses after {BOOT_WAIT:?}: {now:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `anklume apply plan.bin` (no ruleset, no provisioning), which must
/// succeed; its output.
fn apply_ok(dir: &std::path::Path) -> std::process::Output {
    let o = common::anklume(
        dir,
        &[
            "apply",
            "plan.bin",
            "--yes",
            "--no-nftables",
            "--no-provision",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    o
}

/// A machine inserted above two others shifts their automatic addresses:
/// after apply each running instance really holds its new address (not
/// only in its configuration: its old lease would otherwise stay until
/// renewal, and the new machine would get a dynamic one); `rollback`
/// without `--force` refuses, since the protected new machine holds an
/// address another takes back, and changes nothing; with `--force` each
/// holds its old address again. Then two machines swap their addresses, and
/// one gets a free address of its own.
#[test]
fn moved_addresses_are_the_ones_the_instances_hold_after_apply_and_rollback() {
    let Some(incus) = daemon() else {
        return;
    };
    if !image_present(&incus) {
        return;
    }
    rt().block_on(cleanup(&incus, &[MOVES]));
    struct Gone<'a>(&'a Incus);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            rt().block_on(cleanup(self.0, &[MOVES]));
        }
    }
    let _gone = Gone(&incus);
    let alias = alias();
    let infra = |machines: &[&str]| {
        let mut s = format!(
            "project_name: itest\nglobal:\n  addressing: {{zone_base: 244}}\n  default_os_image: {alias}\ndomains:\n  {MOVES}:\n    trust_level: admin\n    machines:\n"
        );
        for m in machines {
            s.push_str(&format!("      {MOVES}-{m}: {{}}\n"));
        }
        s
    };
    let ip = |n: u8| format!("10.244.0.{n}");
    let (b, c, a) = (
        format!("{MOVES}-b"),
        format!("{MOVES}-c"),
        format!("{MOVES}-a"),
    );
    let dir = planned(&infra(&["b", "c"]));
    let (o, s) = apply_json(dir.path(), &["--no-provision"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["failed"], 0, "{s}");
    wait_for_addresses(MOVES, &[(&b, ip(1)), (&c, ip(2))]);

    // Insert `a` above them: b .1 → .2, c .2 → .3, a takes .1.
    replan(dir.path(), &infra(&["a", "b", "c"]));
    let o = apply_ok(dir.path());
    assert!(
        text(&o).contains(&format!(
            "Freed the static address of {MOVES}/{b} (eth0) and stopped it"
        )),
        "{}",
        text(&o)
    );
    wait_for_addresses(MOVES, &[(&a, ip(1)), (&b, ip(2)), (&c, ip(3))]);

    // Without --force: refused, nothing changed.
    let o = common::anklume(dir.path(), &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("instance {MOVES}/{a} (created by the apply, protected) holds {}, which {MOVES}/{b} takes back", ip(1))),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nothing was changed"), "{}", text(&o));
    wait_for_addresses(MOVES, &[(&a, ip(1)), (&b, ip(2)), (&c, ip(3))]);

    let o = common::anklume(dir.path(), &["rollback", "--yes", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    wait_for_addresses(MOVES, &[(&b, ip(1)), (&c, ip(2))]);

    // A swap: each wants the address the other holds (no order works;
    // the leases are released first).
    replan(
        dir.path(),
        &infra(&["b", "c"])
            .replace(&format!("{b}: {{}}"), &format!("{b}: {{ip: {}}}", ip(2)))
            .replace(&format!("{c}: {{}}"), &format!("{c}: {{ip: {}}}", ip(1))),
    );
    apply_ok(dir.path());
    wait_for_addresses(MOVES, &[(&b, ip(2)), (&c, ip(1))]);

    // One address changed to a free one, no other instance involved: the
    // instance holds it after apply too (restarted, its lease released).
    replan(
        dir.path(),
        &infra(&["b", "c"])
            .replace(&format!("{b}: {{}}"), &format!("{b}: {{ip: {}}}", ip(20)))
            .replace(&format!("{c}: {{}}"), &format!("{c}: {{ip: {}}}", ip(1))),
    );
    apply_ok(dir.path());
    wait_for_addresses(MOVES, &[(&b, ip(20)), (&c, ip(1))]);
}
