//! `docs/errors.md` stays true: for every code's section, the failing
//! example, checked by the real binary, prints the output the page shows,
//! and the fixed example is accepted.

mod common;

use std::path::Path;

use common::{anklume, text};

/// One section of docs/errors.md.
struct Section {
    title: String,
    /// The first YAML block: the failing example.
    failing: Option<String>,
    /// The YAML block after "Fixed:".
    fixed: Option<String>,
    /// The last text block: what anklume prints for the failing example.
    output: Option<String>,
}

fn sections(doc: &str) -> Vec<Section> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out: Vec<Section> = Vec::new();
    let mut after_fixed = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(t) = l.strip_prefix("## ") {
            out.push(Section {
                title: t.to_string(),
                failing: None,
                fixed: None,
                output: None,
            });
            after_fixed = false;
        } else if l.trim() == "Fixed:" {
            after_fixed = true;
        } else if let Some(lang) = l.strip_prefix("```") {
            let start = i + 1;
            let mut j = start;
            while j < lines.len() && !lines[j].starts_with("```") {
                j += 1;
            }
            let body = lines[start..j].join("\n") + "\n";
            if let Some(s) = out.last_mut() {
                match lang {
                    "yaml" if after_fixed && s.fixed.is_none() => s.fixed = Some(body),
                    "yaml" if s.failing.is_none() => s.failing = Some(body),
                    "text" => s.output = Some(body),
                    _ => {}
                }
            }
            i = j;
        }
        i += 1;
    }
    out
}

/// Sections whose example needs more than a single infra.yml and this
/// test's fixed environment (no host subnet check, no context files, no
/// Incus for host resources): they are checked by the golden cases instead.
const NEEDS_SETUP: &[&str] = &[
    "E0106", // an infra/ directory next to infra.yml
    "E0409", // a host interface in the subnet
    "E0504", // nesting context files
    "W0101", // several files in infra/
    "W0501", // nesting context files (yolo)
    "W0505", // host resources that cannot be read
    "W0506", // the host's CPU and memory
    "W0507", // the host's CPU and memory
    "E0506", // the host's CPU and memory
];

fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_example_in_errors_md_prints_what_the_page_shows() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
        .unwrap();
    let mut compared = 0;
    let mut problems = Vec::new();
    for s in sections(&doc) {
        let code = s.title.split_whitespace().next().unwrap_or("");
        if !code.starts_with(['E', 'W', 'I']) || code.len() != 5 {
            continue;
        }
        if NEEDS_SETUP.contains(&code) {
            continue;
        }
        let (Some(failing), Some(output)) = (&s.failing, &s.output) else {
            problems.push(format!("{code}: no failing example or no output block"));
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("infra.yml"), failing).unwrap();
        let o = anklume(dir.path(), &["check", "infra.yml"]);
        let got = trim_lines(&String::from_utf8_lossy(&o.stderr));
        let want = trim_lines(output);
        if !got.contains(want.trim_end()) {
            problems.push(format!(
                "{code}: docs/errors.md shows\n{want}\nbut anklume prints\n{got}"
            ));
        }
        if !got.contains(&format!("[{code}]")) {
            problems.push(format!("{code}: the failing example does not emit {code}"));
        }
        if let Some(fixed) = &s.fixed {
            std::fs::write(dir.path().join("infra.yml"), fixed).unwrap();
            let o = anklume(dir.path(), &["check", "infra.yml"]);
            if code.starts_with('E') && o.status.code() != Some(0) {
                problems.push(format!(
                    "{code}: the fixed example is rejected:\n{}",
                    text(&o)
                ));
            }
            if String::from_utf8_lossy(&o.stderr).contains(&format!("[{code}]")) {
                problems.push(format!("{code}: the fixed example still emits {code}"));
            }
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(compared >= 30, "only {compared} sections compared");
}
