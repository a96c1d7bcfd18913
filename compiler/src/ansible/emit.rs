//! YAML emission byte-compatible with anklume v1 (Python), which wrote every
//! managed block with:
//!
//! ```python
//! class _Dumper(yaml.SafeDumper):
//!     def increase_indent(self, flow=False, indentless=False):
//!         return super().increase_indent(flow, False)
//! yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
//!           allow_unicode=True, sort_keys=False)
//! ```
//!
//! This module is a port of the parts of PyYAML 6.0 that this call exercises:
//!
//! * the **representer** ([`Scalar::of`]): how `None`, booleans, integers,
//!   floats and strings become scalar text, and whether that text may be
//!   written plain without changing its type (the YAML 1.1 implicit resolvers
//!   of `resolver.py`, see [`resolves_to_non_str`]);
//! * the **emitter** ([`Emitter`]): block mappings and sequences with the
//!   indentation quirk above (sequences under a key are indented), flow style
//!   only for empty collections, simple vs. complex (`? `) keys, and the
//!   choice between plain, single-quoted and double-quoted scalars
//!   (`analyze_scalar`, `choose_scalar_style`) together with the writers that
//!   fold long scalars past column 80.
//!
//! Names, state variables and control flow deliberately follow
//! `yaml/emitter.py` so the two can be compared side by side. Columns count
//! Unicode code points, as Python's `len` does. Anchors, aliases, explicit
//! tags and block scalars (`|`, `>`) are never produced by this call (values
//! are trees and no style is forced), so they are not ported.
//!
//! One deliberate difference from a bare `SafeDumper`: null is written as an
//! empty plain scalar (`key:`), not `null`, as v1's published output shows.
//! This is the behaviour of a representer
//! `represent_scalar('tag:yaml.org,2002:null', '')`.

use anklume_schema::Value;

/// PyYAML's `best_indent`.
const BEST_INDENT: usize = 2;
/// PyYAML's `best_width`: scalars are folded at a space once past this column.
const BEST_WIDTH: usize = 80;

