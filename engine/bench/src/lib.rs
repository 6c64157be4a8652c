//! # fix-bench
//!
//! The load generator of the benchmarks: NewOrderSingle → ExecutionReport round trips
//! against a FIX acceptor (this engine in-process, or any address, such as the peers
//! under `peers/`), and the raw TCP ping-pong floor with the same message sizes.
//!
//! - [`load`]: one or many sessions driven by one thread, open loop at a fixed rate
//!   (latency measured from each order's *scheduled* send time — coordinated omission
//!   corrected — and from its actual send time) or closed loop; warm-up excluded;
//!   achieved throughput; spinning or sleeping while it waits.
//! - [`floor`]: the same sizes over a plain TCP echo, closed loop.
//! - [`hiccups`]: the machine's own stalls (a spinning thread per core timing the gaps
//!   in its run), the floor under any open-loop tail.
//! - [`target`]: this engine started in-process with a memory store, the journal, or
//!   the journal replicated to a standby.
//! - [`sustain`]: the highest rate whose p99 stays below twice the unloaded p99.
//! - [`report`]: percentiles (µs) as a table row or JSON, with the distribution.
//! - [`neighbour`]: one more session that floods or never reads, beside the measured
//!   ones.

pub mod floor;
pub mod hiccups;
pub mod load;
pub mod neighbour;
pub mod report;
pub mod sustain;
pub mod target;

/// Refuses a core this machine does not have (pinning to it would fail silently and
/// leave the thread to roam): `flag` names the option that asked for it.
pub fn check_cores(cores: &[usize], flag: &str) -> std::io::Result<()> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    match cores.iter().find(|c| !available.contains(c)) {
        Some(bad) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{flag} names core {bad}, but this machine has cores {available:?}"),
        )),
        None => Ok(()),
    }
}
