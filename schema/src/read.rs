//! Helpers that turn spanned YAML nodes into typed fields, collecting every
//! shape error (wrong type, unknown key, value out of set) as a diagnostic.

use crate::diag::{did_you_mean, Capped, Diagnostic, Omitted, Severity};
use crate::span::Span;
use crate::value::Value;
use crate::yaml::{Kind, Node};

/// A field as written: absent, explicitly null, or set.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Field<T> {
    /// The key is not written.
    #[default]
    Absent,
    /// The key is written with a null value (`key:` or `key: ~`).
    Null(Span),
    /// The key has a (valid) value; the span is the value's.
    Set(T, Span),
    /// The key is written but its value was rejected (a diagnostic says why).
    Invalid(Span),
}

impl<T> Field<T> {
    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v, _) => Some(v),
            _ => None,
        }
    }

    /// The value's span (or the null's), if written.
    pub fn span(&self) -> Option<Span> {
        match self {
            Field::Absent => None,
            Field::Null(s) | Field::Set(_, s) | Field::Invalid(s) => Some(*s),
        }
    }

    /// Whether the key is written with a null value.
    pub fn is_null(&self) -> bool {
        matches!(self, Field::Null(_))
    }

    /// Whether the key is not written.
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, or `default` when absent or null.
    pub fn or(&self, default: T) -> T
    where
        T: Clone,
    {
        self.get().cloned().unwrap_or(default)
    }
}

/// A name (mapping key) with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The text.
    pub text: String,
    /// Where the key is written.
    pub span: Span,
}

/// Collects diagnostics while reading: the first
/// [`MAX_PER_CODE`](crate::diag::MAX_PER_CODE) of each code, the others only
/// counted, so that what is stored stays bounded whatever the input.
#[derive(Default)]
pub struct Reader {
    /// Everything found so far.
    pub diags: Capped,
}

/// A mapping node whose keys have been checked against a known set.
pub struct Obj<'n> {
    /// The node (a mapping or, for an empty object, null).
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
}

impl<'n> Obj<'n> {
    /// The value of `key`, if written.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node of `key`, if written.
    pub fn key(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// All entries.
    pub fn entries(&self) -> &'n [(Node, Node)] {
        self.entries
    }
}

/// `value` written in a message: strings quoted, other scalars as written.
pub fn shown(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => format!("'{s}'"),
        _ => node.source_text(),
    }
}

/// `path.key`, or `key` at the top level.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The type name of a node for messages.
pub fn type_name(node: &Node) -> &'static str {
    node.to_value().type_name()
}

/// `at least 1` or `1-4094`, for range messages.
fn range_text(min: i64, max: i64) -> String {
    if max == i64::MAX {
        format!("at least {min}")
    } else {
        format!("{min}-{max}")
    }
}

/// `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b {
        [] => false,
        [only] => ok(only),
        [first, mid @ .., last] => ok(first) && ok(last) && mid.iter().all(|c| ok(c) || *c == b'-'),
    }
}

impl Reader {
    /// Record a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Record the diagnostic `make` builds, building it only when it will be
    /// kept (see [`Capped::push_with`]).
    pub fn push_with(
        &mut self,
        code: &'static str,
        severity: Severity,
        make: impl FnOnce() -> Diagnostic,
    ) {
        self.diags.push_with(code, severity, make);
    }

    /// Whether a diagnostic of `code` would be kept.
    pub fn has_room(&self, code: &str) -> bool {
        self.diags.has_room(code)
    }

    /// A reader whose diagnostics will be [`Reader::extend`]ed into this one
    /// after all it holds now (for readers working in parallel).
    pub fn fork(&self) -> Reader {
        Reader {
            diags: self.diags.fork(),
        }
    }

    /// Append what `other` (a [`Reader::fork`] of this one) found.
    pub fn extend(&mut self, other: Reader) {
        self.diags.extend(other.diags);
    }