/// Line-break characters as PyYAML sees them.
fn is_break(ch: char) -> bool {
    matches!(ch, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Python's `ch is None or pred(ch)` for the writers' end-of-text checks.
fn none_or(ch: Option<char>, pred: impl FnOnce(char) -> bool) -> bool {
    match ch {
        None => true,
        Some(c) => pred(c),
    }
}

/// "Whitespace" for PyYAML's indicator analysis (`'\0 \t\r\n\x85\u2028\u2029'`).
fn is_blank_or_break(ch: char) -> bool {
    matches!(ch, '\0' | ' ' | '\t' | '\r') || is_break(ch)
}

/// Emit a top-level mapping as a YAML document, exactly as v1's `yaml.dump`
/// call does. The result ends with a single `"\n"`; an empty mapping gives
/// `"{}\n"`.
pub fn emit_document(entries: &[(Value, Value)]) -> String {
    let mut emitter = Emitter::new();
    emitter.document(|e| e.mapping(entries));
    emitter.out
}

/// Emit any value as a YAML document, as `yaml.dump` would (a scalar root is
/// followed by PyYAML's `...` document end marker).
pub fn emit_value(value: &Value) -> String {
    let mut emitter = Emitter::new();
    emitter.document(|e| e.node(value));
    emitter.out
}

// ---------------------------------------------------------------------------
// Representer: values to scalar text.
// ---------------------------------------------------------------------------

/// A scalar as the serializer hands it to the emitter.
struct Scalar {
    /// The scalar's text.
    text: String,
    /// PyYAML's short tag (`!!str`, `!!int`, ...). Never written here (every
    /// scalar is implicit in the style chosen) but it counts towards the
    /// 128-character limit of simple keys.
    tag: &'static str,
    /// `implicit[0]`: the text read back plain resolves to the same type, so a
    /// plain style is allowed.
    plain_implicit: bool,
}

impl Scalar {
    /// Represent a scalar value (`None` for collections).
    fn of(value: &Value) -> Option<Scalar> {
        let (text, tag, plain_implicit) = match value {
            Value::Null => (String::new(), "!!null", true),
            Value::Bool(b) => (b.to_string(), "!!bool", true),
            Value::Int(i) => (i.to_string(), "!!int", true),
            Value::Float(f) => (python_float(*f), "!!float", true),
            Value::Str(s) => (s.clone(), "!!str", !resolves_to_non_str(s)),
            Value::Seq(_) | Value::Map(_) => return None,
        };
        Some(Scalar {
            text,
            tag,
            plain_implicit,
        })
    }
}

/// A float as PyYAML's `represent_float` writes it: Python's `repr`, in lower
/// case, with `.0` added to a mantissa without a dot (`1e+20` → `1.0e+20`),
/// and `.inf`, `-.inf`, `.nan`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exp) = shortest_digits(f.abs());
    // Python's repr switches to an exponent when the decimal point would sit
    // more than 16 digits right or 4 or more zeros left of the digits.
    let point = exp + 1;
    let body = if (-3..=16).contains(&point) {
        let n = digits.len() as i32;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat(-point as usize))
        } else if point >= n {
            format!("{digits}{}.0", "0".repeat((point - n) as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        // PyYAML's `.0` for a mantissa without a dot (`1e+16` -> `1.0e+16`).
        let rest = if rest.is_empty() { "0" } else { rest };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{first}.{rest}e{exp_sign}{:02}", exp.abs())
    };
    format!("{sign}{body}")
}

/// The shortest decimal digits that read back as `f` (positive, finite,
/// non-zero) and the decimal exponent of the first digit, as Python's repr
/// (David Gay's `dtoa` mode 0) picks them: among the shortest candidates,
/// the one nearest to `f`, ties going to an even last digit.
///
/// Rust's shortest formatting finds the length but settles ties upwards
/// (`589326426147489.25` gives `…489.3`, Python says `…489.2`), so the digits
/// are re-derived by exact rounding to that length, which rounds half to even.
fn shortest_digits(f: f64) -> (String, i32) {
    let split = |s: &str| -> (String, i32) {
        let (mantissa, exp) = s.split_once('e').expect("`{:e}` has an exponent");
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let digits = digits.trim_end_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        (digits.to_owned(), exp.parse().expect("exponent"))
    };
    let shortest = split(&format!("{f:e}"));
    let rounded_text = format!("{:.*e}", shortest.0.len() - 1, f);
    if rounded_text.parse::<f64>() == Ok(f) {
        split(&rounded_text)
    } else {
        shortest
    }
}

/// Whether a string read back as a plain YAML 1.1 scalar by PyYAML would be
/// something other than a string: a bool, int, float, null, timestamp, or one
/// of the `<<` / `=` / `!&*` specials. Such strings must be quoted.
///
/// PyYAML's patterns end with `$`, which in Python also matches before a
/// final newline, hence the strip.
pub fn resolves_to_non_str(s: &str) -> bool {
    let s = s.strip_suffix('\n').unwrap_or(s);
    resolver::is_bool(s)
        || resolver::is_null(s)
        || resolver::is_int(s)
        || resolver::is_float(s)
        || resolver::is_timestamp(s)
        || matches!(s, "<<" | "=" | "!" | "&" | "*")
}

/// Hand-written equivalents of the implicit resolvers of PyYAML's
/// `resolver.py` (every pattern is ASCII-only, so byte matching is exact).
pub(crate) mod resolver {
    /// `yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF`
    pub fn is_bool(s: &str) -> bool {
        matches!(
            s,
            "yes"
                | "Yes"
                | "YES"
                | "no"
                | "No"
                | "NO"
                | "true"
                | "True"
                | "TRUE"
                | "false"
                | "False"
                | "FALSE"
                | "on"
                | "On"
                | "ON"
                | "off"
                | "Off"
                | "OFF"
        )
    }

    /// `~|null|Null|NULL|` (the empty string too).
    pub fn is_null(s: &str) -> bool {
        matches!(s, "~" | "null" | "Null" | "NULL" | "")
    }

    /// A cursor over ASCII bytes with the few regex pieces the resolvers use.
    struct Cur<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        fn new(s: &'a str) -> Self {
            Cur {
                b: s.as_bytes(),
                i: 0,
            }
        }
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        fn done(&self) -> bool {
            self.i == self.b.len()
        }
        /// Consume one byte if `pred` holds for it.
        fn eat(&mut self, pred: impl Fn(u8) -> bool) -> bool {
            match self.peek() {
                Some(c) if pred(c) => {
                    self.i += 1;
                    true
                }
                _ => false,
            }
        }
        fn eat_byte(&mut self, c: u8) -> bool {
            self.eat(|x| x == c)
        }
        /// Consume a maximal run of bytes satisfying `pred`; its length.
        fn run(&mut self, pred: impl Fn(u8) -> bool + Copy) -> usize {
            let start = self.i;
            while self.eat(pred) {}
            self.i - start
        }
        /// `[-+]?`
        fn sign(&mut self) {
            self.eat(|c| c == b'-' || c == b'+');
        }
        /// `[0-9][0-9]?` followed by a non-digit: one or two digits.
        fn one_or_two_digits(&mut self) -> bool {
            matches!(self.run(is_digit), 1 | 2)
        }
        /// `(?::[0-5]?[0-9])+` — sexagesimal groups, at least one.
        fn sexagesimal(&mut self) -> bool {
            let mut groups = 0;
            while self.eat_byte(b':') {
                let start = self.i;
                let ok = match self.run(is_digit) {
                    1 => true,
                    2 => self.b[start] <= b'5',
                    _ => false,
                };
                if !ok {
                    return false;
                }
                groups += 1;
            }
            groups > 0
        }
        /// `(?:[eE][-+][0-9]+)?`
        fn opt_exponent(&mut self) -> bool {
            if self.eat(|c| c == b'e' || c == b'E') {
                return self.eat(|c| c == b'-' || c == b'+') && self.run(is_digit) > 0;
            }
            true
        }
    }

    fn is_digit(c: u8) -> bool {
        c.is_ascii_digit()
    }
    fn is_digit_(c: u8) -> bool {
        c.is_ascii_digit() || c == b'_'
    }

    /// Try one alternative of a pattern: it must consume the whole string.
    fn full(s: &str, alt: impl FnOnce(&mut Cur) -> bool) -> bool {
        let mut c = Cur::new(s);
        alt(&mut c) && c.done()
    }

    /// ```text
    /// [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*)
    /// | [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    /// ```
    pub fn is_int(s: &str) -> bool {
        let binary = |c: &mut Cur| {
            c.sign();
            c.eat_byte(b'0')
                && c.eat_byte(b'b')
                && c.run(|x| x == b'0' || x == b'1' || x == b'_') > 0
        };
        let octal = |c: &mut Cur| {
            c.sign();
            c.eat_byte(b'0') && c.run(|x| (b'0'..=b'7').contains(&x) || x == b'_') > 0
        };
        let decimal = |c: &mut Cur| {
            c.sign();
            if c.eat_byte(b'0') {
                return true;
            }
            let nonzero = c.eat(|x| (b'1'..=b'9').contains(&x));
            c.run(is_digit_);
            nonzero
        };
        let hex = |c: &mut Cur| {
            c.sign();
            c.eat_byte(b'0')
                && c.eat_byte(b'x')
                && c.run(|x| x.is_ascii_hexdigit() || x == b'_') > 0
        };
        let sexagesimal = |c: &mut Cur| {
            c.sign();
            c.eat(|x| (b'1'..=b'9').contains(&x)) && {
                c.run(is_digit_);
                c.sexagesimal()
            }
        };
        full(s, binary)
            || full(s, octal)
            || full(s, decimal)
            || full(s, hex)
            || full(s, sexagesimal)
    }

    /// ```text
    /// [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    /// | \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    /// | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    /// | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    /// ```
    pub fn is_float(s: &str) -> bool {
        let decimal = |c: &mut Cur| {
            c.sign();
            c.eat(is_digit)
                && {
                    c.run(is_digit_);
                    c.eat_byte(b'.')
                }
                && {
                    c.run(is_digit_);
                    c.opt_exponent()
                }
        };
        let leading_dot = |c: &mut Cur| {
            c.eat_byte(b'.') && c.eat(is_digit) && {
                c.run(is_digit_);
                c.opt_exponent()
            }
        };
        let sexagesimal = |c: &mut Cur| {
            c.sign();
            let ok = c.eat(is_digit)
                && {
                    c.run(is_digit_);
                    c.sexagesimal()
                }
                && c.eat_byte(b'.');
            c.run(is_digit_);
            ok
        };
        let special = matches!(
            s,
            ".inf" | ".Inf" | ".INF" | "-.inf" | "-.Inf" | "-.INF" | "+.inf" | "+.Inf" | "+.INF"
        ) || matches!(s, ".nan" | ".NaN" | ".NAN");
        special || full(s, decimal) || full(s, leading_dot) || full(s, sexagesimal)
    }

    /// ```text
    /// [0-9]{4}-[0-9]{2}-[0-9]{2}
    /// | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}
    ///   (?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?
    /// ```
    pub fn is_timestamp(s: &str) -> bool {
        let date = |c: &mut Cur| {
            c.run(is_digit) == 4
                && c.eat_byte(b'-')
                && c.run(is_digit) == 2
                && c.eat_byte(b'-')
                && c.run(is_digit) == 2
        };
        let datetime = |c: &mut Cur| {
            let is_blank = |x: u8| x == b' ' || x == b'\t';
            let date_part = c.run(is_digit) == 4
                && c.eat_byte(b'-')
                && c.one_or_two_digits()
                && c.eat_byte(b'-')
                && c.one_or_two_digits();
            let separator = c.eat(|x| x == b'T' || x == b't') || c.run(is_blank) > 0;
            let time_part = c.one_or_two_digits()
                && c.eat_byte(b':')
                && c.run(is_digit) == 2
                && c.eat_byte(b':')
                && c.run(is_digit) == 2;
            if !(date_part && separator && time_part) {
                return false;
            }
            if c.eat_byte(b'.') {
                c.run(is_digit);
            }
            if c.done() {
                return true;
            }
            c.run(is_blank);
            if c.eat_byte(b'Z') {
                return true;
            }
            c.eat(|x| x == b'-' || x == b'+')
                && c.one_or_two_digits()
                && (!c.eat_byte(b':') || c.run(is_digit) == 2)
        };
        full(s, date) || full(s, datetime)
    }
}

// ---------------------------------------------------------------------------
// Scalar analysis and style choice (`analyze_scalar`, `choose_scalar_style`).
// ---------------------------------------------------------------------------

/// What `analyze_scalar` finds out about a scalar's text.
struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

/// Port of `Emitter.analyze_scalar` with `allow_unicode=True`.
fn analyze_scalar(scalar: &[char]) -> Analysis {
    if scalar.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let len = scalar.len();
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;

    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;

    // Document indicators.
    if scalar.starts_with(&['-', '-', '-']) || scalar.starts_with(&['.', '.', '.']) {
        block_indicators = true;
        flow_indicators = true;
    }

    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = len == 1 || is_blank_or_break(scalar[1]);
    let mut previous_space = false;
    let mut previous_break = false;

    for (index, &ch) in scalar.iter().enumerate() {
        // Indicators.
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }

        // Line breaks and special characters (allow_unicode=True, so
        // printable non-ASCII is fine).
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || ('\x20'..='\x7e').contains(&ch)) {
            let printable_unicode = (ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch))
                && ch != '\u{feff}';
            if !printable_unicode {
                special_characters = true;
            }
        }

        // Whitespace combinations.
        if ch == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == len - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            if index == 0 {
                leading_break = true;
            }
            if index == len - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }

        preceded_by_whitespace = is_blank_or_break(ch);
        followed_by_whitespace = index + 2 >= len || is_blank_or_break(scalar[index + 2]);
    }

    let mut allow_flow_plain = true;
    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;

    if leading_space || leading_break || trailing_space || trailing_break {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if break_space {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special_characters {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if flow_indicators {
        allow_flow_plain = false;
    }
    if block_indicators {
        allow_block_plain = false;
    }

    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain,
        allow_block_plain,
        allow_single_quoted,
    }
}

/// The three scalar styles PyYAML picks from when no style is forced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
}

