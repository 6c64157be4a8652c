//! The failover core of a fix-engine group as state machines with time passed in, in the
//! style of `fix-session`: inputs go in through `handle_*` methods, what to do comes out
//! as values (frames to send, journal reads and appends, role decisions), and nothing here
//! does I/O or reads a clock. The engine's tokio tasks move the bytes and run the timers;
//! the deterministic simulation (`fix-sim`) drives the same code on simulated time.
//!
//! - [`in_sync`]: which standbys must hold a record before it counts as durable, and the
//!   changes of that set the leader records in the lease store;
//! - [`source`]: the leader's side of one standby's stream (answering its Hello, what to
//!   send next, its acknowledgements, when it has stalled);
//! - [`follower`]: the standby's side (the stale-leader gate, appends, truncation,
//!   acknowledgements, when it may contend for the lease).

pub mod follower;
pub mod in_sync;
pub mod source;

/// How much of the stream one Records frame carries at most.
pub const CHUNK: usize = 256 << 10;
