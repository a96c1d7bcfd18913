//! What `sync` guarantees about the files it does not own: bytes outside
//! the managed block, orphans it cannot prove unprotected, links, special
//! files, concurrent and killed runs.

use std::path::Path;

use anklume_compiler::ansible::block::{BEGIN, END};
use anklume_compiler::ansible::protect::Protection;
use anklume_compiler::ansible::sync::{sync, SyncError, SyncOptions};
use anklume_compiler::{compile, HostFacts, Ir};
use proptest::prelude::*;

fn ir(text: &str) -> Ir {
    let c = compile(
        &anklume_schema::load_str("infra.yml", text),
        &HostFacts {
            skip_subnet_check: true,
            ..HostFacts::default()
        },
    );
    assert!(!c.has_errors(), "{text}");
    c.ir
}

const INFRA: &str = "project_name: t\nglobal:\n  addressing: {}\n  default_os_image: \"images:debian/13\"\ndomains:\n  work:\n    description: DESC\n    trust_level: trusted\n    machines:\n      work-dev:\n        roles: [base_system]\n";

fn infra(desc: &str) -> String {
    INFRA.replace("DESC", desc)
}

fn opts(base: &Path, clean: bool) -> SyncOptions {
    SyncOptions {
        base_dir: base.to_path_buf(),
        dry_run: false,
        clean_orphans: clean,
    }
}

/// Every file under `dir`, with its bytes and kind, for before/after
/// comparisons (links are recorded, not followed).
fn snapshot(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if t.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.push((
                    rel,
                    "link".into(),
                    target.display().to_string().into_bytes(),
                ));
            } else if t.is_dir() {
                out.push((rel, "dir".into(), vec![]));
                stack.push(e.path());
            } else {
                out.push((rel, "file".into(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn orphans_that_cannot_be_read_are_kept_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let hv = base.join("host_vars");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "vault.yml",
            b"instance_ephemeral: false\ndb_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  62313365\n".to_vec(),
        ),
        ("tab.yml", b"instance_ephemeral: false\n\tx: 1\n".to_vec()),
        ("dup.yml", b"instance_ephemeral: false\na: 1\na: 2\n".to_vec()),
        ("latin1.yml", b"instance_ephemeral: false\n# caf\xE9\n".to_vec()),
        ("twodocs.yml", b"instance_ephemeral: false\n---\nb: 1\n".to_vec()),
        ("tagged.yml", b"instance_ephemeral: !unsafe false\n".to_vec()),
        ("alias.yml", b"x: &f false\ninstance_ephemeral: *f\n".to_vec()),
        ("gone.yml", b"instance_ephemeral: true\n".to_vec()),
        (".hidden.yml", b"instance_ephemeral: true\n".to_vec()),
    ];
    for (n, b) in &cases {
        std::fs::write(hv.join(n), b).unwrap();
    }
    // A link named like an orphan, pointing at a deletable-looking file
    // outside the tree, and one dangling.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yml"), "a: 1\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("x.yml"), hv.join("link.yml")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/anklume", hv.join("dangling.yml")).unwrap();
    let report = sync(&ir(&infra("w")), &opts(base, true)).unwrap();
    // Only the file proven unprotected is gone.
    assert_eq!(report.deleted, vec!["host_vars/gone.yml".to_string()]);
    assert!(hv.join(".hidden.yml").exists());
    assert!(!report.orphans.iter().any(|o| o.path.contains(".hidden")));
    for (n, b) in &cases[..7] {
        assert_eq!(&std::fs::read(hv.join(n)).unwrap(), b, "{n}");
    }
    assert!(std::fs::symlink_metadata(hv.join("link.yml")).is_ok());
    assert!(std::fs::symlink_metadata(hv.join("dangling.yml")).is_ok());
    assert_eq!(
        std::fs::read(outside.path().join("x.yml")).unwrap(),
        b"a: 1\n"
    );
    let of = |n: &str| {
        report
            .orphans
            .iter()
            .find(|o| o.path == format!("host_vars/{n}"))
            .unwrap_or_else(|| panic!("{n} not reported"))
            .protection
            .clone()
    };
    assert_eq!(of("vault.yml"), Protection::Protected);
    for n in [
        "tab.yml",
        "dup.yml",
        "latin1.yml",
        "twodocs.yml",
        "tagged.yml",
        "alias.yml",
        "link.yml",
        "dangling.yml",
    ] {
        assert!(
            matches!(of(n), Protection::Unknown(ref why) if !why.is_empty()),
            "{n}: {:?}",
            of(n)
        );
    }
}

#[test]
fn a_description_holding_a_marker_leaves_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let gv = base.join("group_vars/work.yml");
    for desc in [
        format!("'x {END}'"),
        format!("'{END}'"),
        format!("\"a\\n{END}\\nb\""),
        format!("\"{BEGIN}\\n{END}\""),
    ] {
        sync(&ir(&infra(&desc)), &opts(base, false)).unwrap();
        let once = std::fs::read(&gv).unwrap();
        // A second sync with another description must give exactly the
        // file a fresh sync gives: no stale line from the first.
        sync(&ir(&infra("plain")), &opts(base, false)).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        sync(&ir(&infra("plain")), &opts(fresh.path(), false)).unwrap();
        assert_eq!(
            std::fs::read(&gv).unwrap(),
            std::fs::read(fresh.path().join("group_vars/work.yml")).unwrap(),
            "{desc}: {}",
            String::from_utf8_lossy(&once)
        );
    }
}

