//! Helpers shared by the golden tests: finding the cases under `cases/`,
//! loading their sources exactly as the CLI would (with relative file
//! names), reading `facts.json` and the `# expect:` line.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anklume_compiler::{HostFacts, HostNet};
use anklume_schema::ast::Infra;
use anklume_schema::{Diagnostic, Loaded, Origin, ResolveError, Severity, Sources};

/// The golden crate's directory.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One case directory.
pub struct Case {
    /// Directory name, e.g. `e0202-enabled-not-bool`.
    pub name: String,
    /// Absolute path of the directory.
    pub dir: PathBuf,
}

/// Every case directory under `cases/`, sorted by name.
pub fn cases() -> Vec<Case> {
    let root = golden_dir().join("cases");
    let mut out: Vec<Case> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| Case {
            name: e.file_name().to_string_lossy().into_owned(),
            dir: e.path(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), &rel, out);
        } else {
            out.push(rel);
        }
    }
}

/// Every file under `dir`, as sorted `/`-separated relative paths.
pub fn tree_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The input files of a case (`infra.yml` and/or everything under
/// `infra/`), as (relative path, text), in load order.
pub fn input_files(case: &Case) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if case.dir.join("infra.yml").is_file() {
        out.push(("infra.yml".to_string(), read(&case.dir.join("infra.yml"))));
    }
    for rel in tree_files(&case.dir.join("infra")) {
        let text = read(&case.dir.join("infra").join(&rel));
        out.push((format!("infra/{rel}"), text));
    }
    out
}

/// Load a case's sources: `load_str` for `infra.yml`, `load_dir_texts` for
/// an `infra/` directory, and the CLI's resolution for the layout errors
/// (both present, or `infra/` without `base.yml`).
pub fn load(case: &Case) -> Loaded {
    let file = case.dir.join("infra.yml");
    let dir = case.dir.join("infra");
    if file.is_file() && dir.is_dir() {
        return match anklume_schema::resolve(None, &case.dir) {
            Err(ResolveError::Ambiguous(d)) => Loaded {
                origin: None,
                sources: Sources::default(),
                infra: Infra::default(),
                diags: vec![*d],
                omitted: Vec::new(),
            },
            other => panic!("{}: expected an ambiguous layout, got {other:?}", case.name),
        };
    }
    if file.is_file() {
        return anklume_schema::load_str("infra.yml", &read(&file));
    }
    assert!(dir.is_dir(), "{}: no infra.yml and no infra/", case.name);
    if !dir.join("base.yml").is_file() {
        return anklume_schema::load(&Origin::Dir(PathBuf::from("infra")), &case.dir)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    let mut files: Vec<(PathBuf, String)> =
        vec![(PathBuf::from("infra/base.yml"), read(&dir.join("base.yml")))];
    let has_domains_dir = dir.join("domains").is_dir();
    if has_domains_dir {
        for rel in tree_files(&dir.join("domains")) {
            if rel.ends_with(".yml") && !rel.contains('/') {
                let text = read(&dir.join("domains").join(&rel));
                files.push((PathBuf::from(format!("infra/domains/{rel}")), text));
            }
        }
    }
    let has_policies = dir.join("policies.yml").is_file();
    if has_policies {
        files.push((
            PathBuf::from("infra/policies.yml"),
            read(&dir.join("policies.yml")),
        ));
    }
    anklume_schema::load::load_dir_texts(&files, has_domains_dir, has_policies)
}

/// Host facts from `facts.json`; without it, no facts and the host-subnet
/// check skipped.
pub fn facts(case: &Case) -> HostFacts {
    let path = case.dir.join("facts.json");
    let mut f = HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    };
    if !path.is_file() {
        return f;
    }
    let v: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let obj = v.as_object().expect("facts.json is an object");
    for (k, val) in obj {
        match k.as_str() {
            "vm_nested" => f.vm_nested = val.as_bool(),
            "yolo" => f.yolo = val.as_bool().expect("yolo is a boolean"),
            "absolute_level" => f.absolute_level = val.as_i64(),
            "relative_level" => f.relative_level = val.as_i64(),
            "cpu" => f.cpu = val.as_f64(),
            "memory" => f.memory = val.as_u64(),
            "skip_subnet_check" => {
                f.skip_subnet_check = val.as_bool().expect("skip_subnet_check is a boolean")
            }
            "interfaces" => {
                for i in val.as_array().expect("interfaces is a list") {
                    let addr: Vec<u8> = i["addr"]
                        .as_array()
                        .expect("addr is a list")
                        .iter()
                        .map(|o| o.as_u64().expect("octet") as u8)
                        .collect();
                    f.interfaces.push(HostNet {
                        ifname: i["ifname"].as_str().expect("ifname").to_string(),
                        addr: addr.try_into().expect("addr has four octets"),
                        prefix: i["prefix"].as_u64().expect("prefix") as u8,
                    });
                }
            }
            other => panic!("{}: unknown fact `{other}`", path.display()),
        }
    }
    f
}

/// The codes of the `# expect:` line in the leading comments of the first
/// input file that has one (`None` when there is none).
pub fn expected_codes(case: &Case) -> Option<BTreeSet<String>> {
    for (_, text) in input_files(case) {
        for line in text.lines() {
            let Some(comment) = line.strip_prefix('#') else {
                break;
            };
            if let Some(codes) = comment.trim_start().strip_prefix("expect:") {
                return Some(codes.split_whitespace().map(str::to_string).collect());
            }
        }
    }
    None
}

/// The distinct codes of `diags` that are not notices.
pub fn non_info_codes(diags: &[Diagnostic]) -> BTreeSet<String> {
    diags
        .iter()
        .filter(|d| d.severity != Severity::Info)
        .map(|d| d.code.to_string())
        .collect()
}