    /// The kept diagnostics and the omitted counts.
    pub fn finish(self) -> (Vec<Diagnostic>, Vec<Omitted>) {
        self.diags.finish()
    }

    /// Read `node` as a mapping with only `known` keys. Null reads as an empty
    /// mapping when `null_ok`. Unknown keys are reported with a did-you-mean.
    pub fn obj<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
        null_ok: bool,
    ) -> Option<Obj<'n>> {
        self.obj_in(node, what, known, null_ok, None)
    }

    /// [`Reader::obj`] for a mapping whose unknown keys may be names at the
    /// wrong depth: an unknown key whose value is a mapping (or empty), and
    /// that is no typo of a known key, gets `depth(name)` as its help
    /// ("indent it under `machines:`").
    pub fn obj_in<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
        null_ok: bool,
        depth: Option<&Depth>,
    ) -> Option<Obj<'n>> {
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let name = k.key_str();
                    if !known.contains(&&*name) {
                        // Beyond the cap only counted: no message, no
                        // did-you-mean search, no list of known keys.
                        self.push_with("E0201", Severity::Error, || {
                            let d = Diagnostic::error(
                                "E0201",
                                format!("unknown key `{name}` in {what}"),
                                k.span,
                            )
                            .label("not a key anklume knows here");
                            // Its value: the body of a child (it has a
                            // child's keys), or empty, as a child's may be.
                            let (child, empty) = match &v.kind {
                                Kind::Map(kv) => (
                                    depth.is_some_and(|d| {
                                        kv.iter()
                                            .any(|(ck, _)| d.child_keys.contains(&&*ck.key_str()))
                                    }),
                                    kv.is_empty(),
                                ),
                                Kind::Null => (false, true),
                                _ => (false, false),
                            };
                            let typo = did_you_mean(&name, known.iter().copied());
                            match (depth, typo) {
                                (Some(dp), _) if child => d.with_help(dp.help(&name, what, known)),
                                (_, Some(s)) => d.with_help(format!("did you mean `{s}`?")),
                                (Some(dp), None) if empty => {
                                    d.with_help(dp.help(&name, what, known))
                                }
                                _ => d.with_help(format!("known keys here: {}", known.join(", "))),
                            }
                        });
                    }
                }
                Some(Obj {
                    node,
                    entries: entries.as_slice(),
                })
            }
            Kind::Null if null_ok => Some(Obj { node, entries: &[] }),
            _ => {
                self.push_with("E0202", Severity::Error, || {
                    Diagnostic::error(
                        "E0202",
                        format!("{what} must be a mapping, got {}", type_name(node)),
                        node.span,
                    )
                    .label("expected a mapping (`key: value` lines)")
                });
                None
            }
        }
    }

    /// Read a mapping of user-chosen names to values (domains, machines…).
    /// Names are not checked here.
    pub fn named<'n>(&mut self, node: &'n Node, what: &str) -> Option<Vec<(Name, &'n Node)>> {
        match &node.kind {
            Kind::Map(entries) => Some(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Name {
                                text: k.key_text(),
                                span: k.span,
                            },
                            v,
                        )
                    })
                    .collect(),
            ),
            Kind::Null => Some(Vec::new()),
            _ => {
                self.push_with("E0202", Severity::Error, || {
                    Diagnostic::error(
                        "E0202",
                        format!("{what} must be a mapping, got {}", type_name(node)),
                        node.span,
                    )
                    .label("expected a mapping of names")
                });
                None
            }
        }
    }

    /// Report a name that does not match the name pattern.
    pub fn check_name(&mut self, name: &Name, what: &str) -> bool {
        if is_valid_name(&name.text) {
            return true;
        }
        self.push_with("E0206", Severity::Error, || {
            let fixed: String = name
                .text
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .trim_matches('-')
                .to_string();
            let d = Diagnostic::error(
                "E0206",
                format!("{what} '{}': invalid name", name.text),
                name.span,
            )
            .label("names use lowercase letters, digits and inner hyphens");
            if is_valid_name(&fixed) {
                d.with_help(format!("rename it, for example to `{fixed}`"))
            } else {
                d.with_help(
                    "use lowercase letters, digits and hyphens, not starting or ending with a hyphen",
                )
            }
        });
        false
    }

    /// Report `node` at `path` as not of the `expected` type. The help is
    /// built only when the diagnostic is kept.
    fn wrong_type(
        &mut self,
        node: &Node,
        path: &str,
        expected: &str,
        help: impl FnOnce() -> Option<String>,
    ) {
        self.push_with("E0202", Severity::Error, || {
            let mut d = Diagnostic::error(
                "E0202",
                format!(
                    "{path} must be {expected}, got {} {}",
                    type_name(node),
                    shown(node)
                ),
                node.span,
            )
            .label(format!("expected {expected}"));
            if let Some(h) = help() {
                d = d.with_help(h);
            }
            d
        });
    }

    /// A boolean field.
    pub fn bool(&mut self, obj: &Obj, key: &str, path: &str) -> Field<bool> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Bool(b) => Field::Set(*b, n.span),
            Kind::Str(s) if matches!(s.to_ascii_lowercase().as_str(), "true" | "false") => {
                let help = || Some(format!("write {} without quotes", s.to_ascii_lowercase()));
                self.wrong_type(n, &join(path, key), "a boolean", help);
                Field::Invalid(n.span)
            }
            Kind::Str(s)
                if n.plain
                    && matches!(s.to_ascii_lowercase().as_str(), "yes" | "no" | "on" | "off") =>
            {
                let b = matches!(s.to_ascii_lowercase().as_str(), "yes" | "on");
                let help = || Some(format!("YAML 1.2 reads `{s}` as a string: write {b}"));
                self.wrong_type(n, &join(path, key), "a boolean", help);
                Field::Invalid(n.span)
            }
            _ => {
                self.wrong_type(n, &join(path, key), "a boolean", || {
                    Some("write true or false".into())
                });
                Field::Invalid(n.span)
            }
        }
    }

    /// An integer field in `min..=max`. Booleans are never integers.
    pub fn int(&mut self, obj: &Obj, key: &str, path: &str, min: i64, max: i64) -> Field<i64> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        self.int_node(n, &join(path, key), min, max)
    }

    /// An integer node in `min..=max`.
    pub fn int_node(&mut self, n: &Node, path: &str, min: i64, max: i64) -> Field<i64> {
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Int(i) if (min..=max).contains(i) => Field::Set(*i, n.span),
            Kind::Int(i) => {
                self.push_with("E0205", Severity::Error, || {
                    let range = range_text(min, max);
                    Diagnostic::error("E0205", format!("{path} must be {range}, got {i}"), n.span)
                        .label("out of range")
                        .with_help(format!("use a whole number {range}"))
                });
                Field::Invalid(n.span)
            }
            Kind::Float(_)
                if n.raw.as_deref().is_some_and(|r| {
                    let digits = r.strip_prefix(['-', '+']).unwrap_or(r);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                }) =>
            {
                self.push_with("E0205", Severity::Error, || {
                    let range = range_text(min, max);
                    Diagnostic::error(
                        "E0205",
                        format!("{path} must be {range}, got {}", n.source_text()),
                        n.span,
                    )
                    .label("out of range")
                    .with_help(format!("use a whole number {range}"))
                });
                Field::Invalid(n.span)
            }
            Kind::Bool(_) => {
                self.wrong_type(n, path, "an integer", || {
                    Some("booleans are not numbers: write a whole number".into())
                });
                Field::Invalid(n.span)
            }
            Kind::Str(s) if s.parse::<i64>().is_ok() => {
                self.wrong_type(n, path, "an integer", || {
                    Some(format!("write {s} without quotes"))
                });
                Field::Invalid(n.span)
            }
            _ => {
                self.wrong_type(n, path, "an integer", || None);
                Field::Invalid(n.span)
            }
        }
    }

    /// A string field. Other scalars are errors with a hint to quote them.
    pub fn string(&mut self, obj: &Obj, key: &str, path: &str) -> Field<String> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        self.string_node(n, &join(path, key))
    }

    /// A string node.
    pub fn string_node(&mut self, n: &Node, path: &str) -> Field<String> {
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Str(s) => Field::Set(s.clone(), n.span),
            Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
                let help = || Some(format!("quote it: \"{}\"", n.source_text()));
                self.wrong_type(n, path, "a string", help);
                Field::Invalid(n.span)
            }
            _ => {
                self.wrong_type(n, path, "a string", || None);
                Field::Invalid(n.span)
            }
        }
    }

    /// One of a fixed set of words.
    pub fn one_of(&mut self, obj: &Obj, key: &str, path: &str, allowed: &[&str]) -> Field<String> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        let path = join(path, key);
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Str(s) if allowed.contains(&s.as_str()) => Field::Set(s.clone(), n.span),
            _ => {
                self.push_with("E0204", Severity::Error, || {
                    let text = n.key_text();
                    let list = allowed
                        .iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let d = Diagnostic::error(
                        "E0204",
                        format!("{path} must be one of {list}, got {}", shown(n)),
                        n.span,
                    )
                    .label("not an allowed value");
                    match did_you_mean(&text, allowed.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!("use one of {list}")),
                    }
                });
                Field::Invalid(n.span)
            }
        }
    }

    /// An absolute path string.
    pub fn abs_path(&mut self, obj: &Obj, key: &str, path: &str) -> Field<String> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Str(s) if s.starts_with('/') => Field::Set(s.clone(), n.span),
            Kind::Str(s) if s.is_empty() => Field::Set(String::new(), n.span),
            _ => {
                self.push_with("E0207", Severity::Error, || {
                    Diagnostic::error(
                        "E0207",
                        format!(
                            "{} must be an absolute path, got {}",
                            join(path, key),
                            shown(n)
                        ),
                        n.span,
                    )
                    .label("not an absolute path")
                    .with_help("write a path starting with `/`")
                });
                Field::Invalid(n.span)
            }
        }
    }

    /// A list of strings.
    pub fn string_list(&mut self, obj: &Obj, key: &str, path: &str) -> Field<Vec<(String, Span)>> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        let path = join(path, key);
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Field::Set(s, sp) = self.string_node(item, &path) {
                        out.push((s, sp));
                    } else if item.is_null() {
                        self.wrong_type(item, &path, "a string", || None);
                    }
                }
                Field::Set(out, n.span)
            }
            _ => {
                let help = || Some("write a list: `[a, b]`".into());
                self.wrong_type(n, &path, "a list", help);
                Field::Invalid(n.span)
            }
        }
    }

    /// A mapping of string keys to scalar values (Incus config).
    pub fn scalar_map(
        &mut self,
        obj: &Obj,
        key: &str,
        path: &str,
    ) -> Field<Vec<(String, Value, Span)>> {
        let Some(n) = obj.get(key) else {
            return Field::Absent;
        };
        let path = join(path, key);
        match &n.kind {
            Kind::Null => Field::Null(n.span),
            Kind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let name = k.key_text();
                    match &v.kind {
                        Kind::Seq(_) | Kind::Map(_) => {
                            if self.has_room("E0202") {
                                self.wrong_type(
                                    v,
                                    &format!("{path}.{name}"),
                                    "a single value",
                                    || Some("Incus settings are strings: write one value".into()),
                                );
                            } else {
                                self.diags.add_omitted("E0202", Severity::Error, 1);
                            }
                        }
                        _ => out.push((name, v.to_value(), k.span)),
                    }
                }
                Field::Set(out, n.span)
            }
            _ => {
                self.wrong_type(n, &path, "a mapping", || None);
                Field::Invalid(n.span)
            }
        }
    }

    /// Report a required key that is missing.
    pub fn missing(&mut self, at: Span, what: &str, key: &str, help: &str) {
        self.push(
            Diagnostic::error("E0203", format!("{what}: missing required key `{key}`"), at)
                .label(format!("`{key}` is required here"))
                .with_help(help.to_string()),
        );
    }
}

