//! Diagnostic golden tests: every directory under `cases/` holds an input
//! (`infra.yml`, or an `infra/` directory) and optionally `facts.json`.
//! Each case is compiled and its rendered diagnostics are snapshotted next
//! to it (`cases/<name>/diagnostics.snap`), together with the input.
//!
//! Besides the snapshot, a case named `ok-*` must compile without error, and
//! any other case must produce at least one error or warning whose codes are
//! exactly those of the `# expect:` comment at the top of its input (notices
//! listed there must be emitted too).

mod common;

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use anklume_schema::Severity;
use common::{cases, expected_codes, facts, input_files, load, non_info_codes, Case};

/// The snapshot document of one case.
fn document(case: &Case) -> (String, Vec<anklume_schema::Diagnostic>) {
    let loaded = load(case);
    let compiled = anklume_compiler::compile(&loaded, &facts(case));
    let rendered = anklume_compiler::render::render_text(&compiled.diags, &loaded.sources, false);
    let mut doc = String::from("SOURCE\n");
    let mut inputs = input_files(case);
    let facts_path = case.dir.join("facts.json");
    if facts_path.is_file() {
        let text = std::fs::read_to_string(&facts_path).expect("facts.json is readable");
        inputs.push(("facts.json".into(), text));
    }
    for (path, text) in inputs {
        let _ = writeln!(doc, "//// {path}");
        doc.push_str(&text);
        if !text.ends_with('\n') {
            doc.push_str("\n\\ no newline at end of file\n");
        }
    }
    doc.push_str("\nDIAGNOSTICS\n");
    if rendered.is_empty() {
        doc.push_str("(none)\n");
    } else {
        doc.push_str(&rendered);
    }
    (doc, compiled.diags)
}

/// What is wrong with a case's diagnostics, if anything.
fn check_codes(case: &Case, diags: &[anklume_schema::Diagnostic]) -> Option<String> {
    let got = non_info_codes(diags);
    let infos: std::collections::BTreeSet<String> = diags
        .iter()
        .filter(|d| d.severity == Severity::Info)
        .map(|d| d.code.to_string())
        .collect();
    let expected = expected_codes(case);
    if case.name.starts_with("ok-") {
        if let Some(e) = diags.iter().find(|d| d.is_error()) {
            return Some(format!("ok- case has an error: {} {}", e.code, e.message));
        }
    } else if got.is_empty() {
        return Some("no error or warning".into());
    } else if expected.is_none() {
        return Some(format!("no `# expect:` line (got {got:?})"));
    }
    let expected = expected.unwrap_or_default();
    let (exp_infos, exp_other): (Vec<&String>, Vec<&String>) =
        expected.iter().partition(|c| c.starts_with('I'));
    let exp_other: std::collections::BTreeSet<String> = exp_other.into_iter().cloned().collect();
    if exp_other != got {
        return Some(format!("expected codes {exp_other:?}, got {got:?}"));
    }
    if let Some(missing) = exp_infos.iter().find(|c| !infos.contains(c.as_str())) {
        return Some(format!(
            "expected notice {missing} not emitted (got {infos:?})"
        ));
    }
    None
}

#[test]
fn diagnostics() {
    let all = cases();
    assert!(!all.is_empty(), "no cases under golden/cases");
    let mut failures = Vec::new();
    for case in &all {
        let (doc, diags) = document(case);
        if let Some(why) = check_codes(case, &diags) {
            failures.push(format!("{}: {why}", case.name));
        }
        let snapshot_dir = format!("../cases/{}", case.name);
        let result = catch_unwind(AssertUnwindSafe(|| {
            insta::with_settings!({
                snapshot_path => snapshot_dir.as_str(),
                prepend_module_to_snapshot => false,
                omit_expression => true,
                description => case.name.as_str(),
            }, {
                insta::assert_snapshot!("diagnostics", doc);
            });
        }));
        if result.is_err() {
            failures.push(format!("{}: snapshot mismatch", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        all.len(),
        failures.join("\n  ")
    );
}
