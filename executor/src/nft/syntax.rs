//! Enough of nft's ruleset syntax to know what a ruleset file touches.
//!
//! A ruleset that anklume loads (`apply`, `anklume nftables deploy FILE`,
//! rollback's previous table) may change table `inet anklume` and nothing
//! else. [`check`] reads the file the way `nft -f` reads it (comments from `#`
//! to the end of the line, quoted strings that end at the next `"` with no
//! escapes, `;` and newlines between statements, `{ … }` blocks nested to any
//! depth, `\` at the end of a line joining it to the next) and accepts only
//! what it knows to be confined to that table:
//!
//! - `table inet anklume` with or without a `{ … }` block, with `add` or
//!   `create` in front or nothing;
//! - `add|create|insert|replace|delete|destroy|flush` (or nothing, which nft
//!   reads as `add`) followed by `table`, `chain`, `rule`, `set`, `map`,
//!   `element`, `flowtable`, `counter`, `quota`, `limit`, `secmark`,
//!   `synproxy` or `ct helper|timeout|expectation`, then `inet anklume`
//!   spelled out (nft's default family is `ip`, so a missing family names
//!   another table).
//!
//! Everything else is refused, with its line: other families and tables,
//! `flush ruleset`, `list`, `reset`, `rename`, unknown commands, and anywhere
//! (blocks included) `include`, `define`, `redefine`, `undefine` and `$`
//! variables, whose content the check cannot see.
//!
//! Inside a `table inet anklume { … }` block every statement belongs to that
//! table (nft has no way to name another table from inside one), so blocks
//! are only read for those directives and for the inter-bridge drop rules
//! ([`isolated_pairs`]).

use std::collections::BTreeSet;
use std::fmt;

/// A refused statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Its first line (1-based).
    pub line: usize,
    /// The statement, blocks shortened to `{ … }`.
    pub statement: String,
    /// Why.
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.statement.is_empty() {
            write!(f, "line {}: {}", self.line, self.why)
        } else {
            write!(f, "line {}: `{}`: {}", self.line, self.statement, self.why)
        }
    }
}

/// One statement: words, quoted strings and blocks, up to a `;`, a newline
/// or the end of its block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// Its first line (1-based).
    pub line: usize,
    /// What it is made of.
    pub parts: Vec<Part>,
}

/// A part of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// A bare word (`,` is one on its own).
    Word(String),
    /// A quoted string, without its quotes.
    Str(String),
    /// A `{ … }` block and its statements.
    Block(Vec<Stmt>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Sep,
}

