//! # fix-operator
//!
//! The control plane around an engine group: it finds the leader, moves client traffic to
//! it, and makes sure the old leader is fenced.
//!
//! - [`router`]: the [`router::TrafficRouter`] trait and its backends — the local TCP
//!   proxy (the embedded default), Global Accelerator endpoint weights, Route 53 ARC
//!   routing controls, and none.
//! - [`k8s`]: the `FixSession` custom resource and its controller (objects applied
//!   server-side, the group's supervision, status and events, manual failover by
//!   annotation, a finalizer that drains routing and releases the lease).
//! - [`config`]: the `fixctl` configuration file (engines, router).
//! - [`deploy`]: `fixctl deploy` — CloudFormation stacks through change sets, the
//!   engines' configuration to SSM.
//! - [`emulator`]: local, stateful emulators of the Global Accelerator and Route 53 ARC
//!   APIs (the real SDK clients are pointed at them in tests; no existing emulator covers
//!   them).
//! - [`local`]: local mode — a leader, a standby, SQLite lease, proxy and supervisor on
//!   one machine — and the local drill with its phase-by-phase report.
//! - [`runbook`]: multi-region rotation and DR runbooks — the YAML format and schema,
//!   the resumable executor with its dry-run plan, and the RTO / RPO report.
//! - [`supervisor`]: watches every engine's `/readyz` (and the lease row, given one); when leadership changes it routes
//!   to the new leader, reads the routing back, checks the old leader reports standby or
//!   is gone (or calls a fencing hook), and records the transition with its timings.
//!   Manual failover asks the leader to step down through its admin API.
//!
//! Guarantee: traffic is routed only to an instance that reports itself leader with a
//! ready `/readyz`; a demoted endpoint's established connections are closed by the proxy.

pub mod config;
pub mod deploy;
pub mod ecs;
pub mod ecs_supervisor;
pub mod emulator;
pub mod k8s;
pub mod local;
pub mod router;
pub mod runbook;
pub mod supervisor;
