//! `anklume status`: what is deployed. Compiles the sources into a plan in
//! memory (as `plan` does, nothing written), reads Incus and the host's
//! table as apply does, and shows per domain what is up to date, drifted,
//! missing, orphaned, and how far each machine is provisioned. The
//! comparison is apply's own (`anklume_executor::status`); this file only
//! groups and renders it. Read only: no lock, no journal, no write.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anklume_executor::decide::{Action, Change, Decisions, Orphan};
use anklume_executor::status::{self as st, Options};
use anklume_plan::{Kind, Plan};
use anklume_term::display as esc;
use serde::Serialize;

use super::apply::{changes_text, symbol};
use super::{load_and_compile, print_diags, summary, DiagFormat};
use crate::Exit;

/// The `schema` field of the JSON document.
pub const JSON_SCHEMA: &str = "anklume.status/v1";

/// Output format of `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// One block per domain, for people.
    Text,
    /// One JSON document (schema anklume.status/v1).
    Json,
}

/// What is deployed: Incus against the sources, per domain.
///
/// Compiles SOURCE into a plan in memory and compares it with Incus as
/// apply would: up to date, drifted (the keys), missing, orphaned, and
/// provisioning. Changes nothing. Exit status: 0 up to date, 1 invalid
/// source, 2 usage or I/O error (Incus unreachable), 3 not up to date.
#[derive(clap::Args)]
pub struct Args {
    /// infra.yml or infra/ (default: whichever exists here).
    pub source: Option<PathBuf>,
    /// Output format (diagnostics on stderr follow it, as with `check`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatusFormat,
    /// Only these domains (comma-separated, or repeated); the global block
    /// (the nftables ruleset) is left out.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub domain: Vec<String>,
    /// The Ansible tree, as for `plan --tree`: what the provisioning
    /// fingerprints are computed from.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub tree: PathBuf,
    /// Do not read the host nftables ruleset (reported not checked).
    #[arg(long)]
    pub no_nftables: bool,
    /// Also list the resources that are up to date (text format; JSON
    /// always lists every resource).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// The state of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Incus has it as the source says.
    UpToDate,
    /// It exists, and some declared setting differs (`changes`).
    Drifted,
    /// It does not exist: apply would create it.
    Missing,
    /// anklume manages it in Incus, and the source no longer has it.
    Orphaned,
    /// The instance records the current provisioning fingerprint.
    Provisioned,
    /// The instance records another fingerprint: its provisioning inputs
    /// changed since it was provisioned.
    NeedsProvisioning,
    /// The instance records no fingerprint (or does not exist yet).
    NotProvisioned,
    /// Not compared (`reason`).
    NotChecked,
}

impl State {
    fn words(self) -> &'static str {
        match self {
            State::UpToDate => "up to date",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Orphaned => "orphaned",
            State::Provisioned => "provisioned",
            State::NeedsProvisioning => "needs provisioning",
            State::NotProvisioned => "not provisioned",
            State::NotChecked => "not checked",
        }
    }

    /// Whether it makes the status "not up to date" (exit 3).
    fn differs(self) -> bool {
        !matches!(
            self,
            State::UpToDate | State::Provisioned | State::NotChecked
        )
    }
}

/// One resource: a plan node, or an orphan.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The plan node id (`instance/<project>/<name>`); for an orphan, the
    /// id the plan would give it.
    pub id: String,
    /// `network`, `project`, `profile`, `volume`, `instance`, `nftables`
    /// or `provision`.
    pub kind: &'static str,
    /// Its state.
    pub state: State,
    /// Drifted or needs provisioning: the keys that differ, as `apply
    /// --dry-run` shows them; otherwise empty.
    pub changes: Vec<Change>,
    /// Not checked: why; otherwise null.
    pub reason: Option<String>,
    /// An orphaned instance with `security.protection.delete` set.
    pub protected: bool,
}

