//! One module per subcommand, plus what they share: loading and compiling
//! sources, and printing diagnostics.

pub mod apply;
pub mod check;
pub mod deletions;
pub mod diff;
pub mod explain;
pub mod import;
pub mod lifecycle;
pub mod nftables;
pub mod plan;
pub mod rollback;
pub mod show;
pub mod snapshot;
pub mod status;
pub mod sync;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anklume_compiler::{compile, render, Compiled};
use anklume_schema::{Loaded, Severity};

use crate::facts;

/// Output format for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagFormat {
    /// Rendered for people (codespan).
    Text,
    /// One JSON object per line.
    Json,
}

pub use crate::client::incus;

/// Whether to colour stderr.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Loaded and compiled sources.
pub struct Compilation {
    /// The sources.
    pub loaded: Loaded,
    /// The result.
    pub compiled: Compiled,
}

/// Load `source` (or `./infra.yml` / `./infra/`) and compile it with this
/// host's facts. `Err` carries an I/O or usage message (exit 2).
pub fn load_and_compile(
    source: Option<&Path>,
) -> Result<(Compilation, anklume_compiler::HostFacts), String> {
    let cwd = PathBuf::from(".");
    let origin = match anklume_schema::resolve(source, &cwd) {
        Ok(o) => o,
        Err(anklume_schema::ResolveError::Ambiguous(diag)) => {
            let loaded = Loaded {
                origin: None,
                sources: Default::default(),
                infra: Default::default(),
                diags: vec![*diag],
                omitted: Vec::new(),
            };
            let compiled = Compiled {
                ir: Default::default(),
                provenance: Default::default(),
                diags: loaded.diags.clone(),
                omitted: Vec::new(),
            };
            return Ok((Compilation { loaded, compiled }, Default::default()));
        }
        Err(anklume_schema::ResolveError::NotFound(io)) => return Err(io.message),
    };
    let loaded = anklume_schema::load(&origin, &cwd).map_err(|e| e.message)?;
    let facts = facts::gather(facts::Wanted {
        resources: loaded.infra.global.resource_policy.get().is_some(),
    });
    let compiled = compile(&loaded, &facts);
    Ok((Compilation { loaded, compiled }, facts))
}

/// Print diagnostics to stderr in the chosen format. `Info` notices are
/// printed in text mode only when `notices`. At most
/// [`render::MAX_PER_CODE`] of each code are printed, then how many more.
pub fn print_diags(c: &Compilation, format: DiagFormat, notices: bool) {
    let keep = |s: Severity| notices || s != Severity::Info;
    let diags: Vec<_> = c
        .compiled
        .diags
        .iter()
        .filter(|d| keep(d.severity))
        .cloned()
        .collect();
    let omitted: Vec<_> = c
        .compiled
        .omitted
        .iter()
        .filter(|o| keep(o.severity))
        .cloned()
        .collect();
    let out = match format {
        DiagFormat::Text => {
            render::render_text_capped(&diags, &omitted, &c.loaded.sources, color())
        }
        DiagFormat::Json => render::render_json_capped(&diags, &omitted, &c.loaded.sources),
    };
    eprint!("{out}");
}

/// Output format of the listing commands (`rollback --list`, `snapshot
/// list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// A table for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// A message of the command itself, not about a place in the sources, on
/// stderr in the diagnostic format: `severity: message` (escaped), or one
/// JSON object with the diagnostics' fields (no code, no place), so that
/// `--diagnostics json` output is JSON lines only.
pub fn say(format: DiagFormat, severity: &str, message: &str) {
    match format {
        DiagFormat::Text => eprintln!("{severity}: {}", anklume_term::display(message)),
        DiagFormat::Json => eprintln!(
            "{}",
            serde_json::json!({"severity": severity, "code": null, "message": message, "file": null, "line": null, "column": null})
        ),
    }
}

/// A summary line for text output: `2 errors, 1 warning` (omitted
/// diagnostics counted).
pub fn summary(c: &Compilation) -> String {
    let errors = c.compiled.count(Severity::Error);
    let warnings = c.compiled.count(Severity::Warning);
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// Run an async command body on a multi-threaded tokio runtime (the
/// commands that talk to Incus).
pub fn block_on<F: std::future::Future<Output = crate::Exit>>(body: F) -> crate::Exit {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(body),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            crate::Exit::Failed
        }
    }
}

/// Ask `question [y/N]` on stderr; `y`, `Y` or `yes` on stdin accepts.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}
