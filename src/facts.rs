//! Host facts, gathered before compiling (the compiler does no I/O):
//! nesting context files, host CPU and memory, host interface networks.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anklume_compiler::{HostFacts, HostNet};

/// What to gather.
pub struct Wanted {
    /// Host CPU and memory (only needed with a resource policy).
    pub resources: bool,
}

/// Gather the facts from this machine and the environment.
pub fn gather(wanted: Wanted) -> HostFacts {
    let ctx = std::env::var_os("ANKLUME_CONTEXT_DIR").unwrap_or_else(|| "/etc/anklume".into());
    let ctx = Path::new(&ctx);
    let read = |name: &str| read_context_file(&ctx.join(name));
    let is_true = |s: &str| s.trim().eq_ignore_ascii_case("true");
    let skip_subnet_check = std::env::var("ANKLUME_SKIP_HOST_SUBNET_CHECK").as_deref() == Ok("1");
    let (cpu, memory) = if wanted.resources {
        incus_resources().or_else(proc_resources).unzip()
    } else {
        (None, None)
    };
    HostFacts {
        vm_nested: read("vm_nested").map(|s| is_true(&s)),
        yolo: read("yolo").is_some_and(|s| is_true(&s)),
        absolute_level: read("absolute_level").and_then(|s| s.trim().parse().ok()),
        relative_level: read("relative_level").and_then(|s| s.trim().parse().ok()),
        cpu,
        memory,
        interfaces: if skip_subnet_check {
            Vec::new()
        } else {
            host_networks().unwrap_or_else(|e| {
                eprintln!(
                    "warning: cannot read the host's interfaces ({e}): the check that domain subnets do not overlap host networks is skipped"
                );
                Vec::new()
            })
        },
        skip_subnet_check,
    }
}

/// A nesting context file: a regular file (never a FIFO or a device, which
/// could block or never end), at most 4 KiB, UTF-8; anything else counts as
/// absent.
fn read_context_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        eprintln!(
            "warning: {} is not a regular file: ignored",
            anklume_term::display(&path.to_string_lossy())
        );
        return None;
    }
    let mut text = String::new();
    f.take(4096).read_to_string(&mut text).ok()?;
    Some(text)
}

/// `GET /1.0/resources` through the executor's Incus client (its socket
/// discovery, timeouts and envelope decoding): (cpu.total, memory.total).
/// `None` when there is no Incus to ask.
fn incus_resources() -> Option<(f64, u64)> {
    use anklume_executor::Api;
    let incus = crate::client::incus();
    if !incus.socket().exists() {
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let md = rt.block_on(incus.get("/1.0/resources")).ok()?.metadata;
    let cpu = md.get("cpu")?.get("total")?.as_u64()?;
    let mem = md.get("memory")?.get("total")?.as_u64()?;
    (cpu > 0 && mem > 0).then_some((cpu as f64, mem))
}

/// `/proc/cpuinfo` processors and `/proc/meminfo` MemTotal.
fn proc_resources() -> Option<(f64, u64)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    (cpus > 0 && kb > 0).then_some((cpus as f64, kb * 1024))
}

/// IPv4 networks of the host's interfaces, from `ip -json addr show`
/// (5 s timeout). `Err` says why they could not be read (no `ip`, a failure,
/// a timeout, output that is not `ip`'s JSON): the caller warns that the
/// host-subnet check is skipped.
fn host_networks() -> Result<Vec<HostNet>, String> {
    host_networks_with(Path::new("ip"))
}

fn host_networks_with(ip: &Path) -> Result<Vec<HostNet>, String> {
    let what = "`ip -json addr show`";
    let mut child = Command::new(ip)
        .args(["-json", "addr", "show"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Both pipes are drained while `ip` runs: a host with many interfaces
    // prints more than a pipe holds, and `ip` would block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not answer within 5 s"));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if !status.success() {
        return Err(format!(
            "{what} failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out);
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .filter(serde_json::Value::is_array)
        .ok_or_else(|| format!("{what} printed something that is not its JSON interface list"))?;
    Ok(parse_ip_json(&text))
}

/// Parse `ip -json addr show` output.
pub fn parse_ip_json(text: &str) -> Vec<HostNet> {
    let Ok(serde_json::Value::Array(ifaces)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    for iface in ifaces {
        let Some(name) = iface.get("ifname").and_then(|v| v.as_str()) else {
            continue;
        };
        let Some(addrs) = iface.get("addr_info").and_then(|v| v.as_array()) else {
            continue;
        };
        for a in addrs {
            if a.get("family").and_then(|v| v.as_str()) != Some("inet") {
                continue;
            }
            let (Some(local), Some(prefix)) = (
                a.get("local").and_then(|v| v.as_str()),
                a.get("prefixlen").and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            if let (Ok(ip), true) = (local.parse::<std::net::Ipv4Addr>(), prefix <= 32) {
                nets.push(HostNet {
                    ifname: name.to_string(),
                    addr: ip.octets(),
                    prefix: prefix as u8,
                });
            }
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `ip` that prints `n` interfaces (each with a long name list of
    /// addresses), the last one on 10.99.0.1/24.
    fn fake_ip(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let json = dir.join("ip.json");
        std::fs::write(&json, body).unwrap();
        let ip = dir.join("ip");
        std::fs::write(&ip, format!("#!/bin/sh\ncat '{}'\n", json.display())).unwrap();
        std::fs::set_permissions(&ip, std::fs::Permissions::from_mode(0o755)).unwrap();
        ip
    }

    fn many_interfaces(n: usize) -> String {
        let mut ifaces: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"ifname":"veth{i:05}","addr_info":[{{"family":"inet6","local":"fe80::{i:x}","prefixlen":64,"label":"{pad}"}}]}}"#,
                    pad = "x".repeat(100)
                )
            })
            .collect();
        ifaces.push(
            r#"{"ifname":"eth9","addr_info":[{"family":"inet","local":"10.99.0.1","prefixlen":24}]}"#
                .into(),
        );
        format!("[{}]", ifaces.join(","))
    }

    #[test]
    fn a_host_with_many_interfaces_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let body = many_interfaces(2000);
        assert!(body.len() > 128 * 1024, "more than a pipe buffer");
        let ip = fake_ip(dir.path(), &body);
        let nets = host_networks_with(&ip).unwrap();
        assert_eq!(
            nets,
            vec![HostNet {
                ifname: "eth9".into(),
                addr: [10, 99, 0, 1],
                prefix: 24,
            }]
        );
    }

    #[test]
    fn a_failing_or_missing_ip_is_reported_not_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ip = dir.path().join("ip");
        std::fs::write(
            &ip,
            "#!/bin/sh\necho 'Cannot open netlink socket' >&2\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&ip, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = host_networks_with(&ip).unwrap_err();
        assert!(
            e.contains("failed") && e.contains("Cannot open netlink socket"),
            "{e}"
        );
        let e = host_networks_with(&dir.path().join("no-such-ip")).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let junk = fake_ip(dir.path(), "not json");
        let e = host_networks_with(&junk).unwrap_err();
        assert!(e.contains("not its JSON"), "{e}");
    }
}
