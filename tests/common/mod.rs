//! Helpers shared by the integration tests that drive the `anklume` binary.
#![allow(dead_code)]

pub mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The test image `scripts/incus-setup.sh` imports.
pub const IMAGE: &str = "anklume-busybox";

/// Every domain (so every Incus project), machine (instance) and volume the
/// real-daemon tests create is named with this prefix, and so every bridge
/// with `net-` and this prefix; the tests' cleanup refuses other names. A
/// domain name holds at most 11 characters (its bridge `net-…` at most
/// Linux's 15), so 6 are left after the prefix.
pub const PREFIX: &str = "ankt-";

/// Set to `1`, the real-daemon tests run on a host that has anklume state of
/// its own (see `live::daemon`).
pub const ALLOW_FOREIGN: &str = "ANKLUME_TESTS_ALLOW_FOREIGN_STATE";

/// A domain, project, machine or volume name the tests own.
pub fn is_test_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.len() > PREFIX.len()
}

/// A bridge the tests own: `net-` and a test domain.
pub fn is_test_bridge(name: &str) -> bool {
    name.strip_prefix("net-").is_some_and(is_test_name)
}

/// `anklume ARGS` in `dir` with a pinned environment: no host-subnet check,
/// an empty context dir, a state dir and a home under `dir` (never the
/// user's), no colour.
pub fn anklume_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_anklume"));
    c.args(args)
        .current_dir(dir)
        .env("ANKLUME_SKIP_HOST_SUBNET_CHECK", "1")
        .env("ANKLUME_CONTEXT_DIR", dir.join("no-context"))
        .env("ANKLUME_STATE_DIR", dir.join("state"))
        .env("HOME", dir.join("home"))
        .env("NO_COLOR", "1");
    c
}

/// Run [`anklume_command`] to completion.
pub fn anklume(dir: &Path, args: &[&str]) -> Output {
    anklume_command(dir, args).output().expect("runs")
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether an Incus socket is there. Without one the caller skips, unless
/// `ANKLUME_REQUIRE_INCUS=1` (as in CI), where this fails the test.
pub fn incus_available() -> bool {
    let socket = anklume_executor::incus::socket_path();
    if socket.exists() {
        return true;
    }
    assert!(
        std::env::var("ANKLUME_REQUIRE_INCUS").as_deref() != Ok("1"),
        "ANKLUME_REQUIRE_INCUS=1 but there is no Incus socket at {}",
        socket.display()
    );
    eprintln!(
        "skipped: no Incus socket at {} (run scripts/incus-setup.sh)",
        socket.display()
    );
    false
}

/// The Ansible venv of `scripts/ansible-setup.sh` (`ANKLUME_ANSIBLE_VENV`,
/// else `~/.cache/anklume/ansible-venv`), found from the test process's own
/// `HOME`, before a test gives `anklume` another one.
pub fn ansible_venv() -> PathBuf {
    anklume_executor::ansible::default_venv()
}

/// A test that cannot run here says why and is skipped (returns `false`);
/// when the environment variable `require` is `1` (CI), it fails instead.
pub fn skip(require: &str, msg: &str) -> bool {
    assert!(
        std::env::var(require).as_deref() != Ok("1"),
        "{require}=1 but {msg}"
    );
    eprintln!("skipped: {msg}");
    false
}
