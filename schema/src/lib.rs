//! anklume's front end: loading `infra.yml` or `infra/`, parsing YAML 1.2 with
//! byte spans, and the typed AST of the infra format.
//!
//! This crate does no I/O beyond reading the source files it is asked to load,
//! and depends on neither codespan nor salsa: diagnostics are plain data.
#![warn(missing_docs)]

pub mod value;

pub use value::Value;
pub mod diag;
pub mod span;
pub mod yaml;

pub use diag::{Diagnostic, Label, Severity};
pub use span::{FileId, SourceFile, Sources, Span};
pub mod ast;
pub mod load;
pub mod read;

pub use load::{load, load_str, resolve, IoError, Loaded, Origin, ResolveError};
pub use read::{Field, Name};
