//! Finding and loading the sources: one `infra.yml` file, or an `infra/`
//! directory (`base.yml`, `domains/*.yml` in sorted order, `policies.yml`)
//! merged into one tree exactly as v1 merges it.

use std::path::{Path, PathBuf};

use crate::ast::{read_infra, Infra};
use crate::diag::{Diagnostic, Omitted, Severity};
use crate::read::Reader;
use crate::span::{Sources, Span};
use crate::yaml::{parse_fast as parse, Kind, Node};

/// Where the sources come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// One file.
    File(PathBuf),
    /// An `infra/` directory.
    Dir(PathBuf),
}

/// A failure to read sources at all (exit code 2), as opposed to problems in
/// their content (diagnostics, exit code 1).
#[derive(Debug)]
pub struct IoError {
    /// What went wrong, for the user.
    pub message: String,
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why the sources could not be located.
#[derive(Debug)]
pub enum ResolveError {
    /// Both `infra.yml` and `infra/` exist (decision D14): a diagnostic, exit 1.
    Ambiguous(Box<Diagnostic>),
    /// Nothing to load: exit 2.
    NotFound(IoError),
}

/// The loaded sources, their AST and every problem found while reading them.
#[derive(Debug)]
pub struct Loaded {
    /// Where they came from.
    pub origin: Option<Origin>,
    /// The source texts.
    pub sources: Sources,
    /// The AST (partial when there are errors).
    pub infra: Infra,
    /// Syntax and shape problems, and directory-merge warnings: at most
    /// [`MAX_PER_CODE`](crate::diag::MAX_PER_CODE) of each code, in
    /// discovery order.
    pub diags: Vec<Diagnostic>,
    /// Per code, how many more were found but not kept.
    pub omitted: Vec<Omitted>,
}

impl Loaded {
    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
            || self.omitted.iter().any(|o| o.severity == Severity::Error)
    }

    /// Sources, AST and the diagnostics collected by `r`.
    fn new(sources: Sources, infra: Infra, r: Reader) -> Loaded {
        let (diags, omitted) = r.finish();
        Loaded {
            origin: None,
            sources,
            infra,
            diags,
            omitted,
        }
    }
}

/// Decide what to load. `None` means `./infra.yml` or `./infra/` (having both
/// is an error, decision D14). A given path follows v1's fallbacks: a missing
/// `x` tries `x.yml`, a missing `x.yml` tries the directory `x`.
pub fn resolve(path: Option<&Path>, cwd: &Path) -> Result<Origin, ResolveError> {
    match path {
        None => {
            let file = cwd.join("infra.yml");
            let dir = cwd.join("infra");
            match (file.is_file(), dir.is_dir()) {
                (true, true) => Err(ResolveError::Ambiguous(Box::new(Diagnostic::error(
                    "E0106",
                    "both infra.yml and infra/ exist here: anklume cannot tell which one you mean",
                    Span::NONE,
                )
                .with_help("keep only one of them, or name the one to use: `anklume check infra.yml`")))),
                (true, false) => Ok(Origin::File(PathBuf::from("infra.yml"))),
                (false, true) => Ok(Origin::Dir(PathBuf::from("infra"))),
                (false, false) => Err(ResolveError::NotFound(IoError {
                    message: "no infra.yml or infra/ in the current directory (give a path: `anklume check path/to/infra.yml`)".into(),
                })),
            }
        }
        Some(p) => {
            let full = cwd.join(p);
            if full.is_file() {
                return Ok(Origin::File(p.to_path_buf()));
            }
            if full.is_dir() {
                return Ok(Origin::Dir(p.to_path_buf()));
            }
            let s = p.to_string_lossy();
            if let Some(stem) = s.strip_suffix(".yml") {
                if cwd.join(stem).is_dir() {
                    return Ok(Origin::Dir(PathBuf::from(stem)));
                }
            } else {
                let with = PathBuf::from(format!("{s}.yml"));
                if cwd.join(&with).is_file() {
                    return Ok(Origin::File(with));
                }
            }
            Err(ResolveError::NotFound(IoError {
                message: format!("{}: no such file or directory", p.display()),
            }))
        }
    }
}

fn read(cwd: &Path, p: &Path) -> Result<String, IoError> {
    let bytes = std::fs::read(cwd.join(p)).map_err(|e| IoError {
        message: format!("{}: {e}", p.display()),
    })?;
    String::from_utf8(bytes).map_err(|e| IoError {
        message: format!(
            "{}: not UTF-8 text (byte {})",
            p.display(),
            e.utf8_error().valid_up_to()
        ),
    })
}

/// What a source path inside an `infra/` directory must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A YAML file.
    File,
    /// The `domains/` directory.
    Dir,
}

