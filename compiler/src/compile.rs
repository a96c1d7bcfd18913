//! From AST to IR: every rule of the validation contract, the decisions that
//! depart from v1, and the enrichment steps E1–E7, with all problems collected.
//!
//! Order: addressing (subnets) → per-domain and per-machine rules → enrichment
//! (openclaw, auto IPs, firewall VM, AI policy, resources, devices) → rules
//! that need the enriched data (names, IPs, references, mounts, GPU, AI access,
//! host subnets) → warnings. Nothing here panics on bad input: fields that
//! failed to read are absent, and every rule copes with that.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use anklume_schema::ast::{self, Ports, Reserve, TRUST_LEVELS};
use anklume_schema::{Diagnostic, Field, Loaded, Severity, Span, Value};

use crate::ir::{Domain, HostFacts, Ir, Machine, NestingContext, Policy, Provenance, SharedVolume};
use crate::render::{Capped, Omitted};

mod keys;

/// The result of compiling: the IR (meaningful only without errors), where
/// its parts come from, and every diagnostic.
#[derive(Debug)]
pub struct Compiled {
    /// The IR.
    pub ir: Ir,
    /// Spans of domains, machines and policies.
    pub provenance: Provenance,
    /// Errors, warnings and notices, in discovery order: at most
    /// [`MAX_PER_CODE`](crate::render::MAX_PER_CODE) of each code.
    pub diags: Vec<Diagnostic>,
    /// Per code, how many more diagnostics were found but not kept.
    pub omitted: Vec<Omitted>,
}

impl Compiled {
    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
            || self.omitted.iter().any(|o| o.severity == Severity::Error)
    }

    /// How many diagnostics of `severity` were found, omitted ones included.
    pub fn count(&self, severity: Severity) -> usize {
        self.diags.iter().filter(|d| d.severity == severity).count()
            + self
                .omitted
                .iter()
                .filter(|o| o.severity == severity)
                .map(|o| o.count)
                .sum::<usize>()
    }
}

/// Collects diagnostics: drops exact repeats (same code, message and place),
/// keeps the first [`MAX_PER_CODE`](crate::render::MAX_PER_CODE) of each
/// code and only counts the others, so memory stays bounded whatever the
/// input.
#[derive(Default)]
struct Collector {
    seen: HashSet<(&'static str, Option<Span>, u64)>,
    capped: Capped,
}

impl Collector {
    fn is_new(&mut self, d: &Diagnostic) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.message.hash(&mut h);
        self.seen
            .insert((d.code, d.primary.as_ref().map(|l| l.span), h.finish()))
    }

    fn push(&mut self, d: Diagnostic) {
        if self.is_new(&d) {
            self.capped.push(d);
        }
    }

