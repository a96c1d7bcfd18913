//! The `anklume` command line: argument parsing, host-fact gathering, wiring
//! and exit codes. The work itself lives in the library crates.

mod commands;
mod facts;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// anklume allocates many small strings and nodes; mimalloc makes that
/// markedly cheaper than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// anklume: QubesOS-like compartments on plain Linux, declared in infra.yml.
#[derive(Parser)]
#[command(name = "anklume", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check infra.yml (or infra/) and report every problem.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
    Check(commands::check::Args),
    /// Write the Ansible tree (inventory/, group_vars/, host_vars/).
    ///
    /// Only the managed block of each file is rewritten; everything else in
    /// the files is kept. Nothing is written when the input is invalid.
    Sync(commands::sync::Args),
}

/// How a command ended.
pub enum Outcome {
    /// Success.
    Ok,
    /// The input is invalid (diagnostics were printed).
    Invalid,
    /// Usage or I/O error (message printed).
    Failed,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let outcome = match cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Sync(a) => commands::sync::run(a),
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Invalid => ExitCode::from(1),
        Outcome::Failed => ExitCode::from(2),
    }
}
