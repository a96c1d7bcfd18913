//! End-to-end tests of the `anklume` binary: exit codes, nothing written on
//! invalid input, plan determinism across processes, plan file errors.

mod common;

use std::path::Path;

use common::{anklume, text};

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/infra.yml"))
        .unwrap()
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yml"), example()).unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "project_name: x\nglobal:\n  trust_levle: admin\ndomains: {}\n",
    )
    .unwrap();
    let ok = anklume(dir.path(), &["check", "good.yml"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = anklume(dir.path(), &["check", "bad.yml"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("error[E0201]: unknown key `trust_levle` in global"),
        "{err}"
    );
    assert!(err.contains("bad.yml:3:3"), "{err}");
    let missing = anklume(dir.path(), &["check", "nope.yml"]);
    assert_eq!(missing.status.code(), Some(2));
    let usage = anklume(dir.path(), &["check", "--format", "xml"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn check_json_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "project_name: x\nglobal: {}\ndomains:\n  a:\n    subnet_id: true\n",
    )
    .unwrap();
    let out = anklume(dir.path(), &["check", "bad.yml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["code"], "E0202");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["file"], "bad.yml");
    assert_eq!(v["line"], 5);
    assert_eq!(v["column"], 16);
    assert_eq!(v["end"]["column"], 20);
    assert!(v["help"].as_str().unwrap().contains("not numbers"));
}

#[test]
fn both_infra_yml_and_infra_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), example()).unwrap();
    std::fs::create_dir(dir.path().join("infra")).unwrap();
    std::fs::write(
        dir.path().join("infra/base.yml"),
        "project_name: x\nglobal: {}\n",
    )
    .unwrap();
    let out = anklume(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0106"));
    assert_eq!(
        anklume(dir.path(), &["check", "infra.yml"]).status.code(),
        Some(0)
    );
}

#[test]
fn invalid_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("infra.yml"),
        example().replace("ip: 10.110.0.10", "ip: 10.110.0.254"),
    )
    .unwrap();
    let out = anklume(dir.path(), &["sync", "--base-dir", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0405"));
    assert!(!dir.path().join("out").exists());
    let plan = anklume(dir.path(), &["plan", "-o", "plan.bin"]);
    assert_eq!(plan.status.code(), Some(1));
    assert!(!dir.path().join("plan.bin").exists());
}

#[test]
fn sync_twice_changes_nothing_and_keeps_user_content() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), example()).unwrap();
    assert_eq!(
        anklume(dir.path(), &["sync", "--base-dir", "out"])
            .status
            .code(),
        Some(0)
    );
    let f = dir.path().join("out/host_vars/work-dev.yml");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("my_var: keep-me\n");
    std::fs::write(&f, &text).unwrap();
    let before: Vec<_> = all_files(&dir.path().join("out"))
        .into_iter()
        .map(|p| {
            (
                std::fs::read(&p).unwrap(),
                std::fs::metadata(&p).unwrap().modified().unwrap(),
                p,
            )
        })
        .collect();
    let again = anklume(dir.path(), &["sync", "--base-dir", "out"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(!stdout.contains("Written:"), "{stdout}");
    assert!(stdout.contains("0 file(s) written"), "{stdout}");
    assert!(
        !stdout.contains("make lint"),
        "no Makefile to run: {stdout}"
    );
    for (bytes, mtime, p) in before {
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{p}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().modified().unwrap(),
            mtime,
            "{p}"
        );
    }
    assert!(std::fs::read_to_string(&f)
        .unwrap()
        .ends_with("my_var: keep-me\n"));
    // A host_vars file no machine owns is listed as an orphan, as v1 does.
    std::fs::write(dir.path().join("out/host_vars/gone.yml"), "x: 1\n").unwrap();
    let again = anklume(dir.path(), &["sync", "--base-dir", "out"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("Orphan files (1):"), "{stdout}");
    assert!(stdout.contains("gone.yml"), "{stdout}");
}

#[test]
fn plans_are_byte_identical_across_processes_and_diff_reports_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), example()).unwrap();
    assert_eq!(
        anklume(dir.path(), &["plan", "-o", "a.bin"]).status.code(),
        Some(0)
    );
    // `plan > b.bin`: stdout is a file, so the plan is binary.
    let file = std::fs::File::create(dir.path().join("b.bin")).unwrap();
    let b = common::anklume_command(dir.path(), &["plan"])
        .stdout(file)
        .output()
        .unwrap();
    assert_eq!(b.status.code(), Some(0));
    let a = std::fs::read(dir.path().join("a.bin")).unwrap();
    let b_bytes = std::fs::read(dir.path().join("b.bin")).unwrap();
    assert_eq!(a, b_bytes, "plan -o and plan > file differ");
    // `plan | grep`: a pipe gets the text rendering, unless asked for bin.
    let piped = anklume(dir.path(), &["plan"]);
    assert_eq!(piped.status.code(), Some(0));
    let text = String::from_utf8(piped.stdout).expect("text on a pipe");
    assert!(text.starts_with("anklume plan: "), "{text}");
    let bin = anklume(dir.path(), &["plan", "--format", "bin"]);
    assert_eq!(bin.stdout, a, "--format bin on a pipe");
    let same = anklume(dir.path(), &["diff", "a.bin", "b.bin"]);
    assert_eq!(same.status.code(), Some(0));
    std::fs::write(
        dir.path().join("infra.yml"),
        example().replace("ports: [22]", "ports: [22, 2222]"),
    )
    .unwrap();
    assert_eq!(
        anklume(dir.path(), &["plan", "-o", "c.bin"]).status.code(),
        Some(0)
    );
    let d = anklume(dir.path(), &["diff", "a.bin", "c.bin"]);
    assert_eq!(d.status.code(), Some(1));
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("~ nftables/anklume"), "{text}");
    assert!(text.contains("opens anklume -> work tcp/22,2222"), "{text}");
    assert!(text.contains("closes anklume -> work tcp/22"), "{text}");
    for fmt in ["text", "ron", "json", "dot"] {
        let s = anklume(dir.path(), &["show", "a.bin", "--format", fmt]);
        assert_eq!(s.status.code(), Some(0), "{fmt}");
        assert!(!s.stdout.is_empty());
    }
}

