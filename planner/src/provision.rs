//! Provisioning fingerprints: what an instance's provisioning depends on,
//! digested, so that apply runs Ansible only where something changed. The
//! planner stays pure: the CLI reads the role files and the Ansible tree
//! and hands their digests over as [`ProvisionInputs`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anklume_plan::codec::sha256_hex;
use anklume_plan::{Plan, Resource};

/// The digests provisioning depends on, read by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvisionInputs {
    /// For each role anklume would run, where it comes from (`roles_custom`
    /// or `anklume`) and its files: path inside the role → SHA-256, sorted.
    /// A role that is absent here is recorded as missing.
    pub roles: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// Files of the Ansible tree: path relative to the tree → SHA-256. A
    /// file absent here is recorded as missing.
    pub tree: BTreeMap<String, String>,
}

/// Fill in every provision node's fingerprint: a SHA-256 over a canonical
/// text naming the version of this scheme, the roles in order, each role's
/// origin and files with their digests, the variable files with theirs,
/// and the context files. The same inputs give the same fingerprint on any
/// machine; any change to one of them changes it.
pub fn fingerprint(plan: &mut Plan, inputs: &ProvisionInputs) {
    for node in &mut plan.nodes {
        let Resource::Provision(p) = &mut node.resource else {
            continue;
        };
        let mut t = String::from("anklume provisioning fingerprint 1\n");
        let _ = writeln!(t, "roles {}", p.roles.join(","));
        for role in &p.roles {
            match inputs.roles.get(role) {
                Some((origin, files)) => {
                    let _ = writeln!(t, "role {role} from {origin}");
                    for (path, sha) in files {
                        let _ = writeln!(t, "  {sha} {path}");
                    }
                }
                None => {
                    let _ = writeln!(t, "role {role} missing");
                }
            }
        }
        for path in &p.vars {
            match inputs.tree.get(path) {
                Some(sha) => {
                    let _ = writeln!(t, "vars {sha} {path}");
                }
                None => {
                    let _ = writeln!(t, "vars missing {path}");
                }
            }
        }
        for (k, v) in &p.context {
            let _ = writeln!(t, "context {k}={v}");
        }
        p.fingerprint = sha256_hex(t.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anklume_plan::{Node, Provision};

    fn plan(roles: &[&str], host: &str) -> Plan {
        Plan {
            nodes: vec![Node {
                id: format!("provision/{host}"),
                domain: Some("pro".into()),
                origin: None,
                resource: Resource::Provision(Provision {
                    host: host.into(),
                    instance: host.into(),
                    project: "pro".into(),
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    inventory: "inventory/pro.yml".into(),
                    context: [("absolute_level".to_string(), "1".to_string())].into(),
                    vars: vec![format!("host_vars/{host}.yml")],
                    fingerprint: String::new(),
                }),
            }],
            edges: vec![],
        }
    }

    fn fp(p: &Plan) -> String {
        match &p.nodes[0].resource {
            Resource::Provision(p) => p.fingerprint.clone(),
            _ => unreachable!(),
        }
    }

    fn inputs() -> ProvisionInputs {
        let files = |d: &str| -> BTreeMap<String, String> {
            [("tasks/main.yml".to_string(), d.to_string())].into()
        };
        ProvisionInputs {
            roles: [
                (
                    "base_system".to_string(),
                    ("anklume".to_string(), files("aa")),
                ),
                ("web".to_string(), ("roles_custom".to_string(), files("bb"))),
            ]
            .into(),
            tree: [("host_vars/a.yml".to_string(), "cc".to_string())].into(),
        }
    }

    /// Same inputs, same fingerprint; each input changes it, and a role
    /// the instance does not use does not.
    #[test]
    fn fingerprints_follow_exactly_their_inputs() {
        let i = inputs();
        let with = |i: &ProvisionInputs, roles: &[&str]| {
            let mut p = plan(roles, "a");
            fingerprint(&mut p, i);
            fp(&p)
        };
        let base = with(&i, &["base_system"]);
        assert_eq!(base.len(), 64);
        assert_eq!(base, with(&i, &["base_system"]));
        // A role the instance does not use: no change.
        let mut other = i.clone();
        other
            .roles
            .get_mut("web")
            .unwrap()
            .1
            .insert("tasks/main.yml".into(), "zz".into());
        assert_eq!(base, with(&other, &["base_system"]));
        // But a change to one of its roles, its variables, its role list or
        // where a role comes from does.
        assert_ne!(
            with(&i, &["base_system", "web"]),
            with(&other, &["base_system", "web"])
        );
        let mut vars = i.clone();
        vars.tree.insert("host_vars/a.yml".into(), "dd".into());
        assert_ne!(base, with(&vars, &["base_system"]));
        let mut gone = i.clone();
        gone.tree.clear();
        assert_ne!(base, with(&gone, &["base_system"]));
        let mut moved = i.clone();
        moved.roles.get_mut("base_system").unwrap().0 = "roles_custom".into();
        assert_ne!(base, with(&moved, &["base_system"]));
        assert_ne!(base, with(&i, &["base_system", "web"]));
        // A missing role is recorded as such, not skipped.
        assert_ne!(with(&i, &["base_system", "nope"]), base);
    }
}
