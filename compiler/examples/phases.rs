//! Time each phase of `check` on the synthetic 10,000-machine input.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let text = anklume_compiler::synth::infra_yaml(200, 50);
    for _ in 0..5 {
        let tf = std::time::Instant::now();
        let fast = anklume_schema::yaml::parse_fast(anklume_schema::FileId(0), &text).unwrap();
        println!("parse_fast {:?}", tf.elapsed());
        drop(fast);
        let t = std::time::Instant::now();
        let root = anklume_schema::yaml::parse(anklume_schema::FileId(0), &text).unwrap();
        let t1 = t.elapsed();
        let mut r = anklume_schema::read::Reader::default();
        let infra = anklume_schema::ast::read_infra(&root, &mut r);
        let t2 = t.elapsed();
        let loaded = anklume_schema::Loaded {
            origin: None,
            sources: Default::default(),
            infra,
            diags: vec![],
            omitted: vec![],
        };
        let facts = anklume_compiler::HostFacts {
            skip_subnet_check: true,
            ..Default::default()
        };
        let c = anklume_compiler::compile(&loaded, &facts);
        let t3 = t.elapsed();
        drop(c);
        drop(loaded);
        drop(root);
        let t4 = t.elapsed();
        let t5 = std::time::Instant::now();
        let n = events_only(&text);
        println!("events-only {:?} ({n} events)", t5.elapsed());
        println!(
            "parse {:?} read {:?} compile {:?} drop {:?}",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
}

#[allow(dead_code)]
fn events_only(text: &str) -> usize {
    let mut n = 0;
    for ev in saphyr_parser::Parser::new_from_str(text) {
        if ev.is_ok() {
            n += 1;
        }
    }
    n
}
