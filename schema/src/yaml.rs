//! YAML 1.2 (core schema) parsing into a tree of spanned nodes.
//!
//! Built on `saphyr-parser`'s event stream. On top of it this module:
//! resolves plain scalars with the YAML 1.2 core schema (so `on`, `yes`, `no`
//! stay strings), rejects duplicate keys, expands aliases and `<<` merge keys
//! within a node budget (a "billion laughs" input fails fast), bounds nesting
//! depth, and converts the parser's character offsets into byte spans.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diag::Diagnostic;
use crate::span::{FileId, Span};
use crate::value::Value;

/// Most nodes a document may expand to (aliases included).
pub const MAX_NODES: usize = 4_000_000;
/// Deepest nesting of collections.
pub const MAX_DEPTH: usize = 64;

/// A YAML node with its source span.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Where it is written (for an alias: where the alias is written).
    pub span: Span,
    /// For scalars: whether it was written plain (unquoted).
    pub plain: bool,
    /// For plain scalars read as numbers: the text as written (`10.120`,
    /// `99999999999999999999`), which printing the number may not give back.
    pub raw: Option<Box<str>>,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in source order (duplicate keys rejected).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The scalar as written when it is a number, else as displayed.
    pub fn source_text(&self) -> String {
        match &self.raw {
            Some(r) => r.to_string(),
            None => self.to_value().display(),
        }
    }

    /// Drop the spans.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Int(*i),
            Kind::Float(f) => Value::Float(*f),
            Kind::Str(s) => Value::Str(s.clone()),
            Kind::Seq(items) => Value::Seq(items.iter().map(Node::to_value).collect()),
            Kind::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// A key's text as used for duplicate detection and lookups.
    pub fn key_text(&self) -> String {
        self.key_str().into_owned()
    }

    /// A key's text, borrowed when it is a string.
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        match &self.kind {
            Kind::Str(s) => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(self.to_value().display()),
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            Kind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Kind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
}