/// Look at `p` (relative to `cwd`), inside the infra directory `root`:
/// `Ok(false)` when nothing is there, `Ok(true)` when it is what `want`
/// says. A symbolic link is followed only when it resolves inside `root`;
/// a dangling link, a link leading outside `root`, or the wrong kind of
/// file (a directory for a YAML file, a file for `domains/`, a FIFO, a
/// device) is an error, never skipped: a source that silently vanished
/// would drop its domains (and `sync --clean-orphans` would then delete
/// their files).
fn inspect(cwd: &Path, root: &Path, p: &Path, want: Want) -> Result<bool, IoError> {
    let full = cwd.join(p);
    let err = |what: String| IoError {
        message: format!("{}: {what}", p.display()),
    };
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(e.to_string())),
    };
    let meta = if meta.file_type().is_symlink() {
        let real = std::fs::canonicalize(&full)
            .map_err(|e| err(format!("a symbolic link that cannot be followed ({e})")))?;
        let root = std::fs::canonicalize(cwd.join(root)).map_err(|e| err(e.to_string()))?;
        if !real.starts_with(&root) {
            return Err(err(format!(
                "a symbolic link to {}, outside {}: anklume does not follow links out of the infra directory (copy it in instead)",
                real.display(),
                root.display()
            )));
        }
        std::fs::metadata(&real).map_err(|e| err(e.to_string()))?
    } else {
        meta
    };
    match want {
        Want::File if meta.is_file() => Ok(true),
        Want::File if meta.is_dir() => Err(err("a directory, not a YAML file".into())),
        Want::File => Err(err("not a regular file".into())),
        Want::Dir if meta.is_dir() => Ok(true),
        Want::Dir => Err(err(
            "not a directory (domain files go in infra/domains/)".into()
        )),
    }
}

/// Load from the file system (paths relative to `cwd` are shown relative).
pub fn load(origin: &Origin, cwd: &Path) -> Result<Loaded, IoError> {
    match origin {
        Origin::File(p) => {
            let text = read(cwd, p)?;
            let mut l = load_str(&p.to_string_lossy(), &text);
            l.origin = Some(origin.clone());
            Ok(l)
        }
        Origin::Dir(d) => {
            let base = d.join("base.yml");
            if !inspect(cwd, d, &base, Want::File)? {
                let yaml = d.join("base.yaml");
                let help = if cwd.join(&yaml).is_file() {
                    "base.yaml is there: rename it base.yml (the directory's top-level file is base.yml)"
                } else {
                    "an infra/ directory needs base.yml with project_name and global"
                };
                return Ok(Loaded {
                    origin: Some(origin.clone()),
                    sources: Sources::default(),
                    infra: Infra::default(),
                    diags: vec![Diagnostic::error(
                        "E0106",
                        format!("{} not found in infra directory", base.display()),
                        Span::NONE,
                    )
                    .with_help(help)],
                    omitted: Vec::new(),
                });
            }
            let mut files = vec![(base.clone(), read(cwd, &base)?)];
            let mut domain_files = Vec::new();
            let ddir = d.join("domains");
            let has_domains_dir = inspect(cwd, d, &ddir, Want::Dir)?;
            if has_domains_dir {
                let entries = std::fs::read_dir(cwd.join(&ddir)).map_err(|e| IoError {
                    message: format!("{}: {e}", ddir.display()),
                })?;
                let mut names = Vec::new();
                for e in entries {
                    let e = e.map_err(|e| IoError {
                        message: format!("{}: {e}", ddir.display()),
                    })?;
                    let name = e.file_name();
                    // v1 globbed `*.yml`, which skips hidden files (editor
                    // lock files such as Emacs' `.#x.yml` are dangling
                    // links). `*.yaml` is read too: people write both, and
                    // a file silently ignored surfaced as an unrelated error.
                    let b = name.as_encoded_bytes();
                    if !(b.ends_with(b".yml") || b.ends_with(b".yaml")) || b.starts_with(b".") {
                        continue;
                    }
                    let Some(name) = name.to_str() else {
                        return Err(IoError {
                            message: format!(
                                "{}: a domain file name that is not UTF-8",
                                ddir.join(&name).display()
                            ),
                        });
                    };
                    names.push(name.to_owned());
                }
                names.sort();
                for n in names {
                    let p = ddir.join(&n);
                    if inspect(cwd, d, &p, Want::File)? {
                        let text = read(cwd, &p)?;
                        domain_files.push((p, text));
                    }
                }
            }
            let pol = d.join("policies.yml");
            let policies = if inspect(cwd, d, &pol, Want::File)? {
                Some((pol.clone(), read(cwd, &pol)?))
            } else if inspect(cwd, d, &d.join("policies.yaml"), Want::File)? {
                // Read under either name, as the domain files are.
                let p = d.join("policies.yaml");
                Some((p.clone(), read(cwd, &p)?))
            } else {
                None
            };
            files.extend(domain_files);
            let npol = policies.is_some();
            files.extend(policies);
            let mut l = load_dir_texts(&files, has_domains_dir, npol);
            l.origin = Some(origin.clone());
            Ok(l)
        }
    }
}

/// Load one file's text.
pub fn load_str(name: &str, text: &str) -> Loaded {
    let mut sources = Sources::default();
    let id = sources.add(name, text);
    let mut r = Reader::default();
    let infra = match parse(id, text) {
        Ok(root) => read_infra(&root, &mut r),
        Err(errs) => {
            errs.into_iter().for_each(|e| r.push(e));
            Infra::default()
        }
    };
    Loaded::new(sources, infra, r)
}

