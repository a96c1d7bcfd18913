//! Code coverage of the golden cases: every code of
//! `anklume_compiler::codes::CODES` is announced by at least one case's
//! `# expect:` line, and no case (live or in its snapshot) shows a code that
//! is not in `CODES`.

mod common;

use std::collections::BTreeSet;

use anklume_compiler::codes::{lookup, CODES};
use common::{cases, expected_codes, facts, golden_dir, load, tree_files};

/// Codes written as `error[X]`, `warning[X]` or `note[X]` in rendered text.
fn rendered_codes(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sev in ["error[", "warning[", "note["] {
        for (i, _) in text.match_indices(sev) {
            let rest = &text[i + sev.len()..];
            if let Some(end) = rest.find(']') {
                out.insert(rest[..end].to_string());
            }
        }
    }
    out
}

#[test]
fn every_code_has_a_case() {
    let mut announced = BTreeSet::new();
    for case in cases() {
        announced.extend(expected_codes(&case).unwrap_or_default());
    }
    let missing: Vec<&str> = CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| !announced.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a golden case: {missing:?}"
    );
    let unknown: Vec<&String> = announced.iter().filter(|c| lookup(c).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "`# expect:` names unknown codes: {unknown:?}"
    );
}

#[test]
fn every_emitted_code_is_known() {
    let mut bad = Vec::new();
    for case in cases() {
        let loaded = load(&case);
        let compiled = anklume_compiler::compile(&loaded, &facts(&case));
        for d in &compiled.diags {
            if lookup(d.code).is_none() {
                bad.push(format!("{}: emitted {}", case.name, d.code));
            }
        }
    }
    let mut snaps = Vec::new();
    for rel in tree_files(&golden_dir().join("cases")) {
        if rel.ends_with(".snap") {
            snaps.push(golden_dir().join("cases").join(rel));
        }
    }
    for rel in tree_files(&golden_dir().join("tests/snapshots")) {
        if rel.ends_with(".snap") {
            snaps.push(golden_dir().join("tests/snapshots").join(rel));
        }
    }
    assert!(!snaps.is_empty(), "no snapshots found");
    for path in snaps {
        let text = std::fs::read_to_string(&path).expect("snapshot is readable");
        let diags = text.split("\nDIAGNOSTICS\n").nth(1).unwrap_or("");
        for code in rendered_codes(diags) {
            if lookup(&code).is_none() {
                bad.push(format!("{}: shows {code}", path.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "codes missing from CODES:\n  {}",
        bad.join("\n  ")
    );
}
