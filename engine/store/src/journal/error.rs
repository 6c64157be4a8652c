//! What can go wrong with the journal.

use std::path::Path;
use thiserror::Error;

/// A journal operation failed.
#[derive(Debug, Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal I/O failed while {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Recovery found damage it may not repair.
    #[error("journal segment {path} is damaged at byte {offset}: {detail}. Restore it from a replica or backup; with recovery mode 'truncate-torn-tail' only the tail of the last segment is repaired")]
    Corrupt {
        /// The segment.
        path: String,
        /// Where the damage starts.
        offset: u64,
        /// What was found.
        detail: String,
    },
    /// This instance may not write: it is not the leader, or its epoch is older than one
    /// already in the journal.
    #[error(
        "journal write refused: fenced (this instance's epoch {ours:?}, newest epoch {current})"
    )]
    Fenced {
        /// Our epoch, `None` while standby.
        ours: Option<u64>,
        /// The newest epoch known to the journal.
        current: u64,
    },
    /// A replication step was refused (records out of place, damaged, or arriving while
    /// this instance leads).
    #[error("journal replication: {0}")]
    Replication(String),
    /// An earlier write or fsync failed; the journal accepts nothing more.
    #[error("journal stopped after an earlier failure: {0}")]
    Failed(String),
    /// Another process (or another open journal in this one) holds the directory.
    #[error("journal directory {dir} is in use by another process ({holder}): two processes may never append to one journal; stop the other one (or give each instance its own data_dir)")]
    Locked {
        /// The directory.
        dir: String,
        /// What its lock file says about the holder.
        holder: String,
    },
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}