/// Resolve a plain scalar with the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let bytes = s.as_bytes();
    let (sign, digits) = match bytes[0] {
        b'-' | b'+' => (&s[..1], &s[1..]),
        _ => ("", s),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match format!("{sign}{digits}").parse::<i64>() {
            Ok(i) => Kind::Int(i),
            Err(_) => Kind::Float(s.parse::<f64>().unwrap_or(f64::NAN)),
        };
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            if let Ok(i) = i64::from_str_radix(oct, 8) {
                return Kind::Int(i);
            }
        }
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Kind::Int(i);
            }
        }
    }
    if is_core_float(digits) {
        if let Ok(f) = s.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    Kind::Str(s.to_string())
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?` (sign stripped).
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// Maps the parser's character offsets to byte offsets.
struct Offsets<'a> {
    text: &'a str,
    /// Byte offset of every char (plus the end), only built for non-ASCII text.
    table: Option<Vec<u32>>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let table = (!text.is_ascii()).then(|| {
            let mut t: Vec<u32> = text.char_indices().map(|(b, _)| b as u32).collect();
            t.push(text.len() as u32);
            t
        });
        Offsets { text, table }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.text.len()),
            Some(t) => t.get(char_index).copied().unwrap_or(self.text.len() as u32) as usize,
        }
    }
}

enum Frame {
    Seq {
        anchor: usize,
        start: usize,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        start: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

/// Parse one YAML document. An empty stream gives a null node. Errors are
/// returned as diagnostics; on error no node is returned.
pub fn parse(file: FileId, text: &str) -> Result<Node, Vec<Diagnostic>> {
    parse_at(file, text, 0)
}

/// Parse `text`, which starts at byte `base` of the file (for chunks).
fn parse_at(file: FileId, text: &str, base: usize) -> Result<Node, Vec<Diagnostic>> {
    let offsets = Offsets::new(text);
    let span_of = |s: &saphyr_parser::Span| {
        let start = offsets.byte(s.start.index()) + base;
        let end = offsets.byte(s.end.index()) + base;
        Span::new(file, start, end)
    };
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut budget: usize = 0;
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut errors = Vec::new();

    loop {
        let (event, raw_span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let open = stack.last().map(|f| match f {
                    Frame::Seq { start, .. } | Frame::Map { start, .. } => *start,
                });
                return Err(vec![syntax_error(file, text, &offsets, &e, open)]);
            }
        };
        let span = span_of(&raw_span);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(vec![Diagnostic::error(
                        "E0104",
                        "more than one YAML document in this file",
                        span,
                    )
                    .label("a second document starts here")
                    .with_help("an infra file is one document: remove this `---` line or move the rest into another file")]);
                }
                continue;
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((n, size)) => {
                    budget += size;
                    if budget > MAX_NODES {
                        return Err(vec![bomb(span)]);
                    }
                    let mut n = n.clone();
                    n.span = span;
                    n
                }
                None => {
                    return Err(vec![Diagnostic::error(
                        "E0101",
                        "YAML syntax error: unknown anchor",
                        span,
                    )
                    .with_help(
                        "define the anchor (`&name`) before using the alias (`*name`)",
                    )])
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                budget += 1;
                let plain = style == ScalarStyle::Plain;
                let mut raw = None;
                let kind = match tag {
                    Some(tag) if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" => {
                        match resolve_tagged(&tag.suffix, &value) {
                            Some(k) => k,
                            None => {
                                errors.push(
                                    Diagnostic::error(
                                        "E0104",
                                        format!("`!!{}` cannot apply to `{}`", tag.suffix, value),
                                        span,
                                    )
                                    .with_help("remove the tag or fix the value"),
                                );
                                Kind::Str(value.into_owned())
                            }
                        }
                    }
                    Some(tag) => {
                        errors.push(
                            Diagnostic::error(
                                "E0104",
                                format!("unsupported YAML tag `{}{}`", tag.handle, tag.suffix),
                                span,
                            )
                            .with_help("anklume reads plain YAML: remove the tag"),
                        );
                        Kind::Str(value.into_owned())
                    }
                    None if plain => {
                        let k = resolve_plain(&value);
                        if matches!(k, Kind::Int(_) | Kind::Float(_)) {
                            raw = Some(Box::from(value.as_ref()));
                        }
                        k
                    }
                    None => Kind::Str(value.into_owned()),
                };
                // Block scalars (`|`, `>`) end at their last character, not
                // at the next token after the trailing line breaks.
                let mut span = span;
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    let local = text.as_bytes();
                    let mut end = span.end as usize - base;
                    while end > span.start as usize - base && local[end - 1].is_ascii_whitespace() {
                        end -= 1;
                    }
                    span.end = (end + base) as u32;
                }
                let n = Node {
                    kind,
                    span,
                    plain,
                    raw,
                };
                if anchor > 0 {
                    anchors.insert(anchor, (n.clone(), 1));
                }
                n
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                budget += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(vec![Diagnostic::error(
                        "E0103",
                        format!("YAML nesting deeper than {MAX_DEPTH} levels"),
                        span,
                    )
                    .with_help(
                        "an infra file never needs this depth: flatten the structure",
                    )]);
                }
                let start = span.start as usize;
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        anchor,
                        start,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        anchor,
                        start,
                        entries: Vec::new(),
                        pending_key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop().expect("parser balances collection events");
                let (anchor, n) = match frame {
                    Frame::Seq {
                        anchor,
                        start,
                        items,
                    } => {
                        let end = items
                            .last()
                            .map_or(span.end as usize, |n| n.span.end as usize);
                        let sp = Span::new(file, start, end.max(start));
                        (
                            anchor,
                            Node {
                                kind: Kind::Seq(items),
                                span: sp,
                                plain: false,
                                raw: None,
                            },
                        )
                    }
                    Frame::Map {
                        anchor,
                        start,
                        entries,
                        ..
                    } => {
                        let end = entries
                            .last()
                            .map_or(span.end as usize, |(_, v)| v.span.end as usize);
                        let sp = Span::new(file, start, end.max(start));
                        let entries = finish_mapping(entries, &mut errors, &mut budget);
                        if budget > MAX_NODES {
                            return Err(vec![bomb(sp)]);
                        }
                        (
                            anchor,
                            Node {
                                kind: Kind::Map(entries),
                                span: sp,
                                plain: false,
                                raw: None,
                            },
                        )
                    }
                };
                if anchor > 0 {
                    let size = n.count();
                    anchors.insert(anchor, (n.clone(), size));
                }
                n
            }
        };
        if budget > MAX_NODES {
            return Err(vec![bomb(span)]);
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(root.unwrap_or(Node {
        kind: Kind::Null,
        span: Span::new(file, base, base),
        plain: true,
        raw: None,
    }))
}

/// A diagnostic for a scanner/parser error. The caret goes on the offending
/// character (on a tab when tabs are the problem); when a collection is still
/// open, a secondary label shows where it starts.
fn syntax_error(
    file: FileId,
    text: &str,
    offsets: &Offsets,
    e: &saphyr_parser::ScanError,
    open: Option<usize>,
) -> Diagnostic {
    let mut at = offsets.byte(e.marker().index()).min(text.len());
    if e.info().contains("recursion limit") {
        return Diagnostic::error(
            "E0103",
            "YAML nesting too deep",
            Span::new(file, at, next_char_end(text, at)),
        )
        .with_help("an infra file never needs this depth: flatten the structure");
    }
    let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let indent = &text[line_start..at];
    let tab = e.info().contains("tab") || (indent.contains('\t') && indent.trim().is_empty());
    if tab {
        if let Some(p) = text[line_start..next_char_end(text, at)].find('\t') {
            at = line_start + p;
        }
    }
    let mut d = Diagnostic::error(
        "E0101",
        format!("YAML syntax error: {}", e.info()),
        Span::new(file, at, next_char_end(text, at)),
    )
    .label(e.info().to_string());
    // An unclosed flow collection is the usual culprit of an error found
    // far away (often at the end of the file): show where it opens.
    if let Some(start) = open.filter(|s| *s < at) {
        let what = match text.as_bytes().get(start) {
            Some(b'{') => Some("this `{` is never closed"),
            Some(b'[') => Some("this `[` is never closed"),
            _ => None,
        };
        if let Some(what) = what {
            d = d.with_secondary(Span::new(file, start, start + 1), what);
        }
    }
    d.with_help(if tab {
        "YAML indentation uses spaces only: replace the tab with spaces"
    } else {
        "fix the YAML syntax at this place (indentation, quotes, brackets, `:` after keys)"
    })
}

/// Smallest `domains:` block worth splitting across threads.
const PARALLEL_MIN_BYTES: usize = 256 * 1024;

/// Parse like [`parse`], faster on large files: the entries of a block-style
/// top-level `domains:` mapping are parsed as separate documents in parallel
/// and put back together. Any chunk that does not parse cleanly into exactly
/// one entry (an anchor used across entries, a scalar or a flow collection
/// running past an entry's end, a syntax error) makes the whole file go
/// through the sequential parser instead, so results and errors are always
/// those of [`parse`].
pub fn parse_fast(file: FileId, text: &str) -> Result<Node, Vec<Diagnostic>> {
    match parse_chunked(file, text) {
        Some(node) => Ok(node),
        None => parse(file, text),
    }
}

/// Byte ranges: the head (up to and including the `domains:` line), one per
/// domain entry, and the tail (the top-level keys after the block).
fn split_domains(text: &str) -> Option<(usize, Vec<usize>, usize)> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut head_end = None;
    while pos < bytes.len() {
        let end = text[pos..].find('\n').map_or(bytes.len(), |i| pos + i + 1);
        let line = text[pos..end].trim_end();
        if line == "domains:" {
            head_end = Some(end);
            break;
        }
        pos = end;
    }
    let head_end = head_end?;
    let mut starts = Vec::new();
    let mut pos = head_end;
    let mut tail = bytes.len();
    while pos < bytes.len() {
        let end = text[pos..].find('\n').map_or(bytes.len(), |i| pos + i + 1);
        let line = &text[pos..end];
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            pos = end;
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        if line.starts_with('\t') || (indent == 0 && starts.is_empty()) {
            return None;
        }
        if indent == 0 {
            tail = pos;
            break;
        }
        if indent == 2 {
            starts.push(pos);
        } else if starts.is_empty() {
            return None; // entries are not at indentation 2
        }
        pos = end;
    }
    (!starts.is_empty()).then_some((head_end, starts, tail))
}

fn parse_chunked(file: FileId, text: &str) -> Option<Node> {
    use rayon::prelude::*;
    let (head_end, starts, tail) = split_domains(text)?;
    if tail - head_end < PARALLEL_MIN_BYTES {
        return None;
    }
    // Merge keys and extra documents change how the pieces combine.
    let rest = &text[tail..];
    if text[..head_end].contains("<<")
        || rest.contains("<<")
        || rest
            .lines()
            .any(|l| l.starts_with("---") || l.starts_with("..."))
    {
        return None;
    }
    let ranges: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, starts.get(i + 1).copied().unwrap_or(tail)))
        .collect();
    let entries: Option<Vec<(Node, Node)>> = ranges
        .par_iter()
        .map(|&(s, e)| match parse_at(file, &text[s..e], s) {
            Ok(Node {
                kind: Kind::Map(mut m),
                ..
            }) if m.len() == 1 => m.pop(),
            _ => None,
        })
        .collect();
    let entries = entries?;
    let head = parse_at(file, &text[..head_end], 0).ok()?;
    let Kind::Map(mut top) = head.kind else {
        return None;
    };
    match top.last() {
        Some((k, v)) if k.as_str() == Some("domains") && v.is_null() => {}
        _ => return None,
    }
    if tail < text.len() {
        match parse_at(file, &text[tail..], tail).ok()?.kind {
            Kind::Map(rest) => top.extend(rest),
            Kind::Null => {}
            _ => return None,
        }
    }
    // Duplicate keys across chunks: let the sequential parser report them.
    let mut seen = std::collections::HashSet::with_capacity(entries.len() + top.len());
    if !entries.iter().all(|(k, _)| seen.insert(k.key_text())) {
        return None;
    }
    seen.clear();
    if !top.iter().all(|(k, _)| seen.insert(k.key_text())) {
        return None;
    }
    let first = entries.first().map(|(k, _)| k.span)?;
    let last = entries.last().map(|(_, v)| v.span)?;
    let domains = top
        .iter_mut()
        .find(|(k, _)| k.as_str() == Some("domains"))?;
    domains.1 = Node {
        kind: Kind::Map(entries),
        span: first.to(last),
        plain: false,
        raw: None,
    };
    let start = top.first().map(|(k, _)| k.span)?;
    let end = top.last().map(|(_, v)| v.span)?;
    Some(Node {
        kind: Kind::Map(top),
        span: start.to(end),
        plain: false,
        raw: None,
    })
}

fn bomb(span: Span) -> Diagnostic {
    Diagnostic::error(
        "E0103",
        format!("YAML aliases expand to more than {MAX_NODES} nodes"),
        span,
    )
    .label("expansion limit reached here")
    .with_help("this looks like an alias bomb: write the data out instead of nesting aliases")
}

fn next_char_end(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    let mut end = at + 1;
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

fn resolve_tagged(suffix: &str, value: &str) -> Option<Kind> {
    match suffix {
        "str" => Some(Kind::Str(value.to_string())),
        "null" => matches!(resolve_plain(value), Kind::Null).then_some(Kind::Null),
        "bool" => match resolve_plain(value) {
            k @ Kind::Bool(_) => Some(k),
            _ => None,
        },
        "int" => match resolve_plain(value) {
            k @ Kind::Int(_) => Some(k),
            _ => None,
        },
        "float" => match resolve_plain(value) {
            Kind::Int(i) => Some(Kind::Float(i as f64)),
            k @ Kind::Float(_) => Some(k),
            _ => None,
        },
        _ => None,
    }
}

/// Expand `<<` merge keys and reject duplicate keys.
fn finish_mapping(
    entries: Vec<(Node, Node)>,
    errors: &mut Vec<Diagnostic>,
    budget: &mut usize,
) -> Vec<(Node, Node)> {
    // Small mappings (nearly all of them) are checked by comparing keys
    // pairwise, without allocating; large ones through a hash set.
    const LINEAR: usize = 16;
    let has_merge = entries
        .iter()
        .any(|(k, _)| k.plain && k.as_str() == Some("<<"));
    let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut merges: Vec<Node> = Vec::new();
    let find = |out: &[(Node, Node)], index: &HashMap<String, usize>, key: &str| -> Option<usize> {
        if out.len() <= LINEAR {
            out.iter().position(|(k, _)| k.key_str() == key)
        } else {
            index.get(key).copied()
        }
    };
    for (k, v) in entries {
        if has_merge && k.plain && k.as_str() == Some("<<") {
            merges.push(v);
            continue;
        }
        let text = k.key_str();
        if let Some(first) = find(&out, &index, &text) {
            errors.push(
                Diagnostic::error("E0102", format!("duplicate key `{text}`"), k.span)
                    .label("defined again here")
                    .with_secondary(out[first].0.span, "first defined here")
                    .with_help("remove one of the two entries or rename one"),
            );
            continue;
        }
        push_entry(&mut out, &mut index, LINEAR, (k, v));
    }
    for m in merges {
        let sources: Vec<&Node> = match &m.kind {
            Kind::Map(_) => vec![&m],
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => {
                items.iter().collect()
            }
            _ => {
                errors.push(
                    Diagnostic::error(
                        "E0104",
                        "a `<<` merge key needs a mapping or a list of mappings",
                        m.span,
                    )
                    .with_help("write `<<: *anchor` where the anchor names a mapping"),
                );
                continue;
            }
        };
        for src in sources {
            if let Kind::Map(src_entries) = &src.kind {
                for (k, v) in src_entries {
                    if find(&out, &index, &k.key_str()).is_some() {
                        continue;
                    }
                    *budget += k.count() + v.count();
                    push_entry(&mut out, &mut index, LINEAR, (k.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn push_entry(
    out: &mut Vec<(Node, Node)>,
    index: &mut HashMap<String, usize>,
    linear: usize,
    entry: (Node, Node),
) {
    out.push(entry);
    if out.len() == linear + 1 {
        for (i, (k, _)) in out.iter().enumerate() {
            index.insert(k.key_text(), i);
        }
    } else if out.len() > linear + 1 {
        let i = out.len() - 1;
        index.insert(out[i].0.key_text(), i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(FileId(0), text).expect("parses")
    }

    #[test]
    fn core_schema_keeps_yaml11_words_as_strings() {
        for w in ["on", "off", "yes", "no", "y", "n", "On"] {
            assert_eq!(resolve_plain(w), Kind::Str(w.into()), "{w}");
        }
        assert_eq!(resolve_plain("010"), Kind::Int(10));
        assert_eq!(resolve_plain("0o17"), Kind::Int(15));
        assert_eq!(resolve_plain("0x1F"), Kind::Int(31));
        assert_eq!(resolve_plain("10.100"), Kind::Float(10.1));
        assert_eq!(resolve_plain("12:30"), Kind::Str("12:30".into()));
        assert_eq!(resolve_plain("1e3"), Kind::Float(1000.0));
        assert_eq!(resolve_plain("-"), Kind::Str("-".into()));
        assert_eq!(resolve_plain("."), Kind::Str(".".into()));
    }

    #[test]
    fn spans_are_bytes_even_after_non_ascii() {
        let text = "a: \"é—x\"\nb: 42\n";
        let n = p(text);
        let m = n.as_map().unwrap();
        let v = &m[1].1;
        assert_eq!(&text[v.span.start as usize..v.span.end as usize], "42");
    }

    #[test]
    fn duplicate_keys_are_errors_with_both_places() {
        let errs = parse(FileId(0), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "E0102");
        assert_eq!(errs[0].primary.as_ref().unwrap().span.start, 10);
        assert_eq!(errs[0].secondary[0].span.start, 0);
    }

    #[test]
    fn duplicate_keys_in_large_mappings_are_found() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k33: again\n");
        let errs = parse(FileId(0), &text).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "duplicate key `k33`");
        let first = errs[0].secondary[0].span;
        assert_eq!(&text[first.start as usize..first.end as usize], "k33");
    }

    #[test]
    fn aliases_and_merge_keys_work() {
        let n = p("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n");
        let m = n.as_map().unwrap()[1].1.to_value();
        assert_eq!(
            m,
            Value::Map(vec![
                (Value::str("y"), Value::Int(3)),
                (Value::str("x"), Value::Int(1)),
            ])
        );
    }

    #[test]
    fn alias_bomb_is_rejected_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let start = std::time::Instant::now();
        let errs = parse(FileId(0), &text).unwrap_err();
        assert_eq!(errs[0].code, "E0103");
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = format!("{}{}", "[".repeat(500), "]".repeat(500));
        let errs = parse(FileId(0), &text).unwrap_err();
        assert_eq!(errs[0].code, "E0103");
    }

    #[test]
    fn syntax_error_points_at_the_place() {
        let errs = parse(FileId(0), "a: 1\n b: [\n").unwrap_err();
        assert_eq!(errs[0].code, "E0101");
        assert!(errs[0].primary.is_some());
    }

    /// Where two trees first differ, for readable failures.
    fn first_difference(a: &Node, b: &Node, path: &str) -> Option<String> {
        if a.span != b.span || a.plain != b.plain || a.raw != b.raw {
            return Some(format!(
                "{path}: {:?}/{} vs {:?}/{}",
                a.span, a.plain, b.span, b.plain
            ));
        }
        match (&a.kind, &b.kind) {
            (Kind::Map(x), Kind::Map(y)) if x.len() == y.len() => {
                x.iter().zip(y).find_map(|((ka, va), (kb, vb))| {
                    let p = format!("{path}.{}", ka.key_text());
                    first_difference(ka, kb, &p).or_else(|| first_difference(va, vb, &p))
                })
            }
            (Kind::Seq(x), Kind::Seq(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{path}[{i}]"))),
            (x, y) if x == y => None,
            (x, y) => Some(format!("{path}: {x:?} vs {y:?}")),
        }
    }

    #[test]
    fn chunked_parse_equals_sequential_parse() {
        let mut text =
            String::from("# big\nproject_name: x\nglobal:\n  addressing: {}\ndomains:\n");
        for d in 0..1500 {
            text.push_str(&format!(
                "  d{d}:\n    description: \"domain {d} é\"\n    machines:\n      d{d}-a: {{ip: 10.120.{}.1, roles: [x, y]}}\n      d{d}-b:\n        config:\n          limits.cpu: 2\n        # comment\n        description: |\n          multi\n          line\n",
                d % 250
            ));
        }
        text.push_str("network_policies:\n  - {from: d1, to: d2}\n");
        assert!(text.len() > PARALLEL_MIN_BYTES);
        let seq = parse(FileId(3), &text).unwrap();
        let fast = parse_chunked(FileId(3), &text).expect("splits");
        assert_eq!(first_difference(&seq, &fast, "$"), None);
        // Anything the pieces cannot reproduce falls back to the sequential parser.
        let anchored = text.replace(
            "  d7:\n    description:",
            "  d7:\n    description: &a x\n    x-desc:",
        );
        let bad = format!("{anchored}  d9x: *a\n");
        assert!(parse_chunked(FileId(3), &bad).is_none());
        let dup = format!("{}domains:\n  z: {{}}\n", text);
        assert!(parse_chunked(FileId(3), &dup).is_none());
        assert_eq!(parse_fast(FileId(3), &dup).unwrap_err()[0].code, "E0102");
        let unterminated = text.replace("description: \"domain 5 é\"", "description: \"domain 5 é");
        assert!(parse_chunked(FileId(3), &unterminated).is_none());
        assert_eq!(
            parse_fast(FileId(3), &unterminated).map_err(|e| e[0].code),
            parse(FileId(3), &unterminated).map_err(|e| e[0].code)
        );
        let two_docs = format!("{text}---\nproject_name: y\n");
        assert!(parse_chunked(FileId(3), &two_docs).is_none());
    }

    #[test]
    fn empty_stream_is_null() {
        assert!(p("").is_null());
        assert!(p("# only a comment\n").is_null());
    }
}
