//! What `check` prints stays bounded and safe for any input: at most
//! `MAX_PER_CODE` diagnostics per code (the rest counted), no control
//! character from the sources on the terminal, long lines cut.

use anklume_compiler::render::{render_json, render_text, MAX_PER_CODE};
use anklume_compiler::{compile, HostFacts};

fn facts() -> HostFacts {
    HostFacts {
        skip_subnet_check: true,
        ..HostFacts::default()
    }
}

fn unknown_keys(n: usize) -> String {
    let mut s = String::from(
        "project_name: demo\nglobal:\n  addressing: {}\ndomains:\n  pro:\n    machines:\n      pro-dev:\n",
    );
    for i in 0..n {
        s.push_str(&format!("        unknown_{i:07}: 1\n"));
    }
    s
}

#[test]
fn compile_keeps_at_most_max_per_code_and_counts_the_rest() {
    let loaded = anklume_schema::load_str("infra.yml", &unknown_keys(1000));
    let c = compile(&loaded, &facts());
    let kept = c.diags.iter().filter(|d| d.code == "E0201").count();
    assert_eq!(kept, MAX_PER_CODE);
    let omitted: usize = c
        .omitted
        .iter()
        .filter(|o| o.code == "E0201")
        .map(|o| o.count)
        .sum();
    assert_eq!(omitted, 1000 - MAX_PER_CODE);
    assert!(c.has_errors());
    assert_eq!(c.count(anklume_schema::Severity::Error), 1000);
}

#[test]
fn rendering_caps_each_code_and_says_how_many_more() {
    let loaded = anklume_schema::load_str("infra.yml", &unknown_keys(1000));
    // Render an uncapped list: the renderer caps on its own.
    let c = compile(&loaded, &facts());
    let all: Vec<_> = (0..1000 / MAX_PER_CODE)
        .flat_map(|_| c.diags.iter().cloned())
        .collect();
    let text = render_text(&all, &loaded.sources, false);
    assert_eq!(text.matches("error[E0201]").count(), MAX_PER_CODE);
    assert!(
        text.contains("… and 950 more E0201 errors not shown (at most 50 per code)"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    let json = render_json(&all, &loaded.sources);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), MAX_PER_CODE + 1);
    let last: serde_json::Value = serde_json::from_str(lines[MAX_PER_CODE]).unwrap();
    assert_eq!(last["omitted"][0]["code"], "E0201");
    assert_eq!(last["omitted"][0]["count"], 950);
    assert_eq!(last["max_per_code"], MAX_PER_CODE);
}

#[test]
fn capped_compile_output_names_the_omitted_count() {
    let loaded = anklume_schema::load_str("infra.yml", &unknown_keys(120));
    let c = compile(&loaded, &facts());
    let text =
        anklume_compiler::render::render_text_capped(&c.diags, &c.omitted, &loaded.sources, false);
    assert_eq!(text.matches("error[E0201]").count(), MAX_PER_CODE);
    assert!(text.ends_with("… and 70 more E0201 errors not shown (at most 50 per code)\n"));
}

/// Every control character of the input, raw, in keys, in free text and in
/// snippets: nothing of it may reach the output unescaped.
const HOSTILE: &str = concat!(
    "project_name: demo\n",
    "global:\n  addressing: {}\n",
    "domains:\n  pro:\n    machines:\n",
    "      pro-dev: {description: \"title \x1b]0;pwned\x07 and \u{9b}2J and \u{202e}rtl\", typo\x1bc: 1}\n",
    "      pro-web:\n",
    "        os_image: \"deb\\e[31m\"\n",
    "        config:\n          \"user.a\\x07\": v\n",
);

fn assert_no_raw_controls(out: &str) {
    for (i, c) in out.char_indices() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw {c:?} at byte {i} in:\n{out}"
        );
    }
}

#[test]
fn no_control_character_reaches_the_output() {
    let loaded = anklume_schema::load_str("infra.yml", HOSTILE);
    let c = compile(&loaded, &facts());
    assert!(c.has_errors());
    let text = render_text(&c.diags, &loaded.sources, false);
    assert!(text.contains("typo\\x1bc"), "{text}");
    assert!(
        text.contains("title \\x1b]0;pwned\\x07 and \\u{9b}2J and \\u{202e}rtl"),
        "{text}"
    );
    assert!(text.contains("error[E0209]"), "{text}");
    assert_no_raw_controls(&text);
    // Colour adds its own escape sequences, never the input's.
    let color = render_text(&c.diags, &loaded.sources, true);
    assert!(!color.contains("\x1bc") && !color.contains("\x1b]0;") && !color.contains('\x07'));
    // JSON escapes them the same way (and is valid JSON line by line).
    let json = render_json(&c.diags, &loaded.sources);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let m = v["message"].as_str().unwrap_or("");
        assert_no_raw_controls(m);
    }
    assert!(json.contains("typo\\\\x1bc"), "{json}");
}

