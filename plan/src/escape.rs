//! Escaping user-derived text for human-readable output: anklume's one
//! implementation lives in the `anklume-term` crate, shared by every crate
//! that prints user text.

pub use anklume_term::*;