/// How many resources are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Up to date.
    pub up_to_date: usize,
    /// Drifted.
    pub drifted: usize,
    /// Missing.
    pub missing: usize,
    /// Orphaned.
    pub orphaned: usize,
    /// Provisioned.
    pub provisioned: usize,
    /// Needs provisioning.
    pub needs_provisioning: usize,
    /// Not provisioned.
    pub not_provisioned: usize,
    /// Not checked.
    pub not_checked: usize,
}

impl Counts {
    fn add(&mut self, s: State) {
        *match s {
            State::UpToDate => &mut self.up_to_date,
            State::Drifted => &mut self.drifted,
            State::Missing => &mut self.missing,
            State::Orphaned => &mut self.orphaned,
            State::Provisioned => &mut self.provisioned,
            State::NeedsProvisioning => &mut self.needs_provisioning,
            State::NotProvisioned => &mut self.not_provisioned,
            State::NotChecked => &mut self.not_checked,
        } += 1;
    }

    fn of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Counts {
        let mut c = Counts::default();
        for e in entries {
            c.add(e.state);
        }
        c
    }

    fn merge(&mut self, o: &Counts) {
        self.up_to_date += o.up_to_date;
        self.drifted += o.drifted;
        self.missing += o.missing;
        self.orphaned += o.orphaned;
        self.provisioned += o.provisioned;
        self.needs_provisioning += o.needs_provisioning;
        self.not_provisioned += o.not_provisioned;
        self.not_checked += o.not_checked;
    }

    /// `3 up to date, 1 drifted; provisioning: 2 provisioned; 1 not
    /// checked`: the zero counts left out, except up to date.
    fn line(&self) -> String {
        let some = |pairs: &[(usize, &str)]| -> Vec<String> {
            pairs
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, w)| format!("{n} {w}"))
                .collect()
        };
        let mut out = format!("{} up to date", self.up_to_date);
        for part in some(&[
            (self.drifted, "drifted"),
            (self.missing, "missing"),
            (self.orphaned, "orphaned"),
        ]) {
            out.push_str(", ");
            out.push_str(&part);
        }
        let prov = some(&[
            (self.provisioned, "provisioned"),
            (self.needs_provisioning, "needs provisioning"),
            (self.not_provisioned, "not provisioned"),
        ]);
        if !prov.is_empty() {
            out.push_str("; provisioning: ");
            out.push_str(&prov.join(", "));
        }
        if self.not_checked > 0 {
            out.push_str(&format!("; {} not checked", self.not_checked));
        }
        out
    }
}

/// One domain's resources.
#[derive(Clone, Debug, Serialize)]
pub struct Domain {
    /// Its name.
    pub name: String,
    /// Whether the sources declare it (false: only orphans record it).
    pub in_source: bool,
    /// Whether it is planned: false when disabled in the sources
    /// (`enabled: false`: its objects in Incus are orphans), or not in them.
    pub enabled: bool,
    /// Its counts.
    pub summary: Counts,
    /// Plan nodes in plan order, then orphans.
    pub resources: Vec<Entry>,
}

/// What belongs to no domain: the nftables ruleset, and orphans that
/// record no domain.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Global {
    /// Its counts.
    pub summary: Counts,
    /// Plan nodes, then orphans.
    pub resources: Vec<Entry>,
}

/// A journal without an end.
#[derive(Clone, Debug, Serialize)]
pub struct Unfinished {
    /// Its timestamp.
    pub journal: String,
    /// Changes it started.
    pub started: usize,
    /// Changes that finished.
    pub finished: usize,
}

/// The whole status: the JSON document.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`JSON_SCHEMA`].
    pub schema: &'static str,
    /// Everything shown is up to date (exit 0).
    pub in_sync: bool,
    /// Counts over everything shown.
    pub summary: Counts,
    /// Domains: the source's in order, then those only orphans name.
    pub domains: Vec<Domain>,
    /// Not in any domain; `null` with `--domain`.
    pub global: Option<Global>,
    /// The newest apply journal has no end (an apply running now, or
    /// killed).
    pub unfinished_apply: Option<Unfinished>,
}

/// The id the plan gives an object of this kind.
fn orphan_id(o: &Orphan) -> String {
    match o.kind {
        "network" | "project" => format!("{}/{}", o.kind, o.name),
        _ => format!("{}/{}/{}", o.kind, o.project, o.name),
    }
}

