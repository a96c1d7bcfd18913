//! `anklume nftables`: write the host isolation ruleset from the sources
//! (v1's `make nftables`), or check and load a ruleset file on this host
//! (`anklume nftables deploy FILE`, v1's two-step flow for when anklume runs
//! inside a container and the rules belong on the host).

use std::path::{Path, PathBuf};

use anklume_term::display as esc;

use anklume_plan::Resource;

use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Exit;

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
pub fn run(args: Args) -> Exit {
    match args.action {
        Some(Action::Deploy { file }) => deploy(&file),
        None => write(args.source.as_deref(), args.output.as_deref()),
    }
}

fn write(source: Option<&Path>, output: Option<&Path>) -> Exit {
    let (c, facts) = match load_and_compile(source) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Failed;
        }
    };
    print_diags(&c, DiagFormat::Text, false);
    if c.compiled.has_errors() {
        eprintln!("nftables aborted: {}", summary(&c));
        return Exit::Invalid;
    }
    let file = match super::plan::plan_file(&c, &facts, None, DiagFormat::Text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    let Some(text) = file.plan.nodes.iter().find_map(|n| match &n.resource {
        Resource::Nftables(t) => Some(t.text()),
        _ => None,
    }) else {
        eprintln!("error: the plan has no nftables ruleset");
        return Exit::Internal;
    };
    match output {
        Some(path) => match crate::output::write_output(path, text.as_bytes()) {
            Ok(()) => {
                eprintln!(
                    "wrote {} (load it with `anklume nftables deploy {}`)",
                    crate::output::shown(path),
                    crate::output::shown(path)
                );
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: {}: {e}", crate::output::shown(path));
                Exit::Failed
            }
        },
        None => {
            print!("{text}");
            Exit::Ok
        }
    }
}

/// The largest ruleset file `deploy` reads.
const MAX_RULESET_BYTES: u64 = 64 << 20;

fn deploy(file: &Path) -> Exit {
    // Read the file once, check those bytes, and hand nft exactly those
    // bytes (a private copy): a FIFO or a file swapped between the check
    // and nft's own reads cannot make nft load something else.
    let bytes = match read_bounded(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", crate::output::shown(file));
            return Exit::Failed;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: {}: not UTF-8 text (byte {}); nothing was loaded",
                crate::output::shown(file),
                e.utf8_error().valid_up_to()
            );
            return Exit::Invalid;
        }
    };
    // Only what is known to stay inside table `inet anklume` is loaded.
    if let Err(refused) = anklume_executor::nft::syntax::check(&text) {
        eprintln!(
            "error: {}",
            anklume_executor::nft::syntax::refusal_message(&crate::output::shown(file), &refused)
        );
        eprintln!("nothing was loaded");
        return Exit::Invalid;
    }
    // Loaded like apply loads it: under the apply lock, the table in force
    // saved first, and the ruleset recorded in the state directory, so the
    // next apply's drift check knows what is loaded.
    use anklume_executor::nft::{self, NftError};
    use anklume_executor::Error;
    let state_dir = anklume_executor::state::state_dir();
    let _lock = match anklume_executor::state::lock(&state_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {}; nothing was loaded", esc(&e.to_string()));
            return Exit::Invalid;
        }
    };
    match nft::deploy(&nft::System, &text, &state_dir) {
        Ok(()) => {
            println!(
                "loaded {} (table inet anklume replaced atomically)",
                crate::output::shown(file)
            );
            Exit::Ok
        }
        Err(Error::Nft(NftError::Rejected { args, stderr, .. })) => {
            eprintln!(
                "error: `nft {args} {}` {}:\n{}",
                crate::output::shown(file),
                if args.contains("-c") {
                    "rejected the ruleset; nothing was loaded"
                } else {
                    "failed; the previous table is unchanged"
                },
                stderr
                    .lines()
                    .map(|l| esc(l).to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            Exit::Invalid
        }
        Err(e @ Error::Nft(NftError::Refused(_) | NftError::List(_))) => {
            eprintln!("error: {}\nnothing was loaded", esc(&e.to_string()));
            Exit::Invalid
        }
        Err(e @ Error::Nft(NftError::Unavailable(_))) => {
            eprintln!(
                "error: {} (install the nftables package)",
                esc(&e.to_string())
            );
            Exit::Failed
        }
        Err(e) => {
            eprintln!("error: {}", esc(&e.to_string()));
            Exit::Failed
        }
    }
}

/// The bytes of `file`, at most [`MAX_RULESET_BYTES`], read once.
fn read_bounded(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)?
        .take(MAX_RULESET_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RULESET_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_RULESET_BYTES} bytes; not a ruleset anklume wrote"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_text(text: &str) -> Exit {
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
            assert!(matches!(deploy_text(bad), Exit::Invalid), "{bad}");
        }
    }
}
