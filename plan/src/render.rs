//! Renderings of a plan: `text` for people, `ron` canonical for review and
//! golden files, `json` for tools (schema `anklume.plan/v1`, see
//! `docs/plan-format.md`), `dot` for Graphviz.
//!
//! Each rendering is written to an [`io::Write`] as it is produced
//! (`write_text`, `write_ron`, `write_json`, `write_dot`), in time and memory
//! linear in the size of the plan; `text`, `ron`, `json` and `dot` return it
//! as a string. In the text and DOT renderings every user-derived field is
//! escaped with [`crate::escape`]; JSON and RON escape strings themselves.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use serde::Serialize;

use crate::codec::PlanFile;
use crate::diff::{dependencies, settings};
use crate::escape::{display, Escaped};
use crate::{Kind, Plan, Resource};

/// JSON schema identifier of [`json`].
pub const JSON_SCHEMA: &str = "anklume.plan/v1";

/// Counts per kind, in phase order.
pub fn counts(plan: &Plan) -> Vec<(Kind, usize)> {
    let mut n = [0usize; Kind::ALL.len()];
    for node in &plan.nodes {
        n[node.resource.kind() as usize] += 1;
    }
    Kind::ALL
        .iter()
        .zip(n)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (*k, n))
        .collect()
}

/// Nodes grouped by domain, domains in order of first appearance, then the
/// nodes without a domain (host), each group in plan order. Linear: one pass
/// to number the groups, a counting sort to order the nodes, 4 bytes per
/// node and one map entry per domain.
pub(crate) struct Groups<'a> {
    /// Each domain and the range of `order` holding its nodes.
    pub(crate) domains: Vec<(&'a str, std::ops::Range<usize>)>,
    /// The range of `order` holding the host nodes.
    pub(crate) host: std::ops::Range<usize>,
    /// Node indices, grouped.
    pub(crate) order: Vec<u32>,
}

pub(crate) fn groups(plan: &Plan) -> Groups<'_> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    // Group of each node; the host group is numbered last, once all
    // domains are known.
    let group: Vec<u32> = plan
        .nodes
        .iter()
        .map(|n| match n.domain.as_deref() {
            Some(d) => *index.entry(d).or_insert_with(|| {
                names.push(d);
                names.len() as u32 - 1
            }),
            None => u32::MAX,
        })
        .collect();
    drop(index);
    let host = names.len();
    let mut start = vec![0usize; host + 2];
    for &g in &group {
        start[(g as usize).min(host) + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; group.len()];
    for (i, &g) in group.iter().enumerate() {
        let slot = &mut next[(g as usize).min(host)];
        order[*slot] = i as u32;
        *slot += 1;
    }
    Groups {
        domains: names
            .into_iter()
            .enumerate()
            .map(|(g, d)| (d, start[g]..start[g + 1]))
            .collect(),
        host: start[host]..start[host + 1],
        order,
    }
}

fn string_of(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).expect("writing to memory");
    String::from_utf8(out).expect("renderings are UTF-8")
}

/// Join items with `", "`, each escaped.
fn write_list<'a>(w: &mut impl Write, items: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            w.write_all(b", ")?;
        }
        write!(w, "{}", Escaped(s))?;
    }
    Ok(())
}

/// The text rendering: summary, resources by domain in dependency order,
/// then the nftables ruleset and the reachability it opens.
pub fn text(file: &PlanFile) -> String {
    string_of(|w| write_text(w, file))
}

