//! `anklume diff`: what changes between two plans. Exit 0 when equal, 1 when
//! they differ (like diff(1)), 2 on error.

use std::path::PathBuf;

use anklume_plan::diff;

use super::show::{read_plan, to_stdout};
use crate::Exit;

/// Rendering of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// For people.
    Text,
    /// JSON: added, removed, changed (key, old, new), opens, closes.
    Json,
}

/// Compare two plan files.
#[derive(clap::Args)]
pub struct Args {
    /// The old plan.
    pub old: PathBuf,
    /// The new plan.
    pub new: PathBuf,
    /// Rendering.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let (old, new) = match (read_plan(&args.old), read_plan(&args.new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let d = diff::diff(&old.plan, &new.plan);
    let written = to_stdout(|mut w| match args.format {
        DiffFormat::Text => diff::write_text(&mut w, &d),
        DiffFormat::Json => anklume_plan::render::write_json_value(&mut w, &d),
    });
    if !matches!(written, Exit::Ok) {
        written
    } else if d.is_empty() {
        Exit::Ok
    } else {
        Exit::Invalid
    }
}
