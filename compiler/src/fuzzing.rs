//! Entry points for fuzz targets and for replaying the inputs they found, so
//! that `fuzz/` only wraps functions that `cargo test` also runs.

use crate::ansible::tree::files;
use crate::{compile, render, HostFacts};

/// Load, compile and render `data` as an infra.yml; panic if any diagnostic
/// points outside its source (the fuzzer reports panics).
pub fn check_source(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = anklume_schema::load_str("infra.yml", text);
    let facts = HostFacts {
        skip_subnet_check: true,
        cpu: Some(8.0),
        memory: Some(16 << 30),
        ..HostFacts::default()
    };
    let c = compile(&loaded, &facts);
    for d in &c.diags {
        for l in d.primary.iter().chain(d.secondary.iter()) {
            let file = loaded
                .sources
                .get(l.span.file)
                .expect("a label's file exists");
            assert!(
                l.span.start <= l.span.end && l.span.end as usize <= file.text.len(),
                "span {:?} outside its source ({} bytes) in {d:?}",
                l.span,
                file.text.len()
            );
            assert!(file.text.is_char_boundary(l.span.start as usize));
            assert!(file.text.is_char_boundary(l.span.end as usize));
        }
    }
    let _ = render::render_text(&c.diags, &loaded.sources, false);
    let _ = render::render_json(&c.diags, &loaded.sources);
    if !c.has_errors() {
        let _ = files(&c.ir);
    }
}
