//! anklume's one way of making user text safe to print: every crate that
//! prints a name, a key, a value, a file name or a source line read from the
//! user (or from a plan file, or from Incus) passes it through here.
//!
//! Escaping user-derived text for human-readable output.
//!
//! Names, descriptions, config keys and values come from `infra.yml` (or from
//! a plan file, which anyone can craft). Printed raw, a control character in
//! one of them can move the cursor, erase a line (`\r`, `ESC [2K`), start a
//! fake `key = value` line (`\n`), or reorder what the reader sees (bidi
//! overrides). Every human-readable rendering (`show`, `plan --format text`,
//! `diff`, the DOT labels, and apply's output) passes each user-derived field
//! through [`display`], so one field can never produce another line or a
//! terminal escape.
//!
//! What is escaped, and how:
//!
//! | characters | written as |
//! |---|---|
//! | `\n`, `\r`, `\t` | `\n`, `\r`, `\t` |
//! | other C0 controls (U+0000–U+001F), DEL (U+007F) | `\x1b`, `\x7f`, … |
//! | C1 controls (U+0080–U+009F) | `\u{9b}`, … |
//! | bidi controls: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069 | `\u{202e}`, … |
//! | line and paragraph separators U+2028, U+2029 | `\u{2028}`, `\u{2029}` |
//!
//! Everything else, backslashes included, is left as it is: a string without
//! any of these characters is returned unchanged (and borrowed). JSON and RON
//! renderings do not use this: their serialisers escape strings themselves.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must be escaped before it reaches a terminal.
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

/// Printable ASCII only: nothing to escape (the common case, checked a
/// byte at a time, which the compiler vectorises).
fn is_plain_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The byte offset of the first character to escape, if any.
pub fn find_escape(s: &str) -> Option<usize> {
    if is_plain_ascii(s) {
        None
    } else {
        s.find(needs_escape)
    }
}

fn write_escaped(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    write_escaped_with(out, s, false)
}

fn write_escaped_with(out: &mut impl fmt::Write, s: &str, keep_tab: bool) -> fmt::Result {
    let mut rest = s;
    while let Some(pos) = if keep_tab {
        rest.find(|c| c != '\t' && needs_escape(c))
    } else {
        find_escape(rest)
    } {
        out.write_str(&rest[..pos])?;
        let c = rest[pos..].chars().next().expect("found a char");
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32)?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[pos + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `s` with every control, bidi and line-separator character escaped (see
/// the module documentation); borrowed when there is nothing to escape.
///
/// ```
/// use anklume_term::display;
/// assert_eq!(display("adm\r\x1b[2Kfake"), "adm\\r\\x1b[2Kfake");
/// assert_eq!(display("a\nkey = value"), "a\\nkey = value");
/// assert!(matches!(display("plain text"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn display(s: &str) -> Cow<'_, str> {
    if find_escape(s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    write_escaped(&mut out, s).expect("writing to a String");
    Cow::Owned(out)
}

/// Like [`display`], but tabs are kept (for source lines, whose columns
/// the reader counts).
pub fn display_keep_tab(s: &str) -> Cow<'_, str> {
    if !s.contains(|c| c != '\t' && needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    write_escaped_with(&mut out, s, true).expect("writing to a String");
    Cow::Owned(out)
}

/// The length in bytes of [`display_keep_tab`]'s output for `s`.
pub fn escaped_len_keep_tab(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '\t' => 1,
            '\n' | '\r' => 2,
            c if needs_escape(c) && (c as u32) < 0x80 => 4,
            c if needs_escape(c) => format!("\\u{{{:x}}}", c as u32).len(),
            c => c.len_utf8(),
        })
        .sum()
}

/// A [`fmt::Display`] wrapper that writes its string escaped like
/// [`display`], without allocating: `format!("{}", Escaped(name))`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_tab_variant_and_its_length() {
        for s in ["a\tb", "x\u{1b}[2K\ty", "\u{85}\u{202e}\t\r\n", "caf\u{e9}"] {
            let shown = display_keep_tab(s);
            assert_eq!(shown.len(), escaped_len_keep_tab(s), "{s:?}");
            assert!(!shown.contains(|c| c != '\t' && needs_escape(c)));
            assert_eq!(shown.replace('\t', "\\t"), display(s));
        }
    }

    #[test]
    fn every_dangerous_character_is_escaped() {
        let cases = [
            ("adm\r\x1b[2Kfake", "adm\\r\\x1b[2Kfake"),
            ("key\nx = y", "key\\nx = y"),
            ("a\tb\0c\x7f", "a\\tb\\x00c\\x7f"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("nel\u{85}", "nel\\u{85}"),
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            (
                "\u{2066}x\u{2069}\u{200f}\u{61c}",
                "\\u{2066}x\\u{2069}\\u{200f}\\u{61c}",
            ),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
        ];
        for (raw, want) in cases {
            assert_eq!(display(raw), want, "{raw:?}");
            assert_eq!(Escaped(raw).to_string(), want, "{raw:?}");
            assert!(!display(raw).contains(needs_escape));
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in [
            "",
            "instance/pro/pro-dev",
            "Machine à café ☕ — 日本語",
            "C:\\path \"quoted\" {braces}",
            "\u{a0}\u{200b}",
        ] {
            assert!(matches!(display(s), Cow::Borrowed(x) if x == s), "{s:?}");
            assert_eq!(Escaped(s).to_string(), s);
        }
    }

    #[test]
    fn every_char_in_the_ranges_is_caught() {
        for c in (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain(0x202a..0x202f)
            .chain(0x2066..0x206a)
        {
            let c = char::from_u32(c).unwrap();
            assert!(needs_escape(c), "{:x}", c as u32);
            let e = display(&c.to_string()).into_owned();
            assert!(e.starts_with('\\') && e.is_ascii(), "{e}");
        }
    }
}