#[test]
fn a_comment_naming_the_begin_marker_keeps_the_users_lines() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let f = base.join("host_vars/work-dev.yml");
    let old = std::fs::read_to_string(&f).unwrap();
    let user = format!("---\n# see the block below ({BEGIN})\nmine: 1\nalso: 2\n");
    let edited = old.replacen("---\n", &user, 1);
    std::fs::write(&f, &edited).unwrap();
    sync(&ir(&infra("changed")), &opts(base, false)).unwrap();
    let after = std::fs::read_to_string(&f).unwrap();
    assert!(after.starts_with(&user), "{after}");
}

#[test]
fn user_bytes_bom_crlf_and_invalid_utf8_survive() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let f = base.join("host_vars/work-dev.yml");
    let generated = std::fs::read(&f).unwrap();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(&generated);
    bytes.extend_from_slice(b"mine: \xFF\xFE\r\nx: caf\xE9\r\n\x00trailing");
    std::fs::write(&f, &bytes).unwrap();
    sync(&ir(&infra("changed")), &opts(base, false)).unwrap();
    let after = std::fs::read(&f).unwrap();
    assert!(after.starts_with(b"\xEF\xBB\xBF---\n"));
    assert!(after.ends_with(b"mine: \xFF\xFE\r\nx: caf\xE9\r\n\x00trailing"));
    // A file without a block, starting with a BOM and `---`.
    std::fs::write(&f, b"\xEF\xBB\xBF---\nmine: 1\n").unwrap();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let after = std::fs::read(&f).unwrap();
    assert!(after.starts_with(b"\xEF\xBB\xBF---\n# === MANAGED"));
    assert!(after.ends_with(b"\n\nmine: 1\n"));
    assert_eq!(after.windows(3).filter(|w| w == b"\xEF\xBB\xBF").count(), 1);
}

