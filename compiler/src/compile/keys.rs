//! Incus configuration keys, checked offline against the catalogue recorded
//! from Incus 6.0 ([`anklume_incus_keys::Catalogue::recorded`]): a machine's
//! and a profile's `config` keys (instance keys), and their devices' options
//! for the device types the catalogue describes. A typo such as
//! `limits.cpus` is found by `check`, not halfway through an apply.

use anklume_incus_keys::{Catalogue, Scope, Verdict};
use anklume_schema::ast::Device;
use anklume_schema::{Diagnostic, Field, Span, Value};

use super::Cx;

/// One key to check: where it was written, what it is, and the key.
struct Key<'a> {
    owner: String,
    scope: Scope<'a>,
    key: &'a str,
    span: Span,
}

pub(super) fn check_incus_keys(cx: &mut Cx) {
    let catalogue = Catalogue::recorded();
    let mut keys: Vec<Key> = Vec::new();
    let src = cx.src;
    for d in &src.domains {
        for p in &d.profiles {
            let owner = format!("domains.{}.profiles.{}", d.name.text, p.name.text);
            collect(&mut keys, &owner, &p.config, &p.devices);
        }
        for m in &d.machines {
            let owner = format!("machines.{}", m.name.text);
            collect(&mut keys, &owner, &m.config, &m.devices);
        }
    }
    // A key with a control character has its E0209 already.
    for k in keys.into_iter().filter(|k| !super::has_control(k.key)) {
        let Verdict::Unknown { suggestion } = catalogue.check(k.scope, k.key) else {
            continue;
        };
        let version = catalogue.server_version.as_deref().unwrap_or("6.0");
        let (message, label, free) = match k.scope {
            Scope::Device(t) => (
                format!("{}: unknown option '{}' for a {t} device", k.owner, k.key),
                format!("Incus {version} has no such {t} device option"),
                "",
            ),
            Scope::Instance | Scope::Project => (
                format!("{}.config: unknown Incus config key '{}'", k.owner, k.key),
                format!("Incus {version} has no such instance key"),
                " Keys of your own go under `user.` (`user.note: …`): Incus keeps those as they are.",
            ),
        };
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`?{free}"),
            None => format!(
                "the keys Incus knows are listed by `incus query /1.0/metadata/configuration`.{free}"
            ),
        };
        cx.push(
            Diagnostic::error("E0210", message, k.span)
                .label(label)
                .with_help(help),
        );
    }
}

fn collect<'a>(
    keys: &mut Vec<Key<'a>>,
    owner: &str,
    config: &'a Field<Vec<(String, Value, Span)>>,
    devices: &'a Field<Vec<Device>>,
) {
    for (key, _, span) in config.get().into_iter().flatten() {
        keys.push(Key {
            owner: owner.to_string(),
            scope: Scope::Instance,
            key,
            span: *span,
        });
    }
    for dv in devices.get().into_iter().flatten() {
        for (key, span) in &dv.options {
            keys.push(Key {
                owner: format!("{owner}.devices.{}", dv.name.text),
                scope: Scope::Device(&dv.kind),
                key,
                span: *span,
            });
        }
    }
}
