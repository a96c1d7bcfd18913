//! `anklume sync` and `-o FILE` as a careless user or an attacker uses
//! them: files it cannot parse, marker text in values, user bytes, links,
//! special files, a halfway failure.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{anklume, anklume_command as cmd, text};

const INFRA: &str = "project_name: t\nglobal:\n  addressing: {}\n  default_os_image: \"images:debian/13\"\ndomains:\n  work:\n    description: DESC\n    trust_level: trusted\n    machines:\n      work-dev:\n        roles: [base_system]\n      work-b: {}\n";

fn write_infra(dir: &Path, desc: &str) {
    std::fs::write(dir.join("infra.yml"), INFRA.replace("DESC", desc)).unwrap();
}

#[test]
fn clean_orphans_keeps_a_protected_file_with_a_vault_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    assert!(anklume(d, &["sync"]).status.success());
    let vault = "instance_ephemeral: false\ndb_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  62313365396662343061393464336163\n";
    std::fs::write(d.join("host_vars/old-db.yml"), vault).unwrap();
    std::fs::write(
        d.join("host_vars/old-tab.yml"),
        "instance_ephemeral: false\n\tbad: 1\n",
    )
    .unwrap();
    let o = anklume(d, &["sync", "--clean-orphans"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("host_vars/old-db.yml")).unwrap(),
        vault
    );
    assert!(d.join("host_vars/old-tab.yml").exists(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("PROTECTED (ephemeral=false): host_vars/old-db.yml"),
        "{out}"
    );
    assert!(
        out.contains("KEPT (cannot tell whether it is protected: YAML error"),
        "{out}"
    );
}

#[test]
fn a_description_with_the_end_marker_leaves_no_stale_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "'tricky # === END MANAGED === text'");
    assert!(anklume(d, &["sync"]).status.success());
    // Change the roles, then sync again: the old role must be gone.
    let changed = std::fs::read_to_string(d.join("infra.yml"))
        .unwrap()
        .replace("[base_system]", "[dev_tools]");
    std::fs::write(d.join("infra.yml"), changed).unwrap();
    assert!(anklume(d, &["sync"]).status.success());
    let hv = std::fs::read_to_string(d.join("host_vars/work-dev.yml")).unwrap();
    assert!(!hv.contains("base_system"), "{hv}");
    // Change the description too: every file must then be exactly what a
    // sync into an empty directory writes (no stale line after a block).
    let changed = std::fs::read_to_string(d.join("infra.yml"))
        .unwrap()
        .replace("'tricky # === END MANAGED === text'", "plain");
    std::fs::write(d.join("infra.yml"), &changed).unwrap();
    assert!(anklume(d, &["sync"]).status.success());
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join("infra.yml"), &changed).unwrap();
    assert!(anklume(fresh.path(), &["sync"]).status.success());
    for f in [
        "group_vars/work.yml",
        "group_vars/all.yml",
        "host_vars/work-dev.yml",
    ] {
        assert_eq!(
            std::fs::read_to_string(d.join(f)).unwrap(),
            std::fs::read_to_string(fresh.path().join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn a_bom_and_invalid_utf8_survive_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    std::fs::create_dir_all(d.join("host_vars")).unwrap();
    let mine = b"\xEF\xBB\xBF---\r\n# caf\xE9\r\nmine: \xFF\r\n";
    std::fs::write(d.join("host_vars/work-dev.yml"), mine).unwrap();
    assert!(anklume(d, &["sync"]).status.success());
    let after = std::fs::read(d.join("host_vars/work-dev.yml")).unwrap();
    assert!(after.starts_with(b"\xEF\xBB\xBF---\r\n# === MANAGED BY infra.yml ==="));
    assert!(after.ends_with(b"\n\n# caf\xE9\r\nmine: \xFF\r\n"));
    assert!(!after.windows(3).skip(1).any(|w| w == b"\xEF\xBB\xBF"));
    assert!(!after.windows(3).any(|w| w == "\u{fffd}".as_bytes()));
}

#[test]
fn a_linked_host_vars_is_refused_and_nothing_outside_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("unrelated.yml"), "a: 1\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("host_vars")).unwrap();
    let o = anklume(d, &["sync", "--clean-orphans"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symbolic link"),
        "{}",
        text(&o)
    );
    let left: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("unrelated.yml")).unwrap(),
        "a: 1\n"
    );
    assert!(!d.join("inventory/work.yml").exists(), "nothing written");
}