/// Where the names of a mapping's children belong, for [`Reader::obj_in`]:
/// an unknown key whose value has a child's keys (or is empty) is a child
/// at the wrong depth.
pub struct Depth<'a> {
    /// The help for such a key, given its name.
    pub hint: &'a dyn Fn(&str) -> String,
    /// The keys a child's body has (`machines` for a domain…).
    pub child_keys: &'a [&'a str],
}

impl Depth<'_> {
    fn help(&self, name: &str, what: &str, known: &[&str]) -> String {
        format!(
            "{}; the keys of {what} are: {}",
            (self.hint)(name),
            known.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::MAX_PER_CODE;

    fn omitted(l: &crate::Loaded, code: &str) -> usize {
        l.omitted
            .iter()
            .filter(|o| o.code == code)
            .map(|o| o.count)
            .sum()
    }

    #[test]
    fn the_loader_keeps_at_most_max_per_code_and_counts_the_rest() {
        let mut text = String::from(
            "project_name: demo\nglobal: {}\ndomains:\n  pro:\n    machines:\n      pro-dev:\n",
        );
        for i in 0..10_000 {
            text.push_str(&format!("        k{i}: 1\n"));
        }
        let l = crate::load_str("infra.yml", &text);
        assert_eq!(l.diags.len(), MAX_PER_CODE, "{:#?}", &l.diags[..3]);
        assert_eq!(omitted(&l, "E0201"), 10_000 - MAX_PER_CODE);
        assert!(l.has_errors());
        // The kept ones are the first, in order, and complete.
        for (i, d) in l.diags.iter().enumerate() {
            assert_eq!(d.code, "E0201");
            assert_eq!(
                d.message,
                format!("unknown key `k{i}` in machine 'pro-dev'")
            );
            assert!(d.help.is_some());
        }
    }

    /// Domains are read in parallel, chunk by chunk: the merge keeps the
    /// first of each code in input order, across chunks, and counts all.
    #[test]
    fn domains_read_in_parallel_merge_under_the_cap_in_input_order() {
        let mut text = String::from("project_name: demo\nglobal: {}\ndomains:\n");
        let n = 3000;
        for i in 0..n {
            text.push_str(&format!("  d{i:04}:\n    typo{i}: 1\n    subnet_id: 999\n"));
        }
        let l = crate::load_str("infra.yml", &text);
        let kept: Vec<&Diagnostic> = l.diags.iter().filter(|d| d.code == "E0201").collect();
        assert_eq!(kept.len(), MAX_PER_CODE);
        for (i, d) in kept.iter().enumerate() {
            assert_eq!(
                d.message,
                format!("unknown key `typo{i}` in domain 'd{i:04}'")
            );
        }
        assert_eq!(
            l.diags.iter().filter(|d| d.code == "E0205").count(),
            MAX_PER_CODE
        );
        assert_eq!(omitted(&l, "E0201"), n - MAX_PER_CODE);
        assert_eq!(omitted(&l, "E0205"), n - MAX_PER_CODE);
        // Interleaved as found: each domain's E0201, then its E0205.
        let codes: Vec<&str> = l.diags.iter().map(|d| d.code).collect();
        assert_eq!(codes[..4], ["E0201", "E0205", "E0201", "E0205"]);
    }

    #[test]
    fn name_pattern() {
        for ok in ["a", "a1", "pro-dev", "0", "a-b-c"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
