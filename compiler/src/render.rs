//! The one place where diagnostics become text: codespan-reporting for people,
//! one JSON object per line for editors and CI.
//!
//! Three guarantees hold for any input, however hostile:
//! - at most [`MAX_PER_CODE`] diagnostics of each code are printed, then one
//!   line (text) or one final summary object (JSON) says how many more there
//!   were;
//! - no control character quoted from the user reaches the terminal: messages,
//!   labels, help lines and the source lines of snippets show them escaped
//!   (`\x1b`, `\u{202e}`), see [`escape`];
//! - a snippet shows at most about [`MAX_COLUMNS`] columns of a long source
//!   line, cut around the label and marked with `…`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

pub use anklume_schema::diag::{Capped, Omitted, MAX_PER_CODE};
use anklume_schema::{Diagnostic, Severity, Sources, Span};
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::{Error as FilesError, Files, Location};
use codespan_reporting::term::{self, Config, Styles, StylesWriter};

/// Source lines longer than this many characters are cut in snippets.
pub const MAX_COLUMNS: usize = 120;

/// Characters kept before the first label when a line is cut.
const CONTEXT_BEFORE: usize = 40;

/// Characters shown of a cut line.
const WINDOW: usize = 100;

/// Apply the cap to already collected diagnostics plus earlier omissions.
fn cap<'d>(diags: &'d [Diagnostic], omitted: &[Omitted]) -> (Vec<&'d Diagnostic>, Vec<Omitted>) {
    let mut kept = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut extra: Vec<Omitted> = Vec::new();
    for d in diags {
        let n = counts.entry(d.code).or_insert(0);
        if *n < MAX_PER_CODE {
            *n += 1;
            kept.push(d);
        } else {
            match extra.iter_mut().find(|o| o.code == d.code) {
                Some(o) => o.count += 1,
                None => extra.push(Omitted {
                    code: d.code,
                    severity: d.severity,
                    count: 1,
                }),
            }
        }
    }
    let mut all: Vec<Omitted> = omitted.to_vec();
    for e in extra {
        match all.iter_mut().find(|o| o.code == e.code) {
            Some(o) => o.count += e.count,
            None => all.push(e),
        }
    }
    all.retain(|o| o.count > 0);
    (kept, all)
}

/// `s` with every character that could drive a terminal (controls, line
/// breaks, bidirectional overrides) written as an escape (`\x1b`, `\n`,
/// `\u{202e}`); borrowed when nothing needs escaping. anklume's one
/// implementation, shared with the plan renderings and the CLI.
pub use anklume_term::display as escape;
use anklume_term::{display_keep_tab, escaped_len_keep_tab as escaped_len};

/// Messages, labels and help lines longer than this many characters are cut.
pub const MAX_MESSAGE: usize = 1000;

/// `s` escaped (see [`escape`]) and, past [`MAX_MESSAGE`] characters, cut
/// with a note of its full length: a message quoting a 10 MB key stays short.
pub fn shown(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_MESSAGE) {
        None => escape(s),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… [cut: {} characters in all]",
            escape(&s[..cut]),
            thousands(s.chars().count())
        )),
    }
}

/// One source line as shown in a snippet.
struct ViewLine {
    /// Line index in the original file.
    orig_index: usize,
    /// Range in the view's text, newline included.
    synth: Range<usize>,
    /// The original bytes shown (a window of the line's content).
    win: Range<usize>,
    /// Where the shown content starts and ends in the view's text (between
    /// the `…` markers).
    content: Range<usize>,
    /// Whether the line is cut after the window.
    cut_end: bool,
}

/// The lines of the original sources one diagnostic needs, escaped and cut,
/// with the original line numbers and columns. Implements codespan's
/// `Files`, so codespan renders this instead of the raw sources.
struct View<'s> {
    /// File names, escaped (a file in `infra/domains/` may be named anything).
    names: Vec<Cow<'s, str>>,
    text: String,
    /// Per file id: the shown lines, by increasing original index.
    lines: Vec<Vec<ViewLine>>,
    /// Original locations of label starts, by (file, view offset).
    locs: HashMap<(usize, usize), Location>,
}

