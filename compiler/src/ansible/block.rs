//! Managed blocks: the part of each generated Ansible file that anklume owns.
//!
//! Every file anklume writes holds its data between two marker lines; the
//! rest of the file belongs to the user and survives regeneration byte for
//! byte:
//!
//! ```text
//! ---
//! # === MANAGED BY infra.yml ===
//! # Do not edit this section — it will be overwritten by `make sync`
//! key: value
//! # === END MANAGED ===
//!
//! # Your custom variables below:
//! ```
//!
//! [`merge`] computes a file's new bytes from its old bytes (if any) and
//! freshly emitted YAML. It follows anklume v1 (`shared/spec/ansible-tree.md`
//! §3) with deliberate departures:
//!
//! * markers are recognised only as **whole lines** (the marker text at the
//!   start of a line, followed only by spaces, tabs or a CR before the line
//!   break). v1 matched them as substrings, so a description containing
//!   `# === END MANAGED ===` cut the block short and left stale values
//!   behind it, and a comment mentioning the begin marker mid-line made v1
//!   delete the user's lines up to the real block;
//! * the file is handled as bytes: invalid UTF-8, CRLF line breaks, a byte
//!   order mark and trailing bytes outside the block are kept bit for bit. A
//!   BOM stays the file's first bytes when the block is inserted;
//! * the block is inserted literally (v1 used a regex substitution, so
//!   backslashes in values were interpreted);
//! * in an existing file that starts with a `---` line but has no block, the
//!   block goes after that line (v1 put it before, producing a second YAML
//!   document).
//!
//! The YAML that goes inside a block never holds a marker line: the emitter
//! quotes every multi-line string and indents its continuation lines, and
//! every key is a validated name (checked by a property test below).

/// The line opening a managed block.
pub const BEGIN: &str = "# === MANAGED BY infra.yml ===";
/// The notice written after [`BEGIN`] (the dash is U+2014). Not needed to
/// recognise an existing block.
pub const NOTICE: &str = "# Do not edit this section — it will be overwritten by `make sync`";
/// The line closing a managed block.
pub const END: &str = "# === END MANAGED ===";

/// What follows the block in a newly created file.
const NEW_FILE_TAIL: &str = "\n\n# Your custom variables below:\n";

/// The managed block for some emitted YAML: [`BEGIN`], [`NOTICE`], the YAML
/// without trailing whitespace, then [`END`] (no newline after it).
pub fn block(yaml: &str) -> String {
    format!("{BEGIN}\n{NOTICE}\n{}\n{END}", yaml.trim_end())
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The line breaks: `\n`, a lone `\r` (with `\r\n` read as one break),
/// and the breaks YAML 1.1 readers such as PyYAML (and so Ansible) also
/// honour: NEL (U+0085), LS (U+2028) and PS (U+2029).
const BREAKS: [&[u8]; 5] = [
    b"\n",
    b"\r",
    "\u{85}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{2029}".as_bytes(),
];

/// The length of the line break at the start of `text`, if any.
fn break_len(text: &[u8]) -> Option<usize> {
    if text.starts_with(b"\r\n") {
        return Some(2);
    }
    BREAKS.iter().find(|b| text.starts_with(b)).map(|b| b.len())
}

/// The lines of `text` as `(start, line without its break, break length)`.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8], usize)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos > text.len() {
            return None;
        }
        let start = pos;
        let mut i = start;
        while i < text.len() {
            if let Some(n) = break_len(&text[i..]) {
                pos = i + n;
                return Some((start, &text[start..i], n));
            }
            i += 1;
        }
        pos = text.len() + 1;
        Some((start, &text[start..], 0))
    })
}

/// Whether the marker text found at `at` in `text` stands on a line of its
/// own: at the start of `text` or right after a line break, and followed
/// only by spaces or tabs up to a line break or the end.
fn marker_line_at(text: &[u8], at: usize, marker: &str) -> bool {
    let starts_line = at == 0 || BREAKS.iter().any(|b| text[..at].ends_with(b));
    if !starts_line {
        return false;
    }
    let rest = &text[at + marker.len()..];
    let blanks = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    blanks == rest.len() || break_len(&rest[blanks..]).is_some()
}

