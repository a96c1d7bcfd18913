//! `anklume nftables`: write the host isolation ruleset from the sources
//! (v1's `make nftables`), or check and load a ruleset file on this host
//! (`anklume nftables deploy FILE`, v1's two-step flow for when anklume runs
//! inside a container and the rules belong on the host).

use std::path::{Path, PathBuf};
use std::process::Command;

use anklume_plan::Resource;

use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Outcome;

/// Write the nftables isolation ruleset, or load one (`deploy`).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// infra.yml or infra/ (default: whichever exists here).
    pub source: Option<PathBuf>,
    /// Write the ruleset to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Check a ruleset file with `nft -c`, then load it atomically with `nft -f`.
    Deploy {
        /// The ruleset file (written by `anklume nftables`).
        file: PathBuf,
    },
}

/// Run it.
pub fn run(args: Args) -> Outcome {
    match args.action {
        Some(Action::Deploy { file }) => deploy(&file),
        None => write(args.source.as_deref(), args.output.as_deref()),
    }
}

fn write(source: Option<&Path>, output: Option<&Path>) -> Outcome {
    let (c, facts) = match load_and_compile(source) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Outcome::Failed;
        }
    };
    print_diags(&c, DiagFormat::Text, false);
    if c.compiled.has_errors() {
        eprintln!("nftables aborted: {}", summary(&c));
        return Outcome::Invalid;
    }
    let file = match super::plan::plan_file(&c, &facts) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Internal;
        }
    };
    let Some(text) = file.plan.nodes.iter().find_map(|n| match &n.resource {
        Resource::Nftables(t) => Some(t.text()),
        _ => None,
    }) else {
        eprintln!("error: the plan has no nftables ruleset");
        return Outcome::Internal;
    };
    match output {
        Some(path) => match crate::output::write_output(path, text.as_bytes()) {
            Ok(()) => {
                eprintln!(
                    "wrote {} (load it with `anklume nftables deploy {}`)",
                    path.display(),
                    path.display()
                );
                Outcome::Ok
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                Outcome::Failed
            }
        },
        None => {
            print!("{text}");
            Outcome::Ok
        }
    }
}

fn deploy(file: &Path) -> Outcome {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Outcome::Failed;
        }
    };
    // Only what is known to stay inside table `inet anklume` is loaded.
    if let Err(refused) = anklume_executor::nft::syntax::check(&text) {
        eprintln!(
            "error: {}",
            anklume_executor::nft::syntax::refusal_message(&file.display().to_string(), &refused)
        );
        eprintln!("nothing was loaded");
        return Outcome::Invalid;
    }
    let nft = |args: &[&str]| Command::new("nft").args(args).arg(file).output();
    match nft(&["-c", "-f"]) {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "error: `nft -c -f {}` rejected the ruleset; nothing was loaded:\n{}",
                file.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            return Outcome::Invalid;
        }
        Err(e) => {
            eprintln!("error: cannot run nft: {e} (install the nftables package)");
            return Outcome::Failed;
        }
    }
    match nft(&["-f"]) {
        Ok(o) if o.status.success() => {
            println!(
                "loaded {} (table inet anklume replaced atomically)",
                file.display()
            );
            Outcome::Ok
        }
        Ok(o) => {
            eprintln!(
                "error: `nft -f {}` failed; the previous table is unchanged:\n{}",
                file.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            Outcome::Invalid
        }
        Err(e) => {
            eprintln!("error: cannot run nft: {e}");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_text(text: &str) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rules.nft");
        std::fs::write(&f, text).unwrap();
        deploy(&f)
    }

    /// A file that touches anything but table `inet anklume` is refused
    /// before nft runs (these never reach `nft`, so the test needs none).
    #[test]
    fn deploy_refuses_what_touches_other_tables() {
        for bad in [
            "add rule inet filter input drop\n",
            "flush chain ip filter input\n",
            "table inet anklumex {\n}\n",
            "flush ruleset\n",
            "include \"/etc/nftables.conf\"\n",
            "table inet anklume {\n}\nlist ruleset\n",
        ] {
            assert!(matches!(deploy_text(bad), Outcome::Invalid), "{bad}");
        }
    }
}
