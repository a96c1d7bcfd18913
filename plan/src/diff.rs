//! Flattening resources into settings, and comparing two plans.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{ImageSource, Node, Plan, Resource};

/// The settings of a resource as flat `key = value` pairs, sorted by key.
/// Nested maps use dotted keys (`config.limits.cpu`, `devices.eth0.network`).
/// The nftables ruleset is not included (it is compared line by line).
pub fn settings(node: &Node) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    let mut put = |k: String, v: &str| {
        s.insert(k, v.to_string());
    };
    let config = |put: &mut dyn FnMut(String, &str), prefix: &str, c: &crate::Config| {
        for (k, v) in c {
            put(format!("{prefix}.{k}"), v);
        }
    };
    let devices = |put: &mut dyn FnMut(String, &str), prefix: &str, d: &crate::Devices| {
        for (name, opts) in d {
            for (k, v) in opts {
                put(format!("{prefix}.{name}.{k}"), v);
            }
        }
    };
    match &node.resource {
        Resource::Network(n) => {
            put("name".into(), &n.name);
            put("description".into(), &n.description);
            config(&mut put, "config", &n.config);
        }
        Resource::Project(p) => {
            put("name".into(), &p.name);
            put("description".into(), &p.description);
            config(&mut put, "config", &p.config);
            devices(
                &mut put,
                "default_profile.devices",
                &p.default_profile_devices,
            );
        }
        Resource::Profile(p) => {
            put("project".into(), &p.project);
            put("name".into(), &p.name);
            put("description".into(), &p.description);
            config(&mut put, "config", &p.config);
            devices(&mut put, "devices", &p.devices);
        }
        Resource::Volume(v) => {
            put("project".into(), &v.project);
            put("pool".into(), &v.pool);
            put("name".into(), &v.name);
            config(&mut put, "config", &v.config);
        }
        Resource::Instance(i) => {
            put("project".into(), &i.project);
            put("name".into(), &i.name);
            put("type".into(), i.instance_type.incus_name());
            put("description".into(), &i.description);
            match &i.source {
                ImageSource::Remote {
                    image,
                    server,
                    protocol,
                    alias,
                } => {
                    put("source.image".into(), image);
                    put("source.server".into(), server);
                    put("source.protocol".into(), protocol);
                    put("source.alias".into(), alias);
                }
                ImageSource::Local { alias } => put("source.local_alias".into(), alias),
            }
            put("profiles".into(), &i.profiles.join(", "));
            config(&mut put, "config", &i.config);
            devices(&mut put, "devices", &i.devices);
            if let Some(ip) = &i.ip {
                put("ip".into(), ip);
            }
        }
        Resource::Nftables(n) => {
            put("table".into(), &n.table);
        }
        Resource::Provision(p) => {
            put("host".into(), &p.host);
            put("instance".into(), &p.instance);
            put("project".into(), &p.project);
            put("roles".into(), &p.roles.join(", "));
            put("inventory".into(), &p.inventory);
        }
    }
    s
}

/// Ids each node depends on, by node index.
pub fn dependencies(plan: &Plan) -> Vec<Vec<&str>> {
    let mut deps: Vec<Vec<&str>> = vec![Vec::new(); plan.nodes.len()];
    for &(from, to) in &plan.edges {
        if let (Some(f), Some(slot)) = (plan.nodes.get(from as usize), deps.get_mut(to as usize)) {
            slot.push(f.id.as_str());
        }
    }
    for d in &mut deps {
        d.sort_unstable();
    }
    deps
}

/// One changed setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Setting key (`config.limits.cpu`, `depends_on`, `ruleset`).
    pub key: String,
    /// Old value (`None`: added).
    pub old: Option<String>,
    /// New value (`None`: removed).
    pub new: Option<String>,
}

/// A node present in both plans with different settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// Node id.
    pub id: String,
    /// What changed.
    pub changes: Vec<Change>,
}

/// The difference between two plans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanDiff {
    /// Ids only in the new plan.
    pub added: Vec<String>,
    /// Ids only in the old plan.
    pub removed: Vec<String>,
    /// Nodes in both that differ.
    pub changed: Vec<Changed>,
    /// Reachability the new plan opens (`pro -> ai-tools tcp/11434`).
    pub opens: Vec<String>,
    /// Reachability the new plan closes.
    pub closes: Vec<String>,
    /// Instances in both plans whose address changes (a machine added or
    /// removed before them moves automatic addresses).
    pub renumbered: Vec<Renumbered>,
}

/// An instance whose address changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Renumbered {
    /// Node id.
    pub id: String,
    /// Its machine name.
    pub machine: String,
    /// Its address in the old plan.
    pub old: String,
    /// Its address in the new plan.
    pub new: String,
}

impl PlanDiff {
    /// Whether the plans are equal.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.opens.is_empty()
            && self.closes.is_empty()
    }
}

