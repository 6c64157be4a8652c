//! # fix-drill
//!
//! Failover drills and failover tests with real processes: an engine group (two or more
//! `fix-drill engine` processes sharing a lease store and replicating the journal), a
//! counterparty sending orders through its alternate addresses, and the faults —
//! `kill -9`, SIGSTOP/SIGCONT, the lease store going away, network partitions.
//!
//! - [`node`]: one engine process (config, start, kill, pause, admin API).
//! - [`cluster`]: the group and its waits (a single leader, caught up, promoted).
//! - [`backend`]: fresh lease stores for SQLite, PostgreSQL, MariaDB and DynamoDB (moto),
//!   each with an outage switch ([`proxy`] for the networked ones).
//! - [`netns`]: one network namespace per engine, and cuts between them (nftables).
//! - [`shim`]: the `LD_PRELOAD` fault shim (failing fsyncs, a stepped wall clock).
//! - [`trader`]: the counterparty and its book (loss, duplicates, gaps).
//! - [`drill`]: the kill-and-promote cycles and their report.
//! - [`soak`]: a group under steady load for a long time: spurious takeovers and the
//!   lease calls' latencies.

pub mod backend;
pub mod cluster;
pub mod drill;
pub mod http;
mod in_place;
pub mod journals;
pub mod netns;
pub mod node;
pub mod proxy;
pub mod quickfix;
pub mod shim;
pub mod soak;
pub mod stalled_reader;
pub mod trader;
