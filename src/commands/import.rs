//! `anklume import`: write an infra.yml from what a live Incus has.
//!
//! Reads Incus in bulk (the executor's client and `live::read`, as apply
//! does: projects, networks, profiles, instances, the custom volumes of
//! every pool, plus the image aliases), converts it ([`crate::import`]),
//! checks the result with anklume's own check (nothing is written when it
//! does not pass), plans it in memory and compares the plan with the same
//! Incus state as apply would: every difference other than anklume's
//! adoption marks becomes a comment at its place in the file and a warning.
//! The file is written atomically, and an existing file is replaced only
//! with `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anklume_compiler::compile;
use anklume_executor::decide::{decide, Action, Change};
use anklume_executor::incus::{Api, IncusError};
use anklume_executor::live::{self, str_of, Live};
use anklume_plan::Resource;
use anklume_term::display as esc;

use super::{print_diags, say, summary, Compilation, DiagFormat};
use crate::facts;
use crate::import::{self, yaml, Alias, Imported, Options};
use crate::Exit;

/// The file written when no `-o` is given.
pub const DEFAULT_OUTPUT: &str = "infra.imported.yml";

/// Write an infra.yml from what Incus has.
///
/// Reads the projects (each but `default` becomes a domain), their bridges
/// `net-<domain>`, profiles, instances and custom volumes, and writes a
/// file whose plan matches them: `apply` then only adopts them (adds
/// anklume's `user.anklume.*` keys). What was guessed or cannot be written
/// is marked by a comment in the file (and a warning). The result is
/// checked; nothing is written when it does not pass. Exit status: 0
/// written, 1 the result does not pass check, 2 usage or I/O error (Incus
/// unreachable, the output file exists).
#[derive(clap::Args)]
pub struct Args {
    /// Only this Incus project (repeated, or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "PROJECT")]
    pub project: Vec<String>,
    /// Only this domain, the project `<nesting prefix><domain>` (repeated,
    /// or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub domain: Vec<String>,
    /// Where to write it (`-`: standard output).
    #[arg(short = 'o', long, default_value = DEFAULT_OUTPUT, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let stdout = args.output.as_os_str() == "-";
    if !stdout && !args.force && std::fs::symlink_metadata(&args.output).is_ok() {
        eprintln!(
            "error: {} exists; pass --force to replace it, or -o another file (nothing was read or written)",
            esc(&args.output.display().to_string())
        );
        return Exit::Failed;
    }
    let facts = facts::gather(facts::Wanted { resources: false });
    let prefix = match facts.absolute_level {
        Some(n) if n > 0 => format!("{n:03}-"),
        _ => String::new(),
    };
    let opts = Options {
        prefix,
        projects: args.project.clone(),
        domains: args.domain.clone(),
        interfaces: if facts.skip_subnet_check {
            Vec::new()
        } else {
            facts.interfaces.clone()
        },
        privileged_ok: facts.vm_nested != Some(false) || facts.yolo,
    };
    let incus = super::incus();
    let socket = incus.socket().display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"));
    let (live, aliases) = match rt.map(|rt| rt.block_on(read(incus))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!(
                "error: cannot read Incus at {}: {}\nhint: is incusd running, and may this user use its socket? (INCUS_SOCKET or INCUS_DIR name another one)",
                esc(&socket),
                esc(&e.to_string())
            );
            return Exit::Failed;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let mut imp = match import::build(&live, &aliases, &opts) {
        Ok(i) => i,
        Err(import::SelectionError(msg)) => {
            eprintln!("error: {}", esc(&msg));
            return Exit::Failed;
        }
    };
    let name = if stdout {
        DEFAULT_OUTPUT.to_string()
    } else {
        args.output.file_name().map_or_else(
            || DEFAULT_OUTPUT.into(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    // Check it, plan it, and compare the plan with this Incus.
    let first = checked(&imp, &name, &facts);
    if first.compiled.has_errors() {
        return refused(&first);
    }
    let plan = match anklume_planner::plan(
        &first.compiled.ir,
        &first.compiled.provenance,
        &first.loaded.sources,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    let decisions = decide(&plan, &live);
    for (node, action) in plan.nodes.iter().zip(&decisions.actions) {
        annotate(&mut imp, &node.resource, node.domain.as_deref(), action);
    }
    let c = checked(&imp, &name, &facts);
    if c.compiled.has_errors() {
        return refused(&c);
    }
    print_diags(&c, DiagFormat::Text, false);
    for w in &imp.warnings {
        say(DiagFormat::Text, "warning", w);
    }
    let text = &c.loaded.sources.files[0].text;
    if stdout {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Exit::Failed;
        }
    } else if let Err(e) = write(&args.output, text, args.force) {
        eprintln!(
            "error: cannot write {}: {}",
            esc(&args.output.display().to_string()),
            esc(&e)
        );
        return Exit::Failed;
    }
    let machines: usize = imp.domains.iter().map(|d| d.machines.len()).sum();
    eprintln!(
        "imported {} domain(s), {machines} machine(s) into {} ({}; {} warning(s) about Incus objects)",
        imp.domains.len(),
        if stdout {
            "standard output".to_string()
        } else {
            esc(&args.output.display().to_string()).to_string()
        },
        summary(&c),
        imp.warnings.len()
    );
    if !stdout {
        eprintln!(
            "next: review it, then `anklume plan {0} -o plan.bin` and `anklume apply plan.bin --dry-run`",
            esc(&args.output.display().to_string())
        );
    }
    Exit::Ok
}

/// The header of the file.
fn header() -> Vec<String> {
    vec![
        format!(
            "Imported from Incus by `anklume import` (anklume {}).",
            env!("CARGO_PKG_VERSION")
        ),
        "Review it before applying. `guessed:` marks what Incus does not say; `not expressed:`"
            .into(),
        "what infra.yml cannot say (left as it is in Incus, not made again); `apply will`".into(),
        "what apply would still change. Otherwise apply only adopts these objects (adds its".into(),
        "user.anklume.* keys). Apply also loads the host isolation ruleset (traffic between".into(),
        "domains dropped unless a network policy allows it) and provisions the machines with"
            .into(),
        "Ansible: --no-nftables and --no-provision leave those out.".into(),
    ]
}

fn checked(imp: &Imported, name: &str, facts: &anklume_compiler::HostFacts) -> Compilation {
    let (head, root) = import::document(imp, &header());
    let text = yaml::emit(&head, &root);
    let loaded = anklume_schema::load_str(name, &text);
    let compiled = compile(&loaded, facts);
    Compilation { loaded, compiled }
}

fn refused(c: &Compilation) -> Exit {
    print_diags(c, DiagFormat::Text, false);
    eprintln!(
        "import failed: the imported file does not pass check ({}); nothing was written",
        summary(c)
    );
    Exit::Invalid
}

/// Read what import needs: apply's bulk read over every storage pool, and
/// the image aliases with their targets.
async fn read<A: Api>(incus: A) -> Result<(Live, Vec<Alias>), IncusError> {
    let pools = incus.get("/1.0/storage-pools?recursion=1").await?;
    let pools: Vec<String> = pools
        .metadata
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| str_of(p, "name").to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let live = live::read(&incus, &pools).await?;
    let aliases = incus.get("/1.0/images/aliases?recursion=1").await?;
    let aliases = aliases
        .metadata
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| Alias {
            name: str_of(a, "name").to_string(),
            target: str_of(a, "target").to_string(),
        })
        .collect();
    Ok((live, aliases))
}

fn change_text(c: &Change) -> String {
    let show = |v: &Option<String>| match v {
        None => "(none)".to_string(),
        Some(s) if s.is_empty() => "\"\"".to_string(),
        Some(s) => s.clone(),
    };
    format!("{}: {} -> {}", c.key, show(&c.old), show(&c.new))
}

/// What apply would still do to one node, as a comment where the node
/// comes from in the file, and a warning.
fn annotate(imp: &mut Imported, r: &Resource, domain: Option<&str>, action: &Action) {
    let what = match action {
        Action::Create => "create it".to_string(),
        Action::Update { changes } => {
            let shown: Vec<String> = changes
                .iter()
                .filter(|c| !c.key.starts_with("config.user.anklume."))
                .map(change_text)
                .collect();
            if shown.is_empty() {
                return;
            }
            format!("change {}", shown.join("; "))
        }
        _ => return,
    };
    let Some(d) = imp
        .domains
        .iter_mut()
        .find(|x| Some(x.name.as_str()) == domain)
    else {
        return;
    };
    let dname = d.name.clone();
    let (comments, subject, warn) = match r {
        Resource::Network(n) => (
            &mut d.comments,
            format!("the bridge {}", n.name),
            format!("domain {dname}"),
        ),
        Resource::Project(p) => (
            &mut d.comments,
            format!("the project {}", p.name),
            format!("domain {dname}"),
        ),
        Resource::Volume(v) => (
            &mut d.comments,
            format!("the volume {} (pool {})", v.name, v.pool),
            format!("domain {dname}"),
        ),
        Resource::Profile(p) => match d.profiles.iter_mut().find(|x| x.name == p.name) {
            Some(x) => (
                &mut x.comments,
                "this profile".to_string(),
                format!("domain {dname}, profile {}", p.name),
            ),
            None => return,
        },
        Resource::Instance(i) => match d.machines.iter_mut().find(|x| x.instance == i.name) {
            Some(x) => {
                let n = x.name.clone();
                (
                    &mut x.comments,
                    "this instance".to_string(),
                    format!("domain {dname}, machine {n}"),
                )
            }
            None => return,
        },
        Resource::Nftables(_) | Resource::Provision(_) => return,
    };
    comments.push(format!("apply will {what} ({subject})"));
    imp.warnings
        .push(format!("{warn}: apply will {what} ({subject})"));
}

/// Write `text` to `path` atomically (a temporary file beside it, then a
/// rename); without `force`, never over an existing file.
fn write(path: &Path, text: &str, force: bool) -> Result<(), String> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".anklume-import-")
        .tempfile_in(&dir)
        .map_err(|e| e.to_string())?;
    tmp.write_all(text.as_bytes())
        .and_then(|_| {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| e.to_string())?;
    if force {
        tmp.persist(path).map_err(|e| e.error.to_string())?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                "it exists (pass --force to replace it)".to_string()
            } else {
                e.error.to_string()
            }
        })?;
    }
    Ok(())
}
