//! The `anklume` command line: argument parsing, host-fact gathering, wiring
//! and exit codes. The work itself lives in the library crates.

mod ansible_content;
mod client;
mod commands;
mod facts;
mod import;
mod output;
mod provisioning;

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
    /// Compute the plan: every Incus resource with its desired state.
    ///
    /// `anklume plan > plan.bin` writes the binary plan; on a terminal the
    /// text rendering is shown instead. Nothing is contacted: no Incus needed.
    Plan(commands::plan::Args),
    /// Render a plan file (text, ron, json or dot).
    Show(commands::show::Args),
    /// Compare two plan files: exit 0 when equal, 1 when they differ, 2 on error.
    Diff(commands::diff::Args),
    /// Make Incus match a plan file (`--dry-run` to only show the changes).
    Apply(commands::apply::Args),
    /// What is deployed: Incus against the sources, per domain (read only).
    ///
    /// Exit status: 0 up to date, 1 invalid source, 2 usage or I/O error
    /// (Incus unreachable), 3 drifted, missing, orphaned or not
    /// provisioned.
    Status(commands::status::Args),
    /// Write the host nftables isolation ruleset, or load one (`deploy FILE`).
    Nftables(commands::nftables::Args),
    /// Delete everything anklume manages on this Incus (undo: `rollback`).
    Flush(commands::lifecycle::FlushArgs),
    /// Delete instances anklume manages, by name or --domain (undo:
    /// `rollback`).
    Remove(commands::lifecycle::RemoveArgs),
    /// Undo an apply (journal + pre-apply snapshots); --list, --cleanup.
    Rollback(commands::rollback::Args),
    /// Create, restore, list or delete instance snapshots.
    Snapshot(commands::snapshot::Args),
    /// Explain a diagnostic code: its meaning, a failing and a fixed
    /// example (`anklume explain E0404`; no code: the list).
    Explain(commands::explain::Args),
    /// Write an infra.yml from what a live Incus has (apply then only
    /// adopts it).
    Import(commands::import::Args),
}

/// How a command ended.
pub enum Exit {
    /// Success.
    Ok,
    /// The input is invalid (diagnostics were printed).
    Invalid,
    /// Usage or I/O error (message printed).
    Failed,
    /// A bug in anklume (message printed).
    Internal,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// `status`: Incus does not match the sources.
    Differs,
}

fn main() -> ExitCode {
    // A write past the file-size limit (`ulimit -f`) fails with EFBIG and is
    // reported like any write error, instead of killing the process midway
    // (sync then says what was and was not written).
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // Read-only commands die quietly on a closed pipe (`anklume show p | head`),
    // like other Unix tools. Commands that change things keep ignoring
    // SIGPIPE: a closed pipe must not kill an apply half-way.
    if matches!(
        cli.command,
        Command::Check(_)
            | Command::Plan(_)
            | Command::Show(_)
            | Command::Diff(_)
            | Command::Status(_)
            | Command::Explain(_)
    ) {
        // SAFETY: restoring the default disposition of a signal, before any
        // thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let outcome = match cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Sync(a) => commands::sync::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Show(a) => commands::show::run(a),
        Command::Diff(a) => commands::diff::run(a),
        Command::Apply(a) => commands::apply::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Nftables(a) => commands::nftables::run(a),
        Command::Rollback(a) => commands::rollback::run(a),
        Command::Flush(a) => commands::lifecycle::flush(a),
        Command::Remove(a) => commands::lifecycle::remove(a),
        Command::Snapshot(a) => commands::snapshot::run(a),
        Command::Explain(a) => commands::explain::run(a),
        Command::Import(a) => commands::import::run(a),
    };
    match outcome {
        Exit::Ok => ExitCode::SUCCESS,
        Exit::Invalid => ExitCode::from(1),
        Exit::Failed => ExitCode::from(2),
        Exit::Internal => ExitCode::from(70),
        Exit::Interrupted => ExitCode::from(130),
        Exit::Differs => ExitCode::from(3),
    }
}
