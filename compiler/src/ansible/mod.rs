//! The Ansible tree: YAML emission in v1's style, managed blocks, file layout
//! and writing.

pub mod block;
pub mod emit;
pub mod fsio;
pub mod protect;
pub mod sync;
pub mod tree;