fn entry(kind: Kind, action: &Action, nft_reason: &str) -> Entry {
    let provision = kind == Kind::Provision;
    let (state, changes, reason) = match action {
        Action::Unchanged if provision => (State::Provisioned, Vec::new(), None),
        Action::Unchanged => (State::UpToDate, Vec::new(), None),
        Action::Create if provision => (State::NotProvisioned, Vec::new(), None),
        Action::Create => (State::Missing, Vec::new(), None),
        Action::Update { changes } if provision => {
            (State::NeedsProvisioning, changes.clone(), None)
        }
        Action::Update { changes } | Action::Adopt { changes } => {
            (State::Drifted, changes.clone(), None)
        }
        Action::NotRun { reason } => {
            let why = if kind == Kind::Nftables {
                nft_reason.to_string()
            } else {
                reason.clone()
            };
            (State::NotChecked, Vec::new(), Some(why))
        }
    };
    Entry {
        id: String::new(),
        kind: kind.name(),
        state,
        changes,
        reason,
        protected: false,
    }
}

/// Group the decisions by domain: plan nodes by their domain, orphans by
/// the domain they record (none: global). `nft_reason` says why the
/// ruleset was not checked, when it was not. `only`: the domains to keep
/// (empty: all, and the global block). `disabled`: the domains the
/// sources declare with `enabled: false`.
pub fn report(
    plan: &Plan,
    decisions: &Decisions,
    nft_reason: &str,
    only: &[String],
    disabled: &[String],
    unfinished: Option<Unfinished>,
) -> Report {
    let mut order: Vec<String> = Vec::new();
    let mut by_domain: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut global = Global::default();
    for (node, action) in plan.nodes.iter().zip(&decisions.actions) {
        let mut e = entry(node.resource.kind(), action, nft_reason);
        e.id = node.id.clone();
        match &node.domain {
            Some(d) => {
                if !by_domain.contains_key(d) {
                    order.push(d.clone());
                }
                by_domain.entry(d.clone()).or_default().push(e);
            }
            None => global.resources.push(e),
        }
    }
    let planned = order.len();
    let mut orphan_domains: Vec<String> = Vec::new();
    for o in &decisions.orphans {
        let e = Entry {
            id: orphan_id(o),
            kind: o.kind,
            state: State::Orphaned,
            changes: Vec::new(),
            reason: None,
            protected: o.protected,
        };
        match &o.domain {
            Some(d) => {
                if !by_domain.contains_key(d) {
                    orphan_domains.push(d.clone());
                }
                by_domain.entry(d.clone()).or_default().push(e);
            }
            None => global.resources.push(e),
        }
    }
    orphan_domains.sort();
    order.extend(orphan_domains);
    let domains: Vec<Domain> = order
        .into_iter()
        .enumerate()
        .filter(|(_, name)| only.is_empty() || only.contains(name))
        .map(|(i, name)| {
            let resources = by_domain.remove(&name).unwrap_or_default();
            Domain {
                summary: Counts::of(&resources),
                in_source: i < planned || disabled.contains(&name),
                enabled: i < planned,
                name,
                resources,
            }
        })
        .collect();
    let global = only.is_empty().then(|| {
        global.summary = Counts::of(&global.resources);
        global
    });
    let mut total = Counts::default();
    for d in &domains {
        total.merge(&d.summary);
    }
    if let Some(g) = &global {
        total.merge(&g.summary);
    }
    let in_sync = domains
        .iter()
        .flat_map(|d| &d.resources)
        .chain(global.iter().flat_map(|g| &g.resources))
        .all(|e| !e.state.differs());
    Report {
        schema: JSON_SCHEMA,
        in_sync,
        summary: total,
        domains,
        global,
        unfinished_apply: unfinished,
    }
}

