//! `anklume check`.

use std::path::PathBuf;

use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Exit;

/// Check the sources and report every problem.
#[derive(clap::Args)]
pub struct Args {
    /// infra.yml or infra/ (default: whichever exists here).
    pub source: Option<PathBuf>,
    /// Diagnostic format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagFormat,
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let c = match load_and_compile(args.source.as_deref()) {
        Ok((c, _)) => c,
        Err(msg) => {
            eprintln!("error: {}", anklume_term::display(&msg));
            return Exit::Failed;
        }
    };
    print_diags(&c, args.format, true);
    let invalid = c.compiled.has_errors();
    if args.format == DiagFormat::Text {
        let ir = &c.compiled.ir;
        if invalid {
            eprintln!("check failed: {}", summary(&c));
        } else {
            let machines: usize = ir.domains.iter().map(|d| d.machines.len()).sum();
            println!(
                "ok: {} domain(s), {machines} machine(s), {} network polic{} ({})",
                ir.domains.len(),
                ir.policies.len(),
                if ir.policies.len() == 1 { "y" } else { "ies" },
                summary(&c)
            );
        }
    }
    if invalid {
        Exit::Invalid
    } else {
        Exit::Ok
    }
}
