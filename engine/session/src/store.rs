//! The store port: where the session keeps sequence numbers and sent messages.
//!
//! The session calls these synchronously. Implementations buffer writes; the runtime makes
//! them durable (group commit) before any byte the session produced reaches the socket or
//! any inbound message reaches the application.

use fix_codec::UtcTimestamp;
use thiserror::Error;

/// A store operation failed. The session stops sending and disconnects on any of these.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("store I/O failed while {action}: {detail}")]
    Io {
        /// What the store was doing.
        action: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// The store refused the write because a newer leader holds the lease.
    #[error("store refused the write: fenced by epoch {current} (ours is {ours})")]
    Fenced {
        /// Our epoch.
        ours: u64,
        /// The epoch in force.
        current: u64,
    },
}

/// Sequence numbers and outbound messages of one session.
pub trait SessionStore: Send {
    /// The sequence number the next outbound message gets.
    fn next_sender_seq(&self) -> u64;
    /// The sequence number expected on the next inbound message.
    fn next_target_seq(&self) -> u64;
    /// Sets the next outbound sequence number.
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Sets the next expected inbound sequence number.
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Keeps an outbound message for resend; the next sender sequence becomes `seq + 1`.
    fn save_outbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError>;
    /// Records an accepted inbound message; the next target sequence becomes `seq + 1`.
    fn save_inbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError>;
    /// Calls `visit` for every stored outbound message with `begin <= seq <= end`, in order.
    fn load_outbound(
        &self,
        begin: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError>;
    /// Forgets all messages and sets both sequence numbers to 1.
    fn reset(&mut self, now: UtcTimestamp) -> Result<(), StoreError>;
    /// When the store was created or last reset (for daily resets).
    fn creation_time(&self) -> UtcTimestamp;

    /// Starts an application batch: what is stored until [`SessionStore::commit_batch`]
    /// takes effect only together with it. After a crash, a batch without its commit is
    /// discarded — safe, because nothing stored in it is sent before the commit is durable.
    fn begin_batch(&mut self) {}

    /// Records that the application has processed every inbound message up to
    /// `processed`, committing the open batch (the application's replies, rejects, …).
    fn commit_batch(&mut self, processed: u64) -> Result<(), StoreError> {
        let _ = processed;
        Ok(())
    }

    /// Reloads sequence numbers from storage that another writer changed: a standby's
    /// journal, filled by replication, before this instance leads.
    fn refresh(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Inbound application messages recorded but not yet marked processed, in order: the
    /// application must see them again after a restart.
    fn load_unprocessed_inbound(
        &self,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        let _ = visit;
        Ok(())
    }
}
