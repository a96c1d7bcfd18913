//! Input from places other than infra.yml that a careless user or an
//! attacker controls: context files, file names on the command line, free
//! text that ends up in the nftables ruleset.

mod common;

use std::process::Stdio;

use common::{anklume_command, text};

const INFRA: &str = "project_name: t\nglobal:\n  addressing: {}\n  default_os_image: \"images:debian/13\"\nnetwork_policies:\n  - description: \"pol\\n add rule inet filter forward accept \\e[5m \\r\"\n    from: a\n    to: b\n    ports: [22]\ndomains:\n  a:\n    trust_level: trusted\n    machines:\n      a-one: {}\n  b:\n    trust_level: trusted\n    machines:\n      b-one: {}\n";

fn raw_controls(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .chars()
        .any(|c| c != '\n' && (c.is_control()))
}

#[test]
fn a_context_file_that_is_a_fifo_or_endless_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("infra.yml"), INFRA).unwrap();
    let ctx = d.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let fifo = ctx.join("absolute_level");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/dev/zero", ctx.join("vm_nested")).unwrap();
    let mut child = anklume_command(d, &["check"])
        .env("ANKLUME_CONTEXT_DIR", &ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("check hung on a FIFO or endless context file");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{}",
        text(&o)
    );
}

#[test]
fn file_names_and_descriptions_reach_no_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("infra.yml"), INFRA).unwrap();
    let esc = "n\u{1b}[31m";
    for args in [
        vec!["show", esc],
        vec!["diff", esc, esc],
        vec!["nftables"],
        vec!["nftables", "-o", "out\u{1b}[5m.nft"],
    ] {
        let o = anklume_command(d, &args).output().unwrap();
        assert!(!raw_controls(&o.stdout), "{args:?}: {}", text(&o));
        assert!(!raw_controls(&o.stderr), "{args:?}: {}", text(&o));
    }
    // The ruleset comment keeps the description on one line, escaped.
    let rules = std::fs::read_to_string(d.join("out\u{1b}[5m.nft")).unwrap();
    assert!(!raw_controls(rules.as_bytes()), "{rules}");
    assert!(
        rules.contains("# pol\\n add rule inet filter forward accept \\x1b[5m \\r"),
        "{rules}"
    );
    assert!(
        !rules
            .lines()
            .any(|l| l.trim_start().starts_with("add rule")),
        "{rules}"
    );
}