// ---------------------------------------------------------------------------
// The emitter.
// ---------------------------------------------------------------------------

/// PyYAML's emitter state, restricted to what block-style trees need.
struct Emitter {
    out: String,
    /// Current indentation (`None` before the root node).
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    flow_level: usize,
    /// Current column, in code points.
    column: usize,
    /// The last character written was whitespace.
    whitespace: bool,
    /// The last characters written were indentation (spaces, `-`, `?`, `:`).
    indention: bool,
    /// A plain root scalar was written: the document needs `...`.
    open_ended: bool,
    root_context: bool,
    simple_key_context: bool,
}

impl Emitter {
    fn new() -> Self {
        Emitter {
            out: String::new(),
            indent: None,
            indents: Vec::new(),
            flow_level: 0,
            column: 0,
            whitespace: true,
            indention: true,
            open_ended: false,
            root_context: false,
            simple_key_context: false,
        }
    }

    /// An implicit document (no `---`) around `root`, then the stream end.
    fn document(&mut self, root: impl FnOnce(&mut Self)) {
        // expect_document_root
        self.root_context = true;
        self.simple_key_context = false;
        root(self);
        // expect_document_end (implicit end: no `...`)
        self.write_indent();
        // expect_document_start(StreamEnd)
        if self.open_ended {
            self.write_indicator("...", true, false, false);
            self.write_indent();
        }
    }

