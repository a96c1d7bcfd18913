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
pub const FORMAT_VERSION: u32 = 1;
/// Largest body accepted (guards allocations on hostile input).
pub const MAX_BODY: u64 = 1 << 30;

/// What the plan was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Header {
    /// Version of the anklume that wrote the plan.
    pub anklume_version: String,
    /// Every source file with its SHA-256 (hex), in load order.
    pub sources: Vec<SourceDigest>,
    /// The host facts that shaped the plan.
    pub facts: Facts,
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
    let ((header, plan), used): ((Header, Plan), usize) =
        bincode::serde::decode_from_slice(&bytes[20..end], config())
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if used != len as usize {
        return Err(DecodeError::Corrupt("body longer than its content".into()));
    }
    Ok(PlanFile { header, plan })
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        v[8] = 2;
        assert_eq!(decode(&v), Err(DecodeError::Version { found: 2 }));
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
}
