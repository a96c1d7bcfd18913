//! anklume's compiler: checks an infra AST against every rule, enriches it
//! (addressing, auto machines, volumes, resources) into a plain IR, and writes
//! the Ansible tree from it.
#![warn(missing_docs)]

pub mod ansible;