#[test]
fn links_in_the_tree_are_refused_before_anything_is_written() {
    for link_at in [
        "host_vars",
        "group_vars",
        "inventory",
        "host_vars/work-dev.yml",
        "group_vars/all.yml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tree");
        std::fs::create_dir(&base).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("unrelated.yml"), "keep: me\n").unwrap();
        std::fs::write(outside.path().join("work-dev.yml"), "keep: me\n").unwrap();
        for sub in ["host_vars", "group_vars", "inventory"] {
            if link_at != sub {
                std::fs::create_dir(base.join(sub)).unwrap();
            }
        }
        let target = if link_at.contains('/') {
            outside.path().join("work-dev.yml")
        } else {
            outside.path().to_path_buf()
        };
        std::os::unix::fs::symlink(&target, base.join(link_at)).unwrap();
        let before_tree = snapshot(&base);
        let before_outside = snapshot(outside.path());
        let err = sync(&ir(&infra("w")), &opts(&base, true)).unwrap_err();
        assert!(
            matches!(&err, SyncError::Refused { problem, .. } if problem.contains("symbolic link")),
            "{link_at}: {err}"
        );
        assert_eq!(snapshot(outside.path()), before_outside, "{link_at}");
        assert_eq!(snapshot(&base), before_tree, "{link_at}");
    }
}

#[test]
fn special_files_in_the_tree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let f = base.join("host_vars/work-dev.yml");
    std::fs::remove_file(&f).unwrap();
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // Would block forever on a FIFO if it were opened for reading normally.
    let err = sync(&ir(&infra("w")), &opts(base, false)).unwrap_err();
    assert!(err.to_string().contains("FIFO"), "{err}");
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    let err = sync(&ir(&infra("w")), &opts(base, false)).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn a_second_sync_waits_for_none_and_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    sync(&ir(&infra("w")), &opts(base, false)).unwrap();
    let held = anklume_compiler::ansible::fsio::lock_tree(base).unwrap();
    let before = snapshot(base);
    let err = sync(&ir(&infra("changed")), &opts(base, false)).unwrap_err();
    assert!(matches!(err, SyncError::Locked { .. }), "{err}");
    assert_eq!(snapshot(base), before);
    // A dry run reads only; it does not need the lock.
    let mut dry = opts(base, false);
    dry.dry_run = true;
    sync(&ir(&infra("changed")), &dry).unwrap();
    drop(held);
    // What a killed sync leaves behind, and a user file that only looks
    // alike (not removed).
    let leftover = base.join("host_vars/.work-dev.yml.anklume-4242-7.tmp");
    std::fs::write(&leftover, "half").unwrap();
    std::fs::write(base.join("host_vars/.notes.tmp"), "mine").unwrap();
    let report = sync(&ir(&infra("changed")), &opts(base, false)).unwrap();
    assert_eq!(
        report.stale_temps,
        vec!["host_vars/.work-dev.yml.anklume-4242-7.tmp"]
    );
    assert!(!leftover.exists());
    assert!(base.join("host_vars/.notes.tmp").exists());
}

#[test]
fn two_concurrent_syncs_never_mix_their_trees() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let a = ir(&infra("first"));
    let b = ir(&infra("second"));
    let fresh = |ir: &Ir| {
        let d = tempfile::tempdir().unwrap();
        sync(ir, &opts(d.path(), false)).unwrap();
        snapshot(d.path())
    };
    let (want_a, want_b) = (fresh(&a), fresh(&b));
    for _ in 0..20 {
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| sync(&a, &opts(&base, false)));
            let tb = s.spawn(|| sync(&b, &opts(&base, false)));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        // At least one ran; the tree is wholly one of the two.
        assert!(ra.is_ok() || rb.is_ok());
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(matches!(e, SyncError::Locked { .. }), "{e}");
            }
        }
        let got = snapshot(&base);
        assert!(got == want_a || got == want_b);
    }
}

/// Arbitrary bytes a user may have in a file, outside its block.
fn user_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "(?s)[\u{feff}\r\n\t a-z:#'\"!|>-]{0,120}".prop_map(String::into_bytes),
        "[a-z]{1,6}: [a-z0-9]{0,8}(\r?\n)".prop_map(String::into_bytes),
    ]
}