fn entry_line(e: &Entry) -> String {
    let mark = match e.state {
        State::Orphaned => '-',
        State::UpToDate | State::Provisioned => symbol(&Action::Unchanged),
        State::Missing | State::NotProvisioned => symbol(&Action::Create),
        State::Drifted | State::NeedsProvisioning => symbol(&Action::Update {
            changes: Vec::new(),
        }),
        State::NotChecked => symbol(&Action::NotRun {
            reason: String::new(),
        }),
    };
    let detail = match e.state {
        State::Drifted | State::NeedsProvisioning => format!(": {}", changes_text(&e.changes)),
        State::Missing => " (apply creates it)".into(),
        State::Orphaned if e.protected => {
            " (protected; managed by anklume, not in the source; `apply --prune --force` deletes it)".into()
        }
        State::Orphaned => {
            " (managed by anklume, not in the source; `apply --prune` deletes it)".into()
        }
        State::NotChecked => format!(": {}", esc(e.reason.as_deref().unwrap_or(""))),
        _ => String::new(),
    };
    format!("  {mark} {} {}{detail}\n", esc(&e.id), e.state.words())
}

/// The text rendering: one block per domain (a summary line, then the
/// resources not up to date; every resource with `verbose`), the global
/// block, and the totals.
pub fn render_text(r: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let block = |out: &mut String, head: String, resources: &[Entry]| {
        out.push_str(&head);
        for e in resources {
            if verbose || !matches!(e.state, State::UpToDate | State::Provisioned) {
                out.push_str(&entry_line(e));
            }
        }
    };
    for d in &r.domains {
        let note = match (d.in_source, d.enabled) {
            (_, true) => "",
            (true, false) => " (disabled in the source)",
            (false, false) => " (not in the source)",
        };
        block(
            &mut out,
            format!("{}{note}: {}\n", esc(&d.name), d.summary.line()),
            &d.resources,
        );
    }
    if let Some(g) = r.global.as_ref().filter(|g| !g.resources.is_empty()) {
        block(
            &mut out,
            format!("global: {}\n", g.summary.line()),
            &g.resources,
        );
    }
    out.push_str(&format!(
        "Status: {}: {}.\n",
        if r.in_sync {
            "up to date"
        } else {
            "not up to date"
        },
        r.summary.line()
    ));
    out
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let diags = match args.format {
        StatusFormat::Text => DiagFormat::Text,
        StatusFormat::Json => DiagFormat::Json,
    };
    let (c, facts) = match load_and_compile(args.source.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            super::say(diags, "error", &msg);
            return Exit::Failed;
        }
    };
    print_diags(&c, diags, false);
    if c.compiled.has_errors() {
        if diags == DiagFormat::Text {
            eprintln!("status aborted: {}", summary(&c));
        }
        return Exit::Invalid;
    }
    let file = match super::plan::plan_file(&c, &facts, Some(&args.tree), diags) {
        Ok(f) => f,
        Err(e) => {
            super::say(diags, "error", &e);
            return Exit::Failed;
        }
    };
    let disabled: Vec<String> = c
        .compiled
        .ir
        .domains
        .iter()
        .filter(|d| !d.enabled)
        .map(|d| d.name.clone())
        .collect();
    super::block_on(run_async(args, diags, file.plan, disabled))
}

