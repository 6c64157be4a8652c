//! # fix-bench
//!
//! The load generator of the benchmarks: NewOrderSingle → ExecutionReport round trips
//! against a FIX acceptor (this engine in-process, or any address), and the raw TCP
//! ping-pong floor with the same message sizes.
//!
//! - [`load`]: one session, open loop at a fixed rate (latency measured from each order's
//!   *scheduled* send time — coordinated omission corrected — and from its actual send
//!   time) or closed loop; warm-up excluded; achieved throughput.
//! - [`floor`]: the same sizes over a plain TCP echo, closed loop.
//! - [`target`]: this engine started in-process with a memory or journal store.
//! - [`report`]: percentiles (µs) as a table row or JSON.

pub mod floor;
pub mod load;
pub mod report;
pub mod target;