#[test]
fn a_ten_megabyte_line_is_cut_around_the_label() {
    let pad = "x".repeat(5_000_000);
    let src = format!(
        "project_name: demo\nglobal:\n  addressing: {{}}\ndomains:\n  pro:\n    machines:\n      pro-dev: {{description: \"{pad}\", tpye: vm, os_image: \"{pad}\"}}\n"
    );
    let loaded = anklume_schema::load_str("infra.yml", &src);
    let c = compile(&loaded, &facts());
    let text = render_text(&c.diags, &loaded.sources, false);
    assert!(text.len() < 2_000, "{} bytes of output", text.len());
    assert!(text.contains(":7:5000034"), "{text}");
    assert!(
        text.contains("…xxxx") && text.contains("tpye: vm"),
        "{text}"
    );
    for line in text.lines() {
        assert!(line.chars().count() < 200, "long line: {line}");
    }
}

#[test]
fn a_two_megabyte_name_is_cut_in_the_message_too() {
    let name = "k".repeat(2_000_000);
    let src = format!(
        "project_name: demo\nglobal:\n  addressing: {{}}\ndomains:\n  pro:\n    machines:\n      pro-dev: {{}}\nnetwork_policies:\n  - from: pro\n    to: {name}\n    ports: all\n"
    );
    let loaded = anklume_schema::load_str("infra.yml", &src);
    let c = compile(&loaded, &facts());
    let text = render_text(&c.diags, &loaded.sources, false);
    assert!(text.len() < 4_000, "{} bytes of output", text.len());
    assert!(text.contains("error[E0302]"), "{text}");
    assert!(text.contains("characters in all]"), "{text}");
    let json = render_json(&c.diags, &loaded.sources);
    assert!(json.len() < 4_000, "{} bytes of JSON", json.len());
}

#[test]
fn file_names_are_escaped_too() {
    let loaded = anklume_schema::load_str(
        "domains/\u{1b}]0;x\u{7}.yml",
        "project_name: demo\nglobal: {}\ndomains:\n  Bad_Name: {}\n",
    );
    let c = compile(&loaded, &facts());
    let text = render_text(&c.diags, &loaded.sources, false);
    assert!(text.contains("domains/\\x1b]0;x\\x07.yml:4:3"), "{text}");
    assert_no_raw_controls(&text);
    let json = render_json(&c.diags, &loaded.sources);
    assert!(
        json.contains(r#""file":"domains/\\x1b]0;x\\x07.yml""#),
        "{json}"
    );
}

mod prop {
    use super::assert_no_raw_controls;
    use anklume_compiler::render::{render_json, render_text};
    use anklume_schema::{Diagnostic, Sources, Span};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\r".to_string()),
            Just("\u{1b}[2J".to_string()),
            Just("é—\u{9b}\u{202e}\u{2028}".to_string()),
            Just("\t".to_string()),
            "[a-z ]{0,8}",
            "x{150,400}",
        ];
        prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any spans on any text, multi-line and out-of-range ones included:
        /// rendering never panics and never lets a control character out.
        #[test]
        fn any_span_on_any_text_renders_safely(
            t in text(),
            spans in prop::collection::vec((0u32..5000, 0u32..5000), 1..4),
        ) {
            let mut sources = Sources::default();
            let id = sources.add("f.yml", t.clone());
            let mut d = Diagnostic::error("E0201", "msg \u{1b}", Span::new(id, spans[0].0.min(spans[0].1) as usize, spans[0].0.max(spans[0].1) as usize)).label("l\u{7}");
            for (a, b) in &spans[1..] {
                d = d.with_secondary(Span::new(id, *a.min(b) as usize, *a.max(b) as usize), "s");
            }
            let out = render_text(std::slice::from_ref(&d), &sources, false);
            assert_no_raw_controls(&out);
            prop_assert!(out.contains("error[E0201]"), "{}", out);
            let _ = render_json(&[d], &sources);
        }
    }
}
