//! The provisioner with a stand-in `ansible-playbook`: a shell script that
//! answers like the real one (its events file and its recap). The real
//! playbook runs in `tests/provision.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// Hosts named `bad*` fail their second task; every run is counted in
/// `<dir>/runs`, with its --limit and -f.
const STUB: &str = r#"#!/bin/sh
limit=""; forks=""
while [ $# -gt 0 ]; do
  case "$1" in --limit) limit="$2"; shift;; -f) forks="$2"; shift;; esac; shift
done
echo "$limit $forks" >> "$(dirname "$0")/runs"
stats=""
for h in $(echo "$limit" | tr ',' ' '); do
  printf '{"kind":"task","host":"%s","task":"Base | Install","role":"base_system","status":"changed","ignored":false,"msg":null}\n' "$h" >> "$ANKLUME_EVENTS_FILE"
  case "$h" in
    bad*) printf '{"kind":"task","host":"%s","task":"Boom","role":null,"status":"failed","ignored":false,"msg":"nope\\nsecond line"}\n' "$h" >> "$ANKLUME_EVENTS_FILE"
          s='{"ok":1,"changed":1,"failed":1,"unreachable":0,"skipped":0}';;
    *) s='{"ok":2,"changed":1,"failed":0,"unreachable":0,"skipped":0}';;
  esac
  stats="$stats${stats:+,}\"$h\":$s"
done
echo "PLAY RECAP ****"
printf '{"kind":"stats","hosts":{%s}}\n' "$stats" >> "$ANKLUME_EVENTS_FILE"
case "$limit" in *bad*) exit 2;; esac
"#;

fn setup(dir: &Path) -> Setup {
    let bin = dir.join("ansible-playbook");
    std::fs::write(&bin, STUB).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("content")).unwrap();
    std::fs::write(dir.join("content/site.yml"), "").unwrap();
    std::fs::create_dir_all(dir.join("tree/inventory")).unwrap();
    Setup {
        ansible_playbook: bin,
        content: dir.join("content"),
        tree: dir.join("tree"),
        logs: dir.join("logs"),
        forks: 3,
        quiet: Duration::from_secs(30),
    }
}

fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn one_run_for_all_hosts_a_failed_host_fails_alone_with_its_task_and_events_stream() {
    let dir = tempfile::tempdir().unwrap();
    let p = Provisioner::new(setup(dir.path()));
    assert_eq!(p.unavailable(), None);
    let seen: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let s = seen.clone();
    p.set_progress(Arc::new(move |e: &TaskEvent| {
        s.lock().unwrap().push(e.clone())
    }));
    p.expect(2).await;
    let ctx = BTreeMap::new();
    let (good, bad) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(p.run("good", &ctx), p.run("bad", &ctx))
    })
    .await
    .expect("the batch starts once both hosts are there");
    assert_eq!(runs(dir.path()), ["bad,good 3"], "one run, forks as set");
    assert_eq!(good.error, None);
    assert_eq!(good.recap.as_ref().map(|r| r.changed), Some(1));
    assert_eq!(
        bad.error.as_deref(),
        Some("task 'Boom' failed: nope"),
        "the failed task and the first line of its message"
    );
    assert!(good.log.is_file() && good.log == bad.log, "{:?}", good.log);
    let seen = seen.lock().unwrap();
    let got: Vec<(&str, &str, TaskStatus)> = seen
        .iter()
        .map(|e| (e.host.as_str(), e.task.as_str(), e.status))
        .collect();
    assert_eq!(
        got,
        [
            ("bad", "Base | Install", TaskStatus::Changed),
            ("bad", "Boom", TaskStatus::Failed),
            ("good", "Base | Install", TaskStatus::Changed),
        ]
    );
}

#[tokio::test]
async fn a_host_that_will_not_come_does_not_hold_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = Provisioner::new(setup(dir.path()));
    p.expect(3).await;
    let ctx = BTreeMap::new();
    let q = p.clone();
    let forget = async move {
        // The third host's node is skipped after the others arrived.
        tokio::time::sleep(Duration::from_millis(200)).await;
        q.forget().await;
    };
    let ((a, b), ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            async { tokio::join!(p.run("a", &ctx), p.run("b", &ctx)) },
            forget
        )
    })
    .await
    .expect("forget() starts the batch of the hosts that are there");
    assert_eq!((a.error, b.error), (None, None));
    assert_eq!(runs(dir.path()), ["a,b 3"]);
}

#[tokio::test]
async fn a_playbook_that_cannot_start_fails_every_host_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup(dir.path());
    s.ansible_playbook = dir.path().join("missing");
    let p = Provisioner::new(s);
    assert!(p.unavailable().unwrap().contains("ansible-setup.sh"));
    p.expect(1).await;
    let o = p.run("a", &BTreeMap::new()).await;
    assert!(o.error.unwrap().contains("cannot run"));
}
