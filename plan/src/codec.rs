//! `plan.bin`: the envelope and its encoding.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `ANKPLAN\0` |
//! | 4 | plan format version ([`FORMAT_VERSION`]) |
//! | 8 | length `n` of the body |
//! | n | body: bincode 2 (standard config) of ([`Header`], [`Plan`]) |
//! | 32 | SHA-256 of everything before it |
//!
//! The same inputs give the same bytes: no timestamps, ordered collections.
//! Decoding checks magic, version, length and checksum before decoding the
//! body, and reports each failure as a [`DecodeError`], never a panic.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Plan;

/// First bytes of every plan file.
pub const MAGIC: &[u8; 8] = b"ANKPLAN\0";
/// Version of the plan format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// Largest body accepted (guards allocations on hostile input).
pub const MAX_BODY: u64 = 1 << 30;
/// Largest plan file accepted: the largest body and its envelope.
pub const MAX_FILE: u64 = MAX_BODY + 52;
/// Decoding may allocate at most this many times the body's size (plus
/// [`DECODE_SLACK`]) for the decoded plan; a body that would need more is
/// refused as corrupt. Plans written by `anklume plan` are charged about 5
/// times their size; a crafted body of empty nodes or one-entry maps would
/// otherwise take over 100 times its size.
pub const DECODE_FACTOR: usize = 32;
/// Fixed allowance added to the decoding budget, for tiny plans.
pub const DECODE_SLACK: usize = 64 * 1024;
/// Longest node id accepted. Ids are built from Incus names (at most 63
/// characters each); the bound keeps every rendering linear in the size of
/// the plan, since an id is repeated once per edge that names it.
pub const MAX_ID_LEN: usize = 1024;

/// What the plan was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Header {
    /// Version of the anklume that wrote the plan.
    pub anklume_version: String,
    /// Every source file with its SHA-256 (hex), in load order.
    #[serde(deserialize_with = "crate::budget::seq")]
    pub sources: Vec<SourceDigest>,
    /// The host facts that shaped the plan.
    pub facts: Facts,
    /// The Ansible tree the plan read (where `anklume sync` writes, with
    /// `roles_custom/`), as given to `plan` (relative to where it ran).
    pub tree_dir: String,
    /// The tree's files provisioning depends on (variable files and the
    /// user's role files), relative to `tree_dir`; an empty digest: the
    /// file was absent.
    #[serde(deserialize_with = "crate::budget::seq")]
    pub tree: Vec<SourceDigest>,
}

/// A source file and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDigest {
    /// Path as given on the command line (relative to where `plan` ran).
    pub path: String,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// Host facts that changed the plan. Facts that only decide whether the
/// input is valid (host interfaces) are not recorded: they do not change the
/// plan, and recording them would make plans differ between machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Facts {
    /// `/etc/anklume/absolute_level`.
    pub absolute_level: Option<i64>,
    /// `/etc/anklume/relative_level`.
    pub relative_level: Option<i64>,
    /// The Incus name prefix it gave (`""` or `NNN-`).
    pub prefix: String,
    /// `/etc/anklume/vm_nested`.
    pub vm_nested: Option<bool>,
    /// `/etc/anklume/yolo`.
    pub yolo: bool,
    /// Host CPUs, when a resource policy used them.
    pub cpu: Option<f64>,
    /// Host memory in bytes, when a resource policy used it.
    pub memory: Option<u64>,
}

/// A plan file: header and plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PlanFile {
    /// Provenance.
    pub header: Header,
    /// The plan.
    pub plan: Plan,
}

