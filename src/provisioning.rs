//! What provisioning depends on, read from disk for `anklume plan`: the
//! files of the roles each instance runs (the user's `roles_custom/` first,
//! then anklume's own, the order Ansible looks them up in), and the
//! Ansible tree's variable files. The planner turns their digests into
//! each instance's fingerprint; the plan header records them so `apply`
//! refuses a plan whose tree changed since ([`stale`] runs there too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anklume_compiler::ansible::fsio::read_regular;
use anklume_plan::codec::{sha256_hex, SourceDigest};
use anklume_plan::{Plan, Resource};
use anklume_planner::ProvisionInputs;

/// The largest file read from a role or the tree.
const MAX_FILE: u64 = 16 << 20;
/// The most files read from one role.
const MAX_ROLE_FILES: usize = 10_000;

/// Where anklume's own roles are: `roles/` of its Ansible content
/// ([`crate::ansible_content`]), the copy `apply` runs.
pub fn shipped_roles() -> Result<PathBuf, String> {
    crate::ansible_content::dir().map(|d| d.join("roles"))
}

/// What was read.
pub struct Gathered {
    /// For the planner.
    pub inputs: ProvisionInputs,
    /// For the plan header: the tree's variable files and the user's role
    /// files, relative to the tree (an absent file has an empty digest).
    pub digests: Vec<SourceDigest>,
    /// Roles found nowhere, with the hosts that use them: their
    /// provisioning cannot run (apply says so for each host).
    pub missing: BTreeMap<String, Vec<String>>,
}

/// A role name that is one plain path segment.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Every regular file under `dir` (sorted, relative), with its digest. A
/// link is recorded by where it points, never followed.
fn walk(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("{}: {e}", here.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", here.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = rel.join(e.file_name());
            let shown = name.to_string_lossy().into_owned();
            let path = dir.join(&name);
            let ft = e
                .file_type()
                .map_err(|err| format!("{}: {err}", path.display()))?;
            if ft.is_dir() {
                stack.push(name);
            } else if ft.is_symlink() {
                let to = std::fs::read_link(&path)
                    .map_err(|err| format!("{}: {err}", path.display()))?;
                out.insert(
                    shown,
                    sha256_hex(format!("link to {}", to.display()).as_bytes()),
                );
            } else if ft.is_file() {
                let bytes = read_regular(&path, MAX_FILE)
                    .map_err(|p| format!("{}: {p}", path.display()))?
                    .unwrap_or_default();
                out.insert(shown, sha256_hex(&bytes));
            }
            if out.len() > MAX_ROLE_FILES {
                return Err(format!(
                    "{}: more than {MAX_ROLE_FILES} files; not a role",
                    dir.display()
                ));
            }
        }
    }
    Ok(out)
}

/// Read what the plan's provision nodes depend on, under the Ansible tree
/// `tree` (where `anklume sync` writes; `roles_custom/` is there too).
/// A role found nowhere is listed in [`Gathered::missing`].
pub fn gather(plan: &Plan, tree: &Path) -> Result<Gathered, String> {
    let shipped = shipped_roles()?;
    let mut inputs = ProvisionInputs::default();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in &plan.nodes {
        let Resource::Provision(p) = &node.resource else {
            continue;
        };
        for path in &p.vars {
            if inputs.tree.contains_key(path) || digests.contains_key(path) {
                continue;
            }
            let full = tree.join(path);
            match read_regular(&full, MAX_FILE).map_err(|e| format!("{}: {e}", full.display()))? {
                Some(bytes) => {
                    let sha = sha256_hex(&bytes);
                    inputs.tree.insert(path.clone(), sha.clone());
                    digests.insert(path.clone(), sha);
                }
                None => {
                    digests.insert(path.clone(), String::new());
                }
            }
        }
        for role in &p.roles {
            if inputs.roles.contains_key(role) {
                continue;
            }
            if let Some(hosts) = missing.get_mut(role) {
                hosts.push(p.host.clone());
                continue;
            }
            let custom = tree.join("roles_custom").join(role);
            let found = if !plain(role) {
                None
            } else if custom.is_dir() {
                let files = walk(&custom)?;
                for (f, sha) in &files {
                    digests.insert(format!("roles_custom/{role}/{f}"), sha.clone());
                }
                // Its list of files: one added after planning counts too.
                digests.insert(
                    format!("roles_custom/{role}/"),
                    anklume_plan::codec::listing_digest(files.keys().map(String::as_str)),
                );
                Some(("roles_custom".to_string(), files))
            } else if shipped.join(role).is_dir() {
                let mut files = walk(&shipped.join(role))?;
                // The task files anklume's roles share (`tasks/` beside
                // `roles/`, included as `{{ role_path }}/../../tasks/…`):
                // part of every shipped role, so changing one reprovisions
                // the instances whose roles may include it.
                if let Some(content) = shipped.parent() {
                    let shared = content.join("tasks");
                    if shared.is_dir() {
                        for (f, sha) in walk(&shared)? {
                            files.insert(format!("../../tasks/{f}"), sha);
                        }
                    }
                }
                Some(("anklume".to_string(), files))
            } else {
                None
            };
            if !custom.is_dir() {
                // A user role that appears later (shadowing anklume's, or
                // filling in a missing one) makes the plan stale.
                digests.insert(format!("roles_custom/{role}"), String::new());
            }
            match found {
                Some(f) => {
                    inputs.roles.insert(role.clone(), f);
                }
                None => {
                    missing.insert(role.clone(), vec![p.host.clone()]);
                }
            }
        }
    }
    Ok(Gathered {
        inputs,
        digests: digests
            .into_iter()
            .map(|(path, sha256)| SourceDigest { path, sha256 })
            .collect(),
        missing,
    })
}
