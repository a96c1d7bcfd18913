//! `plan` of the synthetic 10,000-machine infrastructure end to end
//! (parse, compile, plan, encode), and `show --format ron` of the result.

use anklume_compiler::{compile, synth, HostFacts};
use anklume_plan::codec::{decode, encode, PlanFile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let bytes = plan_bin(&synth::infra_yaml(200, 50));
    println!(
        "plan.bin for 200 domains x 50 machines: {} bytes",
        bytes.len()
    );
    divan::main();
}

fn plan_bin(text: &str) -> Vec<u8> {
    let loaded = anklume_schema::load_str("infra.yml", text);
    let facts = HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    };
    let c = compile(&loaded, &facts);
    assert!(!c.has_errors());
    let plan = anklume_planner::plan(&c.ir, &c.provenance, &loaded.sources).expect("plan");
    encode(&PlanFile {
        header: Default::default(),
        plan,
    })
}

#[divan::bench(sample_count = 20)]
fn plan_10k_end_to_end(bencher: divan::Bencher) {
    let text = synth::infra_yaml(200, 50);
    bencher.bench(|| plan_bin(&text));
}

#[divan::bench(sample_count = 20)]
fn show_ron_10k(bencher: divan::Bencher) {
    let bytes = plan_bin(&synth::infra_yaml(200, 50));
    bencher.bench(|| {
        let file = decode(&bytes).expect("decodes");
        anklume_plan::render::ron(&file.plan)
    });
}

#[divan::bench(sample_count = 20)]
fn decode_10k(bencher: divan::Bencher) {
    let bytes = plan_bin(&synth::infra_yaml(200, 50));
    bencher.bench(|| decode(&bytes).expect("decodes"));
}