/// `(start, content_end, next_start)` of the line containing `offset`:
/// content excludes the line break (`\n` or `\r\n`).
fn line_bounds(text: &str, offset: usize) -> (usize, usize, usize) {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (end, next) = match text[offset..].find('\n') {
        Some(i) => (offset + i, offset + i + 1),
        None => (text.len(), text.len()),
    };
    let content_end = if end > start && text.as_bytes()[end - 1] == b'\r' && next > end {
        end - 1
    } else {
        end
    };
    (start, content_end, next)
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte offset `n` characters after `from` (or the end of `text`).
fn chars_forward(text: &str, from: usize, n: usize) -> usize {
    text[from..]
        .char_indices()
        .nth(n)
        .map_or(text.len(), |(i, _)| from + i)
}

/// The byte offset `n` characters before `from` (or 0).
fn chars_back(text: &str, from: usize, n: usize) -> usize {
    text[..from]
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

impl<'s> View<'s> {
    /// Build the view of `labels` (file index, original byte range).
    fn new(sources: &'s Sources, labels: &[(usize, Range<usize>)]) -> View<'s> {
        let names: Vec<Cow<str>> = sources.files.iter().map(|f| escape(&f.name)).collect();
        let mut view = View {
            names,
            text: String::new(),
            lines: (0..sources.files.len()).map(|_| Vec::new()).collect(),
            locs: HashMap::new(),
        };
        for (fi, file) in sources.files.iter().enumerate() {
            let text = file.text.as_str();
            let mine: Vec<&Range<usize>> = labels
                .iter()
                .filter(|(f, _)| *f == fi)
                .map(|(_, r)| r)
                .collect();
            if mine.is_empty() {
                continue;
            }
            // Lines around every label endpoint: the endpoint's line, two
            // before and four after (codespan shows up to three context lines
            // after a multi-line label's start, one before its end, and fills
            // one-line gaps).
            let mut wanted: std::collections::BTreeMap<usize, usize> = Default::default();
            let line_of = |o: usize| -> usize {
                sources
                    .line_col(anklume_schema::FileId(fi as u32), o as u32)
                    .0
                    .saturating_sub(1)
            };
            for r in &mine {
                for o in [r.start, r.end] {
                    let o = floor_boundary(text, o);
                    let idx = line_of(o);
                    let (start, _, _) = line_bounds(text, o);
                    wanted.insert(idx, start);
                    let (mut i, mut s) = (idx, start);
                    for _ in 0..2 {
                        if s == 0 {
                            break;
                        }
                        let (ps, _, _) = line_bounds(text, s - 1);
                        i -= 1;
                        s = ps;
                        wanted.insert(i, s);
                    }
                    let (mut i, mut s) = (idx, start);
                    for _ in 0..4 {
                        // The next line exists when this one ends with a
                        // line feed (an empty last line included).
                        match text[s..].find('\n') {
                            Some(n) => {
                                i += 1;
                                s += n + 1;
                                wanted.insert(i, s);
                            }
                            None => break,
                        }
                    }
                }
            }
            for (idx, start) in wanted {
                let (_, content_end, _) = line_bounds(text, start);
                let points: Vec<usize> = mine
                    .iter()
                    .flat_map(|r| [r.start, r.end])
                    .filter(|p| (start..=content_end).contains(p))
                    .collect();
                let line = &text[start..content_end];
                let long = line.len() > MAX_COLUMNS && line.chars().nth(MAX_COLUMNS).is_some();
                let (ws, we) = if long {
                    let anchor =
                        floor_boundary(text, points.iter().copied().min().unwrap_or(start));
                    let ws = chars_back(text, anchor, CONTEXT_BEFORE).max(start);
                    let ws = if ws < start + 4 { start } else { ws };
                    let we = chars_forward(text, ws, WINDOW).min(content_end);
                    (ws, we)
                } else {
                    (start, content_end)
                };
                let s0 = view.text.len();
                if ws > start {
                    view.text.push('…');
                }
                let c0 = view.text.len();
                view.text.push_str(&display_keep_tab(&text[ws..we]));
                let c1 = view.text.len();
                let cut_end = we < content_end;
                if cut_end {
                    view.text.push('…');
                }
                view.text.push('\n');
                view.lines[fi].push(ViewLine {
                    orig_index: idx,
                    synth: s0..view.text.len(),
                    win: ws..we,
                    content: c0..c1,
                    cut_end,
                });
            }
        }
        view
    }

    /// Where original offset `o` of file `fi` is in the view.
    fn map(&self, sources: &Sources, fi: usize, o: usize) -> usize {
        let text = &sources.files[fi].text;
        let o = floor_boundary(text, o);
        let idx = sources
            .line_col(anklume_schema::FileId(fi as u32), o as u32)
            .0
            .saturating_sub(1);
        let lines = &self.lines[fi];
        let Ok(i) = lines.binary_search_by_key(&idx, |l| l.orig_index) else {
            return lines.last().map_or(0, |l| l.synth.end.saturating_sub(1));
        };
        let l = &lines[i];
        if o <= l.win.start {
            l.content.start
        } else if o <= l.win.end {
            l.content.start + escaped_len(&text[l.win.start..o])
        } else if l.cut_end {
            l.content.end + '…'.len_utf8()
        } else {
            l.content.end
        }
    }
}

impl<'a> Files<'a> for View<'_> {
    type FileId = usize;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: usize) -> Result<&'a str, FilesError> {
        self.names
            .get(id)
            .map(|n| n.as_ref())
            .ok_or(FilesError::FileMissing)
    }

    fn source(&'a self, _id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.text)
    }

    fn line_index(&'a self, id: usize, byte_index: usize) -> Result<usize, FilesError> {
        let lines = self.lines.get(id).ok_or(FilesError::FileMissing)?;
        let i = lines.partition_point(|l| l.synth.start <= byte_index);
        Ok(lines.get(i.saturating_sub(1)).map_or(0, |l| l.orig_index))
    }

    fn line_range(&'a self, id: usize, line_index: usize) -> Result<Range<usize>, FilesError> {
        let lines = self.lines.get(id).ok_or(FilesError::FileMissing)?;
        match lines.binary_search_by_key(&line_index, |l| l.orig_index) {
            Ok(i) => Ok(lines[i].synth.clone()),
            // A line codespan asks for but never shows (the middle of a long
            // multi-line label): an empty range.
            Err(i) => {
                let at = lines.get(i).map_or(self.text.len(), |l| l.synth.start);
                Ok(at..at)
            }
        }
    }

    fn location(&'a self, id: usize, byte_index: usize) -> Result<Location, FilesError> {
        if let Some(l) = self.locs.get(&(id, byte_index)) {
            return Ok(*l);
        }
        let line_index = self.line_index(id, byte_index)?;
        Ok(Location {
            line_number: line_index + 1,
            column_number: 1,
        })
    }
}