fn paths(plan: &Plan) -> BTreeSet<&str> {
    plan.nodes
        .iter()
        .filter_map(|n| match &n.resource {
            Resource::Nftables(t) => Some(t.paths.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Compare two plans.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let old_deps = dependencies(old);
    let new_deps = dependencies(new);
    let old_idx: BTreeMap<&str, usize> = old
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let new_idx: BTreeMap<&str, usize> = new
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut d = PlanDiff::default();
    for n in &new.nodes {
        if !old_idx.contains_key(n.id.as_str()) {
            d.added.push(n.id.clone());
        }
    }
    for n in &old.nodes {
        let Some(&ni) = new_idx.get(n.id.as_str()) else {
            d.removed.push(n.id.clone());
            continue;
        };
        let oi = old_idx[n.id.as_str()];
        let nn = &new.nodes[ni];
        let mut changes = Vec::new();
        let (a, b) = (settings(n), settings(nn));
        for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
            let (x, y) = (a.get(key), b.get(key));
            if x != y {
                changes.push(Change {
                    key: key.clone(),
                    old: x.cloned(),
                    new: y.cloned(),
                });
            }
        }
        if old_deps[oi] != new_deps[ni] {
            changes.push(Change {
                key: "depends_on".into(),
                old: Some(old_deps[oi].join(", ")),
                new: Some(new_deps[ni].join(", ")),
            });
        }
        if let (Resource::Instance(x), Resource::Instance(y)) = (&n.resource, &nn.resource) {
            if let (Some(a), Some(b)) = (&x.ip, &y.ip) {
                if a != b {
                    d.renumbered.push(Renumbered {
                        id: n.id.clone(),
                        machine: y.name.clone(),
                        old: a.clone(),
                        new: b.clone(),
                    });
                }
            }
        }
        if let (Resource::Nftables(x), Resource::Nftables(y)) = (&n.resource, &nn.resource) {
            let xs: BTreeSet<&String> = x.lines.iter().collect();
            let ys: BTreeSet<&String> = y.lines.iter().collect();
            for l in &x.lines {
                if !ys.contains(l) {
                    changes.push(Change {
                        key: "ruleset".into(),
                        old: Some(l.trim().to_string()),
                        new: None,
                    });
                }
            }
            for l in &y.lines {
                if !xs.contains(l) {
                    changes.push(Change {
                        key: "ruleset".into(),
                        old: None,
                        new: Some(l.trim().to_string()),
                    });
                }
            }
            if changes.is_empty() && x.lines != y.lines {
                changes.push(Change {
                    key: "ruleset".into(),
                    old: Some("(rule order)".into()),
                    new: Some("(rule order changed)".into()),
                });
            }
        }
        if !changes.is_empty() {
            d.changed.push(Changed {
                id: n.id.clone(),
                changes,
            });
        }
    }
    let (po, pn) = (paths(old), paths(new));
    d.opens = pn.difference(&po).map(|s| s.to_string()).collect();
    d.closes = po.difference(&pn).map(|s| s.to_string()).collect();
    d
}

/// Render a diff for people: ids, keys and reachability lines escaped with
/// [`crate::escape`], values quoted with Rust's debug escaping (which also
/// escapes every control, bidi and separator character).
pub fn render_text(d: &PlanDiff) -> String {
    let mut out = Vec::new();
    write_text(&mut out, d).expect("writing to memory");
    String::from_utf8(out).expect("UTF-8")
}

/// [`render_text`], written to `w`.
pub fn write_text(w: &mut impl std::io::Write, d: &PlanDiff) -> std::io::Result<()> {
    use crate::escape::Escaped;
    if d.is_empty() {
        return w.write_all(b"plans are identical\n");
    }
    writeln!(
        w,
        "{} to add, {} to change, {} to remove",
        d.added.len(),
        d.changed.len(),
        d.removed.len()
    )?;
    for id in &d.added {
        writeln!(w, "+ {}", Escaped(id))?;
    }
    for id in &d.removed {
        writeln!(w, "- {}", Escaped(id))?;
    }
    for c in &d.changed {
        writeln!(w, "~ {}", Escaped(&c.id))?;
        for ch in &c.changes {
            let key = Escaped(&ch.key);
            match (&ch.old, &ch.new) {
                (Some(o), Some(n)) => writeln!(w, "    {key}: {o:?} -> {n:?}")?,
                (None, Some(n)) => writeln!(w, "    + {key}: {n:?}")?,
                (Some(o), None) => writeln!(w, "    - {key}: {o:?}")?,
                (None, None) => {}
            }
        }
    }
    for p in &d.opens {
        writeln!(w, "opens {}", Escaped(p))?;
    }
    for p in &d.closes {
        writeln!(w, "closes {}", Escaped(p))?;
    }
    for r in &d.renumbered {
        writeln!(
            w,
            "warning: {} moves from {} to {}: machines without `ip` are numbered in order, so adding or removing one renumbers those after it; apply carries it out, but to keep the address, pin it: `ip: {}`",
            Escaped(&r.id),
            Escaped(&r.old),
            Escaped(&r.new),
            Escaped(&r.old)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_text_escapes_ids_keys_and_values() {
        let old = crate::render::tests::evil_plan().plan;
        let mut new = old.clone();
        new.nodes[0].id.push_str("\r\x1b[2K");
        let Resource::Instance(i) = &mut new.nodes[1].resource else {
            unreachable!()
        };
        i.config
            .insert("user.k\n    + config.x".into(), "v\u{202e}\x1b[0m".into());
        let Resource::Nftables(t) = &mut new.nodes[2].resource else {
            unreachable!()
        };
        t.paths.push("c -> d\n+ instance/fake".into());
        let out = render_text(&diff(&old, &new));
        for line in out.lines() {
            assert!(!line.contains(crate::escape::needs_escape), "{line:?}");
        }
        assert!(!out.lines().any(|l| l == "+ instance/fake"), "{out}");
        assert!(out.contains("config.user.k\\n    + config.x"), "{out}");
        assert!(out.contains("opens c -> d\\n+ instance/fake"), "{out}");
    }
}
