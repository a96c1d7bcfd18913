//! The Ansible tree: YAML emission in v1's style, managed blocks, file layout.

pub mod block;
pub mod emit;