    /// Like `push`, cloning only what is kept.
    fn push_ref(&mut self, d: &Diagnostic) {
        if self.is_new(d) {
            if self.capped.has_room(d.code) {
                self.capped.push(d.clone());
            } else {
                self.capped.add_omitted(d.code, d.severity, 1);
            }
        }
    }
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// v1's memory formatting: whole GiB, else whole MiB, else bytes.
pub fn fmt_memory(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{}GiB", bytes / GIB)
    } else if bytes >= MIB {
        format!("{}MiB", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

fn zone_index(trust: &str) -> i64 {
    match trust {
        "admin" => 0,
        "trusted" => 1,
        "untrusted" => 4,
        "disposable" => 5,
        _ => 2,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.display(),
    }
}

struct Cx<'a> {
    src: &'a ast::Infra,
    facts: &'a HostFacts,
    diags: Collector,
    /// Machine name spans (domain index → machine index → span).
    mspans: Vec<Vec<Span>>,
    /// Span of each IR machine's `ip` value when written.
    ipspans: Vec<Vec<Option<Span>>>,
}

impl Cx<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// Compile loaded sources with the given host facts.
pub fn compile(loaded: &Loaded, facts: &HostFacts) -> Compiled {
    let src = &loaded.infra;
    let mut diags = Collector::default();
    for d in &loaded.diags {
        diags.push_ref(d);
    }
    // What the loader only counted stays counted: totals are exact.
    for o in &loaded.omitted {
        diags.capped.add_omitted(o.code, o.severity, o.count);
    }
    let mut cx = Cx {
        src,
        facts,
        diags,
        mspans: Vec::new(),
        ipspans: Vec::new(),
    };
    let g = &src.global;
    let mut ir = Ir {
        project_name: src.project_name.get().cloned(),
        default_os_image: g.default_os_image.get().cloned(),
        default_connection: g.default_connection.get().cloned(),
        default_user: g.default_user.get().cloned(),
        firewall_mode: g.firewall_mode.or("host".into()),
        ..Ir::default()
    };
    if let Field::Null(sp) = g.addressing {
        cx.push(
            Diagnostic::error("E0202", "global.addressing must be a mapping, got null", sp)
                .with_help("write `addressing: {}` for zone addressing with defaults, or remove the key for legacy addressing"),
        );
    }
    // Any `addressing` key switches zone addressing on, even one whose value
    // was rejected: defaults fill in, so no legacy-mode errors follow.
    let default_addressing = ast::Addressing::default();
    let addressing =
        (!g.addressing.is_absent()).then(|| g.addressing.get().unwrap_or(&default_addressing));
    ir.addressing_raw = g.addressing.get().map(|a| a.raw.clone());
    if addressing.is_none() {
        ir.base_subnet = Some(g.base_subnet.or("10.100".into()));
    }
    ir.prefix = match (g.nesting_prefix.get(), facts.absolute_level) {
        (Some(false), _) => String::new(),
        (_, Some(n)) if n > 0 => format!("{n:03}-"),
        _ => String::new(),
    };

    ir.host_context = NestingContext {
        absolute_level: facts.absolute_level.unwrap_or(0),
        relative_level: facts.relative_level.unwrap_or(0),
        vm_nested: facts.vm_nested.unwrap_or(false),
        yolo: facts.yolo,
    };

    let subnets = compute_subnets(&mut cx, addressing);
    build_domains(&mut cx, &mut ir, &subnets);
    domain_rules(&mut cx, &ir);
    // Enrichment.
    enrich_openclaw(&mut cx, &mut ir);
    if addressing.is_some() {
        enrich_auto_ips(&mut cx, &mut ir, &subnets);
    }
    if ir.firewall_mode == "vm" {
        enrich_firewall(&mut cx, &mut ir, &subnets);
    }
    ir.policies = build_policies(&mut cx);
    enrich_ai_policy(&mut cx, &mut ir);
    if let Some(rp) = g.resource_policy.get() {
        enrich_resources(&mut cx, &mut ir, rp);
    }
    ir.shared_volumes = build_volumes(&cx);
    enrich_devices(&mut cx, &mut ir);
    // Rules on the enriched data.
    check_names(&mut cx, &ir);
    check_reserved_names(&mut cx, &ir);
    check_name_lengths(&mut cx, &ir);
    check_control_chars(&mut cx);
    check_incus_object_names(&mut cx);
    keys::check_incus_keys(&mut cx);
    check_ips(&mut cx, &ir, &subnets);
    check_policies(&mut cx, &ir);
    check_volumes(&mut cx, &ir);
    check_gpu(&mut cx, &ir);
    check_ai_access(&mut cx, &ir);
    check_host_subnets(&mut cx, &ir, &subnets);
    warn_disabled_refs(&mut cx, &ir);

    let mut images: Vec<String> = ir
        .domains
        .iter()
        .flat_map(|d| d.machines.iter())
        .filter_map(|m| m.os_image.clone())
        .filter(|s| !s.is_empty())
        .collect();
    images.sort();
    images.dedup();
    ir.images = images;

    let provenance = Provenance {
        domains: src.domains.iter().map(|d| d.name.span).collect(),
        machines: cx.mspans.clone(),
        policies: src
            .network_policies
            .iter()
            .map(|p| p.span)
            .chain(std::iter::repeat(Span::NONE))
            .take(ir.policies.len())
            .collect(),
    };
    let (diags, omitted) = cx.diags.capped.finish();
    Compiled {
        ir,
        provenance,
        diags,
        omitted,
    }
}

/// Per domain (by index): the first three octets of its /24, when computable.
type Subnets = Vec<Option<[u8; 3]>>;

fn compute_subnets(cx: &mut Cx, addressing: Option<&ast::Addressing>) -> Subnets {
    let src = cx.src;
    let mut out: Subnets = vec![None; src.domains.len()];
    match addressing {
        Some(a) => {
            let bo = a
                .base_octet
                .get()
                .copied()
                .filter(|b| *b == 10)
                .unwrap_or(10);
            let zone_base = a.zone_base.or(100);
            let step = a.zone_step.or(10);
            let trust = |d: &ast::Domain| -> String { d.trust_level.or("semi-trusted".into()) };
            // Group domain indices by zone, names in code-point order.
            let mut zones: Vec<(&str, Vec<usize>)> =
                TRUST_LEVELS.iter().map(|t| (*t, Vec::new())).collect();
            for (i, d) in src.domains.iter().enumerate() {
                let t = trust(d);
                let t = t.as_str();
                if let Some(z) = zones.iter_mut().find(|(n, _)| *n == t) {
                    z.1.push(i);
                }
            }
            for (zone, mut idx) in zones {
                idx.sort_by(|a, b| src.domains[*a].name.text.cmp(&src.domains[*b].name.text));
                let so = zone_base + zone_index(zone) * step;
                let mut taken: HashMap<i64, usize> = HashMap::new();
                let mut seq: Vec<(usize, i64)> = Vec::new();
                // Explicit ids first, in declaration order: a clash blames the
                // later domain.
                let mut declared = idx.clone();
                declared.sort_unstable();
                for &i in &declared {
                    if let Field::Set(sid, sp) = src.domains[i].subnet_id {
                        if let Some(&other) = taken.get(&sid) {
                            let d = &src.domains[i];
                            cx.push(
                                Diagnostic::error(
                                    "E0401",
                                    format!(
                                        "Domain '{}': subnet_id {sid} already used by '{}' in zone '{zone}'",
                                        d.name.text, src.domains[other].name.text
                                    ),
                                    sp,
                                )
                                .label("already taken in this zone")
                                .with_secondary(
                                    src.domains[other].subnet_id.span().unwrap_or(Span::NONE),
                                    format!("used by '{}' here", src.domains[other].name.text),
                                )
                                .with_help("pick a free subnet_id, or remove it to let anklume choose"),
                            );
                        } else {
                            taken.insert(sid, i);
                            seq.push((i, sid));
                        }
                    }
                }
                let mut counter = 0i64;
                for &i in &idx {
                    if src.domains[i].subnet_id.get().is_some() {
                        continue;
                    }
                    while taken.contains_key(&counter) {
                        counter += 1;
                    }
                    taken.insert(counter, i);
                    seq.push((i, counter));
                    counter += 1;
                }
                for (i, s) in seq {
                    let d = &src.domains[i];
                    if so > 255 || s > 255 {
                        let at = d.trust_level.span().unwrap_or(d.name.span);
                        cx.push(
                            Diagnostic::error(
                                "E0406",
                                format!(
                                    "Domain '{}': zone '{zone}' gives the subnet {bo}.{so}.{s}.0/24, past 255",
                                    d.name.text
                                ),
                                at,
                            )
                            .label("this zone's addresses do not exist")
                            .with_help(if so > 255 {
                                let k = zone_index(zone);
                                let max_base = 255 - k * step;
                                if max_base >= 0 {
                                    format!("lower global.addressing.zone_base to at most {max_base} (or lower zone_step)")
                                } else {
                                    format!(
                                        "lower global.addressing.zone_step to at most {} (zone '{zone}' is {k} steps above zone_base)",
                                        (255 - zone_base) / k
                                    )
                                }
                            } else {
                                "too many domains in this zone: move some to another trust level".into()
                            }),
                        );
                        continue;
                    }
                    out[i] = Some([bo as u8, so as u8, s as u8]);
                }
            }
        }
        None => {
            let base = src.global.base_subnet.or("10.100".into());
            let (a, b) = base
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
                .unwrap_or((10, 100));
            let mut taken: HashMap<i64, usize> = HashMap::new();
            for (i, d) in src.domains.iter().enumerate() {
                match d.subnet_id {
                    Field::Set(sid, sp) => {
                        if let Some(&other) = taken.get(&sid) {
                            cx.push(
                                Diagnostic::error(
                                    "E0401",
                                    format!(
                                        "Domain '{}': subnet_id {sid} already used by '{}'",
                                        d.name.text, src.domains[other].name.text
                                    ),
                                    sp,
                                )
                                .label("already taken")
                                .with_secondary(
                                    src.domains[other].subnet_id.span().unwrap_or(Span::NONE),
                                    format!("used by '{}' here", src.domains[other].name.text),
                                )
                                .with_help("each domain needs its own subnet_id"),
                            );
                        } else {
                            taken.insert(sid, i);
                            out[i] = Some([a, b, sid as u8]);
                        }
                    }
                    Field::Null(_) | Field::Absent => {
                        cx.push(
                            Diagnostic::error("E0402", format!("Domain '{}': missing subnet_id", d.name.text), d.name.span)
                                .label("no subnet_id")
                                .with_help(format!(
                                    "add `subnet_id: <0-254>` (its /24 is {base}.<subnet_id>.0), or switch to zone addressing with `global.addressing: {{}}`"
                                )),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn build_domains(cx: &mut Cx, ir: &mut Ir, subnets: &Subnets) {
    let src = cx.src;
    let addressing = !src.global.addressing.is_absent();
    for (di, d) in src.domains.iter().enumerate() {
        let subnet = subnets[di].unwrap_or([0, 0, 0]);
        let provider = d.ai_provider.or("local".into());
        let sanitize = match &d.ai_sanitize {
            Field::Set(v, _) => v.clone(),
            _ => Value::Bool(provider == "cloud" || provider == "local-first"),
        };
        let ephemeral = d.ephemeral.or(false);
        let trust_level = if addressing {
            Some(d.trust_level.or("semi-trusted".into()))
        } else {
            d.trust_level.get().cloned()
        };
        let mut dom = Domain {
            name: d.name.text.clone(),
            description: match &d.description {
                Field::Absent => Some(String::new()),
                f => f.get().cloned(),
            },
            enabled: d.enabled.or(true),
            ephemeral,
            trust_level,
            openclaw: d.openclaw.or(false),
            ai_provider: provider,
            ai_sanitize: sanitize,
            subnet,
            subnet_id: subnet[2] as i64,
            incus_project: format!("{}{}", ir.prefix, d.name.text),
            network_name: format!("{}net-{}", ir.prefix, d.name.text),
            profiles: match &d.profiles_raw {
                Field::Set(v, _) if v.is_truthy() => Some(v.clone()),
                _ => None,
            },
            machines: Vec::new(),
        };
        if !addressing {
            dom.subnet_id = d.subnet_id.or(subnet[2] as i64);
        }
        let mut spans = Vec::new();
        let mut ipspans = Vec::new();
        for m in &d.machines {
            let ip = m.ip.get().filter(|s| !s.is_empty()).cloned();
            dom.machines.push(Machine {
                name: m.name.text.clone(),
                instance_name: format!("{}{}", ir.prefix, m.name.text),
                kind: m.kind.or("lxc".into()),
                description: match &m.description {
                    Field::Absent => Some(String::new()),
                    f => f.get().cloned(),
                },
                ephemeral: m.ephemeral.get().copied().unwrap_or(ephemeral),
                os_image: match &m.os_image {
                    Field::Absent => ir.default_os_image.clone(),
                    f => f.get().cloned(),
                },
                ip,
                gpu: m.gpu.get().copied(),
                profiles: m
                    .profiles
                    .get()
                    .map(|v| v.iter().map(|(s, _)| s.clone()).collect()),
                config: m
                    .config
                    .get()
                    .map(|v| v.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect()),
                devices: match &m.devices {
                    Field::Set(devs, _) => Some(
                        devs.iter()
                            .map(|dv| (dv.name.text.clone(), dv.raw.clone()))
                            .collect(),
                    ),
                    _ => None,
                },
                storage_volumes: m.storage_volumes.get().cloned(),
                roles: m
                    .roles
                    .get()
                    .map(|v| v.iter().map(|(s, _)| s.clone()).collect()),
                boot_autostart: m.boot_autostart.get().copied(),
                boot_priority: m.boot_priority.get().copied(),
                snapshots_schedule: m.snapshots_schedule.get().cloned(),
                snapshots_expiry: m.snapshots_expiry.get().cloned(),
                weight: m.weight.or(1),
                auto: false,
            });
            spans.push(m.name.span);
            ipspans.push(m.ip.span());
        }
        ir.domains.push(dom);
        cx.mspans.push(spans);
        cx.ipspans.push(ipspans);
    }
}

fn domain_rules(cx: &mut Cx, ir: &Ir) {
    let src = cx.src;
    for (di, d) in src.domains.iter().enumerate() {
        let dom = &ir.domains[di];
        if dom.network_name.len() > 15 {
            cx.push(
                Diagnostic::error(
                    "E0408",
                    format!(
                        "Domain '{}': bridge name '{}' is {} characters, over Linux's 15-character limit",
                        d.name.text,
                        dom.network_name,
                        dom.network_name.len()
                    ),
                    d.name.span,
                )
                .label("the bridge is named after the domain")
                .with_help(format!(
                    "shorten the domain name to at most {} characters",
                    15usize.saturating_sub(dom.network_name.len() - d.name.text.len())
                )),
            );
        }
        let profile_names: Vec<&str> = d.profiles.iter().map(|p| p.name.text.as_str()).collect();
        for m in &d.machines {
            if let Field::Set(list, _) = &m.profiles {
                for (p, sp) in list {
                    if p != "default" && !profile_names.contains(&p.as_str()) {
                        let mut diag = Diagnostic::error(
                            "E0303",
                            format!(
                                "Machine '{}': profile '{p}' not defined in domain '{}'",
                                m.name.text, d.name.text
                            ),
                            *sp,
                        )
                        .label("no such profile in this domain")
                        .with_secondary(d.name.span, "profiles are looked up in this domain");
                        diag = match anklume_schema::diag::did_you_mean(
                            p,
                            profile_names.iter().copied().chain(["default"]),
                        ) {
                            Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                            None => diag.with_help(format!(
                                "define it under domains.{}.profiles, or use `default`",
                                d.name.text
                            )),
                        };
                        cx.push(diag);
                    }
                }
                let has_default = list.iter().any(|(p, _)| p == "default");
                let own = m.devices.get().map(|devs| {
                    let root = devs.iter().any(|dv| {
                        dv.kind == "disk" && dv.raw.get("path").and_then(Value::as_str) == Some("/")
                    });
                    let nic = devs.iter().any(|dv| dv.kind == "nic");
                    root && nic
                });
                if !has_default && own != Some(true) {
                    let sp = m.profiles.span().unwrap_or(m.name.span);
                    cx.push(
                        Diagnostic::warning(
                            "W0504",
                            format!("Machine '{}': profiles omit 'default', so it gets no network card and no root disk", m.name.text),
                            sp,
                        )
                        .label("`default` is not in this list")
                        .with_help("add `default` to the list, or declare the machine's own root disk and nic devices"),
                    );
                }
            }
            // Privileged LXC policy.
            let privileged = m.config.get().and_then(|c| {
                c.iter()
                    .find(|(k, _, _)| k == "security.privileged")
                    .map(|(_, v, sp)| (value_text(v).to_lowercase() == "true", *sp))
            });
            if let Some((true, sp)) = privileged {
                if m.kind.or("lxc".into()) == "lxc" && cx.facts.vm_nested == Some(false) {
                    if cx.facts.yolo {
                        cx.push(
                            Diagnostic::warning(
                                "W0501",
                                format!("YOLO: Machine '{}' has security.privileged=true on LXC without VM isolation. This is unsafe for production.", m.name.text),
                                sp,
                            )
                            .with_help("run it as a VM (`type: vm`) for real isolation"),
                        );
                    } else {
                        cx.push(
                            Diagnostic::error(
                                "E0504",
                                format!("Machine '{}': security.privileged=true on LXC is forbidden when vm_nested=false (no VM in parent chain)", m.name.text),
                                sp,
                            )
                            .label("privileged container without a VM boundary")
                            .with_help("use `type: vm`, or write `true` to the `yolo` context file (/etc/anklume/yolo, or $ANKLUME_CONTEXT_DIR/yolo) to accept the risk"),
                        );
                    }
                }
            }
        }
    }
}

fn enrich_openclaw(cx: &mut Cx, ir: &mut Ir) {
    for (di, dom) in ir.domains.iter_mut().enumerate() {
        if !dom.openclaw || !dom.enabled {
            continue;
        }
        let name = format!("{}-openclaw", dom.name);
        if dom.machines.iter().any(|m| m.name == name) {
            continue;
        }
        dom.machines.push(Machine {
            instance_name: format!("{}{}", ir.prefix, name),
            kind: "lxc".into(),
            description: Some(format!(
                "OpenClaw AI assistant for {} (auto-created)",
                dom.name
            )),
            ephemeral: false,
            os_image: ir.default_os_image.clone(),
            roles: Some(vec!["base_system".into(), "openclaw_server".into()]),
            weight: 1,
            auto: true,
            name: name.clone(),
            ..Machine::default()
        });
        // An auto-created machine's place is the setting that creates it.
        let at = cx.src.domains[di].openclaw.span().unwrap_or(Span::NONE);
        cx.mspans[di].push(at);
        cx.ipspans[di].push(None);
        cx.push(Diagnostic::new(
            "I0001",
            Severity::Info,
            format!(
                "openclaw: true on domain '{}' — auto-created {name}",
                dom.name
            ),
            at,
        ));
    }
}

fn enrich_auto_ips(cx: &mut Cx, ir: &mut Ir, subnets: &Subnets) {
    for (di, dom) in ir.domains.iter_mut().enumerate() {
        if subnets[di].is_none() {
            continue;
        }
        let [a, b, c] = dom.subnet;
        let prefix = format!("{a}.{b}.{c}.");
        let mut used: HashSet<u32> = dom
            .machines
            .iter()
            .filter_map(|m| m.ip.as_deref()?.strip_prefix(&prefix)?.parse().ok())
            .collect();
        let mut next = 1u32;
        for (mi, m) in dom.machines.iter_mut().enumerate() {
            if m.ip.is_some() {
                continue;
            }
            while used.contains(&next) && next <= 99 {
                next += 1;
            }
            if next > 99 {
                let at = cx.mspans[di][mi];
                let at = if at.is_real() {
                    at
                } else {
                    cx.src.domains[di].name.span
                };
                cx.push(
                    Diagnostic::error(
                        "E0407",
                        format!("Domain '{}' ran out of static IPs (.1-.99) for machine '{}'", dom.name, m.name),
                        at,
                    )
                    .with_help("split the domain in two, or give some machines explicit addresses in .200-.249 (.100-.199 is the DHCP range)"),
                );
                break;
            }
            m.ip = Some(format!("{prefix}{next}"));
            used.insert(next);
            next += 1;
        }
    }
}

fn enrich_firewall(cx: &mut Cx, ir: &mut Ir, subnets: &Subnets) {
    let declared = ir.domains.iter().any(|d| {
        d.machines
            .iter()
            .any(|m| m.name == "anklume-firewall" || m.name == "sys-firewall")
    });
    if declared {
        return;
    }
    let Some(ai) = ir.domains.iter().position(|d| d.name == "anklume") else {
        let at = cx.src.global.firewall_mode.span().unwrap_or(Span::NONE);
        cx.push(
            Diagnostic::error(
                "E0505",
                "firewall_mode is 'vm' but no 'anklume' domain exists. Cannot auto-create anklume-firewall.",
                at,
            )
            .label("needs an `anklume` domain")
            .with_help("add an `anklume` domain (trust_level: admin), or declare anklume-firewall yourself"),
        );
        return;
    };
    let [a, b, c] = match subnets[ai] {
        Some(s) => s,
        None => return,
    };
    let ip = format!("{a}.{b}.{c}.253");
    let dom = &mut ir.domains[ai];
    dom.machines.push(Machine {
        name: "anklume-firewall".into(),
        instance_name: format!("{}anklume-firewall", ir.prefix),
        kind: "vm".into(),
        description: Some("Centralized firewall VM (auto-created by generator)".into()),
        ephemeral: false,
        os_image: ir.default_os_image.clone(),
        ip: Some(ip.clone()),
        config: Some(vec![
            ("limits.cpu".into(), Value::str("2")),
            ("limits.memory".into(), Value::str("2GiB")),
        ]),
        roles: Some(vec!["base_system".into(), "firewall_router".into()]),
        weight: 1,
        auto: true,
        ..Machine::default()
    });
    let at = cx.src.global.firewall_mode.span().unwrap_or(Span::NONE);
    cx.mspans[ai].push(at);
    cx.ipspans[ai].push(None);
    cx.push(Diagnostic::new(
        "I0002",
        Severity::Info,
        format!(
            "firewall_mode is 'vm' — auto-created anklume-firewall in anklume domain (ip: {ip})"
        ),
        at,
    ));
}

fn build_policies(cx: &mut Cx) -> Vec<Policy> {
    cx.src
        .network_policies
        .iter()
        .map(|p| Policy {
            description: p.description.get().cloned(),
            from: p.from.get().cloned().unwrap_or_default(),
            to: p.to.get().cloned().unwrap_or_default(),
            ports: match p.ports.get() {
                Some(Ports::List(l)) => Some(l.iter().map(|(v, _)| *v).collect()),
                _ => None,
            },
            protocol: p.protocol.or("tcp".into()),
            bidirectional: p.bidirectional.or(false),
            raw: p.raw.clone(),
        })
        .collect()
}

fn enrich_ai_policy(cx: &mut Cx, ir: &mut Ir) {
    let g = &cx.src.global;
    if g.ai_access_policy.get().map(String::as_str) != Some("exclusive") {
        return;
    }
    // Only a valid client domain gets a policy (the errors say the rest).
    let Some(default) = g
        .ai_access_default
        .get()
        .filter(|s| *s != "ai-tools" && ir.domains.iter().any(|d| &&d.name == s))
    else {
        return;
    };
    if !ir.domains.iter().any(|d| d.name == "ai-tools")
        || ir.policies.iter().any(|p| p.to == "ai-tools")
    {
        return;
    }
    let description = format!("AI access: {default} -> ai-tools (auto-created)");
    ir.policies.push(Policy {
        description: Some(description.clone()),
        from: default.clone(),
        to: "ai-tools".into(),
        ports: None,
        protocol: "tcp".into(),
        bidirectional: true,
        raw: Value::Map(vec![
            (Value::str("description"), Value::str(description)),
            (Value::str("from"), Value::str(default.clone())),
            (Value::str("to"), Value::str("ai-tools")),
            (Value::str("ports"), Value::str("all")),
            (Value::str("bidirectional"), Value::Bool(true)),
        ]),
    });
    cx.push(Diagnostic::new(
        "I0003",
        Severity::Info,
        format!("ai_access_policy is 'exclusive' — auto-created network policy from '{default}' to 'ai-tools'"),
        g.ai_access_policy.span().unwrap_or(Span::NONE),
    ));
}

fn config_get<'a>(config: &'a Option<Vec<(String, Value)>>, key: &str) -> Option<&'a Value> {
    config
        .as_ref()?
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn enrich_resources(cx: &mut Cx, ir: &mut Ir, rp: &ast::ResourcePolicy) {
    let at = cx.src.global.resource_policy.span().unwrap_or(Span::NONE);
    let (Some(host_cpu), Some(host_mem)) = (cx.facts.cpu, cx.facts.memory) else {
        cx.push(
            Diagnostic::warning(
                "W0505",
                "Could not detect host resources, skipping resource allocation.",
                at,
            )
            .with_help("make Incus reachable or /proc readable, or set limits on each machine"),
        );
        return;
    };
    let cpu_reserve = match rp.reserve_cpu.get() {
        None => host_cpu * 20.0 / 100.0,
        Some(Reserve::Percent(p)) => host_cpu * (*p as f64) / 100.0,
        Some(Reserve::Number(n)) => *n,
        Some(Reserve::Bytes(b)) => *b as f64,
    };
    let mem_reserve = match rp.reserve_memory.get() {
        None => (host_mem as f64 * 20.0 / 100.0).floor() as u64,
        Some(Reserve::Percent(p)) => (host_mem as f64 * (*p as f64) / 100.0).floor() as u64,
        Some(Reserve::Number(n)) => *n as u64,
        Some(Reserve::Bytes(b)) => *b,
    };
    let available_cpu = host_cpu - cpu_reserve;
    let available_mem = host_mem as i128 - mem_reserve as i128;
    if available_cpu <= 0.0 || available_mem <= 0 {
        cx.push(
            Diagnostic::warning(
                "W0506",
                "Host reserve exceeds available resources, skipping resource allocation.",
                at,
            )
            .with_help("lower global.resource_policy.host_reserve"),
        );
        return;
    }
    let available_mem = available_mem as u64;
    let equal = rp.mode.get().map(String::as_str) == Some("equal");
    let count_mode = rp.cpu_mode.get().map(String::as_str) == Some("count");
    // Explicit limits are reserved before sharing (D15).
    let mut explicit_cpu = 0.0f64;
    let mut explicit_mem = 0u64;
    let mut cpu_set = Vec::new();
    let mut mem_set = Vec::new();
    for (di, d) in ir.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            let k = if equal { 1.0 } else { m.weight as f64 };
            match (
                config_get(&m.config, "limits.cpu"),
                config_get(&m.config, "limits.cpu.allowance"),
            ) {
                (None, None) => cpu_set.push((di, mi, k)),
                (Some(v), _) => {
                    if let Ok(n) = value_text(v).parse::<i64>() {
                        explicit_cpu += n as f64;
                    }
                }
                (None, Some(v)) => {
                    if let Some(p) = value_text(v)
                        .strip_suffix('%')
                        .and_then(|p| p.parse::<i64>().ok())
                    {
                        explicit_cpu += p as f64 * host_cpu / 100.0;
                    }
                }
            }
            match config_get(&m.config, "limits.memory") {
                None => mem_set.push((di, mi, k)),
                Some(v) => explicit_mem += ast::parse_memory(&value_text(v)).unwrap_or(0),
            }
        }
    }
    let pool_cpu = (available_cpu - explicit_cpu).max(0.0);
    let pool_mem = available_mem.saturating_sub(explicit_mem);
    let w_cpu: f64 = cpu_set.iter().map(|x| x.2).sum();
    let w_mem: f64 = mem_set.iter().map(|x| x.2).sum();
    for (di, mi, k) in cpu_set {
        let share = pool_cpu * k / w_cpu;
        let (key, val) = if count_mode {
            ("limits.cpu", format!("{}", (share.floor() as i64).max(1)))
        } else {
            (
                "limits.cpu.allowance",
                format!("{}%", ((share / host_cpu * 100.0).floor() as i64).max(1)),
            )
        };
        let m = &mut ir.domains[di].machines[mi];
        m.config
            .get_or_insert_with(Vec::new)
            .push((key.into(), Value::Str(val)));
    }
    for (di, mi, k) in mem_set {
        let bytes = ((pool_mem as f64 * k / w_mem).floor() as u64).max(128 * MIB);
        let m = &mut ir.domains[di].machines[mi];
        m.config
            .get_or_insert_with(Vec::new)
            .push(("limits.memory".into(), Value::Str(fmt_memory(bytes))));
    }
    if rp.memory_enforce.get().map(String::as_str) != Some("hard") {
        for m in ir.domains.iter_mut().flat_map(|d| d.machines.iter_mut()) {
            if let Some(c) = &mut m.config {
                if c.iter().any(|(k, _)| k == "limits.memory")
                    && !c.iter().any(|(k, _)| k == "limits.memory.enforce")
                {
                    c.push(("limits.memory.enforce".into(), Value::str("soft")));
                }
            }
        }
    }
    // Overcommit check, always (D15).
    let mut cores = 0i64;
    let mut pct = 0i64;
    let mut mem = 0u64;
    for m in ir.domains.iter().flat_map(|d| d.machines.iter()) {
        if let Some(v) = config_get(&m.config, "limits.cpu") {
            cores += value_text(v).parse::<i64>().unwrap_or(0);
        } else if let Some(v) = config_get(&m.config, "limits.cpu.allowance") {
            pct += value_text(v)
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
        }
        if let Some(v) = config_get(&m.config, "limits.memory") {
            mem += ast::parse_memory(&value_text(v)).unwrap_or(0);
        }
    }
    let max_pct = available_cpu / host_cpu * 100.0;
    let mut parts = Vec::new();
    if cores as f64 > available_cpu * 1.001 {
        parts.push(format!("CPU: {cores} cores > {available_cpu:.0} available"));
    }
    if pct as f64 > max_pct * 1.001 {
        parts.push(format!("CPU allowance: {pct}% > {max_pct:.0}% available"));
    }
    if mem > available_mem {
        parts.push(format!(
            "Memory: {} > {}",
            fmt_memory(mem),
            fmt_memory(available_mem)
        ));
    }
    if !parts.is_empty() {
        let parts = parts.join("; ");
        if rp.overcommit.or(false) {
            cx.push(
                Diagnostic::warning("W0507", format!("Resource overcommit: {parts}"), at)
                    .with_help("machines may starve each other under load"),
            );
        } else {
            cx.push(
                Diagnostic::error("E0506", format!("Resource overcommit: {parts}"), at)
                    .label("the machines' limits exceed what the host can give")
                    .with_help("lower the explicit limits, lower host_reserve, or set resource_policy.overcommit: true to allow"),
            );
        }
    }
}

fn build_volumes(cx: &Cx) -> Vec<SharedVolume> {
    let g = &cx.src.global;
    let base = g
        .shared_volumes_base
        .get()
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "/srv/anklume/shares".into());
    cx.src
        .shared_volumes
        .iter()
        .map(|v| SharedVolume {
            name: v.name.text.clone(),
            source: v
                .source
                .get()
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("{base}/{}", v.name.text)),
            path: v
                .path
                .get()
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("/shared/{}", v.name.text)),
            shift: v.shift.or(true),
            propagate: v.propagate.or(false),
            consumers: v
                .consumers
                .iter()
                .map(|(n, rw)| (n.text.clone(), *rw))
                .collect(),
        })
        .collect()
}

/// For one volume: machine (domain index, machine index) → read-write, in
/// resolution order (domain consumers, then machine overrides).
fn resolve_consumers(ir: &Ir, v: &SharedVolume) -> Vec<((usize, usize), bool, String)> {
    let mut out: Vec<((usize, usize), bool, String)> = Vec::new();
    let domain_names: HashSet<&str> = ir.domains.iter().map(|d| d.name.as_str()).collect();
    for (c, rw) in &v.consumers {
        if let Some(di) = ir.domains.iter().position(|d| &d.name == c) {
            for mi in 0..ir.domains[di].machines.len() {
                match out.iter_mut().find(|x| x.0 == (di, mi)) {
                    Some(x) => x.1 = *rw,
                    None => out.push(((di, mi), *rw, c.clone())),
                }
            }
        }
    }
    for (c, rw) in &v.consumers {
        if domain_names.contains(c.as_str()) {
            continue;
        }
        for (di, d) in ir.domains.iter().enumerate() {
            if let Some(mi) = d.machines.iter().position(|m| &m.name == c) {
                match out.iter_mut().find(|x| x.0 == (di, mi)) {
                    Some(x) => {
                        x.1 = *rw;
                        x.2 = c.clone();
                    }
                    None => out.push(((di, mi), *rw, c.clone())),
                }
            }
        }
    }
    out
}

fn enrich_devices(cx: &mut Cx, ir: &mut Ir) {
    let pbase = cx
        .src
        .global
        .persistent_data_base
        .get()
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "/srv/anklume/data".into());
    let mut generated: HashMap<(usize, usize), Vec<(String, Value)>> = HashMap::new();
    for v in &ir.shared_volumes {
        for ((di, mi), rw, _) in resolve_consumers(ir, v) {
            let mut dev = vec![
                (Value::str("type"), Value::str("disk")),
                (Value::str("source"), Value::str(v.source.clone())),
                (Value::str("path"), Value::str(v.path.clone())),
            ];
            if v.shift {
                dev.push((Value::str("shift"), Value::str("true")));
            }
            if !rw {
                dev.push((Value::str("readonly"), Value::str("true")));
            }
            generated
                .entry((di, mi))
                .or_default()
                .push((format!("sv-{}", v.name), Value::Map(dev)));
        }
    }
    for (di, d) in cx.src.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            for pd in &m.persistent_data {
                let Some(path) = pd.path.get().filter(|p| !p.is_empty()) else {
                    continue;
                };
                let mut dev = vec![
                    (Value::str("type"), Value::str("disk")),
                    (
                        Value::str("source"),
                        Value::str(format!("{pbase}/{}/{}", m.name.text, pd.name.text)),
                    ),
                    (Value::str("path"), Value::str(path.clone())),
                    (Value::str("shift"), Value::str("true")),
                ];
                if pd.readonly.or(false) {
                    dev.push((Value::str("readonly"), Value::str("true")));
                }
                generated
                    .entry((di, mi))
                    .or_default()
                    .push((format!("pd-{}", pd.name.text), Value::Map(dev)));
            }
        }
    }
    for ((di, mi), mut devs) in generated {
        let m = &mut ir.domains[di].machines[mi];
        for (name, val) in m.devices.take().unwrap_or_default() {
            match devs.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = val,
                None => devs.push((name, val)),
            }
        }
        m.devices = Some(devs);
    }
}