/// [`text`], written to `w`.
pub fn write_text(w: &mut impl Write, file: &PlanFile) -> io::Result<()> {
    let plan = &file.plan;
    let Groups {
        domains,
        host,
        order,
    } = groups(plan);
    writeln!(
        w,
        "anklume plan: {} resource(s) in {} domain(s)",
        plan.nodes.len(),
        domains.len()
    )?;
    w.write_all(b"  by kind:   ")?;
    for (i, (k, n)) in counts(plan).iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        write!(w, "{sep}{n} {}", k.name())?;
    }
    w.write_all(b"\n  by domain: ")?;
    for (i, (d, members)) in domains.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        write!(w, "{sep}{} {}", Escaped(d), members.len())?;
    }
    w.write_all(b"\n")?;
    if !file.header.sources.is_empty() {
        w.write_all(b"  sources:   ")?;
        write_list(w, file.header.sources.iter().map(|s| s.path.as_str()))?;
        w.write_all(b"\n")?;
    }
    if !file.header.facts.prefix.is_empty() {
        writeln!(w, "  prefix:    {}", Escaped(&file.header.facts.prefix))?;
    }
    let deps = dependencies(plan);
    let sections = domains
        .iter()
        .map(|(d, m)| (Some(*d), m.clone()))
        .chain(std::iter::once((None, host)));
    for (group, members) in sections {
        if members.is_empty() {
            continue;
        }
        match group {
            Some(d) => writeln!(w, "\n== domain {} ==", Escaped(d))?,
            None => writeln!(w, "\n== host ==")?,
        }
        for &i in &order[members] {
            let i = i as usize;
            let n = &plan.nodes[i];
            write!(w, "{}", Escaped(&n.id))?;
            if let Some(o) = &n.origin {
                write!(w, "  ({})", Escaped(o))?;
            }
            w.write_all(b"\n")?;
            if !deps[i].is_empty() {
                w.write_all(b"    after: ")?;
                write_list(w, deps[i].iter().copied())?;
                w.write_all(b"\n")?;
            }
            for (k, v) in settings(n) {
                if !v.is_empty() {
                    writeln!(w, "    {} = {}", Escaped(&k), Escaped(&v))?;
                }
            }
        }
    }
    for n in &plan.nodes {
        if let Resource::Nftables(t) = &n.resource {
            writeln!(w, "\n== reachability ({}) ==", Escaped(&n.id))?;
            if t.paths.is_empty() {
                writeln!(w, "  (none: every domain is isolated)")?;
            }
            for p in &t.paths {
                writeln!(w, "  {}", Escaped(p))?;
            }
            writeln!(w, "\n== nftables ruleset ({}) ==", Escaped(&n.id))?;
            for l in &t.lines {
                writeln!(w, "{}", Escaped(l))?;
            }
            if t.lines.is_empty() {
                w.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// One node in the RON and JSON views: ids instead of indices, so adding a
/// node changes only its own lines.
#[derive(Serialize)]
struct NodeView<'a> {
    kind: &'static str,
    domain: Option<&'a str>,
    depends_on: Vec<&'a str>,
    resource: &'a Resource,
}

fn views(plan: &Plan) -> BTreeMap<&str, NodeView<'_>> {
    let deps = dependencies(plan);
    plan.nodes
        .iter()
        .zip(deps)
        .map(|(n, d)| {
            (
                n.id.as_str(),
                NodeView {
                    kind: n.resource.kind().name(),
                    domain: n.domain.as_deref(),
                    depends_on: d,
                    resource: &n.resource,
                },
            )
        })
        .collect()
}

/// Adapts an [`io::Write`] to the [`std::fmt::Write`] RON writes to,
/// keeping the first I/O error.
struct FmtIo<'w, W: Write> {
    w: &'w mut W,
    err: Option<io::Error>,
}

impl<W: Write> std::fmt::Write for FmtIo<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.w.write_all(s.as_bytes()).map_err(|e| {
            self.err.get_or_insert(e);
            std::fmt::Error
        })
    }
}

/// The canonical RON rendering: nodes sorted by id, one setting per line,
/// no source line numbers (so moving text in infra.yml changes nothing).
pub fn ron(plan: &Plan) -> String {
    string_of(|w| write_ron(w, plan))
}

/// [`ron`], written to `w`.
pub fn write_ron(w: &mut impl Write, plan: &Plan) -> io::Result<()> {
    let cfg = ron::ser::PrettyConfig::new()
        .indentor("  ".to_string())
        .struct_names(true)
        .separate_tuple_members(true)
        .enumerate_arrays(false)
        .new_line("\n".to_string());
    let mut f = FmtIo { w, err: None };
    let res = ron::ser::to_writer_pretty(&mut f, &views(plan), cfg);
    if let Some(e) = f.err {
        return Err(e);
    }
    res.map_err(io::Error::other)?;
    w.write_all(b"\n")
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: &'a str,
    kind: &'static str,
    domain: Option<&'a str>,
    origin: Option<&'a str>,
    depends_on: &'a [&'a str],
    resource: &'a Resource,
}

/// The nodes, serialised one by one as they are written.
struct JsonNodes<'a> {
    plan: &'a Plan,
    deps: Vec<Vec<&'a str>>,
}

impl Serialize for JsonNodes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.plan
                .nodes
                .iter()
                .zip(&self.deps)
                .map(|(n, d)| JsonNode {
                    id: &n.id,
                    kind: n.resource.kind().name(),
                    domain: n.domain.as_deref(),
                    origin: n.origin.as_deref(),
                    depends_on: d,
                    resource: &n.resource,
                }),
        )
    }
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema: &'static str,
    format_version: u32,
    anklume_version: &'a str,
    sources: &'a [crate::codec::SourceDigest],
    facts: &'a crate::codec::Facts,
    tree_dir: &'a str,
    tree: &'a [crate::codec::SourceDigest],
    nodes: JsonNodes<'a>,
}