/// Why a file is not a readable plan.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// It does not start with the magic bytes.
    Foreign,
    /// It ends before the data it announces.
    Truncated,
    /// Another plan format version.
    Version {
        /// Version in the file.
        found: u32,
    },
    /// The checksum or the body does not match.
    Corrupt(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Foreign => f.write_str("not an anklume plan (wrong magic bytes)"),
            DecodeError::Truncated => f.write_str("truncated plan file"),
            DecodeError::Version { found } => write!(
                f,
                "plan format version {found}, but this anklume reads version {FORMAT_VERSION}: re-run `anklume plan` with this anklume"
            ),
            DecodeError::Corrupt(why) => write!(f, "corrupt plan file: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_BODY as usize }>()
}

/// Encode a plan file.
pub fn encode(file: &PlanFile) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec((&file.header, &file.plan), config())
        .expect("plan types always encode");
    let mut out = Vec::with_capacity(body.len() + 52);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Decode a plan file.
pub fn decode(bytes: &[u8]) -> Result<PlanFile, DecodeError> {
    decode_with_factor(bytes, DECODE_FACTOR)
}

fn decode_with_factor(bytes: &[u8], factor: usize) -> Result<PlanFile, DecodeError> {
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
            DecodeError::Truncated
        } else {
            DecodeError::Foreign
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(DecodeError::Foreign);
    }
    let version = bytes
        .get(8..12)
        .ok_or(DecodeError::Truncated)?
        .try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| DecodeError::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version { found: version });
    }
    let len = bytes
        .get(12..20)
        .ok_or(DecodeError::Truncated)?
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| DecodeError::Truncated)?;
    if len > MAX_BODY {
        return Err(DecodeError::Corrupt(format!(
            "body length {len} is implausible"
        )));
    }
    let end = 20 + len as usize;
    if bytes.len() < end + 32 {
        return Err(DecodeError::Truncated);
    }
    if bytes.len() > end + 32 {
        return Err(DecodeError::Corrupt(format!(
            "{} unexpected bytes after the checksum",
            bytes.len() - end - 32
        )));
    }
    let digest = Sha256::digest(&bytes[..end]);
    if digest.as_slice() != &bytes[end..] {
        return Err(DecodeError::Corrupt("checksum mismatch".into()));
    }
    let budget = (len as usize)
        .saturating_mul(factor)
        .saturating_add(DECODE_SLACK);
    let guard = crate::budget::enter(budget);
    let decoded: Result<((Header, Plan), usize), _> =
        bincode::serde::decode_from_slice(&bytes[20..end], config());
    let exceeded = guard.exceeded();
    drop(guard);
    let ((header, plan), used) = decoded.map_err(|e| {
        DecodeError::Corrupt(if exceeded {
            format!(
                "the body would take more than {factor} times its size in memory \
                 (at most {budget} bytes for {len} bytes)"
            )
        } else {
            e.to_string()
        })
    })?;
    if used != len as usize {
        return Err(DecodeError::Corrupt("body longer than its content".into()));
    }
    if let Some(n) = plan.nodes.iter().find(|n| n.id.len() > MAX_ID_LEN) {
        return Err(DecodeError::Corrupt(format!(
            "a node id is {} bytes long (at most {MAX_ID_LEN})",
            n.id.len()
        )));
    }
    check_shape(&plan).map_err(DecodeError::Corrupt)?;
    Ok(PlanFile { header, plan })
}

/// The longest config key, device name or device option key a plan may
/// hold. Renderings repeat a device's name on each of its option lines, so
/// unbounded names made them quadratic; Incus's own keys and device names
/// are far shorter (device names at most 63).
pub const MAX_KEY_LEN: usize = 256;

/// What the decoder's types cannot say: edges name existing nodes, once
/// each, and keys and device names are of bounded length. Linear.
fn check_shape(plan: &crate::Plan) -> Result<(), String> {
    use crate::{Config, Devices, Resource};
    let n = plan.nodes.len();
    let mut seen = std::collections::HashSet::with_capacity(plan.edges.len());
    for &(a, b) in &plan.edges {
        if a as usize >= n || b as usize >= n {
            return Err(format!("an edge names node {} of {n}", a.max(b)));
        }
        if !seen.insert((a, b)) {
            return Err(format!("the edge {a} -> {b} is listed twice"));
        }
    }
    let long = |k: &String| k.len() > MAX_KEY_LEN;
    let config_ok = |c: &Config| !c.keys().any(long);
    let devices_ok = |d: &Devices| d.iter().all(|(name, opts)| !long(name) && config_ok(opts));
    for node in &plan.nodes {
        let ok = match &node.resource {
            Resource::Network(r) => config_ok(&r.config),
            Resource::Project(r) => config_ok(&r.config) && devices_ok(&r.default_profile_devices),
            Resource::Profile(r) => config_ok(&r.config) && devices_ok(&r.devices),
            Resource::Volume(r) => config_ok(&r.config),
            Resource::Instance(r) => config_ok(&r.config) && devices_ok(&r.devices),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "node {} has a config key or device name over {MAX_KEY_LEN} bytes",
                anklume_term::display(&node.id)
            ));
        }
    }
    Ok(())
}