fn machine_span(cx: &Cx, di: usize, mi: usize) -> Span {
    cx.mspans
        .get(di)
        .and_then(|v| v.get(mi))
        .copied()
        .unwrap_or(Span::NONE)
}

fn check_names(cx: &mut Cx, ir: &Ir) {
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    for (di, d) in ir.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            if let Some(&(fd, fm)) = seen.get(m.name.as_str()) {
                let here = machine_span(cx, di, mi);
                let here = if here.is_real() {
                    here
                } else {
                    cx.src.domains[di].name.span
                };
                let first = machine_span(cx, fd, fm);
                let other = &ir.domains[fd].machines[fm];
                let (message, label, first_label, help) = match (m.auto, other.auto) {
                    (true, _) => (
                        format!(
                            "Machine '{}': auto-created in '{}', but the name is already used in '{}'",
                            m.name, d.name, ir.domains[fd].name
                        ),
                        format!("this setting creates '{}'", m.name),
                        "the name is taken here".to_string(),
                        "rename the other machine, or turn this setting off",
                    ),
                    (false, true) => (
                        format!(
                            "Machine '{}': duplicate (already auto-created in '{}')",
                            m.name, ir.domains[fd].name
                        ),
                        "defined again here".to_string(),
                        format!("this setting auto-creates '{}'", other.name),
                        "rename this machine, or turn off the setting that creates the other one",
                    ),
                    (false, false) => (
                        format!(
                            "Machine '{}': duplicate (already in '{}')",
                            m.name, ir.domains[fd].name
                        ),
                        "defined again here".to_string(),
                        "first defined here".to_string(),
                        "machine names are global across all domains: rename one of them",
                    ),
                };
                cx.push(
                    Diagnostic::error("E0301", message, here)
                        .label(label)
                        .with_secondary(first, first_label)
                        .with_help(help),
                );
            } else {
                seen.insert(&m.name, (di, mi));
            }
        }
    }
}

