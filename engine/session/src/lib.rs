//! # fix-session
//!
//! The FIX session layer as a sans-IO state machine: no sockets, no clocks, no files, no
//! tokio. The runtime feeds it framed messages and the time ([`Now`]), and drains bytes to
//! send, events and the next timer deadline. Tests drive it with simulated time.
//!
//! - [`config`]: identity, role, timers, reset flags, validation switches.
//! - [`session`]: the [`Session`] state machine (logon, heartbeats, test requests, resend
//!   requests in both directions, gap fill, sequence reset, reject, logout, schedules).
//! - [`store`]: the [`SessionStore`] port and an in-memory implementation.
//! - [`schedule`]: session time windows in a time zone and daily reset points.
//! - [`event`]: what the session reports besides bytes.
//!
//! Guarantees: every outbound application message is handed to the store before its bytes
//! are offered for transmission; an inbound application message is recorded in the store
//! before it is reported deliverable; admin messages are never resent (they are gap-filled).

pub mod config;
pub mod counters;
pub mod event;
pub mod memory_store;
pub mod schedule;
pub mod session;
pub mod store;

pub use config::{Role, SessionConfig, SessionId};
pub use counters::SessionCounters;
pub use event::{Disposition, LogLevel, SessionEvent};
pub use memory_store::{MemoryStore, DEFAULT_MEMORY_STORE_BYTES};
pub use schedule::Schedule;
pub use session::{
    route_back, Authenticator, Dictionaries, Now, Outgoing, SendError, Session, SessionHooks,
    State, MAX_QUEUED_BYTES,
};
pub use store::{SessionStore, StoreError};
