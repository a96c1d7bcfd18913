//! anklume's compiler: checks an infra AST against every rule, enriches it
//! (addressing, auto machines, volumes, resources) into a plain IR, and writes
//! the Ansible tree from it.
//!
//! The compiler is a pure function of (sources, host facts): it does no I/O
//! besides what [`ansible::sync`] is asked to write.
#![warn(missing_docs)]

pub mod ansible;
pub mod codes;
pub mod compile;
pub mod fuzzing;
pub mod ir;
pub mod render;
pub mod synth;

pub use compile::{compile, Compiled};
pub use ir::{HostFacts, HostNet, Ir, NestingContext};