/// Split `text` into tokens with their lines, as nft's scanner does.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, Refusal> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut word_line = 1;
    let flush = |word: &mut String, out: &mut Vec<(Tok, usize)>, at: usize| {
        if !word.is_empty() {
            out.push((Tok::Word(std::mem::take(word)), at));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, &mut out, word_line);
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '"' => {
                flush(&mut word, &mut out, word_line);
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                        None => {
                            return Err(Refusal {
                                line: start,
                                statement: String::new(),
                                why: "a quoted string is not closed".into(),
                            })
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            '\\' if matches!(chars.peek(), Some('\n')) => {
                // A line continuation: the newline is not a separator.
                flush(&mut word, &mut out, word_line);
                chars.next();
                line += 1;
            }
            '\\' if matches!(chars.peek(), Some('\r')) => {
                flush(&mut word, &mut out, word_line);
                chars.next();
                if chars.peek() == Some(&'\n') {
                    chars.next();
                    line += 1;
                }
            }
            '\n' | ';' => {
                flush(&mut word, &mut out, word_line);
                out.push((Tok::Sep, line));
                if c == '\n' {
                    line += 1;
                }
            }
            '{' | '}' | ',' => {
                flush(&mut word, &mut out, word_line);
                out.push((
                    match c {
                        '{' => Tok::Open,
                        '}' => Tok::Close,
                        _ => Tok::Word(",".into()),
                    },
                    line,
                ));
            }
            // nft's blanks; any other character (non-ASCII spaces
            // included) is part of a word, as in nft's scanner.
            ' ' | '\t' | '\r' => flush(&mut word, &mut out, word_line),
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut out, word_line);
    Ok(out)
}

/// Statements up to the end of `toks` (top level) or the `}` closing the
/// block opened on `open` (nested).
fn parse_block(
    toks: &[(Tok, usize)],
    i: &mut usize,
    open: Option<usize>,
) -> Result<Vec<Stmt>, Refusal> {
    let mut stmts = Vec::new();
    let mut cur: Option<Stmt> = None;
    let push = |cur: &mut Option<Stmt>, part: Part, line: usize| {
        cur.get_or_insert_with(|| Stmt {
            line,
            parts: Vec::new(),
        })
        .parts
        .push(part)
    };
    while *i < toks.len() {
        let (tok, line) = &toks[*i];
        *i += 1;
        match tok {
            Tok::Word(w) => push(&mut cur, Part::Word(w.clone()), *line),
            Tok::Str(s) => push(&mut cur, Part::Str(s.clone()), *line),
            Tok::Sep => stmts.extend(cur.take()),
            Tok::Open => {
                let inner = parse_block(toks, i, Some(*line))?;
                push(&mut cur, Part::Block(inner), *line);
            }
            Tok::Close => {
                if open.is_none() {
                    return Err(Refusal {
                        line: *line,
                        statement: String::new(),
                        why: "`}` closes no block".into(),
                    });
                }
                stmts.extend(cur.take());
                return Ok(stmts);
            }
        }
    }
    if let Some(line) = open {
        return Err(Refusal {
            line,
            statement: String::new(),
            why: "the `{` opened on this line is never closed".into(),
        });
    }
    stmts.extend(cur.take());
    Ok(stmts)
}

/// Parse a ruleset into statements, without judging them.
pub fn parse(text: &str) -> Result<Vec<Stmt>, Refusal> {
    let toks = lex(text)?;
    parse_block(&toks, &mut 0, None)
}

impl Stmt {
    /// The statement as one line, blocks shortened to `{ … }`.
    pub fn display(&self) -> String {
        let mut s = String::new();
        for p in &self.parts {
            if !s.is_empty() && !matches!(p, Part::Word(w) if w == ",") {
                s.push(' ');
            }
            match p {
                Part::Word(w) => s.push_str(w),
                Part::Str(q) => {
                    s.push('"');
                    s.push_str(q);
                    s.push('"');
                }
                Part::Block(_) => s.push_str("{ … }"),
            }
        }
        if s.chars().count() > 100 {
            s = s.chars().take(97).collect::<String>() + "…";
        }
        s
    }

    fn word(&self, i: usize) -> Option<&str> {
        match self.parts.get(i) {
            Some(Part::Word(w)) => Some(w),
            _ => None,
        }
    }
}

const VERBS: &[&str] = &[
    "add", "create", "insert", "replace", "delete", "destroy", "flush",
];
const KINDS: &[&str] = &[
    "table",
    "chain",
    "rule",
    "set",
    "map",
    "element",
    "flowtable",
    "counter",
    "quota",
    "limit",
    "secmark",
    "synproxy",
];
const CT_KINDS: &[&str] = &["helper", "timeout", "expectation"];
const DIRECTIVES: &[&str] = &["include", "define", "redefine", "undefine"];

/// Directives and variables anywhere in `stmts`: the first one found.
fn hidden_content(stmts: &[Stmt]) -> Option<(usize, String, String)> {
    for s in stmts {
        if let Some(d) = s.word(0).filter(|w| DIRECTIVES.contains(w)) {
            return Some((
                s.line,
                s.display(),
                format!("`{d}` is refused: the check cannot see what it brings in"),
            ));
        }
        for p in &s.parts {
            match p {
                Part::Word(w) if w.starts_with('$') => {
                    return Some((
                        s.line,
                        s.display(),
                        format!("the variable `{w}` is refused: the check cannot see its value"),
                    ))
                }
                Part::Block(inner) => {
                    if let Some(found) = hidden_content(inner) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Why one top-level statement is refused, if it is.
fn refusal(s: &Stmt) -> Option<String> {
    let Some(w0) = s.word(0) else {
        return Some("a statement must start with a command".into());
    };
    let (verb, k) = if VERBS.contains(&w0) {
        (w0, 1)
    } else {
        ("add", 0)
    };
    let Some(kind) = s.word(k).filter(|w| KINDS.contains(w) || *w == "ct") else {
        return Some(match (w0, s.word(1)) {
            ("flush", Some("ruleset")) | ("delete", Some("ruleset")) => {
                "it empties every table of the host, not just `inet anklume`".into()
            }
            _ if VERBS.contains(&w0) => format!(
                "`{w0}` must be followed by what it acts on (table, chain, rule, set, map, element, …) in table `inet anklume`"
            ),
            _ => format!(
                "`{w0}` is not a command this check accepts: only `table inet anklume {{ … }}` blocks and add, create, insert, replace, delete, destroy or flush of objects in table `inet anklume`"
            ),
        });
    };
    let mut k = k + 1;
    if kind == "ct" {
        if !s.word(k).is_some_and(|w| CT_KINDS.contains(&w)) {
            return Some("`ct` must be followed by helper, timeout or expectation".into());
        }
        k += 1;
    }
    match (s.word(k), s.word(k + 1)) {
        (Some("inet"), Some("anklume")) => {}
        (Some(f), Some(t)) if is_family(f) => {
            return Some(format!(
                "it touches table `{f} {t}`; only table `inet anklume` may be changed"
            ))
        }
        _ => {
            return Some(format!(
                "its {kind} is not in table `inet anklume` (write the family and the table: `{verb} {kind} inet anklume …`; without a family nft means `ip`)"
            ))
        }
    }
    k += 2;
    if kind == "table" {
        let rest = &s.parts[k..];
        let ok = match rest {
            [] => true,
            [Part::Block(_)] => matches!(verb, "add" | "create"),
            _ => false,
        };
        if !ok {
            return Some(format!(
                "`{verb} table inet anklume` takes nothing after the table name{}",
                if matches!(verb, "add" | "create") {
                    " but its `{ … }` block"
                } else {
                    ""
                }
            ));
        }
    } else if s.parts.len() <= k {
        return Some(format!("`{verb} {kind} inet anklume` names no {kind}"));
    }
    None
}

fn is_family(w: &str) -> bool {
    matches!(w, "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev")
}

/// Check that `text` changes table `inet anklume` and nothing else; its
/// statements when it does, every refused statement when it does not.
pub fn check(text: &str) -> Result<Vec<Stmt>, Vec<Refusal>> {
    let stmts = parse(text).map_err(|r| vec![r])?;
    let mut bad = Vec::new();
    for s in &stmts {
        if let Some((line, statement, why)) = hidden_content(std::slice::from_ref(s)) {
            bad.push(Refusal {
                line,
                statement,
                why,
            });
        } else if let Some(why) = refusal(s) {
            bad.push(Refusal {
                line: s.line,
                statement: s.display(),
                why,
            });
        }
    }
    if bad.is_empty() {
        Ok(stmts)
    } else {
        Err(bad)
    }
}

/// [`check`]'s refusals as one message: the first line says what was
/// refused, then one line per statement.
pub fn refusal_message(what: &str, refusals: &[Refusal]) -> String {
    let mut m = format!("{what} changes more than table `inet anklume`; refusing to load it:");
    for r in refusals {
        m.push_str(&format!("\n  {r}"));
    }
    m
}

fn names(p: &Part) -> Option<Vec<String>> {
    match p {
        // A `*` is a wildcard: not one name.
        Part::Str(s) if !s.contains('*') => Some(vec![s.clone()]),
        Part::Word(w) if w != "," && !w.contains(['!', '@', '$', '*']) => Some(vec![w.clone()]),
        Part::Block(inner) => {
            let mut v = Vec::new();
            for s in inner {
                for p in &s.parts {
                    match p {
                        Part::Str(s) if !s.contains('*') => v.push(s.clone()),
                        Part::Word(w) if w == "," => {}
                        // Anything else (ranges, wildcards): not understood.
                        _ => return None,
                    }
                }
            }
            Some(v)
        }
        _ => None,
    }
}

/// The pairs of interfaces (from, to) whose forwarded traffic the ruleset
/// drops outright: rules of exactly the form `iifname A oifname B drop`
/// (A and B a name or a `{ … }` set of names, `counter` allowed before
/// `drop`), as anklume writes its inter-bridge drop and as `nft list`
/// prints it back. Pairs of one interface with itself are left out.
pub fn isolated_pairs(stmts: &[Stmt]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for s in stmts {
        for p in &s.parts {
            if let Part::Block(inner) = p {
                out.extend(isolated_pairs(inner));
            }
        }
        let p = &s.parts;
        let tail_ok = match p.len() {
            5 => s.word(4) == Some("drop"),
            6 => s.word(4) == Some("counter") && s.word(5) == Some("drop"),
            _ => false,
        };
        if !tail_ok || s.word(0) != Some("iifname") || s.word(2) != Some("oifname") {
            continue;
        }
        let (Some(from), Some(to)) = (names(&p[1]), names(&p[3])) else {
            continue;
        };
        for a in &from {
            for b in &to {
                if a != b {
                    out.insert((a.clone(), b.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(text: &str) -> Vec<Refusal> {
        match check(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(r) => r,
        }
    }

    fn accepted(text: &str) {
        if let Err(r) = check(text) {
            panic!("refused:\n{text}\n{}", refusal_message("it", &r));
        }
    }

    /// The three examples from the issue, and the class they stand for:
    /// other tables of the same family, tables whose name only starts with
    /// `anklume`, whole-ruleset commands.
    #[test]
    fn statements_on_other_tables_are_refused_with_their_line() {
        let r = refused("table inet anklume {}\nadd rule inet filter input drop\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line, 2);
        assert_eq!(r[0].statement, "add rule inet filter input drop");
        assert!(r[0].why.contains("`inet filter`"), "{}", r[0]);
        assert_eq!(
            refused("flush chain ip filter input")[0].why,
            "it touches table `ip filter`; only table `inet anklume` may be changed"
        );
        assert!(refused("table inet anklumex {\n}\n")[0]
            .why
            .contains("`inet anklumex`"));
        for bad in [
            "flush ruleset",
            "delete table ip nat",
            "table ip anklume { }",
            "table anklume { }",
            "add rule anklume isolation drop",
            "list ruleset",
            "list table inet anklume",
            "reset counters",
            "rename chain inet anklume a b",
            "include \"/etc/nftables.d/*.nft\"",
            "define x = 1",
            "add rule inet anklume isolation iifname $x drop",
            "inet filter input drop",
            "add inet filter input drop",
            "delete table inet handle 4",
            "add ct helper ip filter h { type \"ftp\" protocol tcp; }",
            "add table inet anklume { } ; flush ruleset",
            "monitor",
            "{ }",
            "table inet \"anklume\" { }",
            "flush table inet anklume { }",
            "add rule inet anklume",
        ] {
            let r = refused(bad);
            assert_eq!(r[0].line, 1, "{bad}: {:?}", r);
        }
    }

    #[test]
    fn the_message_names_each_refused_line() {
        let text = "#!/usr/sbin/nft -f\n# header\ntable inet anklume {\n  chain c {\n  }\n}\n\nflush ruleset\nadd rule ip filter input \\\n  drop\n";
        let r = refused(text);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].line, r[0].statement.as_str()), (8, "flush ruleset"));
        assert!(r[0].why.contains("every table"));
        assert_eq!(
            (r[1].line, r[1].statement.as_str()),
            (9, "add rule ip filter input drop")
        );
        let m = refusal_message("rules.nft", &r);
        assert!(
            m.starts_with("rules.nft changes more than table `inet anklume`")
                && m.contains("\n  line 8: `flush ruleset`: ")
                && m.contains("\n  line 9: `add rule ip filter input drop`: "),
            "{m}"
        );
    }

    /// Directives hide content from the check wherever they are.
    #[test]
    fn directives_and_variables_are_refused_inside_blocks_too() {
        for bad in [
            "table inet anklume {\n  include \"other.nft\"\n}\n",
            "table inet anklume {\n  chain c {\n    define x = 1\n  }\n}\n",
            "table inet anklume {\n  chain c {\n    iifname { $bridges } drop\n  }\n}\n",
        ] {
            let r = refused(bad);
            assert!(r[0].why.contains("cannot see"), "{r:?}");
        }
    }

    /// Tokens nft reads as separators or not: a `;` or `#` inside a quoted
    /// string, a comment that hides a `;`, a `\` joining lines, and nft's
    /// quoted strings that have no escapes.
    #[test]
    fn the_tokenizer_reads_what_nft_reads() {
        accepted("add rule inet anklume c meta mark 1 comment \"a; flush ruleset # b\"");
        accepted("add rule inet anklume c drop # ; flush ruleset");
        accepted("add rule inet anklume c \\\n  drop");
        // A `\"` does not escape: the string ends there, and the rest is a
        // statement of its own.
        let r = refused("add rule inet anklume c comment \"x\\\"; flush ruleset; \"\"");
        assert_eq!(r[0].statement, "flush ruleset");
        // Only ASCII blanks separate words: a no-break space does not.
        assert!(refused("add rule inet\u{a0}anklume c drop")[0]
            .why
            .contains("not in table `inet anklume`"));
        // A newline ends a statement (without `\`).
        let r = refused("add rule inet anklume c\nflush ruleset");
        assert_eq!(r[0].line, 2);
        // Blocks: a `}` too many, a `{` never closed, an unclosed string.
        assert!(refused("table inet anklume { }\n}\n")[0]
            .why
            .contains("closes no block"));
        assert_eq!(refused("\ntable inet anklume {\n")[0].line, 2);
        assert!(refused("add rule inet anklume c comment \"x")[0]
            .why
            .contains("not closed"));
        // Statements inside a table block are that table's.
        let s = check("table inet anklume { chain a { type filter hook forward priority -1; policy accept; }\n chain b { } }").unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn every_command_on_the_anklume_table_is_accepted() {
        for ok in [
            "table inet anklume",
            "table inet anklume;",
            "add table inet anklume",
            "create table inet anklume { flags dormant; }",
            "delete table inet anklume",
            "destroy table inet anklume",
            "flush table inet anklume",
            "add chain inet anklume c { type filter hook forward priority -1; policy accept; }",
            "chain inet anklume c",
            "create chain inet anklume c",
            "delete chain inet anklume c",
            "flush chain inet anklume c",
            "add rule inet anklume c iifname \"net-a\" oifname \"net-b\" drop",
            "rule inet anklume c drop",
            "insert rule inet anklume c position 3 drop",
            "replace rule inet anklume c handle 5 accept",
            "delete rule inet anklume c handle 5",
            "add set inet anklume s { type ifname; elements = { \"net-a\" }; }",
            "add map inet anklume m { type ifname : verdict; }",
            "add element inet anklume s { \"net-b\" }",
            "delete element inet anklume s { \"net-b\" }",
            "flush set inet anklume s",
            "add counter inet anklume k",
            "add quota inet anklume q { over 1 mbytes }",
            "add ct helper inet anklume h { type \"ftp\" protocol tcp; }",
            "add flowtable inet anklume f { hook ingress priority 0; devices = { lo }; }",
        ] {
            accepted(ok);
        }
    }

    /// `nft list table inet anklume` output (what rollback loads back).
    const LISTING: &str = "table inet anklume {\n\tchain isolation {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n\t\tct state established,related accept\n\t\tct state invalid drop\n\t\tiifname \"net-a\" oifname \"net-a\" accept\n\t\tiifname \"net-a\" oifname \"net-b\" ip daddr 10.1.2.3 tcp dport { 22, 80 } accept\n\t\tiifname { \"net-a\", \"net-b\", \"net-c\" } oifname { \"net-a\", \"net-b\", \"net-c\" } drop\n\t}\n}\n";

    #[test]
    fn an_nft_listing_passes_and_its_drop_pairs_are_read() {
        let s = check(LISTING).unwrap();
        let pairs = isolated_pairs(&s);
        assert_eq!(pairs.len(), 6, "{pairs:?}");
        assert!(pairs.contains(&("net-a".into(), "net-c".into())));
        assert!(!pairs.contains(&("net-a".into(), "net-a".into())));
        // Narrowed drops, negations and wildcards separate no whole pair.
        for text in [
            "table inet anklume { chain c { iifname \"a\" oifname \"b\" ip saddr 10.0.0.1 drop } }",
            "table inet anklume { chain c { iifname != \"a\" oifname \"b\" drop } }",
            "table inet anklume { chain c { iifname \"net-*\" oifname \"b\" drop } }",
            "table inet anklume { chain c { iifname \"a\" oifname \"b\" accept } }",
        ] {
            assert!(isolated_pairs(&check(text).unwrap()).is_empty(), "{text}");
        }
        let s = check(
            "table inet anklume { chain c { iifname \"a\" oifname { \"b\" } counter drop } }",
        )
        .unwrap();
        assert_eq!(
            isolated_pairs(&s).into_iter().collect::<Vec<_>>(),
            vec![("a".to_string(), "b".to_string())]
        );
    }

    fn generated() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<std::path::PathBuf> = ["examples/infra.yml", "examples/incus-demo.yml"]
            .iter()
            .map(|p| root.join(p))
            .collect();
        files.extend(
            std::fs::read_dir(root.join("golden/corpus/v1-examples"))
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
        for e in std::fs::read_dir(root.join("golden/cases")).unwrap() {
            let p = e.unwrap().path().join("infra.yml");
            if p.exists() {
                files.push(p);
            }
        }
        files.sort();
        let facts = anklume_compiler::HostFacts {
            skip_subnet_check: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let loaded = anklume_schema::load_str("infra.yml", &text);
            let c = anklume_compiler::compile(&loaded, &facts);
            if c.has_errors() {
                continue;
            }
            out.push((
                f.display().to_string(),
                anklume_planner::ruleset(&c.ir).text(),
            ));
        }
        out
    }

    /// Every ruleset anklume writes passes, and its inter-bridge drop names
    /// every enabled bridge when there are two or more.
    #[test]
    fn every_generated_ruleset_passes() {
        let all = generated();
        assert!(all.len() > 40, "{} rulesets", all.len());
        let mut with_pairs = 0;
        for (name, text) in &all {
            let s = match check(text) {
                Ok(s) => s,
                Err(r) => panic!("{name}: {}", refusal_message("it", &r)),
            };
            let drop_line = text.lines().find(|l| l.trim_end().ends_with("} drop"));
            let pairs = isolated_pairs(&s);
            assert_eq!(drop_line.is_some(), !pairs.is_empty(), "{name}");
            with_pairs += usize::from(!pairs.is_empty());
        }
        assert!(with_pairs > 10, "{with_pairs}");
    }

    const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

    fn other_table() -> impl Strategy<Value = (String, String)> {
        (prop::sample::select(FAMILIES), "[a-z][a-z0-9_]{0,8}")
            .prop_filter("not inet anklume", |(f, t)| {
                !(*f == "inet" && t == "anklume")
            })
            .prop_map(|(f, t)| (f.to_string(), t))
    }

    proptest! {
        /// A statement on any other table never passes, whatever surrounds
        /// it: a generated ruleset before it, comments, `;` or newlines.
        #[test]
        fn statements_on_other_tables_never_pass(
            (family, table) in other_table(),
            verb in prop::sample::select(&["", "add ", "create ", "insert ", "replace ", "delete ", "destroy ", "flush "][..]),
            kind in prop::sample::select(&["table", "chain", "rule", "set", "map", "element", "flowtable", "counter", "quota", "ct helper"][..]),
            tail in prop::sample::select(&["", " c", " c drop", " { }", " c { type filter hook input priority 0; }"][..]),
            sep in prop::sample::select(&["\n", ";", " ;\n", "\n# x\n", "\n\n"][..]),
            drop_family in any::<bool>(),
        ) {
            let target = if drop_family { table.clone() } else { format!("{family} {table}") };
            let stmt = format!("{verb}{kind} {target}{tail}");
            let text = format!("table inet anklume {{\n  chain c {{\n  }}\n}}{sep}{stmt}{sep}");
            prop_assert!(check(&text).is_err(), "accepted: {text}");
        }

        /// Whatever check accepts, every top-level statement names `inet anklume`.
        #[test]
        fn what_passes_names_only_the_anklume_table(text in "[a-z \"{};#\\n\\\\]{0,40}(inet|ip) (anklume|filter)[a-z \"{};#\\n]{0,20}") {
            if let Ok(stmts) = check(&text) {
                for s in stmts {
                    let words: Vec<&str> = s.parts.iter().filter_map(|p| match p { Part::Word(w) => Some(w.as_str()), _ => None }).collect();
                    prop_assert!(words.windows(2).any(|w| w == ["inet", "anklume"]), "{text:?}: {s:?}");
                }
            }
        }
    }
}
