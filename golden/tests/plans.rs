//! Plan golden tests: every case that compiles without error, and every v1
//! corpus example, snapshots its canonical RON plan and its text rendering.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use anklume_plan::codec::{Header, PlanFile, SourceDigest};
use anklume_plan::render;
use common::{cases, facts, golden_dir, load};

fn plan_file(
    loaded: &anklume_schema::Loaded,
    facts: &anklume_compiler::HostFacts,
) -> Option<PlanFile> {
    let c = anklume_compiler::compile(loaded, facts);
    if c.has_errors() {
        return None;
    }
    let plan = anklume_planner::plan(&c.ir, &c.provenance, &loaded.sources)
        .expect("no internal planner error");
    Some(PlanFile {
        header: Header {
            anklume_version: "golden".into(),
            sources: loaded
                .sources
                .files
                .iter()
                .map(|f| SourceDigest {
                    path: f.name.clone(),
                    sha256: anklume_plan::codec::sha256_hex(f.text.as_bytes()),
                })
                .collect(),
            facts: Default::default(),
            tree_dir: String::new(),
            tree: Vec::new(),
        },
        plan,
    })
}

fn snapshot(dir: &str, name: &str, ron: String, text: String, failures: &mut Vec<String>) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        insta::with_settings!({
            snapshot_path => dir,
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => name,
        }, {
            insta::assert_snapshot!("plan-ron", ron);
            insta::assert_snapshot!("plan-text", text);
        });
    }));
    if result.is_err() {
        failures.push(format!("{name}: plan snapshot mismatch"));
    }
}

#[test]
fn case_plans() {
    let mut failures = Vec::new();
    let mut planned = 0;
    for case in cases() {
        let loaded = load(&case);
        let Some(file) = plan_file(&loaded, &facts(&case)) else {
            continue;
        };
        planned += 1;
        let dir = format!("../cases/{}", case.name);
        snapshot(
            &dir,
            &case.name,
            render::ron(&file.plan),
            render::text(&file),
            &mut failures,
        );
    }
    assert!(planned > 10, "only {planned} cases planned");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_plans() {
    let dir = golden_dir().join("corpus/v1-examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for path in names {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded = anklume_schema::load_str(&format!("{name}.yml"), &text);
        let facts = anklume_compiler::HostFacts {
            skip_subnet_check: true,
            ..Default::default()
        };
        let file = plan_file(&loaded, &facts).unwrap_or_else(|| panic!("{name} has errors"));
        // Every corpus plan survives plan.bin.
        let bytes = anklume_plan::codec::encode(&file);
        assert_eq!(anklume_plan::codec::decode(&bytes).unwrap(), file, "{name}");
        let snap_dir = format!("snapshots/plans/{name}");
        snapshot(
            &snap_dir,
            &name,
            render::ron(&file.plan),
            render::text(&file),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