/// The start of the first `marker` line at or after `from` (found with a
/// vectorised substring search, then checked to be a whole line).
fn find_marker_line(text: &[u8], from: usize, marker: &str) -> Option<usize> {
    memchr::memmem::find_iter(&text[from..], marker.as_bytes())
        .map(|i| from + i)
        .find(|&at| marker_line_at(text, at, marker))
}

/// The byte range of the first managed span of `text`: from the start of
/// the first [`BEGIN`] line up to and including the [`END`] marker text of
/// the first [`END`] line after it. What follows the end marker on its line
/// (trailing blanks) and the line break stay outside the span, so CRLF
/// files keep their line breaks.
fn first_span(text: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = find_marker_line(text, 0, BEGIN)?;
    let end = find_marker_line(text, start + BEGIN.len(), END)? + END.len();
    Some(start..end)
}

/// Where the block goes in a file without one.
enum Insert {
    /// After the `---` line ending at this offset (break included).
    AfterMarker(usize),
    /// At the start, with a `---` line of its own.
    AtStart,
}

/// Why a file without a block cannot take one without losing or breaking
/// the user's YAML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeError(pub String);

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Find where the block goes in `body` (a file without a block, after its
/// BOM): after the first `---` line that follows only blank lines, comments
/// and directives; at the start when the document has no `---`. A `---`
/// line carrying content (`--- {a: 1}`, `--- !!map`, `--- |`) cannot take a
/// block after it, nor can directives without a `---`: those are refused
/// rather than broken.
fn insertion(body: &[u8]) -> Result<Insert, MergeError> {
    let mut directives = false;
    for (start, line, brk) in lines(body) {
        let trimmed = line.trim_ascii_start();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        if line.starts_with(b"%") {
            directives = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"---") {
            let after = rest.trim_ascii_start();
            let separated = rest.len() > after.len();
            if rest.is_empty() || (separated && (after.is_empty() || after.starts_with(b"#"))) {
                return Ok(Insert::AfterMarker(start + line.len() + brk));
            }
            if separated || rest.starts_with(b"\t") {
                return Err(MergeError(format!(
                    "its document starts with content on the `---` line (`{}`): anklume cannot put its block before it without breaking the YAML; move that content to the next line",
                    String::from_utf8_lossy(&line[..line.len().min(60)])
                )));
            }
        }
        break;
    }
    if directives {
        return Err(MergeError(
            "it has YAML directives (`%...`) but no `---` line after them: add a `---` line after the directives".into(),
        ));
    }
    Ok(Insert::AtStart)
}

/// The content of a generated file that does not exist yet: `---`, the
/// block, and a "custom variables" trailer.
pub fn new_file(yaml: &str) -> Vec<u8> {
    format!("---\n{}{NEW_FILE_TAIL}", block(yaml)).into_bytes()
}

/// The new content of a generated file, given its current bytes (`None` if
/// it does not exist) and the YAML to manage:
///
/// * no file: `---`, the block, and a "custom variables" trailer;
/// * a managed span (first [`BEGIN`] line to the next [`END`] line): that
///   first span is replaced by the block, every other byte is kept;
/// * no span, a `---` line after nothing but blank lines, comments and
///   directives: the block goes right after that line (kept as it is),
///   followed by a blank line and the rest of the file;
/// * no span otherwise: `---`, the block, a blank line, the whole file.
///
/// A byte order mark at the start of the file stays at the start (and a
/// marker right after it is still a marker). A file whose `---` line carries
/// content is refused ([`MergeError`]) rather than broken.
pub fn merge(existing: Option<&[u8]>, yaml: &str) -> Result<Vec<u8>, MergeError> {
    let Some(existing) = existing else {
        return Ok(new_file(yaml));
    };
    let block = block(yaml);
    let (bom, body) = match existing.strip_prefix(BOM) {
        Some(rest) => (BOM, rest),
        None => (&b""[..], existing),
    };
    let mut out = Vec::with_capacity(existing.len() + block.len() + 8);
    out.extend_from_slice(bom);
    if let Some(span) = first_span(body) {
        out.extend_from_slice(&body[..span.start]);
        out.extend_from_slice(block.as_bytes());
        out.extend_from_slice(&body[span.end..]);
        return Ok(out);
    }
    match insertion(body)? {
        Insert::AfterMarker(at) => {
            out.extend_from_slice(&body[..at]);
            if at == body.len() && break_len(&body[at.saturating_sub(1)..]).is_none() {
                // `---` ends the file without a line break.
                out.push(b'\n');
            }
            out.extend_from_slice(block.as_bytes());
            out.extend_from_slice(b"\n\n");
            out.extend_from_slice(&body[at..]);
        }
        Insert::AtStart => {
            out.extend_from_slice(b"---\n");
            out.extend_from_slice(block.as_bytes());
            out.extend_from_slice(b"\n\n");
            out.extend_from_slice(body);
        }
    }
    Ok(out)
}

/// The bytes inside the first managed span of `existing`: everything after
/// the [`BEGIN`] line (and the [`NOTICE`] line right after it, if present) up
/// to the start of the [`END`] line. `None` when there is no span.
pub fn managed_body(existing: &[u8]) -> Option<&[u8]> {
    let existing = existing.strip_prefix(BOM).unwrap_or(existing);
    let span = first_span(existing)?;
    let inner = &existing[span.start..span.end - END.len()];
    // Skip the BEGIN line itself.
    let inner = match lines(inner).next() {
        Some((_, l, brk)) => &inner[l.len() + brk..],
        None => inner,
    };
    let inner = match inner.strip_prefix(NOTICE.as_bytes()) {
        Some(rest) if rest.is_empty() || rest.starts_with(b"\n") || rest.starts_with(b"\r\n") => {
            skip_line_break(rest)
        }
        _ => inner,
    };
    Some(inner)
}

/// Whether some line of `yaml` would be taken for a marker line.
pub fn holds_marker_line(yaml: &str) -> bool {
    let t = yaml.as_bytes();
    find_marker_line(t, 0, BEGIN).is_some() || find_marker_line(t, 0, END).is_some()
}

/// `text` without one leading `\n` or `\r\n`.
fn skip_line_break(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\r\n")
        .or_else(|| text.strip_prefix(b"\n"))
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether `line` (without its line break) is the marker `marker` as a
    /// whole line: the marker at column 0, then only spaces or tabs.
    fn is_marker_line(line: &[u8], marker: &str) -> bool {
        line.strip_prefix(marker.as_bytes())
            .is_some_and(|rest| rest.iter().all(|b| matches!(b, b' ' | b'\t')))
    }

    const YAML: &str = "a: 1\nb:\n  - x\n";

    fn expected_block() -> String {
        format!("{BEGIN}\n{NOTICE}\na: 1\nb:\n  - x\n{END}")
    }

    fn m(existing: &str) -> String {
        String::from_utf8(merge(Some(existing.as_bytes()), YAML).unwrap()).unwrap()
    }

    #[test]
    fn notice_uses_an_em_dash() {
        assert!(NOTICE.contains('\u{2014}'));
    }

    #[test]
    fn block_trims_trailing_whitespace() {
        assert_eq!(
            block("a: 1\n\n  \n"),
            format!("{BEGIN}\n{NOTICE}\na: 1\n{END}")
        );
        assert_eq!(block(""), format!("{BEGIN}\n{NOTICE}\n\n{END}"));
    }

    #[test]
    fn new_file() {
        assert_eq!(
            merge(None, YAML).unwrap(),
            format!(
                "---\n{}\n\n# Your custom variables below:\n",
                expected_block()
            )
            .into_bytes()
        );
    }

    #[test]
    fn replaces_existing_span_and_keeps_user_text() {
        let old = format!(
            "---\n{BEGIN}\n{NOTICE}\nold: 1\n{END}\n\n# Your custom variables below:\nmine: 2\n"
        );
        assert_eq!(
            m(&old),
            format!(
                "---\n{}\n\n# Your custom variables below:\nmine: 2\n",
                expected_block()
            )
        );
    }

    #[test]
    fn markers_mid_line_are_not_markers() {
        // No span at all: the block is inserted, the user's line kept whole.
        let old = format!("x: 1 {BEGIN} stale {END} tail\n");
        assert_eq!(m(&old), format!("---\n{}\n\n{old}", expected_block()));
    }

    #[test]
    fn an_end_marker_inside_a_value_does_not_end_the_block() {
        // What sync wrote for a description holding the end marker: the
        // whole old block, stale keys included, must be replaced.
        let old = format!(
            "---\n{BEGIN}\n{NOTICE}\ndomain_description: 'x {END}'\ninstance_roles:\n- stale\n{END}\n\nmine: 1\n"
        );
        assert_eq!(m(&old), format!("---\n{}\n\nmine: 1\n", expected_block()));
    }

    #[test]
    fn a_comment_mentioning_the_begin_marker_keeps_the_lines_below_it() {
        let old = format!(
            "---\n# note: the block starts at {BEGIN}\nmine: 1\n{BEGIN}\nold: 1\n{END}\ntail: 2\n"
        );
        assert_eq!(
            m(&old),
            format!(
                "---\n# note: the block starts at {BEGIN}\nmine: 1\n{}\ntail: 2\n",
                expected_block()
            )
        );
    }

    #[test]
    fn marker_lines_may_end_with_blanks_or_cr() {
        let old = format!("{BEGIN}  \r\nold\r\n{END}\t\r\nmine\r\n");
        assert_eq!(m(&old), format!("{}\t\r\nmine\r\n", expected_block()));
        // An indented marker is not a marker line.
        let old = format!(" {BEGIN}\nold\n{END}\n");
        assert_eq!(m(&old), format!("---\n{}\n\n{old}", expected_block()));
    }

    #[test]
    fn content_is_inserted_literally() {
        let yaml = "path: C:\\new\\dir\\d\nre: '$1 ${2} \\1 $$'\n";
        let old = format!("{BEGIN}\nold\n{END}\n");
        let merged = merge(Some(old.as_bytes()), yaml).unwrap();
        assert_eq!(
            merged,
            format!("{BEGIN}\n{NOTICE}\n{}\n{END}\n", yaml.trim_end()).into_bytes()
        );
        assert_eq!(managed_body(&merged), Some(yaml.as_bytes()));
    }

    #[test]
    fn user_text_with_backslashes_and_dollars_is_kept() {
        let old = format!("---\n{BEGIN}\n{END}\nuser: '\\d $1 $0 \\\\'\n");
        assert!(m(&old).ends_with("\nuser: '\\d $1 $0 \\\\'\n"));
    }

    #[test]
    fn crlf_bytes_outside_the_span_are_kept() {
        let old =
            format!("---\r\n{BEGIN}\r\n{NOTICE}\r\nold: 1\r\n{END}\r\n\r\n# mine\r\nx: 1\r\n");
        assert_eq!(
            m(&old),
            format!("---\r\n{}\r\n\r\n# mine\r\nx: 1\r\n", expected_block())
        );
        assert_eq!(managed_body(old.as_bytes()), Some(&b"old: 1\r\n"[..]));
    }

    #[test]
    fn invalid_utf8_and_trailing_bytes_are_kept_bit_for_bit() {
        let mut old = b"---\n# caf\xE9 \xFF\xFE\n".to_vec();
        old.extend_from_slice(format!("{BEGIN}\nold: 1\n{END}\n").as_bytes());
        old.extend_from_slice(b"mine: \xC3\x28\n\x00\x01trailing");
        let merged = merge(Some(&old), YAML).unwrap();
        let mut want = b"---\n# caf\xE9 \xFF\xFE\n".to_vec();
        want.extend_from_slice(expected_block().as_bytes());
        want.extend_from_slice(b"\nmine: \xC3\x28\n\x00\x01trailing");
        assert_eq!(merged, want);
        // Without a block, the whole file is kept after the new block.
        let old = b"\xFFmine: 1\r\n".to_vec();
        let merged = merge(Some(&old), YAML).unwrap();
        assert!(merged.ends_with(&old));
    }

    #[test]
    fn a_bom_stays_first() {
        let old = b"\xEF\xBB\xBF---\nmine: 1\n".to_vec();
        let merged = merge(Some(&old), YAML).unwrap();
        let mut want = b"\xEF\xBB\xBF---\n".to_vec();
        want.extend_from_slice(expected_block().as_bytes());
        want.extend_from_slice(b"\n\nmine: 1\n");
        assert_eq!(merged, want);
        // And the next merge keeps it there (the span is found).
        assert_eq!(merge(Some(&merged), YAML).unwrap(), merged);
        let old = b"\xEF\xBB\xBFmine: 1\n".to_vec();
        assert!(merge(Some(&old), YAML)
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF---\n"));
    }

    #[test]
    fn only_the_first_of_two_spans_is_replaced() {
        let second = format!("{BEGIN}\nsecond: 2\n{END}");
        let old = format!("---\n{BEGIN}\nfirst: 1\n{END}\nmid\n{second}\nend\n");
        assert_eq!(
            m(&old),
            format!("---\n{}\nmid\n{second}\nend\n", expected_block())
        );
    }

    #[test]
    fn begin_without_end_is_not_a_span() {
        let old = format!("{BEGIN}\ndangling\n");
        assert_eq!(m(&old), format!("---\n{}\n\n{old}", expected_block()));
        // An END before the BEGIN does not count either.
        let old = format!("{END}\n{BEGIN}\n");
        assert_eq!(first_span(old.as_bytes()), None);
    }

    #[test]
    fn no_span_with_document_marker_goes_after_it() {
        // The `---` line is kept byte for byte, and so is what precedes it
        // when that is only comments, blank lines and directives.
        for (old, head, rest) in [
            ("---\nmine: 1\n", "---\n", "mine: 1\n"),
            ("---   \nmine: 1\n", "---   \n", "mine: 1\n"),
            ("---\r\nmine: 1\r\n", "---\r\n", "mine: 1\r\n"),
            ("--- # comment\nmine: 1\n", "--- # comment\n", "mine: 1\n"),
            ("---", "---\n", ""),
            ("---\n", "---\n", ""),
            ("# c\n---\nx: 1\n", "# c\n---\n", "x: 1\n"),
            ("%YAML 1.1\n---\nx: 1\n", "%YAML 1.1\n---\n", "x: 1\n"),
            ("\n  # c\n---\rx: 1\r", "\n  # c\n---\r", "x: 1\r"),
        ] {
            assert_eq!(
                m(old),
                format!("{head}{}\n\n{rest}", expected_block()),
                "{old:?}"
            );
        }
    }

    #[test]
    fn content_on_the_document_marker_line_is_refused_not_lost() {
        for old in [
            "--- {mine: 1}\n",
            "--- !!map\nmine: 1\n",
            "--- |\n  text\n",
            "---\tmine: 1\n",
            "# c\n--- &a\nx: 1\n",
            "%YAML 1.1\nmine: 1\n",
        ] {
            assert!(merge(Some(old.as_bytes()), YAML).is_err(), "{old:?}");
        }
    }

    #[test]
    fn markers_after_a_bom_or_other_line_breaks_are_markers() {
        let old = format!("\u{feff}{BEGIN}\nold: 1\n{END}\n---\nmine: 1\n");
        assert_eq!(
            m(&old),
            format!("\u{feff}{}\n---\nmine: 1\n", expected_block())
        );
        let old = format!("---\r{BEGIN}\rold: 1\r{END}\r\rmine: 1\r");
        assert_eq!(m(&old), format!("---\r{}\r\rmine: 1\r", expected_block()));
        for brk in ["\u{85}", "\u{2028}", "\u{2029}"] {
            let old = format!("---{brk}{BEGIN}{brk}old{brk}{END}{brk}mine");
            assert_eq!(m(&old), format!("---{brk}{}{brk}mine", expected_block()));
        }
    }

    #[test]
    fn no_span_without_document_marker_goes_first() {
        for old in ["", "mine: 1\n", "----\nx\n", "---x\n", " ---\n", "# c\n"] {
            assert_eq!(
                m(old),
                format!("---\n{}\n\n{old}", expected_block()),
                "{old:?}"
            );
        }
    }

    #[test]
    fn merge_is_idempotent() {
        let starts = [
            None,
            Some(String::new()),
            Some("mine: 1\n".to_owned()),
            Some("---\nmine: 1\n".to_owned()),
            Some(format!("---\r\n{BEGIN}\r\nold\r\n{END}\r\nx\r\n")),
        ];
        for start in starts {
            let once = merge(start.as_deref().map(str::as_bytes), YAML).unwrap();
            assert_eq!(merge(Some(&once), YAML).unwrap(), once, "{start:?}");
            assert_eq!(managed_body(&once), Some(YAML.as_bytes()));
        }
    }

    #[test]
    fn managed_body_cases() {
        let b = |s: String| managed_body(s.as_bytes()).map(<[u8]>::to_vec);
        assert_eq!(managed_body(b"nothing here"), None);
        assert_eq!(b(format!("{BEGIN}\n{END}")), Some(vec![]));
        assert_eq!(b(format!("{BEGIN}\n{NOTICE}\n{END}")), Some(vec![]));
        assert_eq!(b(format!("{BEGIN}\na: 1\n{END}")), Some(b"a: 1\n".to_vec()));
        assert_eq!(
            managed_body(&merge(None, "k: v").unwrap()),
            Some(&b"k: v\n"[..])
        );
    }

    #[test]
    fn marker_lines_in_yaml_are_detected() {
        assert!(holds_marker_line(&format!("a: 1\n{END}\n")));
        assert!(!holds_marker_line(&format!("a: '{END}'\n  {END}\n")));
    }

    /// User bytes that cannot contain a marker line.
    fn user_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "(?s).{0,200}".prop_map(String::into_bytes),
            // Marker text mid-line, CRLF and a BOM.
            (0..4usize, "[a-z: #\r\n]{0,30}").prop_map(|(k, s)| {
                let pre = ["", "\u{feff}", "x ", "\u{feff}---\r\n# "][k];
                format!("{pre}{s} {BEGIN} {s} {END} {s}").into_bytes()
            }),
        ]
        .prop_filter("no marker line", |b| {
            let body = b.strip_prefix(BOM).unwrap_or(b);
            !lines(body).any(|(_, l, _)| is_marker_line(l, BEGIN) || is_marker_line(l, END))
        })
    }

    proptest! {
        #[test]
        fn user_bytes_survive_and_second_merge_is_identical(
            user in user_bytes(),
            yaml in "[a-z]{1,8}: [a-z0-9 \\\\$]{0,20}[a-z]\n",
            yaml2 in "[a-z]{1,8}: [a-z0-9]{0,20}\n",
        ) {
            // Either refused (content on the `---` line), or every byte of
            // the user's file is still there once the inserted block (and
            // the `---` line or line break inserted with it) is taken out.
            let Ok(once) = merge(Some(&user), &yaml) else {
                return Ok(());
            };
            let (bom, body) = match user.strip_prefix(BOM) {
                Some(rest) => (BOM, rest),
                None => (&b""[..], &user[..]),
            };
            prop_assert!(once.starts_with(bom));
            let inserted = format!("{}\n\n", block(&yaml)).into_bytes();
            let at = once
                .windows(inserted.len())
                .position(|w| w == inserted.as_slice())
                .expect("block inserted");
            let mut without = once[..at].to_vec();
            without.extend_from_slice(&once[at + inserted.len()..]);
            let mut with_bom = bom.to_vec();
            with_bom.extend_from_slice(body);
            let mut prefixed = bom.to_vec();
            prefixed.extend_from_slice(b"---\n");
            prefixed.extend_from_slice(body);
            let mut broken = with_bom.clone();
            broken.push(b'\n');
            prop_assert!(
                without == with_bom || without == prefixed || without == broken,
                "{:?} -> {:?}", String::from_utf8_lossy(&user), String::from_utf8_lossy(&once)
            );
            prop_assert_eq!(managed_body(&once), Some(yaml.as_bytes()));
            prop_assert_eq!(merge(Some(&once), &yaml).unwrap(), once.clone());
            // Changing the YAML changes only the span.
            let again = merge(Some(&once), &yaml2).unwrap();
            prop_assert_eq!(merge(Some(&again), &yaml).unwrap(), once);
        }

        #[test]
        fn bytes_around_a_span_are_kept(
            before in user_bytes(),
            after in user_bytes(),
            old in user_bytes(),
        ) {
            // A span needs its markers on lines of their own.
            let mut existing = before.clone();
            existing.extend_from_slice(format!("\n{BEGIN}\n").as_bytes());
            existing.extend_from_slice(&old);
            existing.extend_from_slice(format!("\n{END}\n").as_bytes());
            existing.extend_from_slice(&after);
            let merged = merge(Some(&existing), YAML).unwrap();
            let mut want = before.clone();
            want.push(b'\n');
            want.extend_from_slice(expected_block().as_bytes());
            want.push(b'\n');
            want.extend_from_slice(&after);
            prop_assert_eq!(merged, want);
        }
    }
}
