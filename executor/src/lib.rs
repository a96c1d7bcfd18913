//! anklume's executor: makes a real Incus match a plan, over the REST API on
//! the daemon's Unix socket. It depends on the plan format only, never on the
//! compiler, and never shells out to the `incus` command.
//!
//! - [`incus`]: Incus behind the [`Api`] trait (the real client, a fake).
//! - [`kind`]: one module per resource kind (address, decide, apply, prior
//!   state, undo, delete, orphans) and the registry that dispatches to them.
//! - [`live`] reads Incus's state in bulk; [`decide`] compares it with the
//!   plan; [`schedule`] carries the decisions out in dependency order;
//!   [`undo`] plans and runs a rollback from a [`journal`].
//! - [`status`]: what is deployed (`anklume status`): the decisions
//!   without the transaction, read only.
//! - [`transaction`]: the apply and rollback transactions (lock, journal,
//!   snapshots, retention, interruption), which report typed events and
//!   never print or exit.
#![warn(missing_docs)]

pub mod ansible;
pub mod decide;
pub mod dhcp;
pub mod error;
pub mod incus;
pub mod journal;
pub mod kind;
pub mod live;
pub mod model;
pub mod nft;
pub mod schedule;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod transaction;
pub mod undo;

pub use error::Error;
pub use incus::{Api, Incus, IncusError};
