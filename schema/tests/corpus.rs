//! Every v1 example reads without a single shape error.

use std::path::Path;

#[test]
fn corpus_reads_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/corpus/v1-examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("corpus missing at {}", dir.display());
    };
    let mut n = 0;
    for e in entries {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let l = anklume_schema::load_str(&p.to_string_lossy(), &text);
        assert!(l.diags.is_empty(), "{}: {:#?}", p.display(), l.diags);
        assert!(!l.infra.domains.is_empty());
        n += 1;
    }
    assert_eq!(n, 10);
}
