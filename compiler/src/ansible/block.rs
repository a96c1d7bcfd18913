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
//! [`merge`] computes a file's new content from its old content (if any) and
//! freshly emitted YAML. It follows anklume v1 (`shared/spec/ansible-tree.md`
//! §3) with two deliberate departures: the block is inserted literally (v1
//! used a regex substitution, so backslashes in values were interpreted),
//! and in an existing file that starts with a `---` line but has no block,
//! the block goes after that line (v1 put it before, producing a second YAML
//! document).

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

/// The byte range of the first managed span of `text`: from the first
/// [`BEGIN`] up to and including the first [`END`] after it (v1's non-greedy
/// `BEGIN.*?END` with DOTALL).
fn first_span(text: &str) -> Option<std::ops::Range<usize>> {
    let start = text.find(BEGIN)?;
    let after_begin = start + BEGIN.len();
    let end = after_begin + text[after_begin..].find(END)? + END.len();
    Some(start..end)
}

/// The length of the first line of `text` including its line break, if that
/// line is a `---` document marker (`---` alone, possibly with trailing
/// whitespace or CR, or `--- ` followed by anything).
fn document_marker_len(text: &str) -> Option<usize> {
    let (line, len) = match text.find('\n') {
        Some(i) => (&text[..i], i + 1),
        None => (text, text.len()),
    };
    (line.trim_end() == "---" || line.starts_with("--- ")).then_some(len)
}

/// The new content of a generated file, given its current content (`None`
/// if it does not exist) and the YAML to manage:
///
/// * no file: `---`, the block, and a "custom variables" trailer;
/// * a managed span (first [`BEGIN`] to the next [`END`]): that first span is
///   replaced by the block, every other byte is kept;
/// * no span, first line is `---`: the block goes right after that line,
///   followed by a blank line and the rest of the file;
/// * no span otherwise: `---`, the block, a blank line, the whole file.
pub fn merge(existing: Option<&str>, yaml: &str) -> String {
    let block = block(yaml);
    let Some(existing) = existing else {
        return format!("---\n{block}{NEW_FILE_TAIL}");
    };
    if let Some(span) = first_span(existing) {
        let mut out = String::with_capacity(existing.len() - span.len() + block.len());
        out.push_str(&existing[..span.start]);
        out.push_str(&block);
        out.push_str(&existing[span.end..]);
        return out;
    }
    let rest = match document_marker_len(existing) {
        Some(len) => &existing[len..],
        None => existing,
    };
    format!("---\n{block}\n\n{rest}")
}

/// The text inside the first managed span of `existing`: everything after
/// the [`BEGIN`] line (and the [`NOTICE`] line right after it, if present) up
/// to the start of the [`END`] line. `None` when there is no span.
pub fn managed_body(existing: &str) -> Option<&str> {
    let span = first_span(existing)?;
    let inner = &existing[span.start + BEGIN.len()..span.end - END.len()];
    let inner = skip_line_break(inner);
    let inner = match inner.strip_prefix(NOTICE) {
        Some(rest) if rest.is_empty() || rest.starts_with('\n') || rest.starts_with("\r\n") => {
            skip_line_break(rest)
        }
        _ => inner,
    };
    Some(inner)
}

