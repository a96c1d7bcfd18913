//! Helpers shared by the integration tests that drive the `anklume` binary.
#![allow(dead_code)]

pub mod live;

use std::path::Path;
use std::process::{Command, Output};

/// The test image `scripts/incus-setup.sh` imports.
pub const IMAGE: &str = "anklume-busybox";

/// `anklume ARGS` in `dir` with a pinned environment: no host-subnet check,
/// an empty context dir and a state dir under `dir`, no colour.
pub fn anklume_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_anklume"));
    c.args(args)
        .current_dir(dir)
        .env("ANKLUME_SKIP_HOST_SUBNET_CHECK", "1")
        .env("ANKLUME_CONTEXT_DIR", dir.join("no-context"))
        .env("ANKLUME_STATE_DIR", dir.join("state"))
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
    let socket = anklume_executor::client::socket_path();
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
