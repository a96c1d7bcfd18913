//! `anklume show`: render a plan file.

use std::path::{Path, PathBuf};

use anklume_plan::codec::{self, PlanFile};
use anklume_plan::render;

use crate::Outcome;

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

/// Read and decode a plan file; the error is ready to print.
pub fn read_plan(path: &Path) -> Result<PlanFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    codec::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run it.
pub fn run(args: Args) -> Outcome {
    let file = match read_plan(&args.plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let out = match args.format {
        ShowFormat::Text => render::text(&file),
        ShowFormat::Ron => render::ron(&file.plan),
        ShowFormat::Json => render::json(&file),
        ShowFormat::Dot => render::dot(&file.plan),
    };
    print!("{out}");
    Outcome::Ok
}