    // -- Indentation -------------------------------------------------------

    /// `increase_indent` as overridden by v1's dumper: never indentless.
    fn increase_indent(&mut self, flow: bool) {
        self.indents.push(self.indent);
        self.indent = Some(match self.indent {
            None if flow => BEST_INDENT,
            None => 0,
            Some(i) => i + BEST_INDENT,
        });
    }

    fn decrease_indent(&mut self) {
        self.indent = self.indents.pop().expect("unbalanced indentation");
    }

    // -- Nodes -------------------------------------------------------------

    /// `expect_node` for a node in the given context.
    fn node_in(&mut self, value: &Value, simple_key: bool) {
        self.root_context = false;
        self.simple_key_context = simple_key;
        self.node(value);
    }

    /// `expect_node` with the contexts already set.
    fn node(&mut self, value: &Value) {
        match value {
            Value::Seq(items) => self.sequence(items),
            Value::Map(entries) => self.mapping(entries),
            scalar => {
                let scalar = Scalar::of(scalar).expect("collections handled above");
                self.scalar(&scalar);
            }
        }
    }

    /// A sequence node: flow style only when empty (or inside a flow
    /// collection, which never happens here).
    fn sequence(&mut self, items: &[Value]) {
        if self.flow_level > 0 || items.is_empty() {
            self.flow_collection('[', ']');
        } else {
            self.block_sequence(items);
        }
    }