#[test]
fn damaged_plan_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), example()).unwrap();
    assert_eq!(
        anklume(dir.path(), &["plan", "-o", "a.bin"]).status.code(),
        Some(0)
    );
    let a = std::fs::read(dir.path().join("a.bin")).unwrap();
    std::fs::write(dir.path().join("cut.bin"), &a[..a.len() / 2]).unwrap();
    let mut flipped = a.clone();
    flipped[100] ^= 1;
    std::fs::write(dir.path().join("flip.bin"), &flipped).unwrap();
    let mut v2 = a.clone();
    v2[8] = 99;
    std::fs::write(dir.path().join("v99.bin"), &v2).unwrap();
    for (file, msg) in [
        ("cut.bin", "truncated plan file"),
        ("flip.bin", "corrupt plan file: checksum mismatch"),
        ("v99.bin", "plan format version 99"),
        ("infra.yml", "not an anklume plan"),
    ] {
        let out = anklume(dir.path(), &["show", file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{file}: {err}");
        assert!(!err.contains("panicked"), "{file}: {err}");
    }
    assert_eq!(
        anklume(dir.path(), &["diff", "a.bin", "cut.bin"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn rollback_refuses_bad_timestamps_and_an_empty_state_without_touching_incus() {
    let dir = tempfile::tempdir().unwrap();
    // A socket that does not exist: nothing here may need Incus.
    let run = |args: &[&str]| {
        common::anklume_command(dir.path(), args)
            .env("INCUS_SOCKET", dir.path().join("no-incus.socket"))
            .output()
            .unwrap()
    };
    let o = run(&["rollback", "yesterday"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(common::text(&o).contains("not a timestamp like 20260219-143022"));
    let o = run(&["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::text(&o));
    assert!(
        common::text(&o).contains("nothing to roll back: no apply journal"),
        "{}",
        common::text(&o)
    );
    assert!(common::text(&o).contains("anklume rollback --list"));
    // A torn journal of a killed apply is listed as unfinished even when
    // Incus cannot be reached.
    let jdir = dir.path().join("state/journal");
    std::fs::create_dir_all(&jdir).unwrap();
    std::fs::write(
        jdir.join("20260101-120000.jsonl"),
        "{\"record\":\"begin\",\"ts\":\"20260101-120000\",\"anklume\":\"0\",\"changes\":1,\"snapshot\":null}\n{\"record\":\"intent\",\"seq\":1,\"node\":\"network/net-a\",\"target\":{\"type\":\"network\",\"name\":\"net-a\"},\"change\":\"create\",\"deps\":[]}\n{\"record\":\"do",
    )
    .unwrap();
    // A later apply whose creation failed and whose update succeeded.
    std::fs::write(
        jdir.join("20260102-120000.jsonl"),
        concat!(
            "{\"record\":\"begin\",\"ts\":\"20260102-120000\",\"anklume\":\"0\",\"changes\":2,\"snapshot\":null}\n",
            "{\"record\":\"intent\",\"seq\":1,\"node\":\"network/net-b\",\"target\":{\"type\":\"network\",\"name\":\"net-b\"},\"change\":\"create\",\"deps\":[]}\n",
            "{\"record\":\"done\",\"seq\":1,\"ok\":false,\"error\":\"boom\"}\n",
            "{\"record\":\"intent\",\"seq\":2,\"node\":\"network/net-a\",\"target\":{\"type\":\"network\",\"name\":\"net-a\"},\"change\":\"update\",\"deps\":[],\"prior\":{}}\n",
            "{\"record\":\"done\",\"seq\":2,\"ok\":true}\n",
            "{\"record\":\"end\",\"outcome\":\"failed\"}\n"
        ),
    )
    .unwrap();
    let o = run(&["rollback", "--list"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("20260101-120000  unfinished  0 created, 0 updated, 1 unfinished"),
        "{out}"
    );
    assert!(
        out.contains("20260102-120000  failed      0 created, 1 updated, 1 failed"),
        "a failed creation is not counted as created: {out}"
    );
    // The same as JSON lines, newest first.
    let o = run(&["rollback", "--list", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::text(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ts"], "20260102-120000");
    assert_eq!(
        rows[0]["changes"],
        serde_json::json!({"created": 0, "updated": 1, "failed": 1, "unfinished": 0})
    );
    assert_eq!(rows[1]["changes"]["unfinished"], 1);
    assert_eq!(rows[1]["snapshot"], serde_json::Value::Null);
    // `--keep` only goes with --cleanup; --list takes no timestamp.
    let o = run(&["rollback", "--keep", "2"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["rollback", "--list", "20260101-120000"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Giving `apply` (or `show`) something that is not a plan says what it is:
/// the sources, a directory, or the plan's text rendering.
#[test]
fn a_source_file_given_as_a_plan_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("infra.yml"), example()).unwrap();
    let text = anklume(dir.path(), &["plan"]).stdout;
    std::fs::write(dir.path().join("plan.txt"), text).unwrap();
    std::fs::create_dir(dir.path().join("infra")).unwrap();
    std::fs::write(dir.path().join("random.bin"), [7u8; 64]).unwrap();
    for (file, hint) in [
        ("infra.yml", "this is a source file, not a plan"),
        ("infra", "this is a directory"),
        ("plan.txt", "this is the plan's text rendering"),
    ] {
        for cmd in ["apply", "show"] {
            let o = anklume(dir.path(), &[cmd, file]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {file}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(hint), "{cmd} {file}: {err}");
            assert!(err.contains("anklume plan -o plan.bin"), "{err}");
        }
    }
    // Bytes that are nothing known: no guess.
    let o = anklume(dir.path(), &["apply", "random.bin"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("hint:"));
}

/// `plan --diagnostics json` writes JSON lines only on stderr, whatever
/// goes wrong: diagnostics of the sources, a missing file, a role found
/// nowhere (issue 12, item 7: a trailing text line broke `jq`).
#[test]
fn plan_json_diagnostics_are_json_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.yml"),
        "project_name: x\nglobal: {}\ndomains:\n  d1:\n    machines:\n      m1: {bogus: 1}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("role.yml"),
        "project_name: x\nglobal:\n  addressing: {}\ndomains:\n  d1:\n    machines:\n      m1: {roles: [nope]}\n",
    )
    .unwrap();
    for (src, code, severity) in [
        ("bad.yml", Some(1), "error"),
        ("missing.yml", Some(2), "error"),
        ("role.yml", Some(0), "warning"),
    ] {
        let o = anklume(d, &["plan", src, "--diagnostics", "json", "-o", "p.bin"]);
        assert_eq!(o.status.code(), code, "{src}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.trim().is_empty(), "{src}: something is said");
        for line in err.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{src}: not JSON ({e}): {line}"));
            assert!(v["message"].is_string(), "{line}");
        }
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("\"severity\":\"{severity}\""))),
            "{src}: {err}"
        );
    }
    // Positive control: in text, the summary line is there.
    let o = anklume(d, &["plan", "bad.yml", "-o", "p.bin"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("plan aborted: 2 errors"));
}

/// In directory mode, `domains/*.yaml` and `policies.yaml` are read like
/// their `.yml` twins (issue 12, item 11: they were skipped silently); a
/// `base.yaml` alone is named in the error.
#[test]
fn infra_dir_reads_yaml_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/infra-dir");
    std::fs::create_dir_all(d.join("infra/domains")).unwrap();
    std::fs::copy(ex.join("base.yml"), d.join("infra/base.yml")).unwrap();
    std::fs::copy(ex.join("policies.yml"), d.join("infra/policies.yaml")).unwrap();
    for e in std::fs::read_dir(ex.join("domains")).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&p, d.join(format!("infra/domains/{stem}.yaml"))).unwrap();
    }
    let yaml = anklume(d, &["check", "infra", "--format", "json"]);
    let yml = anklume(&ex.join(".."), &["check", "infra-dir", "--format", "json"]);
    assert_eq!(yaml.status.code(), Some(0), "{}", common::text(&yaml));
    let o = anklume(d, &["check", "infra"]);
    let summary =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let o2 = anklume(&ex.join(".."), &["check", "infra-dir"]);
    let summary2 =
        String::from_utf8_lossy(&o2.stdout).to_string() + &String::from_utf8_lossy(&o2.stderr);
    assert_eq!(
        summary, summary2,
        "the same domains and policies as the .yml files"
    );
    assert_eq!(yml.status.code(), Some(0));
    std::fs::rename(d.join("infra/base.yml"), d.join("infra/base.yaml")).unwrap();
    let o = anklume(d, &["check", "infra"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::text(&o).contains("rename it base.yml"),
        "{}",
        common::text(&o)
    );
}

/// A file without `global:` means all defaults: the same plan and the same
/// Ansible tree as `global: {}` (issue 12, item 12: it was refused while
/// the hint said it may be empty).
#[test]
fn no_global_key_means_all_defaults() {
    let with = "project_name: x\nglobal: {}\ndomains:\n  d1:\n    subnet_id: 3\n    machines:\n      m1: {}\n";
    let without = with.replace("global: {}\n", "");
    let mut out = Vec::new();
    for text in [with, without.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("infra.yml"), text).unwrap();
        let o = anklume(dir.path(), &["check"]);
        assert_eq!(o.status.code(), Some(0), "{}", common::text(&o));
        assert_eq!(anklume(dir.path(), &["sync"]).status.code(), Some(0));
        assert_eq!(
            anklume(dir.path(), &["plan", "-o", "p.bin"]).status.code(),
            Some(0)
        );
        let ron = anklume(dir.path(), &["show", "p.bin", "--format", "ron"]).stdout;
        let root = format!("{}/", dir.path().display());
        let tree: Vec<(String, Vec<u8>)> = all_files(dir.path())
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(&f).unwrap();
                (f.strip_prefix(&root).unwrap().to_string(), bytes)
            })
            .filter(|(f, _)| f != "infra.yml" && f != "p.bin")
            .collect();
        out.push((ron, tree));
    }
    assert!(!out[0].1.is_empty());
    assert_eq!(out[0], out[1]);
}

/// `anklume explain CODE` prints the manual's entry for a code, by code
/// (any case) or name; an unknown one is an error with a did-you-mean.
#[test]
fn explain_prints_a_code_entry() {
    let dir = tempfile::tempdir().unwrap();
    for arg in ["E0404", "e0404", "duplicate-ip"] {
        let o = anklume(dir.path(), &["explain", arg]);
        assert_eq!(o.status.code(), Some(0), "{arg}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with("## E0404 duplicate-ip"), "{out}");
        assert!(out.contains("Failing:") && out.contains("Fixed:"), "{out}");
        assert!(!out.contains("## E0405"), "one entry only");
    }
    let o = anklume(dir.path(), &["explain", "E0440"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(common::text(&o).contains("did you mean `anklume explain E0404`?"));
    let o = anklume(dir.path(), &["explain"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("`duplicate-ip`"));
}

/// `diff` says when a change renumbers existing machines (a machine
/// inserted above them) and how to pin an address (issue 12, item 1).
#[test]
fn diff_warns_when_machines_are_renumbered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let infra = |m: &str| {
        format!(
            "project_name: x\nglobal:\n  addressing: {{}}\ndomains:\n  work:\n    machines:\n{m}"
        )
    };
    std::fs::write(
        d.join("infra.yml"),
        infra("      work-b: {}\n      work-c: {}\n"),
    )
    .unwrap();
    assert_eq!(anklume(d, &["plan", "-o", "a.bin"]).status.code(), Some(0));
    std::fs::write(
        d.join("infra.yml"),
        infra("      work-a: {}\n      work-b: {}\n      work-c: {}\n"),
    )
    .unwrap();
    assert_eq!(anklume(d, &["plan", "-o", "b.bin"]).status.code(), Some(0));
    let o = anklume(d, &["diff", "a.bin", "b.bin"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].contains("instance/work/work-b moves from 10.120.0.1 to 10.120.0.2")
            && warnings[0].contains("pin it: `ip: 10.120.0.1`"),
        "{out}"
    );
    // Adding a machine at the end renumbers nobody.
    std::fs::write(
        d.join("infra.yml"),
        infra("      work-b: {}\n      work-c: {}\n      work-d: {}\n"),
    )
    .unwrap();
    assert_eq!(anklume(d, &["plan", "-o", "c.bin"]).status.code(), Some(0));
    let o = anklume(d, &["diff", "a.bin", "c.bin"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("warning"));
}

#[test]
fn plan_warns_when_the_ansible_tree_is_behind_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let infra = "project_name: t\nglobal:\n  addressing: {}\ndomains:\n  work:\n    machines:\n      work-dev: {}\n";
    std::fs::write(p.join("infra.yml"), infra).unwrap();
    let warned = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr).contains("is not in sync with the sources")
    };
    // No tree yet: nothing to say (apply says provisioning does not run).
    let o = anklume(p, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!warned(&o), "{}", text(&o));
    // Synced: in step, no warning.
    assert_eq!(anklume(p, &["sync"]).status.code(), Some(0));
    let o = anklume(p, &["plan", "-o", "plan.bin"]);
    assert!(!warned(&o), "{}", text(&o));
    // A machine inserted above: the inventory and both host_vars are
    // behind; the plan is still written, with the warning naming them.
    std::fs::write(
        p.join("infra.yml"),
        infra.replace(
            "      work-dev: {}",
            "      work-web: {}\n      work-dev: {}",
        ),
    )
    .unwrap();
    let o = anklume(p, &["plan", "-o", "plan.bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(warned(&o), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for f in [
        "inventory/work.yml",
        "host_vars/work-web.yml",
        "host_vars/work-dev.yml",
    ] {
        assert!(err.contains(f), "{f}: {err}");
    }
    // Synced again: quiet again.
    assert_eq!(anklume(p, &["sync"]).status.code(), Some(0));
    let o = anklume(p, &["plan", "-o", "plan.bin"]);
    assert!(!warned(&o), "{}", text(&o));
}