/// `text` without one leading `\n` or `\r\n`.
fn skip_line_break(text: &str) -> &str {
    text.strip_prefix("\r\n")
        .or_else(|| text.strip_prefix('\n'))
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const YAML: &str = "a: 1\nb:\n  - x\n";

    fn expected_block() -> String {
        format!("{BEGIN}\n{NOTICE}\na: 1\nb:\n  - x\n{END}")
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
            merge(None, YAML),
            format!(
                "---\n{}\n\n# Your custom variables below:\n",
                expected_block()
            )
        );
    }

    #[test]
    fn replaces_existing_span_and_keeps_user_text() {
        let old = format!(
            "---\n{BEGIN}\n{NOTICE}\nold: 1\n{END}\n\n# Your custom variables below:\nmine: 2\n"
        );
        assert_eq!(
            merge(Some(&old), YAML),
            format!(
                "---\n{}\n\n# Your custom variables below:\nmine: 2\n",
                expected_block()
            )
        );
    }

    #[test]
    fn span_without_notice_and_markers_mid_line() {
        let old = format!("x: 1 {BEGIN} stale {END} tail\n");
        assert_eq!(
            merge(Some(&old), YAML),
            format!("x: 1 {} tail\n", expected_block())
        );
    }

    #[test]
    fn content_is_inserted_literally() {
        let yaml = "path: C:\\new\\dir\\d\nre: '$1 ${2} \\1 $$'\n";
        let old = format!("{BEGIN}\nold\n{END}\n");
        let merged = merge(Some(&old), yaml);
        assert_eq!(
            merged,
            format!("{BEGIN}\n{NOTICE}\n{}\n{END}\n", yaml.trim_end())
        );
        assert_eq!(managed_body(&merged), Some(yaml));
    }

    #[test]
    fn user_text_with_backslashes_and_dollars_is_kept() {
        let old = format!("---\n{BEGIN}\n{END}\nuser: '\\d $1 $0 \\\\'\n");
        let merged = merge(Some(&old), YAML);
        assert!(merged.ends_with("\nuser: '\\d $1 $0 \\\\'\n"));
    }

    #[test]
    fn crlf_bytes_outside_the_span_are_kept() {
        let old =
            format!("---\r\n{BEGIN}\r\n{NOTICE}\r\nold: 1\r\n{END}\r\n\r\n# mine\r\nx: 1\r\n");
        assert_eq!(
            merge(Some(&old), YAML),
            format!("---\r\n{}\r\n\r\n# mine\r\nx: 1\r\n", expected_block())
        );
        assert_eq!(managed_body(&old), Some("old: 1\r\n"));
    }

    #[test]
    fn only_the_first_of_two_spans_is_replaced() {
        let second = format!("{BEGIN}\nsecond: 2\n{END}");
        let old = format!("---\n{BEGIN}\nfirst: 1\n{END}\nmid\n{second}\nend\n");
        assert_eq!(
            merge(Some(&old), YAML),
            format!("---\n{}\nmid\n{second}\nend\n", expected_block())
        );
    }

    #[test]
    fn begin_without_end_is_not_a_span() {
        let old = format!("{BEGIN}\ndangling\n");
        assert_eq!(
            merge(Some(&old), YAML),
            format!("---\n{}\n\n{old}", expected_block())
        );
        // An END before the BEGIN does not count either.
        let old = format!("{END}\n{BEGIN}\n");
        assert_eq!(first_span(&old), None);
    }

    #[test]
    fn no_span_with_document_marker_goes_after_it() {
        for (old, rest) in [
            ("---\nmine: 1\n", "mine: 1\n"),
            ("---   \nmine: 1\n", "mine: 1\n"),
            ("---\r\nmine: 1\r\n", "mine: 1\r\n"),
            ("--- # comment\nmine: 1\n", "mine: 1\n"),
            ("---", ""),
            ("---\n", ""),
        ] {
            assert_eq!(
                merge(Some(old), YAML),
                format!("---\n{}\n\n{rest}", expected_block()),
                "{old:?}"
            );
        }
    }

    #[test]
    fn no_span_without_document_marker_goes_first() {
        for old in [
            "",
            "mine: 1\n",
            "----\nx\n",
            "---x\n",
            " ---\n",
            "# c\n---\n",
        ] {
            assert_eq!(
                merge(Some(old), YAML),
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
            let once = merge(start.as_deref(), YAML);
            assert_eq!(merge(Some(&once), YAML), once, "{start:?}");
            assert_eq!(managed_body(&once), Some(YAML));
        }
    }

    #[test]
    fn managed_body_cases() {
        assert_eq!(managed_body("nothing here"), None);
        assert_eq!(managed_body(&format!("{BEGIN}{END}")), Some(""));
        assert_eq!(managed_body(&format!("{BEGIN}\n{END}")), Some(""));
        assert_eq!(managed_body(&format!("{BEGIN}\n{NOTICE}\n{END}")), Some(""));
        assert_eq!(
            managed_body(&format!("{BEGIN}\na: 1\n{END}")),
            Some("a: 1\n")
        );
        assert_eq!(managed_body(&merge(None, "k: v")), Some("k: v\n"));
    }

    /// User text that cannot contain a marker.
    fn user_text() -> impl Strategy<Value = String> {
        "(?s).{0,200}".prop_filter("no markers", |s| !s.contains(BEGIN) && !s.contains(END))
    }

    proptest! {
        #[test]
        fn user_text_survives_and_second_merge_is_identical(
            user in user_text(),
            yaml in "[a-z]{1,8}: [a-z0-9 \\\\$]{0,20}[a-z]\n",
            yaml2 in "[a-z]{1,8}: [a-z0-9]{0,20}\n",
        ) {
            let once = merge(Some(&user), &yaml);
            // The user's text is kept, after the block (minus a leading
            // `---` line, which the block now follows).
            let kept = match document_marker_len(&user) {
                Some(len) => &user[len..],
                None => &user[..],
            };
            prop_assert!(once.ends_with(kept));
            prop_assert!(once.starts_with("---\n"));
            prop_assert_eq!(managed_body(&once), Some(yaml.as_str()));
            prop_assert_eq!(merge(Some(&once), &yaml), once.clone());
            // Changing the YAML changes only the span.
            let again = merge(Some(&once), &yaml2);
            prop_assert!(again.ends_with(kept));
            prop_assert_eq!(merge(Some(&again), &yaml), once);
        }

        #[test]
        fn text_around_a_span_is_kept(
            before in user_text(),
            after in user_text(),
            old in user_text(),
        ) {
            let existing = format!("{before}{BEGIN}{old}{END}{after}");
            let merged = merge(Some(&existing), YAML);
            prop_assert_eq!(merged, format!("{before}{}{after}", expected_block()));
        }
    }
}