/// Whether `b` holds a marker line (such bytes legitimately start a block).
fn has_marker_line(b: &[u8]) -> bool {
    b.split(|&c| c == b'\n').any(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        l.trim_ascii_end() == BEGIN.as_bytes() || l.trim_ascii_end() == END.as_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For arbitrary existing bytes and a valid infra, sync keeps every
    /// byte outside the managed block, and a second sync changes nothing.
    #[test]
    fn every_byte_outside_the_block_survives(
        before in user_bytes(),
        after in user_bytes(),
        desc in "[ -~]{0,30}",
        machines in 1..4usize,
    ) {
        prop_assume!(!has_marker_line(&before) && !has_marker_line(&after));
        let text_for = |desc: &str| {
            let mut text = infra(&format!("{desc:?}"));
            for i in 1..machines {
                text.push_str(&format!("      work-m{i}: {{}}\n"));
            }
            text
        };
        let first = ir(&text_for(&desc));
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        sync(&first, &opts(base, false)).unwrap();
        let f = base.join("host_vars/work-dev.yml");
        let generated = std::fs::read(&f).unwrap();
        // The user's bytes before the block (ending the line) and after it.
        let start = generated.windows(BEGIN.len()).position(|w| w == BEGIN.as_bytes()).unwrap();
        let end = generated.windows(END.len()).position(|w| w == END.as_bytes()).unwrap() + END.len();
        let mut mine = before.clone();
        mine.push(b'\n');
        mine.extend_from_slice(&generated[start..end]);
        mine.push(b'\n');
        mine.extend_from_slice(&after);
        std::fs::write(&f, &mine).unwrap();
        let changed = ir(&text_for(&format!("changed-{desc}")));
        sync(&changed, &opts(base, false)).unwrap();
        let got = std::fs::read(&f).unwrap();
        let mut prefix = before.clone();
        prefix.push(b'\n');
        prop_assert!(got.starts_with(&prefix));
        let mut suffix = vec![b'\n'];
        suffix.extend_from_slice(&after);
        prop_assert!(got.ends_with(&suffix));
        let again = snapshot(base);
        sync(&changed, &opts(base, false)).unwrap();
        prop_assert_eq!(snapshot(base), again);
    }

    /// `--clean-orphans` never deletes a file that says it is protected,
    /// nor one anklume cannot parse.
    #[test]
    fn clean_orphans_never_deletes_protected_or_unreadable(
        junk in user_bytes(),
        falsy in prop::sample::select(vec!["false", "no", "off", "0", "~", "''", "False", "!!bool false", "\"no\""]),
        key in prop::sample::select(vec!["instance_ephemeral", "domain_ephemeral"]),
        extra in prop::sample::select(vec!["", "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6132\n", "a: &x 1\nb: *x\n", "l: [1, 2]\n"]),
    ) {
        // Junk that starts its own line (an indented line would continue
        // the value, `false` becoming `false more`) and does not name the
        // keys itself.
        prop_assume!(junk.first().is_none_or(|b| !b" \t\r\n".contains(b)));
        prop_assume!(!junk.windows(10).any(|w| w == b"_ephemeral"));
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let ir = ir(&infra("w"));
        sync(&ir, &opts(base, false)).unwrap();
        let hv = base.join("host_vars");
        let protected = format!("{extra}{key}: {falsy}\n");
        std::fs::write(hv.join("protected.yml"), &protected).unwrap();
        // Protected, then damaged in arbitrary ways.
        let mut damaged = protected.clone().into_bytes();
        damaged.extend_from_slice(&junk);
        std::fs::write(hv.join("damaged.yml"), &damaged).unwrap();
        let report = sync(&ir, &opts(base, true)).unwrap();
        prop_assert!(hv.join("protected.yml").exists());
        prop_assert!(report.deleted.iter().all(|d| d != "host_vars/protected.yml"));
        // The damaged file is kept: either it still parses and says it is
        // protected, or anklume cannot read it.
        prop_assert!(hv.join("damaged.yml").exists(), "{:?}", report);
        prop_assert_eq!(std::fs::read(hv.join("damaged.yml")).unwrap(), damaged);
    }
}
