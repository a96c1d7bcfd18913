//! Whether an orphan file may be deleted.
//!
//! v1's rule: a file whose top-level `domain_ephemeral` (else
//! `instance_ephemeral`) is falsy is protected. anklume deletes an orphan
//! only when it can **prove** the file unprotected: the file is read whole
//! (a regular file, not a link, UTF-8, one YAML document, no error) and the
//! deciding key is absent or holds a plain truthy scalar. Anything it cannot
//! read or decide is kept, with the reason.
//!
//! The file is walked as a YAML event stream, so values anklume does not
//! need to understand (an Ansible `!vault |` value, other tags, anchors)
//! do not stop the decision; only the deciding keys must be plain.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// What anklume knows of an orphan's protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Proven unprotected: `--clean-orphans` may delete it.
    Unprotected,
    /// `domain_ephemeral` / `instance_ephemeral` is false: never deleted.
    Protected,
    /// anklume cannot tell; kept. The reason says why.
    Unknown(String),
}

/// The largest orphan anklume reads to decide (larger ones are kept).
pub const MAX_ORPHAN_BYTES: u64 = 16 << 20;

/// The protection of a file holding `bytes`.
pub fn protection(bytes: &[u8]) -> Protection {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Protection::Unknown(format!("not UTF-8 text (byte {})", e.valid_up_to())),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // anklume reads YAML 1.2, Ansible reads YAML 1.1 (PyYAML): where the
    // two may disagree on the file's structure, anklume cannot tell.
    if let Some((i, c)) = text.char_indices().find(|&(_, c)| !yaml11_printable(c)) {
        return Protection::Unknown(format!(
            "holds {:?} (byte {i}), which YAML 1.1 readers such as Ansible's reject",
            c
        ));
    }
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}'))
    {
        return Protection::Unknown(format!(
            "holds {:?} (byte {i}), a line break for YAML 1.1 readers such as Ansible's but not for YAML 1.2",
            c
        ));
    }
    match top_level_decision(text) {
        Ok(p) => p,
        Err(reason) => Protection::Unknown(reason),
    }
}

/// The characters PyYAML's reader accepts (its `NON_PRINTABLE` complement).
fn yaml11_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\x20'..='\x7e' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// What one deciding key holds.
enum Held {
    Falsy,
    Truthy,
    Undecidable(String),
}

fn top_level_decision(text: &str) -> Result<Protection, String> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let mut documents = 0;
    let mut root_is_map = false;
    let mut top = Top::default();
    let mut keys = std::collections::HashSet::new();
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(format!(
                    "YAML error at line {} column {}: {}",
                    m.line(),
                    m.col() + 1,
                    e.info()
                ));
            }
        };
        let line = span.start.line();
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(format!("a second YAML document starts at line {line}"));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if depth == 0 {
                    root_is_map = matches!(event, Event::MappingStart(..));
                } else if depth == 1 && root_is_map {
                    if top.expecting_key() {
                        return Err(format!("a complex key at line {line}"));
                    }
                    top.value(|k| {
                        Held::Undecidable(format!("`{k}` holds a collection at line {line}"))
                    });
                }
                depth += 1;
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::Alias(_) => {
                if depth == 1 && root_is_map {
                    if top.expecting_key() {
                        return Err(format!("an alias used as a key at line {line}"));
                    }
                    top.value(|k| Held::Undecidable(format!("`{k}` is an alias at line {line}")));
                }
            }
            Event::Scalar(value, style, _anchor, tag) => {
                if depth != 1 || !root_is_map {
                    continue;
                }
                if top.expecting_key() {
                    if value == "<<" && style == ScalarStyle::Plain {
                        return Err(format!("a `<<` merge key at line {line}"));
                    }
                    if let Some(t) = tag {
                        // `!!merge x:` merges like `<<`; any tag on a key
                        // may change what it means.
                        return Err(format!(
                            "a key with the tag `{}{}` at line {line}",
                            t.handle, t.suffix
                        ));
                    }
                    if !keys.insert(value.to_string()) {
                        return Err(format!("duplicate key `{value}` at line {line}"));
                    }
                    top.key = Some(value.to_string());
                } else {
                    top.value(|k| {
                        let core = |t: &saphyr_parser::Tag| {
                            t.handle == "!!" || t.handle == "tag:yaml.org,2002:"
                        };
                        match tag {
                            None => scalar(&value, style),
                            Some(t) if core(&t) && &*t.suffix == "str" => {
                                scalar(&value, ScalarStyle::SingleQuoted)
                            }
                            Some(t) if core(&t) && &*t.suffix == "bool" => {
                                match scalar(&value, ScalarStyle::Plain) {
                                    h @ (Held::Truthy | Held::Falsy)
                                        if crate::ansible::emit::resolver::is_bool(&value) =>
                                    {
                                        h
                                    }
                                    _ => Held::Undecidable(format!(
                                        "`{k}: !!bool {value}` at line {line} is not a boolean YAML 1.1 knows"
                                    )),
                                }
                            }
                            Some(t) => Held::Undecidable(format!(
                                "`{k}` has the tag `{}{}` at line {line}",
                                t.handle, t.suffix
                            )),
                        }
                    });
                }
            }
        }
    }
    let decisive = top.domain.or(top.instance);
    Ok(match decisive {
        None => Protection::Unprotected,
        Some(Held::Truthy) => Protection::Unprotected,
        Some(Held::Falsy) => Protection::Protected,
        Some(Held::Undecidable(why)) => Protection::Unknown(why),
    })
}

