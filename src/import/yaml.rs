//! A small YAML emitter for `anklume import`: block mappings with comments,
//! flow sequences, and scalars that read back as exactly what was written.
//!
//! A string is written plain only when it is made of a few safe characters
//! and anklume's own resolver ([`anklume_schema::yaml::resolve_plain`], the
//! YAML 1.2 core schema) reads it back as that string; anything else is
//! double-quoted, with every character YAML does not allow as-is (controls,
//! DEL, C1, the BOM, line and paragraph separators, noncharacters)
//! escaped. The tests parse what this writes with the parser anklume reads
//! infra.yml with, including on arbitrary strings (proptest).

use std::fmt::Write;

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Y {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A sequence of scalars, written in flow style (`[a, b]`).
    Seq(Vec<Y>),
    /// A mapping, written in block style (`{}` when empty).
    Map(Vec<Entry>),
}

/// One mapping entry, with comment lines written above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Comment lines (without `#`).
    pub comments: Vec<String>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Y,
}

impl Entry {
    /// An entry without comments.
    pub fn new(key: impl Into<String>, value: Y) -> Entry {
        Entry {
            comments: Vec::new(),
            key: key.into(),
            value,
        }
    }

    /// With these comment lines above it.
    pub fn with_comments(mut self, comments: Vec<String>) -> Entry {
        self.comments = comments;
        self
    }
}

/// A string value.
pub fn s(v: impl Into<String>) -> Y {
    Y::Str(v.into())
}

/// Whether `c` may appear in a plain scalar this emitter writes.
fn plain_char(c: char, flow: bool) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '/' | '-' | '+' | '@')
        || (c == ':' && !flow)
}

/// Whether `v` can be written plain (in a flow collection when `flow`).
pub fn plain_ok(v: &str, flow: bool) -> bool {
    let Some(first) = v.chars().next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '/' || first == '.')
        && v.len() <= 256
        && v.chars().all(|c| plain_char(c, flow))
        && !v.ends_with(':')
        && !v.contains("::")
        && matches!(
            anklume_schema::yaml::resolve_plain(v),
            anklume_schema::yaml::Kind::Str(_)
        )
}

/// `v` double-quoted, escaped.
pub fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string scalar, plain when that is safe.
pub fn scalar_str(v: &str, flow: bool) -> String {
    if plain_ok(v, flow) {
        v.to_string()
    } else {
        quoted(v)
    }
}

