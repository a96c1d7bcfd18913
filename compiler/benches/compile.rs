//! Benchmarks on a synthetic 200-domain × 50-machine infrastructure
//! (10,000 machines): `check` (parse + validate + enrich) and `sync` into an
//! empty directory and into an up-to-date one.

use anklume_compiler::ansible::sync::{sync, SyncOptions};
use anklume_compiler::{compile, synth, HostFacts};

/// The same allocator as the `anklume` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

/// Temporary directory for sync targets: `ANKLUME_BENCH_DIR` (e.g. a tmpfs
/// such as /dev/shm, to measure anklume rather than the disk), else the
/// system temp dir.
fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("ANKLUME_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("tempdir"),
        None => tempdir(),
    }
}

fn facts() -> HostFacts {
    HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    }
}

#[divan::bench(sample_count = 20)]
fn check_10k(bencher: divan::Bencher) {
    let text = synth::infra_yaml(200, 50);
    bencher.bench(|| {
        let loaded = anklume_schema::load_str("infra.yml", &text);
        let c = compile(&loaded, &facts());
        assert!(!c.has_errors());
        c
    });
}

#[divan::bench(sample_count = 10)]
fn sync_10k_empty_dir(bencher: divan::Bencher) {
    let text = synth::infra_yaml(200, 50);
    let loaded = anklume_schema::load_str("infra.yml", &text);
    let c = compile(&loaded, &facts());
    bencher.with_inputs(tempdir).bench_local_values(|dir| {
        let opts = SyncOptions {
            base_dir: dir.path().to_path_buf(),
            ..SyncOptions::default()
        };
        sync(&c.ir, &opts).expect("sync");
        dir
    });
}

#[divan::bench(sample_count = 10)]
fn sync_10k_up_to_date(bencher: divan::Bencher) {
    let text = synth::infra_yaml(200, 50);
    let loaded = anklume_schema::load_str("infra.yml", &text);
    let c = compile(&loaded, &facts());
    let dir = tempdir();
    let opts = SyncOptions {
        base_dir: dir.path().to_path_buf(),
        ..SyncOptions::default()
    };
    sync(&c.ir, &opts).expect("first sync");
    bencher.bench(|| sync(&c.ir, &opts).expect("sync"));
}

#[divan::bench(sample_count = 10)]
fn check_and_sync_10k_up_to_date(bencher: divan::Bencher) {
    let text = synth::infra_yaml(200, 50);
    let dir = tempdir();
    let opts = SyncOptions {
        base_dir: dir.path().to_path_buf(),
        ..SyncOptions::default()
    };
    {
        let loaded = anklume_schema::load_str("infra.yml", &text);
        sync(&compile(&loaded, &facts()).ir, &opts).expect("first sync");
    }
    bencher.bench(|| {
        let loaded = anklume_schema::load_str("infra.yml", &text);
        let c = compile(&loaded, &facts());
        sync(&c.ir, &opts).expect("sync")
    });
}