#[test]
fn a_dangling_domain_file_is_an_error_not_a_vanished_domain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("infra/domains")).unwrap();
    std::fs::write(
        d.join("infra/base.yml"),
        "project_name: t\nglobal:\n  addressing: {}\n  default_os_image: \"images:debian/13\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("infra/domains/a.yml"),
        "a:\n  trust_level: trusted\n  machines:\n    a-one: {}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("infra/domains/b.yml"),
        "b:\n  trust_level: trusted\n  machines:\n    b-one: {}\n",
    )
    .unwrap();
    assert!(anklume(d, &["sync"]).status.success());
    assert!(d.join("host_vars/b-one.yml").exists());
    // b.yml becomes a dangling link (say, a moved file): its domain must
    // not silently vanish, and --clean-orphans must not delete its files.
    std::fs::remove_file(d.join("infra/domains/b.yml")).unwrap();
    std::os::unix::fs::symlink("../../moved/b.yml", d.join("infra/domains/b.yml")).unwrap();
    for args in [
        &["check"][..],
        &["sync", "--clean-orphans"][..],
        &["plan", "--format", "text"][..],
    ] {
        let o = anklume(d, args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("b.yml"),
            "{}",
            text(&o)
        );
    }
    assert!(d.join("host_vars/b-one.yml").exists());
    // A link leading out of infra/ is refused too; one inside is read.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("b.yml"),
        "b:\n  trust_level: trusted\n  machines:\n    b-one: {}\n",
    )
    .unwrap();
    std::fs::remove_file(d.join("infra/domains/b.yml")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("b.yml"), d.join("infra/domains/b.yml"))
        .unwrap();
    let o = anklume(d, &["check"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("outside"),
        "{}",
        text(&o)
    );
    std::fs::create_dir(d.join("infra/shared")).unwrap();
    std::fs::copy(outside.path().join("b.yml"), d.join("infra/shared/b.yml")).unwrap();
    std::fs::remove_file(d.join("infra/domains/b.yml")).unwrap();
    std::os::unix::fs::symlink("../shared/b.yml", d.join("infra/domains/b.yml")).unwrap();
    let o = anklume(d, &["check"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn output_files_that_are_not_regular_are_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    // A link to a regular file: the link stays, the file gets the plan.
    std::fs::write(d.join("real.bin"), "old").unwrap();
    std::os::unix::fs::symlink("real.bin", d.join("plan.bin")).unwrap();
    let o = anklume(d, &["plan", "-o", "plan.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::symlink_metadata(d.join("plan.bin"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read(d.join("real.bin"))
        .unwrap()
        .starts_with(b"ANKPLAN\0"));
    // A FIFO stays a FIFO, and its reader gets the ruleset.
    for args in [
        &["nftables", "-o", "fifo"][..],
        &["plan", "--format", "text", "-o", "fifo"][..],
    ] {
        let fifo = d.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let o = anklume(d, args);
        assert!(o.status.success(), "{}", text(&o));
        let got = reader.join().unwrap();
        assert!(!got.is_empty());
        let t = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&t), "{args:?}");
    }
    // /dev/stdout with stdout a pipe: the bytes arrive on the pipe.
    let o = anklume(d, &["nftables", "-o", "/dev/stdout"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("table inet anklume"));
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_failure_halfway_says_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A long description makes group_vars/work.yml the largest file: a
    // file-size limit lets the small files through and stops that one.
    let long = "x".repeat(3000);
    write_infra(d, &long);
    let mut c = cmd(d, &["sync"]);
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 2048,
                rlim_max: 2048,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("group_vars/work.yml") && err.contains("not written"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("Written: host_vars/work-dev.yml"),
        "{}",
        text(&o)
    );
    assert!(d.join("host_vars/work-dev.yml").exists());
    assert!(!d.join("group_vars/work.yml").exists());
    // No temporary file is left behind; the next sync completes the tree.
    let leftovers: Vec<_> = std::fs::read_dir(d.join("group_vars"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let o = anklume(d, &["sync"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("group_vars/work.yml").exists());
}

#[test]
fn dash_o_dev_stdout_appends_to_what_stdout_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    std::fs::write(d.join("log.txt"), "previous log line\n").unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("log.txt"))
        .unwrap();
    let o = cmd(d, &["nftables", "-o", "/dev/stdout"])
        .stdout(log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(d.join("log.txt")).unwrap();
    assert!(log.starts_with("previous log line\n"), "{log}");
    assert!(log.contains("table inet anklume"), "{log}");
}

#[test]
fn a_file_size_limit_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    // `ulimit -f 0`: the first write raises SIGXFSZ, which must not kill
    // sync before it says what was not written.
    let mut c = cmd(d, &["sync"]);
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not written"),
        "{}",
        text(&o)
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.join("host_vars"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_domains_dir_that_is_a_link_out_dangling_or_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("infra")).unwrap();
    std::fs::write(
        d.join("infra/base.yml"),
        "project_name: t\nglobal:\n  addressing: {}\n  default_os_image: \"images:debian/13\"\ndomains:\n  a:\n    trust_level: trusted\n    machines:\n      a-one: {}\n",
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("domains")).unwrap();
    std::fs::write(
        outside.path().join("domains/lab.yml"),
        "lab:\n  trust_level: trusted\n  machines:\n    lab-web: {}\n",
    )
    .unwrap();
    let domains = d.join("infra/domains");
    let cases: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| std::os::unix::fs::symlink(outside.path().join("domains"), &domains).unwrap()),
        Box::new(|| std::os::unix::fs::symlink("/nonexistent/anklume", &domains).unwrap()),
        Box::new(|| std::fs::write(&domains, "lab: {}\n").unwrap()),
    ];
    for make in cases {
        let _ = std::fs::remove_file(&domains);
        make();
        let o = anklume(d, &["check"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("domains"),
            "{}",
            text(&o)
        );
    }
    // A link that stays inside infra/ is followed.
    std::fs::remove_file(&domains).unwrap();
    std::fs::create_dir(d.join("infra/real-domains")).unwrap();
    std::fs::copy(
        outside.path().join("domains/lab.yml"),
        d.join("infra/real-domains/lab.yml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("real-domains", &domains).unwrap();
    let o = anklume(d, &["sync"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("host_vars/lab-web.yml").exists());
}

#[test]
fn a_file_whose_dash_line_carries_content_is_refused_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_infra(d, "w");
    std::fs::create_dir_all(d.join("host_vars")).unwrap();
    for mine in ["--- {mine: 1}\n", "--- |\n  text\n", "%YAML 1.1\nmine: 1\n"] {
        std::fs::write(d.join("host_vars/work-dev.yml"), mine).unwrap();
        let o = anklume(d, &["sync"]);
        assert_eq!(o.status.code(), Some(2), "{mine:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("host_vars/work-dev.yml"),
            "{}",
            text(&o)
        );
        assert_eq!(
            std::fs::read_to_string(d.join("host_vars/work-dev.yml")).unwrap(),
            mine
        );
        assert!(!d.join("inventory/work.yml").exists(), "nothing written");
    }
    // A comment on the `---` line is kept, the block goes after the line.
    std::fs::write(
        d.join("host_vars/work-dev.yml"),
        "--- # mine\r\nmine: 1\r\n",
    )
    .unwrap();
    let o = anklume(d, &["sync"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = std::fs::read_to_string(d.join("host_vars/work-dev.yml")).unwrap();
    assert!(
        after.starts_with("--- # mine\r\n# === MANAGED BY infra.yml ===\n"),
        "{after:?}"
    );
    assert!(after.ends_with("\n\nmine: 1\r\n"), "{after:?}");
}