/// Merge directory-mode texts: `files[0]` is base.yml, then the domain files
/// (already sorted), then policies.yml when `has_policies`.
pub fn load_dir_texts(
    files: &[(PathBuf, String)],
    has_domains_dir: bool,
    has_policies: bool,
) -> Loaded {
    let mut sources = Sources::default();
    let mut r = Reader::default();
    let mut roots = Vec::new();
    let mut failed = false;
    for (p, text) in files {
        let id = sources.add(p.to_string_lossy(), text.clone());
        match parse(id, text) {
            Ok(n) => roots.push(n),
            Err(errs) => {
                failed = true;
                errs.into_iter().for_each(|e| r.push(e));
                roots.push(Node {
                    kind: Kind::Null,
                    span: Span::new(id, 0, 0),
                    plain: true,
                    raw: None,
                });
            }
        }
    }
    if failed {
        return Loaded::new(sources, Infra::default(), r);
    }
    let n_domain_files = roots.len() - 1 - usize::from(has_policies);
    let mut it = roots.into_iter();
    let base = it.next().expect("base.yml is always first");
    let base_span = base.span;
    let mut top: Vec<(Node, Node)> = match base.kind {
        Kind::Map(e) => e,
        Kind::Null => Vec::new(),
        _ => {
            r.push(
                Diagnostic::error("E0202", "base.yml must be a mapping", base.span)
                    .with_help("base.yml holds project_name, global and other top-level keys"),
            );
            return Loaded::new(sources, Infra::default(), r);
        }
    };
    let key = |text: &str, span: Span| Node {
        kind: Kind::Str(text.into()),
        span,
        plain: true,
        raw: None,
    };
    if has_domains_dir {
        let pos = match top.iter().position(|(k, _)| k.as_str() == Some("domains")) {
            Some(p) => p,
            None => {
                top.push((
                    key(
                        "domains",
                        Span {
                            end: base_span.start,
                            ..base_span
                        },
                    ),
                    Node {
                        kind: Kind::Map(Vec::new()),
                        span: Span {
                            end: base_span.start,
                            ..base_span
                        },
                        plain: false,
                        raw: None,
                    },
                ));
                top.len() - 1
            }
        };
        for _ in 0..n_domain_files {
            let file = it.next().expect("counted");
            let entries = match file.kind {
                Kind::Null => continue,
                Kind::Map(e) => e,
                _ => {
                    r.push(
                        Diagnostic::error(
                            "E0202",
                            "a domains/*.yml file must be a mapping of domain names",
                            file.span,
                        )
                        .with_help("write `<domain-name>:` followed by the domain's keys"),
                    );
                    continue;
                }
            };
            let target = &mut top[pos].1;
            if target.is_null() {
                target.kind = Kind::Map(Vec::new());
            }
            let Kind::Map(doms) = &mut target.kind else {
                continue; // `domains:` in base.yml is not a mapping: reported by the reader.
            };
            for (k, v) in entries {
                let name = k.key_text();
                if let Some(existing) = doms.iter_mut().find(|(ek, _)| ek.key_text() == name) {
                    r.push_with("W0101", Severity::Warning, || {
                        let file_name = sources
                            .get(k.span.file)
                            .map(|f| {
                                Path::new(&f.name)
                                    .file_name()
                                    .map_or(f.name.clone(), |n| n.to_string_lossy().into_owned())
                            })
                            .unwrap_or_default();
                        Diagnostic::warning(
                            "W0101",
                            format!("Domain '{name}' in {file_name} overrides existing definition"),
                            k.span,
                        )
                        .label("this definition wins")
                        .with_secondary(existing.0.span, "earlier definition, replaced")
                        .with_help("define each domain once, or remove the earlier definition")
                    });
                    *existing = (k, v);
                } else {
                    doms.push((k, v));
                }
            }
        }
    }
    if has_policies {
        let pol = it.next().expect("counted");
        match pol.kind {
            Kind::Null => {}
            Kind::Map(entries) => {
                for (k, v) in entries {
                    if k.as_str() == Some("network_policies") {
                        if let Some(existing) = top
                            .iter_mut()
                            .find(|(ek, _)| ek.as_str() == Some("network_policies"))
                        {
                            *existing = (k, v);
                        } else {
                            top.push((k, v));
                        }
                    } else {
                        r.push_with("E0201", Severity::Error, || {
                            Diagnostic::error(
                                "E0201",
                                format!("unknown key `{}` in policies.yml", k.key_text()),
                                k.span,
                            )
                            .label("policies.yml holds only network_policies")
                            .with_help("move this key to base.yml")
                        });
                    }
                }
            }
            _ => r.push(
                Diagnostic::error(
                    "E0202",
                    "policies.yml must be a mapping with network_policies",
                    pol.span,
                )
                .with_help("write `network_policies:` followed by the list"),
            ),
        }
    }
    let root = Node {
        kind: Kind::Map(top),
        span: base_span,
        plain: false,
        raw: None,
    };
    let infra = read_infra(&root, &mut r);
    Loaded::new(sources, infra, r)
}
