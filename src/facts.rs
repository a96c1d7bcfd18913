//! Host facts, gathered before compiling (the compiler does no I/O):
//! nesting context files, host CPU and memory, host interface networks.

use std::io::{Read, Write};
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
    let read = |name: &str| std::fs::read_to_string(ctx.join(name)).ok();
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
        cpu,
        memory,
        interfaces: if skip_subnet_check {
            Vec::new()
        } else {
            host_networks()
        },
        skip_subnet_check,
    }
}

/// `GET /1.0/resources` over the Incus socket: (cpu.total, memory.total).
fn incus_resources() -> Option<(f64, u64)> {
    let path = anklume_executor::client::socket_path();
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /1.0/resources HTTP/1.0\r\nHost: incus\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let md = v.get("metadata")?;
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
/// (5 s timeout). Any failure gives no networks (and so no check), as in v1.
fn host_networks() -> Vec<HostNet> {
    let Ok(mut child) = Command::new("ip")
        .args(["-json", "addr", "show"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Vec::new();
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                return Vec::new();
            }
        }
    }
    let mut out = String::new();
    if child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut out))
        .is_none()
    {
        return Vec::new();
    }
    parse_ip_json(&out)
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
