//! Fuzz target: arbitrary bytes → plan decode. Must never panic; whatever
//! decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = anklume_plan::codec::decode(data) {
        assert_eq!(anklume_plan::codec::encode(&file), data);
    }
});
