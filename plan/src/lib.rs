//! The plan: anklume's contract between review and execution.
//!
//! A [`Plan`] is the complete desired state of every managed Incus resource,
//! with the dependency edges between them. It is computed offline by the
//! planner, stored as `plan.bin` (see [`codec`]), rendered for people and
//! tools (see [`render`]) and compared (see [`diff`]). The executor needs this
//! crate only: nothing here depends on the compiler.
//!
//! Everything is ordered (vectors in canonical order, `BTreeMap`s), so the
//! same plan always serialises to the same bytes.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod budget;
pub mod codec;
pub mod diff;
pub mod escape;
pub mod render;

/// Incus configuration: key → string value, sorted.
pub type Config = BTreeMap<String, String>;
/// Incus devices: name → options (`type` included), sorted.
pub type Devices = BTreeMap<String, Config>;

/// The whole plan body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// Resources in canonical order: by phase (networks, projects, profiles,
    /// volumes, instances, nftables, provision), then by id. This order is
    /// always a valid topological order of `edges`.
    #[serde(deserialize_with = "budget::seq")]
    pub nodes: Vec<Node>,
    /// Dependencies: `(dependency, dependent)` as indices into `nodes`, sorted.
    #[serde(deserialize_with = "budget::seq")]
    pub edges: Vec<(u32, u32)>,
}

/// One resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id, e.g. `instance/pro/pro-dev`.
    pub id: String,
    /// The domain it belongs to (`None` for global resources).
    pub domain: Option<String>,
    /// Where it comes from in the sources (`infra.yml:12`), for people.
    /// Not part of the desired Incus state.
    pub origin: Option<String>,
    /// The desired state.
    pub resource: Resource,
}

/// The kinds of resources, in phase order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A bridge network.
    Network,
    /// An Incus project (with its default profile).
    Project,
    /// An extra profile in a project.
    Profile,
    /// A custom storage volume.
    Volume,
    /// A container or VM.
    Instance,
    /// The host nftables ruleset.
    Nftables,
    /// Ansible provisioning of one instance.
    Provision,
}

impl Kind {
    /// All kinds, in phase order.
    pub const ALL: [Kind; 7] = [
        Kind::Network,
        Kind::Project,
        Kind::Profile,
        Kind::Volume,
        Kind::Instance,
        Kind::Nftables,
        Kind::Provision,
    ];

    /// The id prefix and display name (`network`, `instance`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Project => "project",
            Kind::Profile => "profile",
            Kind::Volume => "volume",
            Kind::Instance => "instance",
            Kind::Nftables => "nftables",
            Kind::Provision => "provision",
        }
    }
}

/// The desired state of one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Resource {
    /// A bridge in the `default` project.
    Network(Network),
    /// A project and its default profile.
    Project(Project),
    /// An extra profile.
    Profile(Profile),
    /// A custom storage volume.
    Volume(Volume),
    /// A container or VM.
    Instance(Instance),
    /// The nftables ruleset.
    Nftables(Nftables),
    /// Provisioning with Ansible.
    Provision(Provision),
}

impl Resource {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Network(_) => Kind::Network,
            Resource::Project(_) => Kind::Project,
            Resource::Profile(_) => Kind::Profile,
            Resource::Volume(_) => Kind::Volume,
            Resource::Instance(_) => Kind::Instance,
            Resource::Nftables(_) => Kind::Nftables,
            Resource::Provision(_) => Kind::Provision,
        }
    }
}

/// A managed bridge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Bridge name (≤ 15 characters).
    pub name: String,
    /// Description.
    pub description: String,
    /// Config (`ipv4.address`, `ipv4.nat`, DHCP range, `user.anklume.*`…).
    #[serde(deserialize_with = "budget::config")]
    pub config: Config,
}

/// A project; its default profile is part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Project name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Config (`features.*`, `user.anklume.*`).
    #[serde(deserialize_with = "budget::config")]
    pub config: Config,
    /// Devices of the project's `default` profile (`eth0`, `root`).
    #[serde(deserialize_with = "budget::devices")]
    pub default_profile_devices: Devices,
}

/// An extra profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Project it lives in.
    pub project: String,
    /// Profile name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Config.
    #[serde(deserialize_with = "budget::config")]
    pub config: Config,
    /// Devices.
    #[serde(deserialize_with = "budget::devices")]
    pub devices: Devices,
}