/// A file index and a byte range in it.
type FileRange = (usize, Range<usize>);

fn clamp(sources: &Sources, s: Span) -> FileRange {
    let len = sources.get(s.file).map_or(0, |f| f.text.len());
    let start = (s.start as usize).min(len);
    let end = (s.end as usize).clamp(start, len);
    (s.file.0 as usize, start..end)
}

fn to_codespan<'s>(d: &Diagnostic, sources: &'s Sources) -> (CsDiagnostic<usize>, View<'s>) {
    let severity = match d.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
        Severity::Info => CsSeverity::Note,
    };
    let mut raw: Vec<(bool, FileRange, &str)> = Vec::new();
    if let Some(p) = &d.primary {
        if sources.get(p.span.file).is_some() {
            raw.push((true, clamp(sources, p.span), &p.message));
        }
    }
    for s in &d.secondary {
        if sources.get(s.span.file).is_some() {
            raw.push((false, clamp(sources, s.span), &s.message));
        }
    }
    let ranges: Vec<(usize, Range<usize>)> = raw.iter().map(|(_, r, _)| r.clone()).collect();
    let mut view = View::new(sources, &ranges);
    let mut labels = Vec::new();
    for (primary, (f, r), message) in raw {
        let start = view.map(sources, f, r.start);
        let end = view.map(sources, f, r.end).max(start);
        let (line, col) = sources.line_col(anklume_schema::FileId(f as u32), r.start as u32);
        view.locs.insert(
            (f, start),
            Location {
                line_number: line,
                column_number: col,
            },
        );
        let label = if primary {
            Label::primary(f, start..end)
        } else {
            Label::secondary(f, start..end)
        };
        labels.push(label.with_message(shown(message)));
    }
    let mut notes = Vec::new();
    if let Some(h) = &d.help {
        notes.push(format!("help: {}", shown(h)));
    }
    let cs = CsDiagnostic::new(severity)
        .with_code(d.code)
        .with_message(shown(&d.message))
        .with_labels(labels)
        .with_notes(notes);
    (cs, view)
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn severity_word(s: Severity, n: usize) -> &'static str {
    match (s, n == 1) {
        (Severity::Error, true) => "error",
        (Severity::Error, false) => "errors",
        (Severity::Warning, true) => "warning",
        (Severity::Warning, false) => "warnings",
        (Severity::Info, true) => "notice",
        (Severity::Info, false) => "notices",
    }
}

