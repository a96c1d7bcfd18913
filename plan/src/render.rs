//! Renderings of a plan: `text` for people, `ron` canonical for review and
//! golden files, `json` for tools (schema `anklume.plan/v1`, see
//! `docs/plan-format.md`), `dot` for Graphviz.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::codec::PlanFile;
use crate::diff::{dependencies, settings};
use crate::{Kind, Plan, Resource};

/// JSON schema identifier of [`json`].
pub const JSON_SCHEMA: &str = "anklume.plan/v1";

/// Counts per kind, in phase order.
pub fn counts(plan: &Plan) -> Vec<(Kind, usize)> {
    Kind::ALL
        .iter()
        .map(|k| {
            (
                *k,
                plan.nodes
                    .iter()
                    .filter(|n| n.resource.kind() == *k)
                    .count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The text rendering: summary, resources by domain in dependency order,
/// then the nftables ruleset and the reachability it opens.
pub fn text(file: &PlanFile) -> String {
    let plan = &file.plan;
    let mut out = String::new();
    let domains = plan.domains();
    let _ = writeln!(
        out,
        "anklume plan: {} resource(s) in {} domain(s)",
        plan.nodes.len(),
        domains.len()
    );
    let kinds: Vec<String> = counts(plan)
        .iter()
        .map(|(k, n)| format!("{n} {}", k.name()))
        .collect();
    let _ = writeln!(out, "  by kind:   {}", kinds.join(", "));
    let per_domain: Vec<String> = domains
        .iter()
        .map(|d| {
            let n = plan
                .nodes
                .iter()
                .filter(|x| x.domain.as_deref() == Some(d))
                .count();
            format!("{d} {n}")
        })
        .collect();
    let _ = writeln!(out, "  by domain: {}", per_domain.join(", "));
    if !file.header.sources.is_empty() {
        let srcs: Vec<&str> = file
            .header
            .sources
            .iter()
            .map(|s| s.path.as_str())
            .collect();
        let _ = writeln!(out, "  sources:   {}", srcs.join(", "));
    }
    if !file.header.facts.prefix.is_empty() {
        let _ = writeln!(out, "  prefix:    {}", file.header.facts.prefix);
    }
    let deps = dependencies(plan);
    let mut groups: Vec<Option<&str>> = domains.iter().map(|d| Some(*d)).collect();
    groups.push(None);
    for group in groups {
        let members: Vec<usize> = (0..plan.nodes.len())
            .filter(|&i| plan.nodes[i].domain.as_deref() == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        match group {
            Some(d) => {
                let _ = writeln!(out, "\n== domain {d} ==");
            }
            None => {
                let _ = writeln!(out, "\n== host ==");
            }
        }
        for i in members {
            let n = &plan.nodes[i];
            let origin = n
                .origin
                .as_deref()
                .map(|o| format!("  ({o})"))
                .unwrap_or_default();
            let _ = writeln!(out, "{}{origin}", n.id);
            if !deps[i].is_empty() {
                let _ = writeln!(out, "    after: {}", deps[i].join(", "));
            }
            for (k, v) in settings(n) {
                if !v.is_empty() {
                    let _ = writeln!(out, "    {k} = {v}");
                }
            }
        }
    }
    for n in &plan.nodes {
        if let Resource::Nftables(t) = &n.resource {
            let _ = writeln!(out, "\n== reachability ({}) ==", n.id);
            if t.paths.is_empty() {
                let _ = writeln!(out, "  (none: every domain is isolated)");
            }
            for p in &t.paths {
                let _ = writeln!(out, "  {p}");
            }
            let _ = writeln!(out, "\n== nftables ruleset ({}) ==", n.id);
            out.push_str(&t.text());
        }
    }
    out
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

/// The canonical RON rendering: nodes sorted by id, one setting per line,
/// no source line numbers (so moving text in infra.yml changes nothing).
pub fn ron(plan: &Plan) -> String {
    let cfg = ron::ser::PrettyConfig::new()
        .indentor("  ".to_string())
        .struct_names(true)
        .separate_tuple_members(true)
        .enumerate_arrays(false)
        .new_line("\n".to_string());
    let mut s = ron::ser::to_string_pretty(&views(plan), cfg).expect("plan views serialise");
    s.push('\n');
    s
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: &'a str,
    kind: &'static str,
    domain: Option<&'a str>,
    origin: Option<&'a str>,
    depends_on: Vec<&'a str>,
    resource: &'a Resource,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema: &'static str,
    format_version: u32,
    anklume_version: &'a str,
    sources: &'a [crate::codec::SourceDigest],
    facts: &'a crate::codec::Facts,
    nodes: Vec<JsonNode<'a>>,
}

/// The JSON rendering (schema [`JSON_SCHEMA`]), nodes in plan order.
pub fn json(file: &PlanFile) -> String {
    let deps = dependencies(&file.plan);
    let nodes = file
        .plan
        .nodes
        .iter()
        .zip(deps)
        .map(|(n, d)| JsonNode {
            id: &n.id,
            kind: n.resource.kind().name(),
            domain: n.domain.as_deref(),
            origin: n.origin.as_deref(),
            depends_on: d,
            resource: &n.resource,
        })
        .collect();
    let view = JsonPlan {
        schema: JSON_SCHEMA,
        format_version: crate::codec::FORMAT_VERSION,
        anklume_version: &file.header.anklume_version,
        sources: &file.header.sources,
        facts: &file.header.facts,
        nodes,
    };
    let mut s = serde_json::to_string_pretty(&view).expect("plan views serialise");
    s.push('\n');
    s
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT, one cluster per domain.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for (ci, d) in plan.domains().iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{ci} {{\n    label={};", dot_id(d));
        for n in plan.nodes.iter().filter(|n| n.domain.as_deref() == Some(d)) {
            let _ = writeln!(out, "    {};", dot_id(&n.id));
        }
        out.push_str("  }\n");
    }
    for n in plan.nodes.iter().filter(|n| n.domain.is_none()) {
        let _ = writeln!(out, "  {} [shape=octagon];", dot_id(&n.id));
    }
    for &(a, b) in &plan.edges {
        if let (Some(x), Some(y)) = (plan.nodes.get(a as usize), plan.nodes.get(b as usize)) {
            let _ = writeln!(out, "  {} -> {};", dot_id(&x.id), dot_id(&y.id));
        }
    }
    out.push_str("}\n");
    out
}