/// Why a plan file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// It is a regular file larger than [`MAX_FILE`] bytes (checked before
    /// reading it).
    TooLarge,
    /// It was read but is not a valid plan.
    Decode(DecodeError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::TooLarge => write!(
                f,
                "not a plan file: larger than {MAX_FILE} bytes, the largest plan accepted"
            ),
            ReadError::Decode(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

/// Read a plan from `r`, never more than the envelope announces (and never
/// more than [`MAX_FILE`] bytes): the 20-byte prefix first, then only when
/// it is a plan's, the announced body and checksum, plus one byte to notice
/// trailing data. A foreign stream (`/dev/zero`, a FIFO fed anything) costs
/// 20 bytes; [`decode`] then says what is wrong with what was read.
pub fn read_bounded(r: impl std::io::Read) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let mut r = r.take(MAX_FILE + 1);
    let mut bytes = Vec::new();
    (&mut r)
        .take(20)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() < 20 || &bytes[..8] != MAGIC || bytes[8..12] != FORMAT_VERSION.to_le_bytes() {
        return Ok(bytes);
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if len > MAX_BODY {
        return Ok(bytes);
    }
    r.take(len + 33)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    Ok(bytes)
}

/// Read and decode a plan file. A regular file's size is checked before
/// anything is read; anything else (a FIFO, a device) goes through
/// [`read_bounded`], so no input can make this allocate more than
/// [`MAX_FILE`] bytes for the file, plus the decoding budget.
pub fn read(path: &std::path::Path) -> Result<PlanFile, ReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Err(ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    let bytes = if meta.is_file() {
        if meta.len() > MAX_FILE {
            return Err(ReadError::TooLarge);
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(ReadError::TooLarge);
        }
        bytes
    } else {
        read_bounded(file)?
    };
    decode(&bytes).map_err(ReadError::Decode)
}

/// Lower-case hex SHA-256 of some bytes.
/// The digest of a directory's list of files (relative paths, sorted, one
/// per line): what a plan records for a directory whose files it also
/// records one by one, so that a file added later shows.
pub fn listing_digest<'a>(paths: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = paths.into_iter().collect();
    v.sort_unstable();
    let mut text = String::new();
    for p in v {
        text.push_str(p);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// The SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile node with these devices.
    fn profile_node(id: &str, devices: crate::Devices) -> Node {
        Node {
            id: id.into(),
            domain: None,
            origin: None,
            resource: Resource::Profile(crate::Profile {
                project: String::new(),
                name: String::new(),
                description: String::new(),
                config: Default::default(),
                devices,
            }),
        }
    }

    #[test]
    fn duplicate_or_dangling_edges_and_long_names_are_refused() {
        let node = profile_node;
        let mut f = PlanFile::default();
        f.plan.nodes.push(node("a", Default::default()));
        f.plan.nodes.push(node("b", Default::default()));
        f.plan.edges = vec![(0, 1)];
        decode(&encode(&f)).unwrap();
        f.plan.edges = vec![(0, 1), (0, 1)];
        assert!(decode(&encode(&f))
            .unwrap_err()
            .to_string()
            .contains("twice"));
        f.plan.edges = vec![(0, 2)];
        assert!(decode(&encode(&f)).is_err());
        f.plan.edges.clear();
        let long: crate::Devices = [(
            "x".repeat(MAX_KEY_LEN + 1),
            [("k".to_string(), "v".to_string())].into(),
        )]
        .into();
        f.plan.nodes.push(node("c", long));
        assert!(decode(&encode(&f))
            .unwrap_err()
            .to_string()
            .contains("over"));
    }
    use crate::{Kind, Network, Node, Resource};

    fn sample() -> PlanFile {
        PlanFile {
            header: Header {
                anklume_version: "0.1.0".into(),
                sources: vec![SourceDigest {
                    path: "infra.yml".into(),
                    sha256: sha256_hex(b"x"),
                }],
                facts: Facts::default(),
                tree_dir: ".".into(),
                tree: vec![SourceDigest {
                    path: "host_vars/pro-dev.yml".into(),
                    sha256: String::new(),
                }],
            },
            plan: Plan {
                nodes: vec![Node {
                    id: "network/net-pro".into(),
                    domain: Some("pro".into()),
                    origin: None,
                    resource: Resource::Network(Network {
                        name: "net-pro".into(),
                        description: String::new(),
                        config: [("ipv4.nat".to_string(), "true".to_string())].into(),
                    }),
                }],
                edges: vec![],
            },
        }
    }

    #[test]
    fn round_trip_and_determinism() {
        let f = sample();
        let a = encode(&f);
        assert_eq!(a, encode(&f));
        let back = decode(&a).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.plan.nodes[0].resource.kind(), Kind::Network);
    }

    #[test]
    fn every_damage_is_an_error() {
        let a = encode(&sample());
        assert_eq!(decode(b""), Err(DecodeError::Foreign));
        assert_eq!(decode(b"{\"json\": 1}"), Err(DecodeError::Foreign));
        assert_eq!(decode(&a[..5]), Err(DecodeError::Truncated));
        for cut in [10, 19, 30, a.len() - 1] {
            assert_eq!(
                decode(&a[..cut]),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        let mut v = a.clone();
        v[8] = (FORMAT_VERSION + 1) as u8;
        assert_eq!(
            decode(&v),
            Err(DecodeError::Version {
                found: FORMAT_VERSION + 1
            })
        );
        // A plan of the previous format version is refused by name too.
        v[8] = (FORMAT_VERSION - 1) as u8;
        assert_eq!(
            decode(&v),
            Err(DecodeError::Version {
                found: FORMAT_VERSION - 1
            })
        );
        for i in [20, a.len() / 2, a.len() - 1] {
            let mut c = a.clone();
            c[i] ^= 0x40;
            assert!(
                matches!(decode(&c), Err(DecodeError::Corrupt(_))),
                "flip at {i}"
            );
        }
        let mut longer = a.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(DecodeError::Corrupt(_))));
    }

    fn empty_network(id: String) -> Node {
        Node {
            id,
            domain: None,
            origin: None,
            resource: Resource::Network(Network {
                name: String::new(),
                description: String::new(),
                config: Default::default(),
            }),
        }
    }

    #[test]
    fn crafted_bodies_cannot_decode_to_many_times_their_size() {
        // 200,000 empty nodes: 7 bytes each on disk, hundreds in memory.
        let mut f = PlanFile::default();
        f.plan.nodes = (0..200_000).map(|_| empty_network(String::new())).collect();
        let bytes = encode(&f);
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Corrupt(m) if m.contains("times its size in memory")),
            "{err}"
        );
        // One-entry device maps: each allocates a whole B-tree leaf.
        let mut f = PlanFile::default();
        let devices: crate::Devices = (0..100_000)
            .map(|i| (format!("{i:x}"), [(String::new(), String::new())].into()))
            .collect();
        f.plan.nodes.push(profile_node("profile/p/x", devices));
        let err = decode(&encode(&f)).unwrap_err();
        assert!(
            err.to_string().contains("times its size in memory"),
            "{err}"
        );
        // The budget is per decode: a normal plan decodes right after.
        assert!(decode(&encode(&sample())).is_ok());
    }

    #[test]
    fn the_budget_is_relative_to_the_body() {
        // The same kind of content decodes when it is not pathological:
        // the budget scales with the body, not a fixed size.
        let mut f = sample();
        let Resource::Network(n) = &mut f.plan.nodes[0].resource else {
            unreachable!()
        };
        n.config = (0..200_000)
            .map(|i| (format!("user.key.{i}"), format!("value {i}")))
            .collect();
        let bytes = encode(&f);
        assert!(bytes.len() > 4_000_000);
        assert_eq!(decode(&bytes).unwrap(), f);
        assert!(decode_with_factor(&bytes, 1).is_err());
    }

    #[test]
    fn overlong_ids_are_refused() {
        let mut f = sample();
        f.plan.nodes[0].id = "x".repeat(MAX_ID_LEN + 1);
        let err = decode(&encode(&f)).unwrap_err();
        assert!(err.to_string().contains("node id is 1025 bytes"), "{err}");
        f.plan.nodes[0].id.pop();
        assert!(decode(&encode(&f)).is_ok());
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("anklume-plan-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn endless_and_huge_inputs_are_refused_without_reading_them() {
        // /dev/zero never ends: only its first 20 bytes are read.
        let err = read(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(err, ReadError::Decode(DecodeError::Foreign)),
            "{err}"
        );
        // A sparse regular file over the limit is refused before reading.
        let big = scratch("big.bin");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        let err = read(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        std::fs::remove_file(&big).unwrap();
        // A stream announcing a huge body: only what it announces is read.
        let mut head = Vec::new();
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&100u64.to_le_bytes());
        let endless = std::io::Read::chain(&head[..], std::io::repeat(7));
        let bytes = read_bounded(endless).unwrap();
        assert_eq!(bytes.len(), 20 + 100 + 33);
        assert!(matches!(decode(&bytes), Err(DecodeError::Corrupt(_))));
    }

    #[test]
    fn plans_are_read_from_fifos() {
        let fifo = scratch("plan.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: nothing to test
        }
        let bytes = encode(&sample());
        let (p, b) = (fifo.clone(), bytes.clone());
        let writer = std::thread::spawn(move || std::fs::write(p, b).unwrap());
        assert_eq!(read(&fifo).unwrap(), sample());
        writer.join().unwrap();
        std::fs::remove_file(&fifo).unwrap();
    }
}