fn check_ips(cx: &mut Cx, ir: &Ir, subnets: &Subnets) {
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    for (di, d) in ir.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            let Some(ip) = m.ip.as_deref() else {
                continue;
            };
            let at = cx
                .ipspans
                .get(di)
                .and_then(|v| v.get(mi))
                .copied()
                .flatten()
                .unwrap_or_else(|| machine_span(cx, di, mi));
            let at = if at.is_real() {
                at
            } else {
                cx.src.domains[di].name.span
            };
            if let Some(&(fd, fm)) = seen.get(ip) {
                let first = cx
                    .ipspans
                    .get(fd)
                    .and_then(|v| v.get(fm))
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| machine_span(cx, fd, fm));
                let other = &ir.domains[fd].machines[fm];
                let diag = if m.auto && !other.auto {
                    // Point at the address the user wrote, not at the setting.
                    Diagnostic::error(
                        "E0404",
                        format!(
                            "Machine '{}': IP {ip} is also given to the auto-created '{}'",
                            other.name, m.name
                        ),
                        first,
                    )
                    .label("address taken")
                    .with_secondary(at, format!("'{}' is auto-created with {ip} here", m.name))
                    .with_help(format!(
                        "'{}' always takes {ip}: give '{}' another address",
                        m.name, other.name
                    ))
                } else {
                    let d = Diagnostic::error(
                        "E0404",
                        format!(
                            "Machine '{}': IP {ip} already used by '{}'",
                            m.name, other.name
                        ),
                        at,
                    )
                    .label("address taken")
                    .with_secondary(first, format!("'{}' has it", other.name));
                    if other.auto {
                        d.with_help(format!(
                            "'{}' is auto-created with this address: give '{}' another one",
                            other.name, m.name
                        ))
                    } else {
                        d.with_help(
                            "give each machine its own address, or remove `ip` to get one assigned",
                        )
                    }
                };
                cx.push(diag);
            } else {
                seen.insert(ip, (di, mi));
            }
            let Ok(addr) = ip.parse::<Ipv4Addr>() else {
                cx.push(
                    Diagnostic::error(
                        "E0405",
                        format!("Machine '{}': '{ip}' is not an IPv4 address", m.name),
                        at,
                    )
                    .label("not an address")
                    .with_help(format!(
                        "write four numbers 0-255, e.g. {}.{}.{}.10",
                        d.subnet[0], d.subnet[1], d.subnet[2]
                    )),
                );
                continue;
            };
            let Some([a, b, c]) = subnets[di] else {
                continue;
            };
            let o = addr.octets();
            if [o[0], o[1], o[2]] != [a, b, c] {
                cx.push(
                    Diagnostic::error(
                        "E0403",
                        format!("Machine '{}': IP {ip} not in subnet {a}.{b}.{c}.0/24", m.name),
                        at,
                    )
                    .label("outside the domain's subnet")
                    .with_secondary(cx.src.domains[di].name.span, format!("domain '{}' uses {a}.{b}.{c}.0/24", d.name))
                    .with_help(format!("use an address {a}.{b}.{c}.1-{a}.{b}.{c}.253, or remove `ip` to get one assigned")),
                );
            } else if (100..=199).contains(&o[3]) {
                // dnsmasq on the bridge leases .100-.199 to whoever asks (a
                // machine without a reservation, a nested guest): the same
                // address may be handed out twice.
                cx.push(
                    Diagnostic::warning(
                        "W0401",
                        format!(
                            "Machine '{}': IP {ip} is in the bridge's DHCP range ({a}.{b}.{c}.100-{a}.{b}.{c}.199)",
                            m.name
                        ),
                        at,
                    )
                    .label("dnsmasq may lease this address to another client")
                    .with_help(format!(
                        "use .1-.99 or .200-.253 ({a}.{b}.{c}.200, for instance), or remove `ip` to get one assigned"
                    )),
                );
            } else if !(1..=253).contains(&o[3]) {
                let what = match o[3] {
                    0 => "the network address",
                    254 => "the gateway (the bridge itself)",
                    _ => "the broadcast address",
                };
                cx.push(
                    Diagnostic::error(
                        "E0405",
                        format!("Machine '{}': IP {ip} is {what}", m.name),
                        at,
                    )
                    .label("reserved address")
                    .with_help(format!(
                        "use a host part 1-253 ({a}.{b}.{c}.1-{a}.{b}.{c}.253)"
                    )),
                );
            }
        }
    }
}

