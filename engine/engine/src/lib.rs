//! # fix-engine
//!
//! The tokio runtime around the sans-IO session layer.
//!
//! - [`config`]: the TOML configuration and its checks.
//! - [`engine`]: [`Engine::start`] opens the store, creates one task per session, binds the
//!   listeners; [`EngineHandle`] sends to sessions from any task.
//! - `actor`: the per-session task. It frames input, feeds the session, then — in this
//!   order — waits for the journal to be durable, writes the session's output, delivers
//!   in-sequence application messages, and handles events.
//! - [`admin`]: the admin HTTP API (health, readiness, metrics, sessions, actions).
//! - `acceptor`: many sessions per port, routed by the first message's CompIDs.
//! - [`auth`]: Logon credential checks.
//! - [`app`]: the [`Application`] callbacks and the built-in `echo` and `exec` applications.
//! - [`storage`]: journal or memory, with an async wait for durability.
//! - [`metrics`]: Prometheus metrics.
//! - [`msglog`]: per-session message logs.
//! - [`kafka`]: the Kafka bridge (`app = "kafka"`): inbound messages to a topic,
//!   outbound messages from one, session events, across failovers.
//! - [`tls`]: rustls configuration for acceptors (optionally mutual TLS) and initiators.
//! - [`quickfix_settings`]: import of QuickFIX / QuickFIX/J settings files.

mod acceptor;
mod actor;
pub mod admin;
mod admin_listener;
pub mod app;
pub mod auth;
#[cfg(feature = "kafka")]
mod blocking;
pub mod builtin;
pub mod config;
pub mod engine;
mod error;
mod handle;
pub mod kafka;
pub mod metrics;
pub mod msglog;
mod pending;
pub mod quickfix_settings;
pub mod replication;
mod replication_setup;
pub mod runtime;
pub mod storage;
mod takeover;
pub mod tls;

pub use actor::SessionStatus;
pub use app::{AppContext, AppReject, Application};
pub use builtin::{EchoApp, ExecApp};
pub use config::EngineConfig;
pub use engine::{Engine, EngineError, EngineHandle};
