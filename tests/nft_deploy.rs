//! `anklume nftables deploy` loads exactly the bytes it checked, in a
//! private network namespace (`unshare -n`), so the host's ruleset is never
//! touched.

use std::process::Command;

/// Whether `unshare -n` and `nft` work here (root, on Linux). Without them
/// the test is skipped, unless `ANKLUME_REQUIRE_INCUS=1` (CI), where the
/// machine is expected to have both.
fn netns_available() -> bool {
    let ok = Command::new("unshare")
        .args(["-n", "nft", "list", "ruleset"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ANKLUME_REQUIRE_INCUS").as_deref() != Ok("1"),
            "`unshare -n nft list ruleset` does not work here (needs root and nft)"
        );
        eprintln!("skipped: `unshare -n nft` is not available");
    }
    ok
}

/// Run `script` with `sh` in a fresh network namespace; it leaves
/// `out.txt` (what anklume printed) and `ruleset.txt` (`nft list ruleset`
/// at the end) in `dir`, which are returned.
fn in_netns(dir: &std::path::Path, script: &str) -> (String, String) {
    let o = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("out.txt"), read("ruleset.txt"))
}

#[test]
fn a_fifo_cannot_feed_nft_other_bytes_than_the_checked_ones() {
    if !netns_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("good.nft"), "table inet anklume {\n}\n").unwrap();
    std::fs::write(d.join("bad.nft"), "flush ruleset\ntable ip evil {\n}\n").unwrap();
    // Inside a fresh network namespace: a victim table, a FIFO that gives
    // the good ruleset to the first reader and the bad one to the next two.
    let script = format!(
        r#"set -e
cd {dir}
export ANKLUME_STATE_DIR={dir}/state
nft add table ip victim
mkfifo f
( cat good.nft > f; sleep 0.3; cat bad.nft > f; sleep 0.3; cat bad.nft > f ) &
feeder=$!
{bin} nftables deploy f > out.txt 2>&1 || echo "exit $?" >> out.txt
kill $feeder 2>/dev/null || true
# Drain a writer still blocked on the FIFO.
timeout 1 cat f > /dev/null 2>&1 || true
nft list ruleset > ruleset.txt
"#,
        dir = d.display(),
        bin = env!("CARGO_BIN_EXE_anklume"),
    );
    let (out, ruleset) = in_netns(d, &script);
    assert!(ruleset.contains("table ip victim"), "{out}\n{ruleset}");
    assert!(!ruleset.contains("evil"), "{out}\n{ruleset}");
    assert!(ruleset.contains("table inet anklume"), "{out}\n{ruleset}");
    // Deployed like apply loads: the checked bytes are recorded where the
    // next apply's drift check reads them, with the kernel's listing.
    let state = d.join("state/nftables");
    assert_eq!(
        std::fs::read_to_string(state.join("applied.nft")).unwrap(),
        "table inet anklume {\n}\n",
        "{out}"
    );
    assert!(
        std::fs::read_to_string(state.join("applied.listing"))
            .unwrap()
            .contains("table inet anklume"),
        "{out}"
    );
}

#[test]
fn deploy_refuses_other_tables_and_loads_nothing() {
    if !netns_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.nft"),
        "table inet anklume {\n}\nadd rule inet filter input drop\n",
    )
    .unwrap();
    let script = format!(
        r#"cd {dir}
export ANKLUME_STATE_DIR={dir}/state
nft add table inet filter
nft add chain inet filter input
{bin} nftables deploy bad.nft > out.txt 2>&1; echo "exit $?" >> out.txt
nft list ruleset > ruleset.txt
"#,
        dir = d.display(),
        bin = env!("CARGO_BIN_EXE_anklume"),
    );
    let (out, ruleset) = in_netns(d, &script);
    assert!(out.contains("exit 1") && out.contains("line 3"), "{out}");
    assert!(
        !ruleset.contains("anklume") && !ruleset.contains("drop"),
        "{ruleset}"
    );
    assert!(!d.join("state/nftables/applied.nft").exists(), "{out}");
}