/// Every machine name, auto-created ones included (D10).
fn machine_names(ir: &Ir) -> HashSet<&str> {
    ir.domains
        .iter()
        .flat_map(|d| d.machines.iter().map(|m| m.name.as_str()))
        .collect()
}

fn check_policies(cx: &mut Cx, ir: &Ir) {
    let machines = machine_names(ir);
    let domains: Vec<&str> = ir.domains.iter().map(|d| d.name.as_str()).collect();
    let src = cx.src;
    for (i, p) in src.network_policies.iter().enumerate() {
        for (field, f) in [("from", &p.from), ("to", &p.to)] {
            let Field::Set(r, sp) = f else {
                continue;
            };
            if r == "host" || domains.contains(&r.as_str()) || machines.contains(r.as_str()) {
                continue;
            }
            let cands = domains
                .iter()
                .copied()
                .chain(machines.iter().copied())
                .chain(["host"]);
            let mut d = Diagnostic::error(
                "E0302",
                format!("network_policies[{i}]: '{field}: {r}' is not a known domain, machine, or 'host'"),
                *sp,
            )
            .label("unknown name");
            d = match anklume_schema::diag::did_you_mean(r, cands) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help("name a domain, a machine, or `host`"),
            };
            cx.push(d);
        }
    }
}