async fn run_async(args: Args, diags: DiagFormat, plan: Plan, disabled: Vec<String>) -> Exit {
    let opts = Options {
        state_dir: anklume_executor::state::state_dir(),
        nft: (!args.no_nftables).then(anklume_executor::nft::system),
    };
    let status = match st::read(&super::incus(), &plan, &opts).await {
        Ok(s) => s,
        Err(e) => {
            super::say(diags, "error", &e.to_string());
            return Exit::Failed;
        }
    };
    let nft_reason = match &status.nft_unusable {
        _ if args.no_nftables => "--no-nftables".to_string(),
        Some(why) => format!("{why} (reading the table needs nft and root)"),
        None => String::new(),
    };
    let unfinished = status.unfinished.as_ref().map(|j| {
        let changes = j.changes();
        Unfinished {
            journal: j.ts.clone(),
            started: changes.len(),
            finished: changes.iter().filter(|c| c.1.is_some()).count(),
        }
    });
    // A name that is no domain of the sources nor of any orphan.
    let known = |n: &String| {
        plan.nodes.iter().any(|x| x.domain.as_ref() == Some(n))
            || disabled.contains(n)
            || status
                .decisions
                .orphans
                .iter()
                .any(|o| o.domain.as_ref() == Some(n))
    };
    let unknown: Vec<&String> = args.domain.iter().filter(|n| !known(n)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        super::say(
            diags,
            "error",
            &format!(
                "--domain {}: no such domain in the source, nor recorded by an orphan in Incus",
                names.join(",")
            ),
        );
        return Exit::Failed;
    }
    let r = report(
        &plan,
        &status.decisions,
        &nft_reason,
        &args.domain,
        &disabled,
        unfinished,
    );
    let written = super::show::to_stdout(|mut w| match args.format {
        StatusFormat::Text => {
            if let Some(u) = &r.unfinished_apply {
                eprintln!(
                    "warning: the apply journal {} has no end: an apply is running now, or it was killed ({} change(s) started, {} finished; `anklume rollback {}` undoes its completed part)",
                    esc(&u.journal),
                    u.started,
                    u.finished,
                    esc(&u.journal)
                );
            }
            w.write_all(render_text(&r, args.verbose).as_bytes())
        }
        StatusFormat::Json => anklume_plan::render::write_json_value(&mut w, &r),
    });
    match written {
        Exit::Ok if r.in_sync => Exit::Ok,
        Exit::Ok => Exit::Differs,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use anklume_executor::incus::fake::Fake;
    use anklume_plan::{Node, Resource};
    use serde_json::Value;

    use super::*;

    fn node(id: &str, domain: Option<&str>, resource: Resource) -> Node {
        Node {
            id: id.into(),
            domain: domain.map(str::to_string),
            origin: None,
            resource,
        }
    }

    fn cfg(pairs: &[(&str, &str)]) -> anklume_plan::Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn instance(project: &str, name: &str, note: &str) -> Resource {
        Resource::Instance(anklume_plan::Instance {
            project: project.into(),
            name: name.into(),
            instance_type: anklume_plan::InstanceType::Container,
            description: String::new(),
            source: anklume_plan::ImageSource::Local {
                alias: "img".into(),
            },
            profiles: vec!["default".into()],
            config: cfg(&[
                ("user.anklume.managed", "true"),
                ("user.anklume.domain", project),
                ("user.note", note),
            ]),
            devices: Default::default(),
            ip: None,
        })
    }

    fn provision(project: &str, name: &str, fp: &str) -> Resource {
        Resource::Provision(anklume_plan::Provision {
            host: name.into(),
            instance: name.into(),
            project: project.into(),
            roles: vec!["base_system".into()],
            inventory: String::new(),
            context: Default::default(),
            vars: Vec::new(),
            fingerprint: fp.into(),
        })
    }

    fn nftables() -> Resource {
        Resource::Nftables(anklume_plan::Nftables {
            table: "inet anklume".into(),
            lines: vec!["table inet anklume {".into(), "}".into()],
            paths: Vec::new(),
        })
    }

    /// Two domains in the fake Incus, as an apply left them, then changed
    /// by hand: a drifted key, a machine added to the source, one removed
    /// from it (and one of a domain removed whole), one never provisioned.
    async fn scene() -> (Plan, Decisions) {
        use anklume_executor::kind::{apply, RunContext};
        let fake = Fake::new().with_image("img");
        let ctx = RunContext::default();
        for name in ["pro", "lab", "gone"] {
            let project = Resource::Project(anklume_plan::Project {
                name: name.into(),
                description: String::new(),
                config: cfg(&[("features.images", "false"), ("features.profiles", "true")]),
                default_profile_devices: [(
                    "root".to_string(),
                    cfg(&[("type", "disk"), ("path", "/"), ("pool", "default")]),
                )]
                .into(),
            });
            apply(&fake, &project, true, &ctx).await.unwrap();
        }
        for r in [
            instance("pro", "pro-a", "hello"),
            instance("pro", "pro-old", "x"),
            instance("lab", "lab-a", "hi"),
            instance("gone", "gone-a", "x"),
        ] {
            apply(&fake, &r, true, &ctx).await.unwrap();
        }
        fake.set_object("/1.0/instances/pro-a?project=pro", |v| {
            v["config"]["user.note"] = "changed by hand".into();
            v["config"]["user.anklume.provisioned"] = "fp-pro-a".into();
        });
        fake.set_object("/1.0/instances/lab-a?project=lab", |v| {
            v["config"]["user.anklume.provisioned"] = "fp-lab-a".into();
        });
        let plan = Plan {
            nodes: vec![
                node(
                    "instance/pro/pro-a",
                    Some("pro"),
                    instance("pro", "pro-a", "hello"),
                ),
                node(
                    "instance/pro/pro-b",
                    Some("pro"),
                    instance("pro", "pro-b", "new"),
                ),
                node(
                    "instance/lab/lab-a",
                    Some("lab"),
                    instance("lab", "lab-a", "hi"),
                ),
                node(
                    "provision/pro-a",
                    Some("pro"),
                    provision("pro", "pro-a", "fp-pro-a"),
                ),
                node(
                    "provision/pro-b",
                    Some("pro"),
                    provision("pro", "pro-b", "fp-pro-b"),
                ),
                node(
                    "provision/lab-a",
                    Some("lab"),
                    provision("lab", "lab-a", "fp-lab-a"),
                ),
                node("nftables/anklume", None, nftables()),
            ],
            edges: Vec::new(),
        };
        fake.clear_log();
        let dir = tempfile::tempdir().unwrap();
        let s = st::read(
            &fake,
            &plan,
            &Options {
                state_dir: dir.path().to_path_buf(),
                nft: None,
            },
        )
        .await
        .unwrap();
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        (plan, s.decisions)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn groups_by_domain_and_orphans_by_their_recorded_domain() {
        let (plan, decisions) = rt().block_on(scene());
        let r = report(&plan, &decisions, "--no-nftables", &[], &[], None);
        let names: Vec<(&str, bool)> = r
            .domains
            .iter()
            .map(|d| (d.name.as_str(), d.in_source))
            .collect();
        assert_eq!(
            names,
            [("pro", true), ("lab", true), ("gone", false)],
            "source order, then orphan-only domains"
        );
        let pro = &r.domains[0];
        let states: Vec<(&str, State)> = pro
            .resources
            .iter()
            .map(|e| (e.id.as_str(), e.state))
            .collect();
        assert_eq!(
            states,
            [
                ("instance/pro/pro-a", State::Drifted),
                ("instance/pro/pro-b", State::Missing),
                ("provision/pro-a", State::Provisioned),
                ("provision/pro-b", State::NotProvisioned),
                ("instance/pro/pro-old", State::Orphaned),
            ]
        );
        assert_eq!(pro.resources[0].changes[0].key, "config.user.note");
        assert_eq!(
            pro.summary,
            Counts {
                drifted: 1,
                missing: 1,
                orphaned: 1,
                provisioned: 1,
                not_provisioned: 1,
                ..Counts::default()
            }
        );
        assert_eq!(r.domains[1].summary.up_to_date, 1);
        assert_eq!(r.domains[1].summary.provisioned, 1);
        assert_eq!(r.domains[2].resources[0].id, "instance/gone/gone-a");
        let g = r.global.as_ref().unwrap();
        assert_eq!(g.resources[0].state, State::NotChecked);
        assert_eq!(g.resources[0].reason.as_deref(), Some("--no-nftables"));
        assert!(!r.in_sync);
        assert_eq!(r.summary.orphaned, 2);

        // --domain keeps the named domains and drops the global block; the
        // verdict is about what is shown.
        let lab = report(&plan, &decisions, "", &["lab".to_string()], &[], None);
        assert_eq!(lab.domains.len(), 1);
        assert!(lab.global.is_none());
        assert!(lab.in_sync, "lab is up to date");
        let gone = report(&plan, &decisions, "", &["gone".to_string()], &[], None);
        assert!(!gone.in_sync);
        // A domain the sources disable: its objects are orphans, and its
        // block says why.
        let off = report(&plan, &decisions, "", &[], &["gone".to_string()], None);
        let d = &off.domains[2];
        assert_eq!(
            (d.name.as_str(), d.in_source, d.enabled),
            ("gone", true, false)
        );
        assert!(render_text(&off, false)
            .contains("gone (disabled in the source): 0 up to date, 1 orphaned\n"));
    }

    #[test]
    fn text_lists_what_is_not_up_to_date_and_json_has_stable_fields() {
        let (plan, decisions) = rt().block_on(scene());
        let r = report(&plan, &decisions, "--no-nftables", &[], &[], None);
        let text = render_text(&r, false);
        let expected = "\
pro: 0 up to date, 1 drifted, 1 missing, 1 orphaned; provisioning: 1 provisioned, 1 not provisioned
  ~ instance/pro/pro-a drifted: config.user.note: \"changed by hand\" -> \"hello\"
  + instance/pro/pro-b missing (apply creates it)
  + provision/pro-b not provisioned
  - instance/pro/pro-old orphaned (managed by anklume, not in the source; `apply --prune` deletes it)
lab: 1 up to date; provisioning: 1 provisioned
gone (not in the source): 0 up to date, 1 orphaned
  - instance/gone/gone-a orphaned (managed by anklume, not in the source; `apply --prune` deletes it)
global: 0 up to date; 1 not checked
  . nftables/anklume not checked: --no-nftables
Status: not up to date: 1 up to date, 1 drifted, 1 missing, 2 orphaned; provisioning: 2 provisioned, 1 not provisioned; 1 not checked.
";
        assert_eq!(text, expected);
        let verbose = render_text(&r, true);
        assert!(
            verbose.contains("  = instance/lab/lab-a up to date\n"),
            "{verbose}"
        );
        assert!(
            verbose.contains("  = provision/lab-a provisioned\n"),
            "{verbose}"
        );

        let mut buf = Vec::new();
        anklume_plan::render::write_json_value(&mut buf, &r).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        // The field names, sorted (serde_json's map is).
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let sorted = |names: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            keys(&v),
            sorted(&[
                "schema",
                "in_sync",
                "summary",
                "domains",
                "global",
                "unfinished_apply"
            ])
        );
        assert_eq!(v["schema"], JSON_SCHEMA);
        assert_eq!(v["in_sync"], false);
        assert_eq!(
            keys(&v["summary"]),
            sorted(&[
                "up_to_date",
                "drifted",
                "missing",
                "orphaned",
                "provisioned",
                "needs_provisioning",
                "not_provisioned",
                "not_checked"
            ])
        );
        let d = &v["domains"][0];
        assert_eq!(
            keys(d),
            sorted(&["name", "in_source", "enabled", "summary", "resources"])
        );
        assert_eq!(
            keys(&d["resources"][0]),
            sorted(&["id", "kind", "state", "changes", "reason", "protected"])
        );
        assert_eq!(d["resources"][0]["state"], "drifted");
        assert_eq!(d["resources"][0]["kind"], "instance");
        assert_eq!(
            d["resources"][0]["changes"][0],
            serde_json::json!({"key": "config.user.note", "old": "changed by hand", "new": "hello"})
        );
        assert_eq!(d["resources"][3]["state"], "not_provisioned");
        assert_eq!(d["resources"][4]["state"], "orphaned");
        assert_eq!(v["global"]["resources"][0]["state"], "not_checked");
        assert_eq!(v["unfinished_apply"], Value::Null);
    }

    #[test]
    fn a_needs_provisioning_instance_shows_the_fingerprints() {
        let e = entry(
            Kind::Provision,
            &Action::Update {
                changes: vec![Change {
                    key: "config.user.anklume.provisioned".into(),
                    old: Some("aaa".into()),
                    new: Some("bbb".into()),
                }],
            },
            "",
        );
        assert_eq!(e.state, State::NeedsProvisioning);
        let mut e = e;
        e.id = "provision/pro-a".into();
        assert_eq!(
            entry_line(&e),
            "  ~ provision/pro-a needs provisioning: config.user.anklume.provisioned: \"aaa\" -> \"bbb\"\n"
        );
    }
}