/// A custom storage volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Project it lives in.
    pub project: String,
    /// Storage pool.
    pub pool: String,
    /// Volume name.
    pub name: String,
    /// Config (`size`, `user.anklume.*`).
    #[serde(deserialize_with = "budget::config")]
    pub config: Config,
}

/// Container or VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceType {
    /// LXC container.
    Container,
    /// KVM virtual machine.
    VirtualMachine,
}

impl InstanceType {
    /// Incus's name for it.
    pub fn incus_name(self) -> &'static str {
        match self {
            InstanceType::Container => "container",
            InstanceType::VirtualMachine => "virtual-machine",
        }
    }
}

/// Where an instance's image comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageSource {
    /// A simplestreams remote (`images:debian/13`).
    Remote {
        /// The image as written (`images:debian/13`).
        image: String,
        /// Server URL.
        server: String,
        /// Protocol (`simplestreams`).
        protocol: String,
        /// Alias on the server (`debian/13`).
        alias: String,
    },
    /// A local image alias.
    Local {
        /// The alias.
        alias: String,
    },
}

impl ImageSource {
    /// The image as the user wrote it.
    pub fn display(&self) -> &str {
        match self {
            ImageSource::Remote { image, .. } => image,
            ImageSource::Local { alias } => alias,
        }
    }
}

/// A container or VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Project.
    pub project: String,
    /// Instance name.
    pub name: String,
    /// Container or VM.
    pub instance_type: InstanceType,
    /// Description.
    pub description: String,
    /// Image.
    pub source: ImageSource,
    /// Profiles, in order.
    #[serde(deserialize_with = "budget::seq")]
    pub profiles: Vec<String>,
    /// Config: the user's keys, resource limits, protection, boot and
    /// snapshot keys, and `user.anklume.*` provenance.
    #[serde(deserialize_with = "budget::config")]
    pub config: Config,
    /// Instance-local devices (static IP nic, gpu, `sv-*`, `pd-*`, volumes…).
    #[serde(deserialize_with = "budget::devices")]
    pub devices: Devices,
    /// The static address, if any (also in the nic device).
    pub ip: Option<String>,
}

/// The host nftables ruleset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nftables {
    /// Table (`inet anklume`).
    pub table: String,
    /// The ruleset file, one entry per line.
    #[serde(deserialize_with = "budget::seq")]
    pub lines: Vec<String>,
    /// Reachability the ruleset opens, for review (`pro -> ai-tools tcp/11434`).
    #[serde(deserialize_with = "budget::seq")]
    pub paths: Vec<String>,
}

impl Nftables {
    /// The ruleset as `nft -f` reads it.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// Ansible provisioning of one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provision {
    /// Inventory host name (unprefixed machine name).
    pub host: String,
    /// Incus instance.
    pub instance: String,
    /// Incus project.
    pub project: String,
    /// Roles in the order they run.
    #[serde(deserialize_with = "budget::seq")]
    pub roles: Vec<String>,
    /// Inventory file, relative to the Ansible tree.
    pub inventory: String,
    /// The nesting context files written into the instance
    /// (`/etc/anklume/<name>`, each holding its value and a newline):
    /// `absolute_level`, `relative_level`, `vm_nested`, `yolo`.
    #[serde(deserialize_with = "budget::config")]
    pub context: Config,
    /// The files of the Ansible tree its variables come from, relative to
    /// the tree: `group_vars/all.yml`, `group_vars/<domain>.yml`,
    /// `inventory/<domain>.yml`, `host_vars/<machine>.yml`.
    #[serde(deserialize_with = "budget::seq")]
    pub vars: Vec<String>,
    /// A digest of everything its provisioning depends on: its roles, the
    /// files of those roles, its variable files and its context (empty when
    /// the plan was made without the Ansible tree). An instance whose
    /// recorded fingerprint matches is provisioned already.
    pub fingerprint: String,
}

impl Plan {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Domains in order of first appearance (one pass over the nodes).
    pub fn domains(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.nodes
            .iter()
            .filter_map(|n| n.domain.as_deref())
            .filter(|d| seen.insert(*d))
            .collect()
    }
}
