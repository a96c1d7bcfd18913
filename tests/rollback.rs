//! Undo against a real Incus daemon: the apply journal, pre-apply
//! snapshots, `anklume rollback` (configuration and data), interrupted
//! applies killed with SIGKILL at several points, and `anklume snapshot`.
//!
//! Like `tests/incus.rs`: own domain names (`ankt-r…`, `ankt-k…`,
//! `ankt-s…`, with the tests' prefix) and subnets, leftovers removed first,
//! skipped without an Incus socket unless `ANKLUME_REQUIRE_INCUS=1`, and a
//! refusal to run on a host with anklume state of its own (the retention
//! test prunes pre-apply snapshots host-wide; the first test loads the
//! `inet anklume` table).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anklume_executor::{journal, Api, Incus};
use common::live::{
    self, cleanup, daemon, delete_nft_table, exec, get, nft_table, planned, rt, state,
};
use common::{anklume, anklume_command, text, IMAGE};
use serde_json::Value;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Incus's view of these domains without what changes by itself or is not
/// configuration: `volatile.*` keys, snapshots, timestamps, run state.
async fn config_of(incus: &Incus, domains: &[&str]) -> Value {
    fn clean(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| {
                    !k.starts_with("volatile.")
                        && !matches!(k.as_str(), "created_at" | "last_used_at" | "snapshots")
                });
                m.values_mut().for_each(clean);
            }
            Value::Array(a) => a.iter_mut().for_each(clean),
            _ => {}
        }
    }
    let mut v = state(incus, domains).await;
    clean(&mut v);
    v
}

