//! A partial rollback never removes isolation that still protects
//! something (issue 9, item 14), against the real Incus daemon and the
//! host's nftables.
//!
//! From no `inet anklume` table: apply A (domain `ankt-rba`, without the
//! ruleset), then B (adds an instance to `ankt-rba`, domain `ankt-rbb` with a
//! protected instance, and the table isolating the two bridges). `rollback` without `--force` keeps the
//! protected instance, so `ankt-rbb`'s project and bridge stay: the table must
//! stay too, still separating `net-ankt-rba` from `net-ankt-rbb`. `rollback
//! --force` then deletes the rest, and the table goes (there was none).
//!
//! Needs root, Incus (scripts/incus-setup.sh) and `nft`; skipped without an
//! Incus socket unless `ANKLUME_REQUIRE_INCUS=1`. Like every real-daemon
//! test, it refuses to run beside anklume state it did not create (a
//! foreign `inet anklume` table included; see `tests/common/live.rs`).
//! Run it under `flock /tmp/anklume-incus.lock`. Everything it creates is
//! removed at the end, whether it passes or not.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anklume_executor::nft::syntax;
use anklume_executor::{journal, Api, Incus};
use common::live::{claim_nft_table, cleanup, daemon, delete_nft_table, nft_table, rt};
use common::{anklume, text, IMAGE};

const A: &str = "ankt-rba";
const B: &str = "ankt-rbb";

fn nft_usable() -> bool {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pairs(table: &str) -> BTreeSet<(String, String)> {
    syntax::isolated_pairs(&syntax::parse(table).expect("nft's listing parses"))
}

fn infra(with_b: bool) -> String {
    let mut s = format!(
        r#"project_name: rbiso
global:
  addressing: {{zone_base: 231}}
  default_os_image: {IMAGE}
domains:
  {A}:
    trust_level: admin
    machines:
      {A}-one:
        ephemeral: true
"#
    );
    if with_b {
        s.push_str(&format!(
            r#"      {A}-two:
        ephemeral: true
  {B}:
    trust_level: trusted
    machines:
      {B}-prot: {{}}
"#
        ));
    }
    s
}

/// Removes what the test made, even when an assertion fails: both domains
/// (the tests' `inet anklume` table goes with the [`claim_nft_table`] hold).
struct Cleanup {
    incus: Incus,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        rt().block_on(cleanup(&self.incus, &[A, B]));
    }
}

fn plan(dir: &Path, with_b: bool, out: &str) {
    std::fs::write(dir.join("infra.yml"), infra(with_b)).unwrap();
    let o = anklume(dir, &["plan", "-o", out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_partial_rollback_keeps_the_table_that_isolates_what_it_kept() {
    let Some(incus) = daemon() else {
        return;
    };
    if !nft_usable() {
        assert!(
            std::env::var("ANKLUME_REQUIRE_INCUS").as_deref() != Ok("1"),
            "ANKLUME_REQUIRE_INCUS=1 but `nft list tables` does not run (not root, or no nftables)"
        );
        eprintln!("skipped: `nft list tables` does not run (needs root and nftables)");
        return;
    }
    let _table = claim_nft_table().unwrap_or_else(|why| panic!("{why}"));
    // Start from no table: only a table an earlier test run left can be
    // there now.
    delete_nft_table();
    let _cleanup = Cleanup {
        incus: incus.clone(),
    };
    rt().block_on(cleanup(&incus, &[A, B]));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    plan(p, false, "a.bin");
    plan(p, true, "b.bin");
    let (net_a, net_b) = (format!("net-{A}"), format!("net-{B}"));
    let both: BTreeSet<(String, String)> = [
        (net_a.clone(), net_b.clone()),
        (net_b.clone(), net_a.clone()),
    ]
    .into();

    // A without the ruleset: still no table.
    let o = anklume(
        p,
        &["apply", "a.bin", "--yes", "--allow-stale", "--no-nftables"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(nft_table().is_none());

    // B: a protected instance in a new domain, and the table isolating both.
    let o = anklume(p, &["apply", "b.bin", "--yes", "--allow-stale"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let table = nft_table().expect("B loads the table");
    assert_eq!(pairs(&table), both, "{table}");
    let ts_b = journal::list(&p.join("state")).pop().expect("B's journal");

    // Rollback without --force: B's instance in A goes, its protected
    // instance stays, and so do its project and bridge; the table that
    // isolates them must stay too.
    let o = anklume(p, &["rollback", "--yes"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out.contains(&format!("skipped instance/{B}/{B}-prot: protected"))
            && out.contains(&format!("restored instance/{A}/{A}-two: deleted")),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("skipped nftables/anklume: the table in force is kept")
            && out.contains(&format!("{net_a} and {net_b}")),
        "{}",
        text(&o)
    );
    assert!(err.contains("warning: partial rollback"), "{}", text(&o));
    rt().block_on(async {
        for net in [&net_a, &net_b] {
            assert!(
                incus
                    .get_opt(&format!("/1.0/networks/{net}"))
                    .await
                    .unwrap()
                    .is_some(),
                "{net} is still there"
            );
        }
    });
    let table = nft_table().expect("the table is still in force");
    assert_eq!(pairs(&table), both, "{table}");
    let r = journal::read(&journal::path(&p.join("state"), &ts_b)).unwrap();
    assert_eq!(r.rolled_back(), Some("partial"));

    // With --force the protected instance goes, then its bridge, and only
    // then the table (there was none before B).
    let o = anklume(p, &["rollback", &ts_b, "--yes", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("restored nftables/anklume: table removed"),
        "{}",
        text(&o)
    );
    assert!(nft_table().is_none(), "the table goes with the last bridge");
    rt().block_on(async {
        assert!(incus
            .get_opt(&format!("/1.0/networks/{net_b}"))
            .await
            .unwrap()
            .is_none());
    });
}
