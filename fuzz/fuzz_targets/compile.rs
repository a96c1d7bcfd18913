//! Fuzz target: arbitrary bytes as an infra.yml → load, compile, render.
//! Must never panic; every reported span must lie inside its source.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    anklume_compiler::fuzzing::check_source(data);
});