/// The line printed for codes that had more than [`MAX_PER_CODE`]
/// diagnostics.
pub fn omitted_line(o: &Omitted) -> String {
    format!(
        "… and {} more {} {} not shown (at most {MAX_PER_CODE} per code)",
        thousands(o.count),
        o.code,
        severity_word(o.severity, o.count)
    )
}

/// Render diagnostics for a terminal (`color`) or plain text.
pub fn render_text(diags: &[Diagnostic], sources: &Sources, color: bool) -> String {
    render_text_capped(diags, &[], sources, color)
}

/// Render diagnostics, plus `omitted` counts from an earlier cap, for a
/// terminal (`color`) or plain text.
pub fn render_text_capped(
    diags: &[Diagnostic],
    omitted: &[Omitted],
    sources: &Sources,
    color: bool,
) -> String {
    let (kept, omitted) = cap(diags, omitted);
    let config = Config::default();
    let mut out = String::new();
    for d in kept {
        let (cs, view) = to_codespan(d, sources);
        if color {
            let mut buf = termcolor::Buffer::ansi();
            let styles = Styles::default();
            let mut w = StylesWriter::new(&mut buf, &styles);
            if term::emit_to_write_style(&mut w, &config, &view, &cs).is_ok() {
                out.push_str(&String::from_utf8_lossy(buf.as_slice()));
            }
        } else if let Ok(s) = term::emit_into_string(&config, &view, &cs) {
            out.push_str(&s);
        }
    }
    for o in &omitted {
        out.push_str(&omitted_line(o));
        out.push('\n');
    }
    out
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// One JSON object per diagnostic and line: code, severity, message, file,
/// line, column, end (line, column), help. Lines and columns are 1-based.
pub fn render_json(diags: &[Diagnostic], sources: &Sources) -> String {
    render_json_capped(diags, &[], sources)
}

/// Like [`render_json`], with `omitted` counts from an earlier cap. When any
/// diagnostic was left out, a final object says how many, per code:
/// `{"omitted":[{"code":…,"severity":…,"count":…}],"max_per_code":50}`.
pub fn render_json_capped(diags: &[Diagnostic], omitted: &[Omitted], sources: &Sources) -> String {
    let (kept, omitted) = cap(diags, omitted);
    let mut out = String::new();
    for d in kept {
        let (file, start, end) = match &d.primary {
            Some(p) if sources.get(p.span.file).is_some() => {
                let f = sources
                    .get(p.span.file)
                    .map(|f| escape(&f.name).into_owned());
                let (l, c) = sources.line_col(p.span.file, p.span.start);
                let (el, ec) = sources.line_col(p.span.file, p.span.end);
                (f, Some((l, c)), Some((el, ec)))
            }
            _ => (None, None, None),
        };
        let obj = serde_json::json!({
            "code": d.code,
            "severity": severity_name(d.severity),
            "message": shown(&d.message),
            "file": file,
            "line": start.map(|s| s.0),
            "column": start.map(|s| s.1),
            "end": end.map(|e| serde_json::json!({"line": e.0, "column": e.1})),
            "help": d.help.as_deref().map(shown),
            "label": d.primary.as_ref().map(|p| shown(&p.message).into_owned()).filter(|m| !m.is_empty()),
            "labels": d.secondary.iter().map(|l| {
                let (line, column) = sources.line_col(l.span.file, l.span.start);
                serde_json::json!({
                    "file": sources.get(l.span.file).map(|f| escape(&f.name).into_owned()),
                    "line": line, "column": column, "message": shown(&l.message),
                })
            }).collect::<Vec<_>>(),
        });
        out.push_str(&obj.to_string());
        out.push('\n');
    }
    if !omitted.is_empty() {
        let obj = serde_json::json!({
            "omitted": omitted.iter().map(|o| serde_json::json!({
                "code": o.code,
                "severity": severity_name(o.severity),
                "count": o.count,
            })).collect::<Vec<_>>(),
            "max_per_code": MAX_PER_CODE,
        });
        out.push_str(&obj.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\u{1b}[31mb"), "a\\x1b[31mb");
        assert_eq!(escape("a\r\nb\t"), "a\\r\\nb\\t");
        assert_eq!(escape("\u{7f}\u{85}\u{9b}"), "\\x7f\\u{85}\\u{9b}");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999_950), "999,950");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
