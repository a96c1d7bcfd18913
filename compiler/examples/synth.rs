//! Print a synthetic infrastructure: `cargo run --release -p anklume-compiler
//! --example synth -- 200 50 > big.yml`.

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap_or(0));
    let domains = args.next().unwrap_or(200);
    let machines = args.next().unwrap_or(50);
    print!("{}", anklume_compiler::synth::infra_yaml(domains, machines));
}