/// serde_json's pretty formatter, which also writes DEL, C1 controls, bidi
/// controls and line separators as `\uXXXX` escapes (serde_json escapes only
/// C0 controls): the same JSON value, but safe to print on a terminal.
struct SafeFormatter(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        let mut rest = s;
        while let Some(pos) = crate::escape::find_escape(rest) {
            w.write_all(&rest.as_bytes()[..pos])?;
            let c = rest[pos..].chars().next().expect("found a char");
            write!(w, "\\u{:04x}", c as u32)?;
            rest = &rest[pos + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Write `value` as pretty JSON followed by a newline, streaming, with the
/// terminal-safe escaping of the plan renderings (DEL, C1, bidi controls and
/// line separators as `\uXXXX`). Used for `show --format json` and `diff
/// --format json`.
pub fn write_json_value<T: Serialize + ?Sized>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(
        &mut *w,
        SafeFormatter(serde_json::ser::PrettyFormatter::new()),
    );
    value.serialize(&mut ser).map_err(io::Error::from)?;
    w.write_all(b"\n")
}

/// The JSON rendering (schema [`JSON_SCHEMA`]), nodes in plan order.
pub fn json(file: &PlanFile) -> String {
    string_of(|w| write_json(w, file))
}

/// [`json`], written to `w` node by node.
pub fn write_json(w: &mut impl Write, file: &PlanFile) -> io::Result<()> {
    let view = JsonPlan {
        schema: JSON_SCHEMA,
        format_version: crate::codec::FORMAT_VERSION,
        anklume_version: &file.header.anklume_version,
        sources: &file.header.sources,
        facts: &file.header.facts,
        tree_dir: &file.header.tree_dir,
        tree: &file.header.tree,
        nodes: JsonNodes {
            plan: &file.plan,
            deps: dependencies(&file.plan),
        },
    };
    write_json_value(w, &view)
}

/// A DOT quoted string (ID or label): escaped for display, then with `"`
/// and `\` escaped for DOT.
struct DotStr<'a>(&'a str);

impl std::fmt::Display for DotStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char('"')?;
        for c in display(self.0).chars() {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

/// Graphviz DOT, one cluster per domain.
pub fn dot(plan: &Plan) -> String {
    string_of(|w| write_dot(w, plan))
}

/// [`dot`], written to `w`. Nodes are named `n<index>` and labelled with
/// their id, so any id (quotes, backslashes, control characters) gives valid
/// DOT and distinct ids stay distinct nodes.
pub fn write_dot(w: &mut impl Write, plan: &Plan) -> io::Result<()> {
    w.write_all(b"digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n")?;
    let g = groups(plan);
    for (ci, (d, members)) in g.domains.iter().enumerate() {
        writeln!(w, "  subgraph cluster_{ci} {{\n    label={};", DotStr(d))?;
        for &i in &g.order[members.clone()] {
            let id = &plan.nodes[i as usize].id;
            writeln!(w, "    n{i} [label={}];", DotStr(id))?;
        }
        w.write_all(b"  }\n")?;
    }
    for &i in &g.order[g.host.clone()] {
        let id = &plan.nodes[i as usize].id;
        writeln!(w, "  n{i} [label={}, shape=octagon];", DotStr(id))?;
    }
    let n = plan.nodes.len();
    for &(a, b) in &plan.edges {
        if (a as usize) < n && (b as usize) < n {
            writeln!(w, "  n{a} -> n{b};")?;
        }
    }
    w.write_all(b"}\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codec::{Header, SourceDigest};
    use crate::escape::needs_escape;
    use crate::{ImageSource, Instance, InstanceType, Network, Nftables, Node};

    const EVIL: &str = "adm\r\x1b[2Kfake\u{9b}2J\u{202e}txt.exe\u{7f}";

    /// A plan with control characters in every user-derived field.
    pub(crate) fn evil_plan() -> PlanFile {
        let config: crate::Config = [
            (
                "user.note\n    config.limits.cpu".to_string(),
                "64".to_string(),
            ),
            ("user.desc".to_string(), EVIL.to_string()),
        ]
        .into();
        let node = |id: &str, domain: &str, resource| Node {
            id: id.into(),
            domain: Some(domain.into()),
            origin: Some(format!("infra.yml:1:1\n{EVIL}")),
            resource,
        };
        PlanFile {
            header: Header {
                anklume_version: "0.1.0".into(),
                sources: vec![SourceDigest {
                    path: format!("in\nfra.yml{EVIL}"),
                    sha256: String::new(),
                }],
                facts: crate::codec::Facts {
                    prefix: "001\x1b[31m-".into(),
                    ..Default::default()
                },
                tree_dir: format!(".{EVIL}"),
                tree: Vec::new(),
            },
            plan: Plan {
                nodes: vec![
                    node(
                        "network/net-\"q\\\n== domain x ==",
                        "d\u{2066}om\n",
                        Resource::Network(Network {
                            name: "net\tx".into(),
                            description: EVIL.into(),
                            config: config.clone(),
                        }),
                    ),
                    node(
                        "instance/p/i\u{85}",
                        "d\u{2066}om\n",
                        Resource::Instance(Instance {
                            project: "p\x07".into(),
                            name: "i\u{2028}".into(),
                            instance_type: InstanceType::Container,
                            description: EVIL.into(),
                            source: ImageSource::Local {
                                alias: "a\x1b]0;title\x07".into(),
                            },
                            profiles: vec!["default\r".into()],
                            config: config.clone(),
                            devices: [(format!("eth0\n{EVIL}"), config)].into(),
                            ip: Some("10.0.0.1\x1b[8m".into()),
                        }),
                    ),
                    Node {
                        id: "nftables/anklume".into(),
                        domain: None,
                        origin: None,
                        resource: Resource::Nftables(Nftables {
                            table: "inet anklume".into(),
                            lines: vec![format!("    # {EVIL}"), "\x1b[1A".into()],
                            paths: vec![format!("a -> b {EVIL}")],
                        }),
                    },
                ],
                edges: vec![(0, 1)],
            },
        }
    }

    /// Every character that could reach a terminal raw, except the newlines
    /// that end lines.
    fn assert_terminal_safe(out: &str) {
        for (n, line) in out.lines().enumerate() {
            assert!(
                !line.contains(needs_escape),
                "raw control character on line {n}: {line:?}"
            );
        }
    }

    #[test]
    fn text_escapes_every_user_field() {
        let out = text(&evil_plan());
        assert_terminal_safe(&out);
        assert!(
            out.contains("adm\\r\\x1b[2Kfake\\u{9b}2J\\u{202e}txt.exe\\x7f"),
            "{out}"
        );
        // A key with a newline cannot fake a `key = value` line, an id
        // cannot fake a section header.
        assert!(
            !out.lines()
                .any(|l| l.trim_start() == "config.limits.cpu = 64"),
            "{out}"
        );
        assert!(
            out.contains("user.note\\n    config.limits.cpu = 64"),
            "{out}"
        );
        assert_eq!(
            out.lines().filter(|l| l.starts_with("== domain")).count(),
            1,
            "{out}"
        );
    }

    #[test]
    fn dot_labels_are_escaped_and_valid() {
        let out = dot(&evil_plan().plan);
        assert_terminal_safe(&out);
        // Every line has balanced, properly escaped quotes.
        for line in out.lines() {
            let mut quoted = false;
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if quoted => {
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    _ => {}
                }
            }
            assert!(!quoted, "unbalanced quotes: {line}");
        }
        assert!(
            out.contains("n0 [label=\"network/net-\\\"q\\\\\\\\n== domain x ==\"];"),
            "{out}"
        );
        assert!(out.contains("n0 -> n1;"), "{out}");
    }

    #[test]
    fn json_and_ron_escape_and_round_trip() {
        let f = evil_plan();
        let out = json(&f);
        assert_terminal_safe(&out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["nodes"][0]["resource"]["Network"]["description"], EVIL);
        assert_eq!(v["sources"][0]["path"], f.header.sources[0].path);
        assert_eq!(v["nodes"][1]["depends_on"][0], f.plan.nodes[0].id);
        let out = ron(&f.plan);
        assert_terminal_safe(&out);
        let v: ron::Value = ron::from_str(&out).unwrap();
        assert!(format!("{v:?}").contains("txt.exe"));
    }

    #[test]
    fn renderings_are_unchanged_by_streaming() {
        // `json` is the pretty JSON of the same view serde_json gives.
        let f = evil_plan();
        let v: serde_json::Value = serde_json::from_str(&json(&f)).unwrap();
        assert_eq!(v["schema"], JSON_SCHEMA);
        assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
        let g = groups(&f.plan);
        assert_eq!(g.domains, vec![("d\u{2066}om\n", 0..2)]);
        assert_eq!((g.host, g.order), (2..3, vec![0, 1, 2]));
        // Interleaved domains keep plan order within each group.
        let mut p = f.plan.clone();
        p.nodes.rotate_left(1);
        p.nodes[2].domain = Some("other".into());
        let g = groups(&p);
        assert_eq!(g.domains, vec![("d\u{2066}om\n", 0..1), ("other", 1..2)]);
        assert_eq!((g.host, g.order), (2..3, vec![0, 2, 1]));
    }
}
