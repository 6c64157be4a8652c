//! # fix-store
//!
//! Where sessions keep their sequence numbers and sent messages.
//!
//! - [`journal`]: the durable journal. Append-only segment files shared by all sessions of
//!   an engine; every record carries a CRC; a single sync thread group-commits with
//!   `fdatasync`; [`journal::RecoveryMode`] says what to do with a torn tail after a crash.
//! - [`record`]: the record format (`// Format:` comment on the encoder).
//! - [`session_store`]: [`JournalStore`], one session's [`fix_session::SessionStore`] over
//!   the journal, with a sequence-number index for resend.
//! - [`replication`]: the leader → standby protocol codec (frames with epoch and CRC,
//!   acknowledgements) and the standby's stale-epoch gate. The journal side of
//!   replication ([`Journal::read_stream`], [`Journal::append_replicated`],
//!   [`Journal::truncate`]) keeps a standby's record stream a byte-for-byte copy of the
//!   leader's; the transport is in the engine crate.
//! - [`MemoryStore`] (re-exported from `fix-session`): fast, lost on exit.
//!
//! Guarantee: a position returned by [`Journal::durable`] covers every record appended
//! before it; nothing is reported durable that was not `fdatasync`ed (with `fsync` on).

pub mod journal;
mod outbound_index;
pub mod record;
mod recovery;
pub mod replication;
pub mod session_store;
mod stream;

pub use fix_session::MemoryStore;
pub use journal::{
    Journal, JournalError, JournalOptions, RecoveryMode, ThreadStart, UNREQUESTED_COMMIT_BYTES,
    WRITTEN_COMMIT_INTERVAL,
};
pub use session_store::JournalStore;
