//! anklume's executor: makes a real Incus match a plan, over the REST API on
//! the daemon's Unix socket. It depends on the plan format only, never on the
//! compiler, and never shells out to the `incus` command.
//!
//! `apply --dry-run` and `apply` share one path: [`live::read`] the state in
//! bulk, [`reconcile::decide`] per node, check [`reconcile::preflight`], then
//! print the decisions or [`apply::execute`] them.
#![warn(missing_docs)]

pub mod apply;
pub mod incus;
pub mod journal;
pub mod live;
pub mod nft;
pub mod reconcile;
pub mod rollback;
pub mod snapshot;
pub mod state;

pub use incus::{Api, Incus, IncusError};
