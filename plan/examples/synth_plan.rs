//! Write a synthetic `plan.bin` to stdout, for measuring `anklume show` and
//! `anklume diff` (see docs/benchmarks.md):
//!
//! ```sh
//! cargo run --release -p anklume-plan --example synth_plan -- realistic 200 50 > big.bin
//! cargo run --release -p anklume-plan --example synth_plan -- domains 50000 > crafted.bin
//! ```

#[path = "../benches/support/synth.rs"]
mod synth;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let file = match args.first().map(String::as_str) {
        Some("realistic") => synth::realistic(num(1), num(2)),
        Some("domains") => synth::many_domains(num(1)),
        _ => usage(),
    };
    std::io::stdout()
        .write_all(&anklume_plan::codec::encode(&file))
        .expect("writing stdout");
}

fn usage() -> ! {
    eprintln!("usage: synth_plan realistic DOMAINS MACHINES | synth_plan domains N");
    std::process::exit(2)
}