/// The walk's state in the root mapping.
#[derive(Default)]
struct Top {
    /// The key whose value comes next; `None` when a key comes next.
    key: Option<String>,
    /// What `domain_ephemeral` holds, if present.
    domain: Option<Held>,
    /// What `instance_ephemeral` holds, if present.
    instance: Option<Held>,
}

impl Top {
    fn expecting_key(&self) -> bool {
        self.key.is_none()
    }

    /// The value of the current key was read: record what `held` says of
    /// it when the key is a deciding one (`held` is only called then).
    fn value(&mut self, held: impl FnOnce(&str) -> Held) {
        let Some(k) = self.key.take() else { return };
        let slot = match k.as_str() {
            "domain_ephemeral" => &mut self.domain,
            "instance_ephemeral" => &mut self.instance,
            _ => return,
        };
        *slot = Some(held(&k));
    }
}

/// A scalar's truthiness as v1 (PyYAML, YAML 1.1) would see it, erring on
/// the side of protection: every spelling of false, in any style, protects,
/// and a plain scalar YAML 1.1 might read as a number (`0b0`, `0x_0`,
/// `0:0.0`, `0_0`...) is truthy only when it is plainly a nonzero decimal.
fn scalar(value: &str, style: ScalarStyle) -> Held {
    let lower = value.trim().to_ascii_lowercase();
    if matches!(lower.as_str(), "false" | "no" | "off" | "n" | "0" | "") {
        return Held::Falsy;
    }
    if style != ScalarStyle::Plain {
        // A non-empty string: truthy for Python.
        return Held::Truthy;
    }
    if matches!(value, "~" | "null" | "Null" | "NULL") {
        return Held::Falsy;
    }
    if matches!(
        value,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
    ) {
        return Held::Truthy;
    }
    let first = value.as_bytes()[0];
    if first.is_ascii_alphabetic() && !value.contains(':') {
        // Not a number, null or boolean in YAML 1.1 or 1.2: a string.
        return Held::Truthy;
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    {
        return Held::Truthy;
    }
    Held::Undecidable(format!(
        "`{value}` may be a number YAML 1.1 reads differently"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Protection {
        protection(s.as_bytes())
    }

    fn unknown(s: &[u8]) -> bool {
        matches!(protection(s), Protection::Unknown(_))
    }

    #[test]
    fn v1_rule() {
        assert_eq!(p("instance_ephemeral: false\n"), Protection::Protected);
        assert_eq!(p("instance_ephemeral: true\n"), Protection::Unprotected);
        assert_eq!(p("a: 1\n"), Protection::Unprotected);
        assert_eq!(p(""), Protection::Unprotected);
        assert_eq!(p("- a\n"), Protection::Unprotected);
        assert_eq!(
            p("domain_ephemeral: true\ninstance_ephemeral: false\n"),
            Protection::Unprotected
        );
        assert_eq!(
            p("domain_ephemeral: false\ninstance_ephemeral: true\n"),
            Protection::Protected
        );
        for falsy in [
            "no",
            "off",
            "Off",
            "0",
            "~",
            "null",
            "''",
            "'false'",
            "\"No\"",
            "!!bool false",
        ] {
            assert_eq!(
                p(&format!("instance_ephemeral: {falsy}\n")),
                Protection::Protected,
                "{falsy}"
            );
        }
        assert_eq!(p("instance_ephemeral:\n"), Protection::Protected);
        assert_eq!(
            p("x:\n  instance_ephemeral: false\n"),
            Protection::Unprotected
        );
    }

    #[test]
    fn values_anklume_does_not_read_do_not_stop_the_decision() {
        let vault = "instance_ephemeral: false\ndb_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6231\n";
        assert_eq!(p(vault), Protection::Protected);
        let vault = vault.replace("false", "true");
        assert_eq!(p(&vault), Protection::Unprotected);
        assert_eq!(
            p("a: &x 1\nb: *x\ninstance_ephemeral: false\n"),
            Protection::Protected
        );
        assert_eq!(
            p("\u{feff}instance_ephemeral: false\n"),
            Protection::Protected
        );
    }

    #[test]
    fn yaml11_readings_are_not_taken_for_unprotected() {
        // What PyYAML reads as protected (or cannot read at all).
        for f in [
            "a: 1\n# x\u{2028}instance_ephemeral: false\n",
            "a: 1\n# x\u{2029}instance_ephemeral: false\n",
            "a: 1\n# x\u{85}instance_ephemeral: false\n",
            "!!merge \"x\": {instance_ephemeral: false}\n",
            "!!merge x: {instance_ephemeral: false}\n",
            "!<tag:yaml.org,2002:merge> x: {instance_ephemeral: false}\n",
            "%TAG !e! tag:yaml.org,2002:\n---\n!e!merge x: {instance_ephemeral: false}\n",
            "instance_ephemeral: true\n# \u{1}\n",
            "instance_ephemeral: true\n# \u{7f}\n",
            "instance_ephemeral: true\n# \u{86}\n",
            "instance_ephemeral: true\n# \u{fffe}\n",
            "instance_ephemeral: !!bool y\n",
        ] {
            assert!(unknown(f.as_bytes()), "{f:?}: {:?}", p(f));
        }
        for v in [
            "0b0", "0b_0", "0_0", "0__", "0x_0", "-0x0", "0:0.0", "-0:00.", "0._", "0.0e1", "00",
            ".0",
        ] {
            let f = format!("instance_ephemeral: {v}\n");
            assert_ne!(p(&f), Protection::Unprotected, "{v}");
        }
        for v in [
            "1",
            "-3",
            "yes",
            "On",
            "maybe",
            "'false x'",
            "\"x0 \"",
            "!!str yes",
            "!!bool yes",
        ] {
            let f = format!("instance_ephemeral: {v}\n");
            assert_eq!(p(&f), Protection::Unprotected, "{v}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_unknown() {
        assert!(unknown(b"instance_ephemeral: true\n\tx: 1\n"));
        assert!(unknown(
            b"instance_ephemeral: true\ninstance_ephemeral: true\n"
        ));
        assert!(unknown(b"instance_ephemeral: true\n# caf\xE9\n"));
        assert!(unknown(b"instance_ephemeral: true\n---\nb: 1\n"));
        assert!(unknown(b"instance_ephemeral: !custom true\n"));
        assert!(unknown(b"t: &t false\ninstance_ephemeral: *t\n"));
        assert!(unknown(b"instance_ephemeral: [false]\n"));
        assert!(unknown(b"<<: {instance_ephemeral: false}\n"));
        assert!(unknown(b"instance_ephemeral: 'unterminated\n"));
        assert!(unknown(b"? [a]\n: 1\n"));
    }
}
