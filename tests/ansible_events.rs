//! anklume's callback plugin (`ansible/callback_plugins/anklume_events.py`)
//! under the real `ansible-playbook` of the project's venv, on the local
//! machine (connection local, nothing outside a temporary directory is
//! touched): each task result is one event line, and the final counts say
//! which host failed. Skipped when the venv is missing, unless
//! `ANKLUME_REQUIRE_PROVISIONING=1`.

mod common;

use std::path::Path;

use anklume_executor::ansible::events::Reader;
use anklume_executor::ansible::TaskStatus;

const PLAY: &str = r#"
- name: Events
  hosts: all
  gather_facts: false
  roles:
    - probe
  tasks:
    - name: Changes in the host's directory
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}"
        content: "x\n"
        mode: "0644"
    - name: Fails, ignored
      ansible.builtin.command: "false"
      ignore_errors: true
      changed_when: false
    - name: Rescued
      block:
        - name: Fails inside a block
          ansible.builtin.fail:
            msg: rescued failure
      rescue:
        - name: The rescue
          ansible.builtin.debug:
            msg: rescued
    - name: Fails on bad only
      ansible.builtin.fail:
        msg: "bad is bad\nsecond line"
      when: inventory_hostname == 'bad'
    - name: Skipped everywhere
      ansible.builtin.debug:
        msg: never
      when: false
"#;

#[test]
fn every_task_result_is_an_event_and_the_counts_name_the_failed_host() {
    let playbook = common::ansible_venv().join("bin/ansible-playbook");
    if !playbook.is_file()
        && !common::skip(
            "ANKLUME_REQUIRE_PROVISIONING",
            &format!(
                "no Ansible venv at {} (scripts/ansible-setup.sh)",
                playbook.display()
            ),
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("play.yml"), PLAY).unwrap();
    std::fs::create_dir_all(d.join("roles/probe/tasks")).unwrap();
    std::fs::write(
        d.join("roles/probe/tasks/main.yml"),
        "- name: Probe | Look\n  ansible.builtin.debug:\n    msg: hi\n",
    )
    .unwrap();
    let events = d.join("events.jsonl");
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible/callback_plugins");
    let o = std::process::Command::new(&playbook)
        .arg(d.join("play.yml"))
        .args([
            "-i",
            "good,bad",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
        ])
        .env("ANSIBLE_CALLBACK_PLUGINS", &plugins)
        .env("ANSIBLE_CALLBACKS_ENABLED", "anklume_events")
        .env("ANKLUME_EVENTS_FILE", &events)
        .env("ANSIBLE_LOCAL_TEMP", d.join("tmp"))
        .env("ANSIBLE_HOME", d.join("home"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "a host failed: {out}");
    let mut r = Reader::default();
    let got = r.poll(&events);
    let find = |host: &str, task: &str| {
        got.iter()
            .find(|e| e.host == host && e.task == task)
            .unwrap_or_else(|| panic!("no event {host} {task}: {got:?}"))
    };
    let probe = find("good", "Probe | Look");
    assert_eq!(
        probe.role.as_deref(),
        Some("probe"),
        "role name off the task name"
    );
    assert_eq!(probe.status, TaskStatus::Ok);
    assert_eq!(
        find("good", "Changes in the host's directory").status,
        TaskStatus::Changed
    );
    let ignored = find("bad", "Fails, ignored");
    assert_eq!(
        (ignored.status, ignored.ignored),
        (TaskStatus::Failed, true)
    );
    assert_eq!(
        find("good", "Fails inside a block").status,
        TaskStatus::Failed
    );
    let bad = find("bad", "Fails on bad only");
    assert_eq!(bad.status, TaskStatus::Failed);
    assert!(!bad.ignored);
    assert_eq!(bad.msg.as_deref(), Some("bad is bad\nsecond line"));
    assert_eq!(
        find("good", "Fails on bad only").status,
        TaskStatus::Skipped
    );
    assert_eq!(
        find("good", "Skipped everywhere").status,
        TaskStatus::Skipped
    );
    let stats = r.stats.expect("the final counts");
    assert_eq!(stats["bad"].failed, 1, "{stats:?}");
    assert_eq!(stats["good"].failed, 0, "{stats:?}");
    assert_eq!(stats["good"].rescued, 1, "{stats:?}");
    assert_eq!(stats["good"].changed, 1, "{stats:?}");
    // The counts agree with Ansible's own recap.
    let recap = anklume_executor::ansible::recap::parse(&out);
    assert_eq!(recap["bad"].failed, stats["bad"].failed);
    assert_eq!(recap["good"].ok, stats["good"].ok);
}