    /// A mapping node: flow style only when empty.
    fn mapping(&mut self, entries: &[(Value, Value)]) {
        if self.flow_level > 0 || entries.is_empty() {
            self.flow_collection('{', '}');
        } else {
            self.block_mapping(entries);
        }
    }

    /// `expect_flow_sequence` / `expect_flow_mapping` for an empty collection
    /// (the only collections written in flow style here).
    fn flow_collection(&mut self, open: char, close: char) {
        self.write_indicator(&open.to_string(), true, true, false);
        self.flow_level += 1;
        self.increase_indent(true);
        self.decrease_indent();
        self.flow_level -= 1;
        self.write_indicator(&close.to_string(), false, false, false);
    }

    /// `expect_block_sequence` and its items.
    fn block_sequence(&mut self, items: &[Value]) {
        self.increase_indent(false);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node_in(item, false);
        }
        self.decrease_indent();
    }

    /// `expect_block_mapping` and its keys and values.
    fn block_mapping(&mut self, entries: &[(Value, Value)]) {
        self.increase_indent(false);
        for (key, value) in entries {
            self.write_indent();
            if check_simple_key(key) {
                self.node_in(key, true);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node_in(key, false);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node_in(value, false);
        }
        self.decrease_indent();
    }

    /// `expect_scalar`: choose a style and write the scalar.
    fn scalar(&mut self, scalar: &Scalar) {
        self.increase_indent(true);
        let text: Vec<char> = scalar.text.chars().collect();
        let analysis = analyze_scalar(&text);
        let style = self.choose_scalar_style(&analysis, scalar.plain_implicit);
        // process_tag: every scalar here is implicit in the chosen style
        // (strings always are once quoted; other types always get a plain
        // style), so no tag is ever written.
        debug_assert!(style == Style::Plain || scalar.tag == "!!str");
        let split = !self.simple_key_context;
        match style {
            Style::Plain => self.write_plain(&text, split),
            Style::SingleQuoted => self.write_single_quoted(&text, split),
            Style::DoubleQuoted => self.write_double_quoted(&text, split),
        }
        self.decrease_indent();
    }

    /// Port of `choose_scalar_style` for events without a forced style.
    fn choose_scalar_style(&self, analysis: &Analysis, plain_implicit: bool) -> Style {
        let simple_key = self.simple_key_context;
        if plain_implicit
            && !(simple_key && (analysis.empty || analysis.multiline))
            && ((self.flow_level > 0 && analysis.allow_flow_plain)
                || (self.flow_level == 0 && analysis.allow_block_plain))
        {
            return Style::Plain;
        }
        if analysis.allow_single_quoted && !(simple_key && analysis.multiline) {
            return Style::SingleQuoted;
        }
        Style::DoubleQuoted
    }

    // -- Low-level writers -------------------------------------------------

    fn write_str(&mut self, data: &str) {
        self.out.push_str(data);
    }

    /// Write a slice of the scalar and advance the column.
    fn write_chars(&mut self, data: &[char]) {
        self.out.extend(data.iter());
        self.column += data.len();
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        whitespace: bool,
        indention: bool,
    ) {
        if !self.whitespace && need_whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.write_str(indicator);
        self.column += indicator.chars().count();
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
        self.open_ended = false;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break(None);
        }
        if self.column < indent {
            self.whitespace = true;
            for _ in self.column..indent {
                self.out.push(' ');
            }
            self.column = indent;
        }
    }

    /// A line break: `"\n"`, or the given break character verbatim.
    fn write_line_break(&mut self, data: Option<char>) {
        self.out.push(data.unwrap_or('\n'));
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    /// Write the breaks `text[start..end]` of a quoted or plain scalar (the
    /// `breaks` branch of PyYAML's writers): a first `\n` is doubled since a
    /// single line break folds into a space.
    fn write_breaks(&mut self, breaks: &[char]) {
        if breaks.first() == Some(&'\n') {
            self.write_line_break(None);
        }
        for &br in breaks {
            self.write_line_break(if br == '\n' { None } else { Some(br) });
        }
        self.write_indent();
    }

    // -- Scalar writers ----------------------------------------------------

    /// Port of `write_plain`.
    fn write_plain(&mut self, text: &[char], split: bool) {
        if self.root_context {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = false;
        self.indention = false;
        let mut spaces = false;
        let mut breaks = false;
        let (mut start, mut end) = (0, 0);
        while end <= text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write_chars(&text[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                // Unreachable in practice: multi-line text is never plain.
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&text[start..end]);
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if none_or(ch, |c| c == ' ' || is_break(c)) {
                self.write_chars(&text[start..end]);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
    }

    /// Port of `write_single_quoted`.
    fn write_single_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let (mut start, mut end) = (0, 0);
        while end <= text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > BEST_WIDTH
                        && split
                        && start != 0
                        && end != text.len()
                    {
                        self.write_indent();
                    } else {
                        self.write_chars(&text[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&text[start..end]);
                    start = end;
                }
            } else if none_or(ch, |c| c == ' ' || is_break(c) || c == '\'') && start < end {
                self.write_chars(&text[start..end]);
                start = end;
            }
            if ch == Some('\'') {
                self.write_str("''");
                self.column += 2;
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
        self.write_indicator("'", false, false, false);
    }

    /// Port of `write_double_quoted` with `allow_unicode=True`.
    fn write_double_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("\"", true, false, false);
        let (mut start, mut end) = (0, 0);
        while end <= text.len() {
            let ch = text.get(end).copied();
            let needs_escape = |c: char| {
                matches!(
                    c,
                    '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
                ) || !(('\x20'..='\x7e').contains(&c)
                    || ('\u{a0}'..='\u{d7ff}').contains(&c)
                    || ('\u{e000}'..='\u{fffd}').contains(&c))
            };
            if none_or(ch, needs_escape) {
                if start < end {
                    self.write_chars(&text[start..end]);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = escape(c);
                    self.write_str(&data);
                    self.column += data.len();
                    start = end + 1;
                }
            }
            if 0 < end
                && end + 1 < text.len()
                && (ch == Some(' ') || start >= end)
                // `column + (end - start) > width`, where `end - start` is -1
                // right after an escape (Python ints can go negative).
                && self.column + end > BEST_WIDTH + start
                && split
            {
                if start < end {
                    self.write_chars(&text[start..end]);
                    start = end;
                }
                self.write_str("\\");
                self.column += 1;
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if text[start] == ' ' {
                    self.write_str("\\");
                    self.column += 1;
                }
            }
            end += 1;
        }
        self.write_indicator("\"", false, false, false);
    }
}

/// `check_simple_key`: a key is written inline (`key: value`) when it is a
/// short single-line non-empty scalar or an empty collection. The length
/// PyYAML compares with 128 includes the short tag (`!!str`), which the
/// serializer always attaches even though it is never written.
fn check_simple_key(key: &Value) -> bool {
    match key {
        // Only an empty collection can be a simple key (its `!!seq`/`!!map`
        // tag is far below the limit).
        Value::Seq(items) => items.is_empty(),
        Value::Map(entries) => entries.is_empty(),
        scalar => {
            let scalar = Scalar::of(scalar).expect("scalar");
            let text: Vec<char> = scalar.text.chars().collect();
            let analysis = analyze_scalar(&text);
            text.len() + scalar.tag.len() < 128 && !analysis.empty && !analysis.multiline
        }
    }
}

/// A double-quoted escape sequence (`ESCAPE_REPLACEMENTS`, else `\xXX`,
/// `\uXXXX`, `\UXXXXXXXX`).
fn escape(ch: char) -> String {
    let short = match ch {
        '\0' => Some('0'),
        '\x07' => Some('a'),
        '\x08' => Some('b'),
        '\x09' => Some('t'),
        '\x0a' => Some('n'),
        '\x0b' => Some('v'),
        '\x0c' => Some('f'),
        '\x0d' => Some('r'),
        '\x1b' => Some('e'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        '\u{85}' => Some('N'),
        '\u{a0}' => Some('_'),
        '\u{2028}' => Some('L'),
        '\u{2029}' => Some('P'),
        _ => None,
    };
    let code = ch as u32;
    match short {
        Some(s) => format!("\\{s}"),
        None if code <= 0xff => format!("\\x{code:02X}"),
        None if code <= 0xffff => format!("\\u{code:04X}"),
        None => format!("\\U{code:08X}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn doc(entries: Vec<(Value, Value)>) -> String {
        emit_document(&entries)
    }

    #[test]
    fn basic_shapes() {
        let out = doc(vec![
            (s("a"), Value::Null),
            (
                s("b"),
                Value::Seq(vec![
                    Value::Int(1),
                    Value::Map(vec![
                        (s("x"), Value::Bool(true)),
                        (s("y"), Value::Seq(vec![])),
                    ]),
                ]),
            ),
            (s("c"), Value::Map(vec![])),
            (Value::Int(1), Value::Float(1.5)),
        ]);
        assert_eq!(
            out,
            "a:\nb:\n  - 1\n  - x: true\n    y: []\nc: {}\n1: 1.5\n"
        );
        assert_eq!(doc(vec![]), "{}\n");
    }

    #[test]
    fn quoting() {
        for (input, expected) in [
            ("true", "'true'"),
            ("y", "y"),
            ("4", "'4'"),
            ("1e3", "1e3"),
            ("12:30", "'12:30'"),
            ("2024-01-01", "'2024-01-01'"),
            ("", "''"),
            ("it's", "it's"),
            ("'x", "'''x'"),
            ("a\tb", "\"a\\tb\""),
            ("a: b", "'a: b'"),
            ("images:debian/13", "images:debian/13"),
        ] {
            assert_eq!(
                doc(vec![(s("k"), s(input))]),
                format!("k: {expected}\n"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn python_floats() {
        for (f, expected) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e20, "1.0e+20"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1.0e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (f64::INFINITY, ".inf"),
            (f64::NEG_INFINITY, "-.inf"),
            (f64::NAN, ".nan"),
            (1.2345e300, "1.2345e+300"),
            // Exactly halfway between ...489.2 and ...489.3.
            (589326426147489.0 + 0.25, "589326426147489.2"),
            (5e-324, "5.0e-324"),
            (0.1, "0.1"),
            (123.0, "123.0"),
            (1e-5, "1.0e-05"),
            (-2.5e-10, "-2.5e-10"),
        ] {
            assert_eq!(python_float(f), expected);
        }
    }

    #[test]
    fn resolvers() {
        for yes in [
            "1_000",
            "0x1F",
            "0b10",
            "017",
            "-12",
            "+0",
            "1:20",
            "190:20:30",
            "10.200",
            "1.",
            ".5",
            "-1.5e+3",
            "1:20.5",
            ".inf",
            "-.Inf",
            ".NaN",
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-14 21:59:43.10 Z",
            "~",
            "Null",
            "ON",
            "<<",
            "=",
        ] {
            assert!(resolves_to_non_str(yes), "{yes:?}");
        }
        for no in [
            "y",
            "n",
            "0o17",
            "1e3",
            "1.5e3",
            "09",
            "1:60",
            "1:2:3:",
            "2024-1-1",
            "10.100.0.1",
            "x",
            "nul",
            ".",
            "-",
            "2001-12-14 21:59:43.10 ",
        ] {
            assert!(!resolves_to_non_str(no), "{no:?}");
        }
    }

    #[test]
    fn non_mapping_roots() {
        // Expected texts are PyYAML's for the same roots.
        let long = format!("{} y", "x".repeat(100));
        for (value, expected) in [
            (s("foo"), "foo\n...\n".to_owned()),
            (s("a b"), "a b\n...\n".to_owned()),
            (s(""), "''\n".to_owned()),
            (s(&long), format!("{}\n  y\n...\n", "x".repeat(100))),
            (s("true"), "'true'\n".to_owned()),
            (Value::Null, "...\n".to_owned()),
            (Value::Int(5), "5\n...\n".to_owned()),
            (Value::Seq(vec![Value::Int(1)]), "- 1\n".to_owned()),
            (Value::Seq(vec![]), "[]\n".to_owned()),
            (
                Value::Seq(vec![Value::Seq(vec![Value::Int(1)])]),
                "- - 1\n".to_owned(),
            ),
            (s("a\nb"), "'a\n\n  b'\n".to_owned()),
        ] {
            assert_eq!(emit_value(&value), expected, "{value:?}");
        }
    }
}