fn scalar(v: &Y, flow: bool) -> String {
    match v {
        Y::Str(x) => scalar_str(x, flow),
        Y::Int(i) => i.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|i| scalar(i, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        Y::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|e| format!("{}: {}", scalar_str(&e.key, true), scalar(&e.value, true)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A comment line: terminal-safe text (controls escaped, so it stays one
/// line) after `# `.
fn comment(out: &mut String, indent: usize, text: &str) {
    let text = anklume_term::display(text).to_string();
    let _ = writeln!(out, "{:indent$}# {}", "", text.trim_end());
}

fn entries(out: &mut String, indent: usize, list: &[Entry]) {
    for e in list {
        for c in &e.comments {
            comment(out, indent, c);
        }
        let key = scalar_str(&e.key, false);
        match &e.value {
            Y::Map(m) if !m.is_empty() => {
                let _ = writeln!(out, "{:indent$}{key}:", "");
                entries(out, indent + 2, m);
            }
            v => {
                let _ = writeln!(out, "{:indent$}{key}: {}", "", scalar(v, false));
            }
        }
    }
}

/// The document: `header` comment lines, then the top-level mapping.
pub fn emit(header: &[String], root: &[Entry]) -> String {
    let mut out = String::new();
    for h in header {
        comment(&mut out, 0, h);
    }
    entries(&mut out, 0, root);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anklume_schema::yaml::{parse, Kind, Node};
    use anklume_schema::FileId;
    use proptest::prelude::*;

    fn parsed(text: &str) -> Node {
        parse(FileId(0), text).unwrap_or_else(|e| panic!("does not parse: {e:?}\n{text}"))
    }

    /// `v` as a block value and as a key, and in a flow sequence, read back.
    fn round_trips(v: &str) {
        // Fixed keys other than `v` (keys must differ).
        let k = if v == "k" { "k1" } else { "k" };
        let seq = if v == "seq" { "seq1" } else { "seq" };
        let doc = emit(
            &[format!("about {v}")],
            &[
                Entry::new(k, s(v)).with_comments(vec![v.to_string()]),
                Entry::new(v, Y::Int(1)),
                Entry::new(seq, Y::Seq(vec![s(v), s("x")])),
            ],
        );
        let root = parsed(&doc);
        let m = root.as_map().expect("a mapping");
        assert_eq!(m.len(), 3, "{doc}");
        assert_eq!(m[0].1.kind, Kind::Str(v.to_string()), "{doc}");
        assert_eq!(m[1].0.kind, Kind::Str(v.to_string()), "{doc}");
        match &m[2].1.kind {
            Kind::Seq(items) => {
                assert_eq!(items[0].kind, Kind::Str(v.to_string()), "{doc}");
                assert_eq!(items.len(), 2, "{doc}");
            }
            other => panic!("not a sequence: {other:?}\n{doc}"),
        }
    }

    #[test]
    fn strings_that_look_like_other_things_are_quoted_and_read_back() {
        for v in [
            "",
            "true",
            "false",
            "True",
            "null",
            "~",
            "Null",
            "1",
            "-1",
            "0o17",
            "0x1f",
            "1e3",
            "1.5",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "10.100",
            "12:30",
            "yes",
            "on",
            "off",
            "no",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "-",
            "?",
            "? x",
            ":",
            "x:",
            "a::b",
            "@x",
            "`x",
            "!x",
            "&a",
            "*a",
            "|",
            ">",
            "%x",
            "[a]",
            "{a}",
            "a,b",
            "'q'",
            "\"q\"",
            " lead",
            "trail ",
            "line\nbreak",
            "tab\there",
            "\u{1b}[31m",
            "\u{7f}",
            "\u{85}",
            "\u{a0}",
            "\u{2028}",
            "\u{2029}",
            "\u{feff}x",
            "\u{fffe}",
            "é",
            "日本",
            "\r",
            "\0",
            "back\\slash",
            "images:debian/13",
            "10.100.0.1",
            "0 2 * * *",
            "30d",
            "limits.memory",
            "2GiB",
            "---",
            "...",
            "x\n---\n",
            "http://x/y",
            "k",
            "seq",
        ] {
            round_trips(v);
        }
    }

    #[test]
    fn plain_when_safe() {
        for v in [
            "web",
            "images:debian/13",
            "10.100.0.1",
            "limits.memory",
            "2GiB",
            "user.note",
        ] {
            assert!(plain_ok(v, false), "{v}");
        }
        assert!(!plain_ok("images:debian/13", true));
        for v in ["true", "1", "10.100", "a b", "", "x:", "-x", "0o7", ".inf"] {
            assert!(!plain_ok(v, false), "{v}");
        }
    }

    #[test]
    fn nested_mappings_and_empties() {
        let doc = emit(
            &[],
            &[Entry::new(
                "a",
                Y::Map(vec![
                    Entry::new("b", Y::Map(vec![])),
                    Entry::new("c", Y::Seq(vec![])),
                    Entry::new("d", Y::Bool(true)),
                    Entry::new("e", Y::Map(vec![Entry::new("f", s("1"))])),
                ]),
            )],
        );
        assert_eq!(doc, "a:\n  b: {}\n  c: []\n  d: true\n  e:\n    f: \"1\"\n");
        parsed(&doc);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_string_round_trips(v in "\\PC*|[ -~]{0,12}|[\\x00-\\x7f\\u{80}-\\u{2030}\\u{fff0}-\\u{ffff}]{0,8}") {
            round_trips(&v);
        }
    }
}