fn check_volumes(cx: &mut Cx, ir: &Ir) {
    let machines = machine_names(ir);
    let domains: Vec<&str> = ir.domains.iter().map(|d| d.name.as_str()).collect();
    let src = cx.src;
    // (domain index, machine index, path) → volume index that mounts it.
    let mut mounts: HashMap<(usize, usize, String), usize> = HashMap::new();
    for (vi, v) in ir.shared_volumes.iter().enumerate() {
        let sv = &src.shared_volumes[vi];
        for (cname, _) in &sv.consumers {
            if !domains.contains(&cname.text.as_str()) && !machines.contains(cname.text.as_str()) {
                let cands = domains.iter().copied().chain(machines.iter().copied());
                let mut d = Diagnostic::error(
                    "E0302",
                    format!(
                        "shared_volumes.{}: consumer '{}' is not a known domain or machine",
                        v.name, cname.text
                    ),
                    cname.span,
                )
                .label("unknown name");
                d = match anklume_schema::diag::did_you_mean(&cname.text, cands) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("name a domain (all its machines) or a machine"),
                };
                cx.push(d);
            }
        }
        for ((di, mi), _, via) in resolve_consumers(ir, v) {
            let key = (di, mi, v.path.clone());
            match mounts.get(&key) {
                Some(&first) if first != vi => {
                    let at = sv
                        .consumers
                        .iter()
                        .find(|(n, _)| n.text == via)
                        .map_or(sv.name.span, |(n, _)| n.span);
                    let m = &ir.domains[di].machines[mi];
                    cx.push(
                        Diagnostic::error(
                            "E0305",
                            format!(
                                "shared_volumes.{}: duplicate mount path '{}' on machine '{}' (already used by volume '{}')",
                                v.name, v.path, m.name, ir.shared_volumes[first].name
                            ),
                            at,
                        )
                        .label(format!("mounts {} on '{}'", v.path, m.name))
                        .with_secondary(src.shared_volumes[first].name.span, "this volume mounts the same path")
                        .with_help("give one of the volumes another `path`"),
                    );
                }
                Some(_) => {}
                None => {
                    mounts.insert(key, vi);
                }
            }
        }
    }
    for (di, d) in src.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            for pd in &m.persistent_data {
                let Field::Set(path, sp) = &pd.path else {
                    continue;
                };
                if let Some(&vi) = mounts.get(&(di, mi, path.clone())) {
                    cx.push(
                        Diagnostic::error(
                            "E0305",
                            format!(
                                "Machine '{}': persistent_data.{}: duplicate mount path '{path}' (already used by shared_volume '{}')",
                                m.name.text, pd.name.text, ir.shared_volumes[vi].name
                            ),
                            *sp,
                        )
                        .label("already a mount point")
                        .with_secondary(src.shared_volumes[vi].name.span, "this shared volume mounts there")
                        .with_help("mount the persistent data somewhere else"),
                    );
                }
            }
        }
    }
}

fn check_gpu(cx: &mut Cx, ir: &Ir) {
    let src = cx.src;
    let mut names = Vec::new();
    let mut spans = Vec::new();
    for (di, d) in src.domains.iter().enumerate() {
        let gpu_profiles: Vec<&str> = d
            .profiles
            .iter()
            .filter(|p| p.has_gpu)
            .map(|p| p.name.text.as_str())
            .collect();
        for (mi, m) in ir.domains[di].machines.iter().enumerate() {
            let via_profile = m
                .profiles
                .as_ref()
                .is_some_and(|ps| ps.iter().any(|p| gpu_profiles.contains(&p.as_str())));
            let via_device = d
                .machines
                .get(mi)
                .and_then(|am| am.devices.get())
                .is_some_and(|devs| devs.iter().any(|dv| dv.kind == "gpu"));
            if m.gpu == Some(true) || via_profile || via_device {
                spans.push(machine_span(cx, di, mi));
                names.push(m.name.clone());
            }
        }
    }
    if names.len() < 2 {
        return;
    }
    let shared = src.global.gpu_policy.get().map(String::as_str) == Some("shared");
    let first_span = spans[0];
    let n = names.len();
    let list = names.join(", ");
    if shared {
        cx.push(
            Diagnostic::warning(
                "W0502",
                format!("GPU policy is 'shared': {n} instances share GPU access ({list}). No VRAM isolation on consumer GPUs."),
                src.global.gpu_policy.span().unwrap_or(first_span),
            )
            .with_help("keep one GPU instance per host if the workloads must not see each other"),
        );
    } else {
        let mut d = Diagnostic::error(
            "E0502",
            format!("GPU policy is 'exclusive' but {n} instances have GPU access: {list}"),
            first_span,
        )
        .label("first GPU instance");
        for sp in &spans[1..] {
            d = d.with_secondary(*sp, "also has GPU access");
        }
        cx.push(d.with_help(
            "set global.gpu_policy: shared to allow this, or give the GPU to one instance",
        ));
    }
}

fn check_ai_access(cx: &mut Cx, ir: &Ir) {
    let g = &cx.src.global;
    if g.ai_access_policy.get().map(String::as_str) != Some("exclusive") {
        return;
    }
    let at = g.ai_access_policy.span().unwrap_or(Span::NONE);
    match &g.ai_access_default {
        Field::Set(d, sp) if d == "ai-tools" => cx.push(
            Diagnostic::error(
                "E0503",
                "global.ai_access_default cannot be 'ai-tools' (must be a client domain)",
                *sp,
            )
            .with_help("name the domain that may reach ai-tools, e.g. `pro`"),
        ),
        Field::Set(d, sp) if !ir.domains.iter().any(|x| &x.name == d) => {
            let mut diag = Diagnostic::error(
                "E0302",
                format!("global.ai_access_default '{d}' is not a known domain"),
                *sp,
            );
            diag = match anklume_schema::diag::did_you_mean(
                d,
                ir.domains.iter().map(|x| x.name.as_str()),
            ) {
                Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                None => diag.with_help("name one of your domains"),
            };
            cx.push(diag);
        }
        Field::Set(..) => {}
        _ => cx.push(
            Diagnostic::error(
                "E0503",
                "global.ai_access_default is required when ai_access_policy is 'exclusive'",
                at,
            )
            .with_help("add `ai_access_default: <domain>` under global"),
        ),
    }
    if !ir.domains.iter().any(|d| d.name == "ai-tools") {
        cx.push(
            Diagnostic::error(
                "E0503",
                "ai_access_policy is 'exclusive' but no 'ai-tools' domain exists",
                at,
            )
            .with_help("add an `ai-tools` domain, or set ai_access_policy: open"),
        );
    }
    let targets: Vec<usize> = ir
        .policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.to == "ai-tools")
        .map(|(i, _)| i)
        .collect();
    if targets.len() > 1 {
        let spans: Vec<Span> = targets
            .iter()
            .map(|&i| {
                cx.src
                    .network_policies
                    .get(i)
                    .map_or(Span::NONE, |p| p.to.span().unwrap_or(p.span))
            })
            .collect();
        let mut d = Diagnostic::error(
            "E0503",
            format!("ai_access_policy is 'exclusive' but {} network_policies target ai-tools (max 1 allowed)", targets.len()),
            spans[1],
        )
        .label("second policy to ai-tools")
        .with_secondary(spans[0], "first policy to ai-tools");
        for sp in spans.iter().skip(2) {
            d = d.with_secondary(*sp, "another policy to ai-tools");
        }
        cx.push(d.with_help("keep one policy to ai-tools, or set ai_access_policy: open"));
    }
}

