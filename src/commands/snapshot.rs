//! `anklume snapshot`: create, restore, list and delete instance snapshots
//! (anklume v1's `snap.sh`).

use std::io::{BufRead, IsTerminal, Write};

use anklume_executor::snapshot::{self, InstanceRef, SnapInfo};
use anklume_executor::{journal, Incus};
use anklume_term::display as esc;

use crate::Exit;

/// Instance snapshots, by instance name alone (its project is found across
/// all projects) or `self` (the instance this runs in).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Take a snapshot (default name `snap-YYYYMMDD-HHMMSS`).
    Create {
        /// The instance, or `self` (with --domain: the snapshot name).
        #[arg(required_unless_present = "domain")]
        instance: Option<String>,
        /// The snapshot name.
        name: Option<String>,
        /// Snapshot every instance of this domain instead.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Restore a snapshot (Incus stops, restores and restarts a running
    /// instance; the snapshot's configuration comes back too).
    Restore {
        /// The instance, or `self`.
        instance: String,
        /// The snapshot name.
        name: String,
        /// Do not ask before restoring the instance this runs in.
        #[arg(long)]
        force: bool,
    },
    /// List snapshots (of every instance when none is named).
    List {
        /// The instance, or `self`.
        instance: Option<String>,
        /// `text` (a table) or `json` (one object per snapshot:
        /// project, instance, name, created_at).
        #[arg(long, value_enum, default_value = "text")]
        format: super::ListFormat,
    },
    /// Delete a snapshot.
    Delete {
        /// The instance, or `self`.
        instance: String,
        /// The snapshot name.
        name: String,
    },
}

/// Run it.
pub fn run(args: Args) -> Exit {
    super::block_on(run_async(args.action))
}

async fn target(incus: &Incus, instance: &str) -> Result<InstanceRef, Exit> {
    snapshot::resolve_target(incus, instance)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            Exit::Invalid
        })
}

fn print(list: &[SnapInfo]) {
    if list.is_empty() {
        println!("No snapshots.");
        return;
    }
    let w = |f: fn(&SnapInfo) -> &str, h: &str| {
        list.iter()
            .map(|s| f(s).len())
            .max()
            .unwrap_or(0)
            .max(h.len())
    };
    let (w1, w2, w3) = (
        w(|s| &s.instance, "INSTANCE"),
        w(|s| &s.project, "PROJECT"),
        w(|s| &s.name, "SNAPSHOT"),
    );
    println!(
        "{:w1$}  {:w2$}  {:w3$}  CREATED",
        "INSTANCE", "PROJECT", "SNAPSHOT"
    );
    for s in list {
        println!(
            "{:w1$}  {:w2$}  {:w3$}  {}",
            s.instance, s.project, s.name, s.created_at
        );
    }
}

async fn run_async(action: Action) -> Exit {
    let incus = super::incus();
    match action {
        Action::Create {
            instance,
            name,
            domain,
        } => {
            // `create --domain D [NAME]`: the one positional is the name.
            let (instance, name) = match (&domain, instance, name) {
                (Some(_), Some(_), Some(_)) => {
                    eprintln!("error: with --domain, give only the snapshot name");
                    return Exit::Failed;
                }
                (Some(_), n, None) => (None, n),
                (_, i, n) => (i, n),
            };
            let name =
                name.unwrap_or_else(|| format!("{}{}", snapshot::USER, journal::timestamp()));
            let targets = match (instance, domain) {
                (_, Some(d)) => match snapshot::instances_of(&incus, &d).await {
                    Ok(v) if v.is_empty() => {
                        eprintln!("error: domain '{d}' has no instances");
                        return Exit::Invalid;
                    }
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Exit::Invalid;
                    }
                },
                (Some(i), None) => match target(&incus, &i).await {
                    Ok(t) => vec![t],
                    Err(o) => return o,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            let mut failed = 0;
            for t in &targets {
                match snapshot::create(&incus, t, &name).await {
                    Ok(()) => println!("created snapshot {name} of {} ({})", t.name, t.project),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: snapshot {name} of {} ({}): {e}", t.name, t.project);
                    }
                }
            }
            if failed > 0 {
                Exit::Invalid
            } else {
                Exit::Ok
            }
        }
        Action::Restore {
            instance,
            name,
            force,
        } => {
            let t = match target(&incus, &instance).await {
                Ok(t) => t,
                Err(o) => return o,
            };
            let is_self = snapshot::hostname().is_ok_and(|h| h == t.name);
            if is_self && !force {
                eprintln!(
                    "warning: {} is the instance this command runs in: restoring it stops it and ends this session.",
                    t.name
                );
                if !std::io::stdin().is_terminal() {
                    eprintln!("error: no terminal to confirm: pass --force");
                    return Exit::Invalid;
                }
                eprint!("Type 'yes' to confirm: ");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim() != "yes" {
                    eprintln!("cancelled: nothing was restored");
                    return Exit::Invalid;
                }
            }
            match snapshot::exists(&incus, &t, &name).await {
                Ok(true) => {}
                Ok(false) => {
                    eprintln!(
                        "error: {} ({}) has no snapshot '{}'\nhint: {}",
                        esc(&t.name),
                        esc(&t.project),
                        esc(&name),
                        esc(&snapshot::missing_hint(&incus, &t, &name).await)
                    );
                    return Exit::Invalid;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Invalid;
                }
            }
            match snapshot::restore(&incus, &t, &name).await {
                Ok(()) => {
                    println!("restored {} ({}) to snapshot {name}", t.name, t.project);
                    println!("note: the snapshot's configuration came back with it; `anklume apply` puts the declared one back");
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: restoring {name} of {}: {e}", t.name);
                    Exit::Invalid
                }
            }
        }
        Action::List { instance, format } => {
            let list = match instance {
                Some(i) => {
                    let t = match target(&incus, &i).await {
                        Ok(t) => t,
                        Err(o) => return o,
                    };
                    snapshot::list_one(&incus, &t).await
                }
                None => snapshot::list_all(&incus).await,
            };
            match list {
                Ok(l) => {
                    if format == super::ListFormat::Json {
                        for s in &l {
                            println!("{}", serde_json::json!(s));
                        }
                    } else {
                        print(&l);
                    }
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Invalid
                }
            }
        }
        Action::Delete { instance, name } => {
            let t = match target(&incus, &instance).await {
                Ok(t) => t,
                Err(o) => return o,
            };
            match snapshot::delete(&incus, &t, &name).await {
                Ok(()) => {
                    println!("deleted snapshot {name} of {} ({})", t.name, t.project);
                    Exit::Ok
                }
                Err(e) if e.is_not_found() => {
                    eprintln!(
                        "error: {} ({}) has no snapshot '{}'\nhint: {}",
                        esc(&t.name),
                        esc(&t.project),
                        esc(&name),
                        esc(&snapshot::missing_hint(&incus, &t, &name).await)
                    );
                    Exit::Invalid
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Invalid
                }
            }
        }
    }
}
