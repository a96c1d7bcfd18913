//! The executor's error type: what went wrong, by kind, with the path or
//! the object it concerns. Messages are complete sentences for people; the
//! variants let callers decide (exit codes, retries) without parsing them.

use std::path::{Path, PathBuf};

use crate::incus::IncusError;

/// An executor error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Incus refused, or could not be reached.
    #[error(transparent)]
    Incus(#[from] IncusError),
    /// A file of the state directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Another apply or rollback holds the lock.
    #[error("another anklume apply is running (lock held on {}); wait for it to finish", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A journal line is not a record.
    #[error("{}:{line}: not a journal record: {message}", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The decoder's message.
        message: String,
    },
    /// `nft` could not be run, refused the ruleset, or the ruleset touches
    /// more than anklume's table.
    #[error(transparent)]
    Nft(#[from] crate::nft::NftError),
    /// Incus refused while anklume was doing something named here.
    #[error("{doing}: {source}")]
    IncusWhile {
        /// What (`listing instances`).
        doing: &'static str,
        /// Incus's error.
        #[source]
        source: IncusError,
    },
    /// This machine's host name (what `self` names) cannot be read.
    #[error("cannot read the host name: {0}")]
    Hostname(std::io::Error),
    /// An instance or project named by the user is not there (or is
    /// ambiguous).
    #[error("{0}")]
    Lookup(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
