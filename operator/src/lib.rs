//! # fix-operator
//!
//! The control plane around an engine group: it finds the leader, moves client traffic to
//! it, and makes sure the old leader is fenced.
//!
//! - [`router`]: the [`router::TrafficRouter`] trait and its backends — the local TCP
//!   proxy (the embedded default, Global Accelerator's stand-in on one machine).
//! - [`config`]: the `fixctl` configuration file (engines, router).
//! - [`emulator`]: a local, stateful emulator of the Global Accelerator API (the real
//!   SDK client is pointed at it in tests; no existing emulator covers it).
//! - [`local`]: local mode — a leader, a standby, SQLite lease, proxy and supervisor on
//!   one machine — and the local drill with its phase-by-phase report.
//! - [`supervisor`]: watches every engine's `/readyz` (and the lease row, given one); when leadership changes it routes
//!   to the new leader, reads the routing back, checks the old leader reports standby or
//!   is gone (or calls a fencing hook), and records the transition with its timings.
//!   Manual failover asks the leader to step down through its admin API.
//!
//! Guarantee: traffic is routed only to an instance that reports itself leader with a
//! ready `/readyz`; a demoted endpoint's established connections are closed by the proxy.

pub mod config;
pub mod emulator;
pub mod local;
pub mod router;
pub mod supervisor;