fn nft_usable() -> bool {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write_plan(dir: &Path, infra: &str, out: &str) {
    std::fs::write(dir.join("infra.yml"), infra).unwrap();
    let o = anklume(dir, &["plan", "-o", out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The journal timestamps in the state directory, oldest first.
fn journals(dir: &Path) -> Vec<String> {
    journal::list(&dir.join("state"))
}

fn infra_a(zone: u8, d: &str) -> String {
    format!(
        r#"project_name: rtest
global:
  addressing: {{zone_base: {zone}}}
  default_os_image: {IMAGE}
domains:
  {d}:
    description: "before"
    trust_level: admin
    profiles:
      small:
        config:
          limits.memory: 256MiB
    machines:
      {d}-data:
        ephemeral: true
        profiles: [default, small]
        config:
          user.note: a
      {d}-keep: {{}}
"#
    )
}

/// B: changed config (an instance key, a profile limit, the domain's
/// description), an added protected instance, an added ephemeral one, and
/// a new domain (a bridge, a project, a changed nftables ruleset).
fn infra_b(zone: u8, d: &str, d2: &str) -> String {
    format!(
        r#"project_name: rtest
global:
  addressing: {{zone_base: {zone}}}
  default_os_image: {IMAGE}
domains:
  {d}:
    description: "after"
    trust_level: admin
    profiles:
      small:
        config:
          limits.memory: 512MiB
    machines:
      {d}-data:
        ephemeral: true
        profiles: [default, small]
        config:
          user.note: b
      {d}-keep: {{}}
      {d}-prot: {{}}
      {d}-tmp:
        ephemeral: true
        storage_volumes:
          {d}-vol: {{path: /mnt/vol}}
  {d2}:
    trust_level: trusted
    machines:
      {d2}-one:
        ephemeral: true
"#
    )
}

fn apply(dir: &Path, plan: &str, extra: &[&str]) -> Output {
    let mut args = vec!["apply", plan, "--yes", "--allow-stale"];
    args.extend_from_slice(extra);
    anklume(dir, &args)
}

#[test]
fn rollback_restores_configuration_and_data_and_keeps_protected_instances() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (d, d2) = ("ankt-ra", "ankt-rb");
    let rt = rt();
    let with_nft = nft_usable();
    let nft_flag: &[&str] = if with_nft { &[] } else { &["--no-nftables"] };
    let _nft = with_nft.then(|| live::claim_nft_table().unwrap_or_else(|e| panic!("{e}")));
    rt.block_on(cleanup(&incus, &[d, d2]));
    delete_nft_table();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write_plan(p, &infra_b(221, d, d2), "b.bin");
    write_plan(p, &infra_a(221, d), "a.bin");

    // A.
    let o = apply(p, "a.bin", nft_flag);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let config_a = rt.block_on(config_of(&incus, &[d, d2]));
    let nft_a = nft_table();
    // Data written after A.
    let data = format!("{d}-data");
    assert_eq!(
        rt.block_on(exec(&incus, d, &data, "echo after-a > /root/data")),
        0
    );

    // B: the changed instance is snapshotted first.
    let o = apply(p, "b.bin", nft_flag);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Snapshot pre-apply-") && out.contains("of 1 instance(s)"),
        "{out}"
    );
    let ts_b = journals(p).pop().expect("a journal for B");
    rt.block_on(async {
        let snaps = get(
            &incus,
            &format!("/1.0/instances/{data}/snapshots?project={d}"),
        )
        .await;
        assert!(
            snaps.to_string().contains(&format!("pre-apply-{ts_b}")),
            "{snaps}"
        );
        let inst = get(&incus, &format!("/1.0/instances/{data}?project={d}")).await;
        assert_eq!(inst["config"]["user.note"], "b");
        get(
            &incus,
            &format!("/1.0/storage-pools/default/volumes/custom/{d}-vol?project={d}"),
        )
        .await;
    });
    let history = std::fs::read_to_string(p.join("state/pre-apply-snapshots/history")).unwrap();
    assert_eq!(history, format!("pre-apply-{ts_b}\n"));
    assert_eq!(
        std::fs::read_to_string(p.join("state/pre-apply-snapshots/latest")).unwrap(),
        format!("{ts_b}\n")
    );
    if with_nft {
        assert_ne!(nft_table(), nft_a, "B adds a domain: the ruleset changes");
    }
    // Data written after B: rollback must undo it.
    assert_eq!(
        rt.block_on(exec(&incus, d, &data, "echo after-b > /root/data")),
        0
    );

    // The list shows both applies.
    let o = anklume(p, &["rollback", "--list"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(
        list.contains(&ts_b) && list.contains("1 instance(s)"),
        "{list}"
    );

    // Without --yes and no terminal: refused, nothing changed.
    let o = anklume(p, &["rollback"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));

    // Roll B back without --force: the protected instance B created stays.
    let o = anklume(p, &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("skipped instance/{d}/{d}-prot: protected")),
        "{out}"
    );
    assert!(
        out.contains(&format!("restored instance/{d}/{d}-tmp: deleted")),
        "{out}"
    );
    rt.block_on(async {
        get(&incus, &format!("/1.0/instances/{d}-prot?project={d}")).await;
        // Data as it was when B started (written after A).
        assert_eq!(
            exec(&incus, d, &data, "grep -qx after-a /root/data").await,
            0,
            "the data written after A is back"
        );
    });
    // Named, with --force: the protected instance goes too, and the whole
    // configuration is A's again.
    let o = anklume(p, &["rollback", &ts_b, "--yes", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("deleted (protected; --force)"),
        "{}",
        text(&o)
    );
    // Now B is fully rolled back: a bare `rollback` says so.
    let o = anklume(p, &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already rolled back"), "{}", text(&o));
    let config_back = rt.block_on(config_of(&incus, &[d, d2]));
    assert_eq!(
        config_back, config_a,
        "after rollback the Incus configuration equals A's"
    );
    if with_nft {
        assert_eq!(nft_table(), nft_a, "A's nftables table is back");
    }
    assert!(
        rt.block_on(incus.get_opt(&format!(
            "/1.0/storage-pools/default/volumes/custom/{d}-vol?project={d}"
        )))
        .unwrap()
        .is_none(),
        "the volume B created is deleted"
    );
    rt.block_on(async {
        assert_eq!(
            exec(&incus, d, &data, "grep -qx after-a /root/data").await,
            0
        );
    });

    // And A converges with nothing to do.
    let o = apply(p, "a.bin", &[&["--format", "json"], nft_flag].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = common::live::summary(&o);
    assert_eq!(s["created"], 0, "{s}");
    assert_eq!(s["updated"], 0, "{s}");
    assert_eq!(s["writes"], 0, "{s}");

    rt.block_on(cleanup(&incus, &[d, d2]));
    delete_nft_table();
}

/// Ctrl-C twice an apply that the pause failpoint holds: the first when it
/// says it paused, the second once it says it was interrupted. Returns its
/// output (stderr as read).
fn double_interrupt(mut child: std::process::Child) -> std::process::Output {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(needle) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };
    let sigint = |child: &std::process::Child| {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
    };
    let paused = wait_for("failpoint: paused after journal record", &mut seen);
    sigint(&child);
    let first = paused && wait_for("interrupted: no new operation is started", &mut seen);
    sigint(&child);
    let mut o = child.wait_with_output().unwrap();
    reader.join().unwrap();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(
        paused && first,
        "paused: {paused}, first Ctrl-C seen: {first}\n{seen}"
    );
    o.stderr = seen.into_bytes();
    o
}

#[test]
fn killed_applies_are_detected_rolled_back_and_converge() {
    // Constant per build, on purpose: a build without the feature fails here.
    assert!(
        std::hint::black_box(anklume_executor::journal::FAILPOINTS),
        "build the tests with --features failpoints (scripts/test.sh does)"
    );
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let (d, d2) = ("ankt-ka", "ankt-kb");
    let rt = rt();
    rt.block_on(cleanup(&incus, &[d, d2]));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write_plan(p, &infra_b(222, d, d2), "b.bin");
    write_plan(p, &infra_a(222, d), "a.bin");
    let o = apply(p, "a.bin", &["--no-nftables"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let config_a = rt.block_on(config_of(&incus, &[d, d2]));

    // Journal records of B: begin, one snapshot, then intent/done pairs.
    // After record 2: snapshot taken, nothing changed; 3: first intent on
    // disk, its change never sent; 8: mid-way. Then signals from outside
    // while instances are being created: SIGKILL, and SIGINT (Ctrl-C),
    // which lets the operations in flight finish and ends the journal.
    //
    // Ctrl-C twice: the pause failpoint holds the run right after record 8
    // (an operation's record on disk, others possibly in flight), so both
    // signals land at that exact point whatever the machine's speed: the
    // second one quits without waiting, and the journal has no end, as
    // after a kill.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Stop {
        AfterRecords(u32),
        Signal(i32),
        DoubleInterruptAfterRecords(u32),
    }
    let apply_b = |failpoint: Option<(&str, u32)>| {
        let mut c = anklume_command(
            p,
            &["apply", "b.bin", "--yes", "--allow-stale", "--no-nftables"],
        );
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some((name, n)) = failpoint {
            c.env(name, n.to_string());
        }
        c.spawn().unwrap()
    };
    for stop in [
        Stop::AfterRecords(2),
        Stop::AfterRecords(3),
        Stop::AfterRecords(8),
        Stop::Signal(libc::SIGKILL),
        Stop::Signal(libc::SIGINT),
        Stop::DoubleInterruptAfterRecords(8),
    ] {
        let before = journals(p).len();
        let o = match stop {
            Stop::AfterRecords(n) => apply_b(Some(("ANKLUME_FAILPOINT_KILL_AFTER_RECORDS", n)))
                .wait_with_output()
                .unwrap(),
            Stop::DoubleInterruptAfterRecords(n) => {
                double_interrupt(apply_b(Some(("ANKLUME_FAILPOINT_PAUSE_AFTER_RECORDS", n))))
            }
            Stop::Signal(sig) => {
                let child = apply_b(None);
                // Wait until the journal shows changes in flight.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let js = journals(p);
                    let started = js.len() > before
                        && std::fs::read_to_string(
                            p.join(format!("state/journal/{}.jsonl", js.last().unwrap())),
                        )
                        .is_ok_and(|t| t.matches("\"intent\"").count() >= 4);
                    if started || std::time::Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                // SAFETY: signalling our own child.
                unsafe {
                    libc::kill(child.id() as i32, sig);
                }
                child.wait_with_output().unwrap()
            }
        };
        use std::os::unix::process::ExitStatusExt;
        let ts = journals(p).pop().unwrap();
        assert_eq!(journals(p).len(), before + 1);
        let journal = std::fs::read_to_string(p.join(format!("state/journal/{ts}.jsonl"))).unwrap();
        let interrupted = stop == Stop::Signal(libc::SIGINT);
        if let Stop::DoubleInterruptAfterRecords(_) = stop {
            // The second Ctrl-C quits at once, exit 130, and leaves the
            // journal as a kill does: no end, for rollback to settle.
            assert_eq!(o.status.code(), Some(130), "{}", text(&o));
            assert!(
                text(&o).contains("interrupted again: quitting without waiting"),
                "{}",
                text(&o)
            );
            assert!(!journal.contains("\"end\""), "{journal}");
        } else if interrupted {
            // Ctrl-C: in-flight operations finish, the run reports, exit 130.
            assert_eq!(o.status.code(), Some(130), "{}", text(&o));
            assert!(text(&o).contains("interrupted"), "{}", text(&o));
            assert!(
                journal.ends_with("{\"record\":\"end\",\"outcome\":\"interrupted\"}\n"),
                "{journal}"
            );
        } else {
            assert_eq!(
                o.status.signal(),
                Some(libc::SIGKILL),
                "{stop:?}: not killed{}: {}",
                if matches!(stop, Stop::AfterRecords(_)) {
                    " (the kill failpoint needs `--features failpoints`, which scripts/test.sh passes)"
                } else {
                    ""
                },
                text(&o)
            );
            assert!(!journal.contains("\"end\""), "{journal}");
        }

        // The next apply (here a dry run) says so, unless the apply ended.
        let o = anklume(
            p,
            &[
                "apply",
                "b.bin",
                "--dry-run",
                "--allow-stale",
                "--no-nftables",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let warned = String::from_utf8_lossy(&o.stderr)
            .contains(&format!("the apply of {ts} did not finish"));
        assert_eq!(warned, !interrupted, "{stop:?}: {}", text(&o));
        if !interrupted {
            // While an apply holds the lock, its journal is not a dead one.
            let lock = std::fs::File::open(p.join("state/apply.lock")).unwrap();
            lock.try_lock().unwrap();
            let o = anklume(
                p,
                &[
                    "apply",
                    "b.bin",
                    "--dry-run",
                    "--allow-stale",
                    "--no-nftables",
                ],
            );
            drop(lock);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert!(!text(&o).contains("did not finish"), "{}", text(&o));
        }
        let kill_after = stop;

        // Rollback undoes the completed part: back to A exactly.
        let o = anklume(p, &["rollback", "--yes", "--force"]);
        if kill_after == Stop::AfterRecords(2) {
            // Only a snapshot was taken: nothing was changed, nothing to undo.
            assert_eq!(o.status.code(), Some(1), "{}", text(&o));
            assert!(text(&o).contains("records no change"), "{}", text(&o));
        } else {
            assert_eq!(
                o.status.code(),
                Some(0),
                "kill at {kill_after:?}: {}",
                text(&o)
            );
        }
        assert_eq!(
            rt.block_on(config_of(&incus, &[d, d2])),
            config_a,
            "kill at {kill_after:?}: rollback brings A back\n{}",
            text(&o)
        );

        // A new apply converges, and a second one has nothing to do.
        let o = apply(p, "b.bin", &["--no-nftables", "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = apply(p, "b.bin", &["--no-nftables", "--format", "json"]);
        let s = common::live::summary(&o);
        assert_eq!(s["created"], 0, "{s}");
        assert_eq!(s["updated"], 0, "{s}");
        assert_eq!(s["writes"], 0, "{s}");

        // Back to A for the next round.
        let o = anklume(p, &["rollback", "--yes", "--force"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(rt.block_on(config_of(&incus, &[d, d2])), config_a);
    }
    rt.block_on(cleanup(&incus, &[d, d2]));
}

#[test]
fn snapshot_command_creates_lists_restores_and_deletes() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let d = "ankt-sa";
    let rt = rt();
    rt.block_on(cleanup(&incus, &[d]));
    let dir = planned(&format!(
        r#"project_name: stest
global:
  addressing: {{zone_base: 223}}
  default_os_image: {IMAGE}
domains:
  {d}:
    trust_level: admin
    machines:
      {d}-one:
        ephemeral: true
      {d}-two:
        ephemeral: true
"#
    ));
    let p = dir.path();
    let o = apply(p, "plan.bin", &["--no-nftables"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let one = format!("{d}-one");
    assert_eq!(rt.block_on(exec(&incus, d, &one, "echo v1 > /root/f")), 0);

    // Named, found across projects without naming the project.
    let o = anklume(p, &["snapshot", "create", &one, "mine"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("created snapshot mine of {one} ({d})")));
    // Default name snap-YYYYMMDD-HHMMSS.
    let o = anklume(p, &["snapshot", "create", &one]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A whole domain.
    let o = anklume(p, &["snapshot", "create", "--domain", d, "all"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(text(&o).matches("created snapshot all of").count(), 2);

    let o = anklume(p, &["snapshot", "list", &one]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(list.contains("mine") && list.contains("all"), "{list}");
    let auto = list
        .split_whitespace()
        .find(|w| w.starts_with("snap-"))
        .unwrap_or_else(|| panic!("no snap- name in {list}"));
    assert!(
        auto.len() == "snap-".len() + 15 && auto.as_bytes()[13] == b'-',
        "{auto}"
    );
    let o = anklume(p, &["snapshot", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{d}-two")));
    // The same as JSON lines.
    let o = anklume(p, &["snapshot", "list", &one, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let snaps: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        snaps
            .iter()
            .any(|s| s["name"] == "mine" && s["instance"] == one.as_str() && s["project"] == d),
        "{snaps:?}"
    );
    assert!(snaps.iter().all(|s| s["created_at"].is_string()));

    // Restore brings the data back.
    assert_eq!(rt.block_on(exec(&incus, d, &one, "echo v2 > /root/f")), 0);
    let o = anklume(p, &["snapshot", "restore", &one, "mine", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(rt.block_on(exec(&incus, d, &one, "grep -qx v1 /root/f")), 0);

    // Errors: unknown instance, unknown snapshot, `self` on the host.
    let o = anklume(p, &["snapshot", "create", "ankt-nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("instance 'ankt-nope' not found in any Incus project"));
    // A typo of an existing instance: did you mean.
    let typo = format!("{}x", &one[..one.len() - 1]);
    let o = anklume(p, &["snapshot", "restore", &typo, "mine"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("did you mean '{one}'?")),
        "{}",
        text(&o)
    );
    let o = anklume(p, &["snapshot", "restore", &one, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("has no snapshot 'nope'"), "{}", text(&o));
    assert!(!text(&o).contains("did you mean"), "{}", text(&o));
    // A typo of one of its snapshots: did you mean, for restore and delete.
    for verb in ["restore", "delete"] {
        let o = anklume(p, &["snapshot", verb, &one, "mien"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("did you mean 'mine'?"), "{}", text(&o));
    }
    let o = anklume(p, &["snapshot", "list", "self"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("is not an Incus instance"),
        "{}",
        text(&o)
    );

    let o = anklume(p, &["snapshot", "delete", &one, "mine"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "no terminal, no --yes: {}",
        text(&o)
    );
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));
    let o = anklume(p, &["snapshot", "delete", &one, "mine", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = anklume(p, &["snapshot", "list", &one]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("mine "));

    rt.block_on(cleanup(&incus, &[d]));
}

#[test]
fn retention_keeps_the_newest_pre_apply_snapshots() {
    let _serial = serial();
    let Some(incus) = daemon() else {
        return;
    };
    let d = "ankt-rc";
    let rt = rt();
    rt.block_on(cleanup(&incus, &[d]));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let infra = |note: u32| {
        format!(
            r#"project_name: ktest
global:
  addressing: {{zone_base: 224}}
  default_os_image: {IMAGE}
domains:
  {d}:
    trust_level: admin
    machines:
      {d}-one:
        ephemeral: true
        config:
          user.note: "n{note}"
"#
        )
    };
    // Five applies that each change the instance: five pre-apply snapshots
    // taken, the newest two kept.
    for n in 0..5 {
        write_plan(p, &infra(n), "plan.bin");
        let o = apply(p, "plan.bin", &["--no-nftables", "--keep", "2"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let js = journals(p);
    assert_eq!(js.len(), 5);
    let snaps: Vec<String> = rt.block_on(async {
        get(
            &incus,
            &format!("/1.0/instances/{d}-one/snapshots?project={d}"),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
    });
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for ts in &js[3..] {
        assert!(snaps.iter().any(|s| s.contains(ts)), "{ts} kept: {snaps:?}");
    }
    let history = std::fs::read_to_string(p.join("state/pre-apply-snapshots/history")).unwrap();
    assert_eq!(
        history,
        format!("pre-apply-{}\npre-apply-{}\n", js[3], js[4])
    );
    // A pre-apply snapshot this state directory did not take (another
    // anklume's, older than every kept one) is never pruned.
    let foreign = "pre-apply-20000101-000000";
    rt.block_on(incus.post(
        &format!("/1.0/instances/{d}-one/snapshots?project={d}"),
        &serde_json::json!({"name": foreign}),
    ))
    .unwrap();
    // --cleanup --keep 1 trims further: it shows what goes and, without a
    // terminal, deletes only with --yes.
    let o = anklume(p, &["rollback", "--cleanup", "--keep", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("pre-apply-{} of {d}/{d}-one", js[3])),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));
    let o = anklume(p, &["rollback", "--cleanup", "--keep", "1", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 snapshot(s) deleted"), "{}", text(&o));
    let snaps = rt.block_on(get(
        &incus,
        &format!("/1.0/instances/{d}-one/snapshots?project={d}"),
    ));
    assert!(
        snaps.to_string().contains(foreign),
        "a foreign pre-apply snapshot was pruned: {snaps}"
    );
    // --skip-snapshot takes none.
    write_plan(p, &infra(9), "plan.bin");
    let o = apply(p, "plan.bin", &["--no-nftables", "--skip-snapshot"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("Snapshot pre-apply-"), "{}", text(&o));
    rt.block_on(cleanup(&incus, &[d]));
}
