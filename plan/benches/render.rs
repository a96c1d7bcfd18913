//! `show` and `diff` renderings, on a 10,000-machine plan (200 domains × 50
//! machines) and on a crafted plan of 5,000 one-node domains (which made the
//! per-domain scans quadratic). Each rendering is timed from the decoded
//! plan; `decode_*` times decoding the plan file.

#[path = "support/synth.rs"]
mod synth;

use anklume_plan::codec::{decode, encode, PlanFile};
use anklume_plan::{diff, render};

fn main() {
    for (name, f) in [("10k", big()), ("5k_domains", domains())] {
        println!(
            "{name}: {} nodes, plan.bin {} bytes",
            f.plan.nodes.len(),
            encode(&f).len()
        );
    }
    divan::main();
}

fn big() -> PlanFile {
    synth::realistic(200, 50)
}

fn domains() -> PlanFile {
    synth::many_domains(5_000)
}

#[divan::bench(args = ["10k", "5k_domains"], sample_count = 10)]
fn text(bencher: divan::Bencher, which: &str) {
    let f = if which == "10k" { big() } else { domains() };
    bencher.bench(|| render::text(&f));
}

#[divan::bench(args = ["10k", "5k_domains"], sample_count = 10)]
fn dot(bencher: divan::Bencher, which: &str) {
    let f = if which == "10k" { big() } else { domains() };
    bencher.bench(|| render::dot(&f.plan));
}

#[divan::bench(args = ["10k", "5k_domains"], sample_count = 10)]
fn json(bencher: divan::Bencher, which: &str) {
    let f = if which == "10k" { big() } else { domains() };
    bencher.bench(|| render::json(&f));
}

#[divan::bench(args = ["10k", "5k_domains"], sample_count = 10)]
fn ron(bencher: divan::Bencher, which: &str) {
    let f = if which == "10k" { big() } else { domains() };
    bencher.bench(|| render::ron(&f.plan));
}

#[divan::bench(args = ["10k", "5k_domains"], sample_count = 10)]
fn decode_plan(bencher: divan::Bencher, which: &str) {
    let bytes = encode(&if which == "10k" { big() } else { domains() });
    bencher.bench(|| decode(&bytes).expect("decodes"));
}

/// Every node of the 10k plan changed (one config key each), rendered as
/// text: the worst case for `anklume diff`.
#[divan::bench(sample_count = 10)]
fn diff_10k_all_changed(bencher: divan::Bencher) {
    let old = big();
    let mut new = old.clone();
    for n in &mut new.plan.nodes {
        if let anklume_plan::Resource::Instance(i) = &mut n.resource {
            i.config.insert("limits.cpu".into(), "4".into());
        }
    }
    bencher.bench(|| diff::render_text(&diff::diff(&old.plan, &new.plan)));
}
