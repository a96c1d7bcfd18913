//! What is deployed, for `anklume status`: the plan's decisions against
//! what Incus (and the host's `inet anklume` table) has now, exactly as
//! apply decides them, read only. It takes no lock, starts no journal,
//! writes nothing and sends only the bulk reads: the state is read by
//! [`crate::transaction::apply::read_state`] and compared by
//! [`crate::decide::decide`], apply's own. Provisioning is decided from the
//! fingerprints alone: whether Ansible could run here does not change what
//! is deployed.

use std::path::PathBuf;
use std::sync::Arc;

use anklume_plan::Plan;

use crate::decide::{self, Decisions};
use crate::incus::Api;
use crate::journal;
use crate::nft::Nft;
use crate::transaction::apply::read_state;
use crate::transaction::TxError;

/// What to read.
#[derive(Clone, Debug)]
pub struct Options {
    /// The state directory: the rulesets apply recorded there and its
    /// journals (read, never written).
    pub state_dir: PathBuf,
    /// The host's `nft`; `None`: the ruleset is not checked
    /// (`--no-nftables`).
    pub nft: Option<Arc<dyn Nft>>,
}

/// What was found.
#[derive(Debug)]
pub struct Status {
    /// One action per plan node (what apply would do), and the orphans.
    pub decisions: Decisions,
    /// Why the host's table could not be read (`nft` cannot be run here);
    /// the nftables node is then `NotRun`.
    pub nft_unusable: Option<String>,
    /// The newest apply journal, when it has no end: an apply running now,
    /// or one that was killed.
    pub unfinished: Option<journal::Read>,
}

/// Read Incus (and the host's table), and decide every node of `plan`.
/// `Err` only when Incus cannot be read ([`TxError::ReadLive`]).
pub async fn read<A: Api>(api: &A, plan: &Plan, opts: &Options) -> Result<Status, TxError> {
    let (live, nft_unusable) =
        read_state(api, plan, opts.nft.as_deref(), &opts.state_dir, false).await?;
    Ok(Status {
        decisions: decide::decide(plan, &live),
        nft_unusable,
        unfinished: journal::unfinished(&opts.state_dir),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use anklume_plan::Resource;

    use super::*;
    use crate::decide::Action;
    use crate::incus::fake::Fake;
    use crate::incus::Method;
    use crate::kind::tests::{chain, instance, network, project, IMAGE};
    use crate::kind::{apply, RunContext};
    use crate::nft::fake::FakeNft;

    fn provision(project: &str, instance: &str, fingerprint: &str) -> Resource {
        Resource::Provision(anklume_plan::Provision {
            host: instance.into(),
            instance: instance.into(),
            project: project.into(),
            roles: vec!["base_system".into()],
            inventory: String::new(),
            context: BTreeMap::new(),
            vars: Vec::new(),
            fingerprint: fingerprint.into(),
        })
    }

    /// Every state status reports, from apply's own decisions: unchanged,
    /// drifted (the key), missing, orphaned (with its recorded domain),
    /// the three provisioning states; and nothing but reads was sent.
    #[tokio::test]
    async fn decides_like_apply_and_sends_only_reads() {
        let fake = Fake::new().with_image(IMAGE);
        let ctx = RunContext::default();
        let kept = instance("kt", "kt-a", "");
        let mut old = instance("kt", "kt-old", "");
        if let Resource::Instance(i) = &mut old {
            i.config.insert("user.anklume.domain".into(), "gone".into());
        }
        for r in [
            network("net-kt", ""),
            project("kt", ""),
            kept.clone(),
            instance("kt", "kt-b", ""),
            instance("kt", "kt-c", ""),
            old,
        ] {
            apply(&fake, &r, true, &ctx).await.unwrap();
        }
        fake.set_object("/1.0/instances/kt-a?project=kt", |v| {
            v["config"]["security.protection.delete"] = "true".into();
            v["config"]["user.anklume.provisioned"] = "fp-a".into();
        });
        fake.set_object("/1.0/instances/kt-b?project=kt", |v| {
            v["config"]["user.anklume.provisioned"] = "fp-old".into();
        });
        let plan = chain(vec![
            network("net-kt", ""),
            project("kt", ""),
            kept,
            instance("kt", "kt-b", ""),
            instance("kt", "kt-c", ""),
            instance("kt", "kt-new", ""),
            provision("kt", "kt-a", "fp-a"),
            provision("kt", "kt-b", "fp-b"),
            provision("kt", "kt-c", "fp-c"),
        ]);
        fake.clear_log();
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            state_dir: dir.path().join("state"),
            nft: None,
        };
        let s = read(&fake, &plan, &opts).await.unwrap();
        let a = &s.decisions.actions;
        assert_eq!(a[0], Action::Unchanged);
        assert_eq!(a[1], Action::Unchanged);
        let Action::Update { changes } = &a[2] else {
            panic!("{:?}", a[2])
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].key, "config.security.protection.delete");
        assert_eq!(changes[0].old.as_deref(), Some("true"));
        assert_eq!(a[3], Action::Unchanged);
        assert_eq!(a[5], Action::Create);
        assert_eq!(a[6], Action::Unchanged, "provisioned");
        assert!(
            matches!(&a[7], Action::Update { changes } if changes[0].old.as_deref() == Some("fp-old")),
            "needs provisioning: {:?}",
            a[7]
        );
        assert_eq!(a[8], Action::Create, "never provisioned");
        assert_eq!(s.decisions.orphans.len(), 1);
        let o = &s.decisions.orphans[0];
        assert_eq!((o.kind, o.name.as_str()), ("instance", "kt-old"));
        assert_eq!(o.domain.as_deref(), Some("gone"));
        assert!(s.nft_unusable.is_none());
        assert!(s.unfinished.is_none());
        // Read only: no write, and no state directory made (no lock).
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        assert!(fake.requests().iter().all(|(m, _)| *m == Method::Get));
        assert!(!opts.state_dir.exists());
    }

    /// With the host's `nft`: the table is compared as apply compares it
    /// (absent: missing), and a configuration without one leaves the node
    /// not run (`--no-nftables`).
    #[tokio::test]
    async fn the_ruleset_is_checked_only_with_nft() {
        let fake = Fake::new();
        let plan = chain(vec![Resource::Nftables(anklume_plan::Nftables {
            table: "inet anklume".into(),
            lines: vec!["table inet anklume {".into(), "}".into()],
            paths: Vec::new(),
        })]);
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options {
            state_dir: dir.path().to_path_buf(),
            nft: None,
        };
        let s = read(&fake, &plan, &opts).await.unwrap();
        assert!(matches!(s.decisions.actions[0], Action::NotRun { .. }));
        opts.nft = Some(Arc::new(FakeNft::default()));
        let s = read(&fake, &plan, &opts).await.unwrap();
        assert_eq!(s.decisions.actions[0], Action::Create);
        // A table someone else loaded: not the ruleset anklume recorded.
        let nft = FakeNft::default();
        nft.set_table(Some("table inet anklume {\n}\n"));
        opts.nft = Some(Arc::new(nft));
        let s = read(&fake, &plan, &opts).await.unwrap();
        assert!(
            matches!(&s.decisions.actions[0], Action::Update { .. }),
            "{:?}",
            s.decisions.actions[0]
        );
    }
}