fn check_host_subnets(cx: &mut Cx, ir: &Ir, subnets: &Subnets) {
    if cx.facts.skip_subnet_check {
        return;
    }
    let addressing = !cx.src.global.addressing.is_absent();
    for (di, d) in ir.domains.iter().enumerate() {
        if subnets[di].is_none() {
            continue;
        }
        let net = u32::from_be_bytes([d.subnet[0], d.subnet[1], d.subnet[2], 0]);
        for h in &cx.facts.interfaces {
            let own = h.ifname.starts_with("net-")
                || (h.ifname.len() > 4
                    && h.ifname.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                    && h.ifname[3..].starts_with("-net-"));
            if h.ifname == "lo" || own || h.prefix > 32 {
                continue;
            }
            let mask = if h.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - h.prefix)
            };
            let hnet = u32::from_be_bytes(h.addr) & mask;
            let overlap_mask = mask & (u32::MAX << 8);
            if (net & overlap_mask) == (hnet & overlap_mask) {
                let [a, b, c, e] = hnet.to_be_bytes();
                let base = cx.src.global.base_subnet.or("10.100".into());
                let alt = if base == "10.100" { "10.200" } else { "10.100" };
                let hint = if addressing {
                    "Adjust global.addressing.zone_base or use a different subnet_id.".to_string()
                } else {
                    format!("Change global.base_subnet to '{alt}' or use a different subnet_id for this domain.")
                };
                cx.push(
                    Diagnostic::error(
                        "E0409",
                        format!(
                            "SUBNET CONFLICT: Domain '{}' uses {} which overlaps with host interface '{}' ({a}.{b}.{c}.{e}/{}). Incus would create a bridge on the same subnet, causing a routing loop and total loss of network connectivity.",
                            d.name,
                            d.cidr(),
                            h.ifname,
                            h.prefix
                        ),
                        cx.src.domains[di].name.span,
                    )
                    .label(format!("uses {}", d.cidr()))
                    .with_help(format!("{hint} (ANKLUME_SKIP_HOST_SUBNET_CHECK=1 skips this check)")),
                );
            }
        }
    }
}

fn warn_disabled_refs(cx: &mut Cx, ir: &Ir) {
    let src = cx.src;
    for (i, p) in src.network_policies.iter().enumerate() {
        for (field, f) in [("from", &p.from), ("to", &p.to)] {
            if let Field::Set(r, sp) = f {
                if ir.domains.iter().any(|d| &d.name == r && !d.enabled) {
                    cx.push(
                        Diagnostic::warning(
                            "W0503",
                            format!("network_policies[{i}]: '{field}: {r}' references disabled domain '{r}'"),
                            *sp,
                        )
                        .label("this domain has enabled: false")
                        .with_help("the rule has no effect until the domain is enabled"),
                    );
                }
            }
        }
    }
}

/// Names Ansible gives a meaning of its own: the implicit groups `all` and
/// `ungrouped`, and the implicit control-node host `localhost`.
const ANSIBLE_RESERVED: [&str; 3] = ["all", "ungrouped", "localhost"];

/// Incus's limit for instance and device names (a hostname label).
const INCUS_NAME_MAX: usize = 63;

/// Why `name` cannot name a domain or machine, if it cannot.
fn reserved_reason(name: &str, machine: bool) -> Option<(&'static str, String)> {
    match name {
        "all" | "ungrouped" => Some((
            "Ansible reserves this group name",
            format!("every Ansible inventory already has the implicit group `{name}`, and `sync` writes group_vars/all.yml for the global variables"),
        )),
        "localhost" => Some((
            "Ansible's implicit control-node host",
            "plays that target `localhost` would run on this instance instead of the control node".into(),
        )),
        "host" => Some((
            "network policies use `host` for the host itself",
            "`from: host` and `to: host` always mean the host, so policies could never name this one".into(),
        )),
        _ if machine && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) => Some((
            "Incus refuses an instance name that is a number",
            "Incus instance names are hostnames, and a hostname cannot be all digits".into(),
        )),
        _ => None,
    }
}

/// Names that collide with Ansible's, anklume's or Incus's own, and machine
/// names equal to a domain name.
fn check_reserved_names(cx: &mut Cx, ir: &Ir) {
    let src = cx.src;
    debug_assert!(ANSIBLE_RESERVED
        .iter()
        .all(|n| reserved_reason(n, true).is_some()));
    for d in &src.domains {
        if let Some((label, why)) = reserved_reason(&d.name.text, false) {
            cx.push(
                Diagnostic::error(
                    "E0306",
                    format!("Domain '{}': reserved name", d.name.text),
                    d.name.span,
                )
                .label(label)
                .with_help(format!("rename the domain: {why}")),
            );
        }
    }
    let domains: HashMap<&str, usize> = ir
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    for (di, d) in ir.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            let at = machine_span(cx, di, mi);
            let at = if at.is_real() {
                at
            } else {
                src.domains[di].name.span
            };
            if let Some((label, why)) = reserved_reason(&m.name, true) {
                cx.push(
                    Diagnostic::error("E0306", format!("Machine '{}': reserved name", m.name), at)
                        .label(label)
                        .with_help(format!("rename the machine: {why}")),
                );
            }
            if let Some(&other) = domains.get(m.name.as_str()) {
                cx.push(
                    Diagnostic::error(
                        "E0307",
                        format!(
                            "Machine '{}' in domain '{}' has the name of domain '{}'",
                            m.name, d.name, m.name
                        ),
                        at,
                    )
                    .label("also a domain name")
                    .with_secondary(src.domains[other].name.span, "the domain")
                    .with_help(
                        "rename the machine or the domain: Ansible would get a host and a group with the same name, and network policies and shared volume consumers name the domain first",
                    ),
                );
            }
        }
    }
}

/// Names anklume derives from the user's names must fit Incus's limits
/// (instance and device names: 63 characters). File names (`<name>.yml`)
/// follow: a machine name of at most 63 characters and a domain name of at
/// most 11 (E0408) are far below 255 bytes.
fn check_name_lengths(cx: &mut Cx, ir: &Ir) {
    let src = cx.src;
    // `kind` is "instance name" or "device name".
    let too_long = |what: String, derived: &str, kind: &str, at: Span, user_len: usize| {
        let extra = derived.len() - user_len;
        let message = if extra == 0 {
            format!(
                "{what}: the name is {} characters, over Incus's {INCUS_NAME_MAX}-character limit for an {kind}",
                derived.len()
            )
        } else {
            format!(
                "{what}: the {kind} '{}' is {} characters, over Incus's {INCUS_NAME_MAX}-character limit",
                short(derived),
                derived.len()
            )
        };
        Diagnostic::error("E0308", message, at)
            .label(if extra == 0 {
                format!("used as the {kind}")
            } else {
                format!("the {kind} is built from this name")
            })
            .with_help(format!(
                "shorten the name to at most {} characters",
                INCUS_NAME_MAX.saturating_sub(extra)
            ))
    };
    for (di, d) in ir.domains.iter().enumerate() {
        for (mi, m) in d.machines.iter().enumerate() {
            if m.instance_name.len() > INCUS_NAME_MAX {
                let at = machine_span(cx, di, mi);
                let at = if at.is_real() {
                    at
                } else {
                    src.domains[di].name.span
                };
                let diag = too_long(
                    format!("Machine '{}'", short(&m.name)),
                    &m.instance_name,
                    "instance name",
                    at,
                    m.name.len(),
                );
                cx.push(diag);
            }
        }
    }
    for d in &src.domains {
        for m in &d.machines {
            for pd in &m.persistent_data {
                let dev = format!("pd-{}", pd.name.text);
                if dev.len() > INCUS_NAME_MAX {
                    let diag = too_long(
                        format!(
                            "Machine '{}': persistent_data '{}'",
                            short(&m.name.text),
                            short(&pd.name.text)
                        ),
                        &dev,
                        "device name",
                        pd.name.span,
                        pd.name.text.len(),
                    );
                    cx.push(diag);
                }
            }
            if let Some(devs) = m.devices.get() {
                for dv in devs {
                    if dv.name.text.len() > INCUS_NAME_MAX {
                        let diag = too_long(
                            format!("Machine '{}'", short(&m.name.text)),
                            &dv.name.text,
                            "device name",
                            dv.name.span,
                            dv.name.text.len(),
                        );
                        cx.push(diag);
                    }
                }
            }
        }
    }
    for v in &src.shared_volumes {
        let dev = format!("sv-{}", v.name.text);
        if dev.len() > INCUS_NAME_MAX {
            let diag = too_long(
                format!("shared_volumes.{}", short(&v.name.text)),
                &dev,
                "device name",
                v.name.span,
                v.name.text.len(),
            );
            cx.push(diag);
        }
    }
}

/// A name cut to 40 characters for messages (the span shows the rest).
fn short(name: &str) -> Cow<'_, str> {
    match name.char_indices().nth(40) {
        Some((i, _)) => Cow::Owned(format!("{}…", &name[..i])),
        None => Cow::Borrowed(name),
    }
}

/// Whether `s` holds a C0, DEL or C1 control character (a byte scan first:
/// C1 characters start with 0xC2 in UTF-8).
fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
        || (s.as_bytes().contains(&0xc2) && s.chars().any(char::is_control))
}

/// The first key (at any depth) or name-like value (a device's `type`, a
/// storage volume's `pool`) of `v` that holds a control character.
fn control_in(v: &Value) -> Option<String> {
    match v {
        Value::Map(entries) => entries.iter().find_map(|(k, val)| {
            // Only string keys can hold a control character.
            if let Some(key) = k.as_str().filter(|k| has_control(k)) {
                return Some(key.to_string());
            }
            if let (Some("type" | "pool"), Value::Str(s)) = (k.as_str(), val) {
                if has_control(s) {
                    return Some(s.clone());
                }
            }
            control_in(val)
        }),
        Value::Seq(items) => items.iter().find_map(control_in),
        _ => None,
    }
}

