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
    codec::read(path).map_err(|e| format!("{}: {e}", crate::output::shown(path)))
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
