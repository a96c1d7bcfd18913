//! `anklume show`: render a plan file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anklume_plan::codec::{self, PlanFile};
use anklume_plan::render;

use crate::Exit;

/// Rendering of `show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    /// For people: summary, resources by domain, ruleset.
    Text,
    /// Canonical RON.
    Ron,
    /// JSON (schema anklume.plan/v1).
    Json,
    /// Graphviz DOT, clustered by domain.
    Dot,
}

/// Show a plan file.
#[derive(clap::Args)]
pub struct Args {
    /// The plan (written by `anklume plan`).
    pub plan: PathBuf,
    /// Rendering.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ShowFormat,
}

/// Read and decode a plan file; the error is ready to print. The size is
/// checked before reading, and a FIFO or device is read only as far as a
/// plan's envelope announces (see `anklume_plan::codec::read`).
pub fn read_plan(path: &Path) -> Result<PlanFile, String> {
    codec::read(path).map_err(|e| {
        let mut msg = format!("{}: {e}", crate::output::shown(path));
        if let Some(hint) = not_a_plan_hint(path) {
            msg.push_str("\nhint: ");
            msg.push_str(hint);
        }
        msg
    })
}

/// What the file given as a plan is instead, when that can be told: the
/// sources (a directory, or YAML), or the plan's text rendering.
fn not_a_plan_hint(path: &Path) -> Option<&'static str> {
    const SOURCES: &str = "this is a source file, not a plan: run `anklume plan -o plan.bin` first, then apply plan.bin";
    if path.is_dir() {
        return Some("this is a directory (sources?), not a plan: run `anklume plan -o plan.bin` first, then apply plan.bin");
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .ok()?;
    // Text, though the 512 bytes may end inside a character.
    let head = match std::str::from_utf8(&head[..n]) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if head.starts_with("anklume plan:") {
        return Some("this is the plan's text rendering (what `anklume plan` prints on a terminal or a pipe): write the plan file with `anklume plan -o plan.bin`");
    }
    let yaml_name = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    );
    let yaml_like = head.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("project_name:") || l.starts_with("domains:") || l.starts_with("global:")
    });
    (yaml_name || yaml_like).then_some(SOURCES)
}

/// Write a rendering to stdout as it is produced. A closed pipe (`| head`)
/// ends the output quietly; any other write error is reported.
pub(crate) fn to_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Exit {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match write(&mut w).and_then(|()| w.flush()) {
        Ok(()) => Exit::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            Exit::Failed
        }
    }
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let file = match read_plan(&args.plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    to_stdout(|mut w| match args.format {
        ShowFormat::Text => render::write_text(&mut w, &file),
        ShowFormat::Ron => render::write_ron(&mut w, &file.plan),
        ShowFormat::Json => render::write_json(&mut w, &file),
        ShowFormat::Dot => render::write_dot(&mut w, &file.plan),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_inputs_are_clear_errors() {
        // Before: /dev/zero was read whole until the process ran out of memory.
        let e = read_plan(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e, "/dev/zero: not an anklume plan (wrong magic bytes)");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.bin");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(codec::MAX_FILE + 1)
            .unwrap();
        let e = read_plan(&big).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = read_plan(dir.path()).unwrap_err();
        assert!(e.contains("directory"), "{e}");
    }
}