/// Control characters (C0 including tab and line feed, DEL, C1) in keys and
/// in every name-like value: Incus and Ansible refuse them there, and they
/// could drive a terminal. Domain, machine and volume names are already held
/// to the name pattern (E0206); free text (descriptions, config values) may
/// hold them.
fn check_control_chars(cx: &mut Cx) {
    let src = cx.src;
    let mut found: Vec<(String, String, Span)> = Vec::new();
    // `what` is only built for a value that has a control character.
    let field =
        |what: &dyn Fn() -> String, f: &Field<String>, found: &mut Vec<(String, String, Span)>| {
            if let Field::Set(s, sp) = f {
                if has_control(s) {
                    found.push((what(), s.clone(), *sp));
                }
            }
        };
    let g = &src.global;
    for (what, f) in [
        ("project_name", &src.project_name),
        ("global.default_os_image", &g.default_os_image),
        ("global.default_connection", &g.default_connection),
        ("global.default_user", &g.default_user),
        ("global.ai_access_default", &g.ai_access_default),
    ] {
        field(&|| what.to_string(), f, &mut found);
    }
    for d in &src.domains {
        let raw = d.profiles_raw.get();
        let what = || format!("domains.{}.profiles", d.name.text);
        for p in &d.profiles {
            if has_control(&p.name.text) {
                found.push((
                    format!("{}: profile name", what()),
                    p.name.text.clone(),
                    p.name.span,
                ));
            } else if let Some(bad) = raw.and_then(|r| r.get(&p.name.text)).and_then(control_in) {
                found.push((
                    format!("{}.{}: a key or name", what(), p.name.text),
                    bad,
                    p.name.span,
                ));
            }
        }
        for m in &d.machines {
            let path = || format!("machines.{}", m.name.text);
            field(&|| format!("{}.os_image", path()), &m.os_image, &mut found);
            for (key, list) in [("profiles", &m.profiles), ("roles", &m.roles)] {
                if let Some(items) = list.get() {
                    for (s, sp) in items {
                        if has_control(s) {
                            found.push((format!("{}.{key}: an entry", path()), s.clone(), *sp));
                        }
                    }
                }
            }
            if let Some(entries) = m.config.get() {
                for (k, _, sp) in entries {
                    if has_control(k) {
                        found.push((format!("{}.config: a key", path()), k.clone(), *sp));
                    }
                }
            }
            if let Some(devs) = m.devices.get() {
                for dv in devs {
                    if has_control(&dv.name.text) {
                        found.push((
                            format!("{}.devices: a device name", path()),
                            dv.name.text.clone(),
                            dv.name.span,
                        ));
                    } else if let Some(bad) = control_in(&dv.raw) {
                        found.push((
                            format!("{}.devices.{}: a key or type", path(), dv.name.text),
                            bad,
                            dv.name.span,
                        ));
                    }
                }
            }
            if let Field::Set(v, sp) = &m.storage_volumes {
                if let Some(bad) = control_in(v) {
                    found.push((
                        format!("{}.storage_volumes: a name, key or pool", path()),
                        bad,
                        *sp,
                    ));
                }
            }
        }
    }
    for (i, p) in src.network_policies.iter().enumerate() {
        field(
            &|| format!("network_policies[{i}].from"),
            &p.from,
            &mut found,
        );
        field(&|| format!("network_policies[{i}].to"), &p.to, &mut found);
    }
    for v in &src.shared_volumes {
        for (c, _) in &v.consumers {
            if has_control(&c.text) {
                found.push((
                    format!("shared_volumes.{}.consumers: a name", v.name.text),
                    c.text.clone(),
                    c.span,
                ));
            }
        }
    }
    for (what, text, at) in found {
        let chars: Vec<String> = text
            .chars()
            .filter(|c| c.is_control())
            .map(|c| crate::render::escape(&c.to_string()).into_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        cx.push(
            Diagnostic::error(
                "E0209",
                format!("{what} '{}' contains a control character ({})", short(&text), chars.join(", ")),
                at,
            )
            .label("control character in a name or key")
            .with_help("names, keys, image aliases and references are one line of printable text: remove the control character (free text such as descriptions and config values may keep them)"),
        );
    }
}

/// The profile name anklume generates for the firewall VM's NICs.
const FIREWALL_PROFILE: &str = "firewall-multi-nic";

/// What is wrong with a name Incus takes as a device name
/// (`IsDeviceName`: 1–63 characters of `[A-Za-z0-9/.:_-]`, not starting
/// with `.`), if anything. Lengths are E0308's.
fn device_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.starts_with('.') {
        return Some("starts with `.`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b':' | b'_'))
    {
        return Some("holds a character Incus refuses in a device name (allowed: letters, digits, `/ . - : _`)");
    }
    None
}

/// What is wrong with a profile name, if anything (Incus refuses an empty
/// name, `/`, `.` and `..`; anklume also refuses blanks).
fn profile_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name == "." || name == ".." {
        return Some("is `.` or `..`");
    }
    if name.contains('/') || name.contains(char::is_whitespace) {
        return Some("holds `/` or a blank, which Incus refuses in a profile name");
    }
    None
}

/// Names that become Incus objects without going through the domain and
/// machine name pattern: profile names, device names, and the names of
/// storage volumes with a `path` (each becomes a disk device of that name).
/// Invalid ones are E0206; a user profile named like the one anklume
/// generates, or a volume device taking the name of the instance's network
/// card (`eth0`) or of a user device, is E0306. Control characters are
/// E0209's.
fn check_incus_object_names(cx: &mut Cx) {
    let src = cx.src;
    let mut out = Vec::new();
    for d in &src.domains {
        for p in &d.profiles {
            let name = &p.name.text;
            if has_control(name) {
                continue;
            }
            if let Some(why) = profile_name_problem(name) {
                out.push(
                    Diagnostic::error(
                        "E0206",
                        format!("profile name '{}' {why}", short(name)),
                        p.name.span,
                    )
                    .label("an Incus profile name")
                    .with_help("name profiles with letters, digits, `-`, `_` and `.`"),
                );
            } else if name == FIREWALL_PROFILE {
                out.push(Diagnostic::error("E0306", format!("profile name '{FIREWALL_PROFILE}' is reserved: anklume generates that profile for the firewall VM"), p.name.span)
                    .label("reserved profile name")
                    .with_help("give this profile another name"));
            }
        }
        for m in &d.machines {
            let mut device_names = Vec::new();
            if let Some(devs) = m.devices.get() {
                for dv in devs {
                    let name = &dv.name.text;
                    device_names.push(name.clone());
                    if has_control(name) {
                        continue;
                    }
                    if let Some(why) = device_name_problem(name) {
                        out.push(Diagnostic::error("E0206", format!("device name '{}' {why}", short(name)), dv.name.span)
                            .label("an Incus device name")
                            .with_help("name devices with letters, digits and `/ . - : _`, not starting with `.`"));
                    }
                }
            }
            if let Field::Set(Value::Map(vols), sp) = &m.storage_volumes {
                for (k, v) in vols {
                    let Value::Str(name) = k else { continue };
                    let has_path = matches!(v, Value::Map(e) if e.iter().any(|(k, _)| matches!(k, Value::Str(s) if s == "path")));
                    if !has_path || has_control(name) {
                        continue;
                    }
                    let why = if name.contains('/') {
                        Some("holds `/`, which Incus refuses in a storage volume name")
                    } else {
                        device_name_problem(name)
                    };
                    if let Some(why) = why {
                        out.push(Diagnostic::error("E0206", format!("storage volume '{}' of machine '{}' becomes a device of that name, and it {why}", short(name), m.name.text), *sp)
                            .label("in these storage volumes")
                            .with_help("name volumes with letters, digits and `/ . - : _`, not starting with `.`"));
                    } else if name.chars().count() > 63 {
                        out.push(Diagnostic::error("E0308", format!("storage volume '{}' of machine '{}' becomes a device name of {} characters; Incus allows 63", short(name), m.name.text, name.chars().count()), *sp)
                            .label("in these storage volumes")
                            .with_help("shorten the volume name to at most 63 characters"));
                    } else if name == "eth0"
                        || name == "root"
                        || name.starts_with("sv-")
                        || name.starts_with("pd-")
                        || device_names.contains(name)
                    {
                        out.push(Diagnostic::error("E0306", format!("storage volume '{}' of machine '{}' becomes a device that would replace the instance's own device '{}'", short(name), m.name.text, short(name)), *sp)
                            .label("in these storage volumes")
                            .with_help("`eth0` (the network card), `root`, `sv-*`, `pd-*` and the machine's own device names are taken: rename the volume"));
                    }
                }
            }
        }
    }
    for d in out {
        cx.push(d);
    }
}
