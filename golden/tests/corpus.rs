//! The v1 corpus: every example of `corpus/v1-examples/` compiles without
//! error, and `sync` writes exactly the tree of `corpus/v1-expected/<name>/`
//! (same files, same bytes). The written tree is also snapshotted, and a
//! second sync must leave every file untouched.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anklume_compiler::ansible::sync::{sync, FileStatus, SyncOptions};
use anklume_compiler::HostFacts;
use common::{golden_dir, tree_files};

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree_files(dir)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(dir.join(&rel)).expect("file is readable");
            (rel, bytes)
        })
        .collect()
}

/// First differing line of two files, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    for (i, (la, lb)) in a.lines().zip(b.lines()).enumerate() {
        if la != lb {
            return format!("line {}: got {la:?}, expected {lb:?}", i + 1);
        }
    }
    format!(
        "{} lines vs {} lines (or line endings differ)",
        a.lines().count(),
        b.lines().count()
    )
}

fn check_example(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let file = format!("{name}.yml");
    let loaded = anklume_schema::load_str(&file, text);
    let facts = HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    };
    let compiled = anklume_compiler::compile(&loaded, &facts);
    if compiled.has_errors() {
        let rendered =
            anklume_compiler::render::render_text(&compiled.diags, &loaded.sources, false);
        return vec![format!("{name}: compile errors:\n{rendered}")];
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = SyncOptions {
        base_dir: tmp.path().to_path_buf(),
        ..SyncOptions::default()
    };
    let first = sync(&compiled.ir, &opts).expect("first sync");
    let got = read_tree(tmp.path());
    let expected = read_tree(&golden_dir().join("corpus/v1-expected").join(name));
    for path in expected.keys().filter(|p| !got.contains_key(*p)) {
        problems.push(format!("{name}: missing {path}"));
    }
    for (path, bytes) in &got {
        match expected.get(path) {
            None => problems.push(format!("{name}: unexpected {path}")),
            Some(e) if e != bytes => problems.push(format!(
                "{name}: {path} differs: {}",
                first_difference(bytes, e)
            )),
            Some(_) => {}
        }
    }
    let reported: Vec<&str> = first.files.iter().map(|(p, _)| p.as_str()).collect();
    let mut sorted = reported.clone();
    sorted.sort_unstable();
    if sorted != got.keys().map(String::as_str).collect::<Vec<_>>() {
        problems.push(format!(
            "{name}: sync report does not list the written files"
        ));
    }

    let mut flat = String::new();
    for (path, bytes) in &got {
        flat.push_str(&format!("//// {path}\n"));
        flat.push_str(&String::from_utf8_lossy(bytes));
    }
    insta::with_settings!({omit_expression => true, description => file.as_str()}, {
        insta::assert_snapshot!(name, flat);
    });

    let before: BTreeMap<String, (i64, i64, u64)> = got
        .keys()
        .map(|rel| {
            let m = std::fs::metadata(tmp.path().join(rel)).expect("metadata");
            (rel.clone(), (m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect();
    let second = sync(&compiled.ir, &opts).expect("second sync");
    for (path, status) in &second.files {
        if *status != FileStatus::Unchanged {
            problems.push(format!("{name}: {path} rewritten by a second sync"));
        }
        let m = std::fs::metadata(tmp.path().join(path)).expect("metadata");
        if before.get(path) != Some(&(m.mtime(), m.mtime_nsec(), m.ino())) {
            problems.push(format!("{name}: {path} touched by a second sync"));
        }
    }
    if second.files.len() != first.files.len() {
        problems.push(format!("{name}: second sync reports another file set"));
    }
    problems
}

#[test]
fn corpus() {
    let dir = golden_dir().join("corpus/v1-examples");
    let mut names: Vec<String> = tree_files(&dir)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".yml").map(str::to_string))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no corpus examples");
    let mut problems = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(format!("{name}.yml"))).expect("readable");
        problems.extend(check_example(name, &text));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
