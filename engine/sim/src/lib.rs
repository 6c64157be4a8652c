//! Deterministic simulation of a fix-engine group (issue: "a sans-IO cluster core with
//! deterministic simulation").
//!
//! One thread runs a whole group on simulated time: 2–5 instances, each driving the real
//! failover core of `fix-cluster` (the in-sync set, the leader's standby streams, the
//! follower and its eligibility) over a simulated network with the real frame codec;
//! journals on an in-memory disk that loses what was not synced when its instance
//! crashes; a lease store with the semantics of `fix-lease`'s; a counterparty sending
//! orders to whoever the store names; and random faults (crashes, pauses, partitions,
//! instances cut off from the lease store, stalled disks, failed fsyncs). After every
//! step the invariants hold or the run stops with the violation and its trace
//! ([`check`]). A seed decides everything, so a failing seed replays exactly:
//! `cargo run -p fix-sim -- --seed N`.

pub mod check;
pub mod disk;
pub mod faults;
pub mod leader;
pub mod lease;
pub mod node;
pub mod standby;
pub mod world;

use fix_cluster::in_sync::OnStandbyLoss;

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instances in the group (2–5).
    pub instances: usize,
    /// Simulated milliseconds.
    pub duration_ms: u64,
    /// The counterparty sends an order this often (ms).
    pub order_every_ms: u64,
    /// What the leader does when an in-sync standby stops acknowledging.
    pub on_standby_loss: OnStandbyLoss,
    /// Inject random faults.
    pub faults: bool,
    /// How far each instance's monotonic clock rate may be from real time's (0.02: ±2 %).
    /// The lease's safety margin covers a drift of about margin / TTL between holder and
    /// contender.
    pub clock_drift: f64,
    /// The lease store refuses the lease to instances outside the in-sync set. Off only
    /// to show the simulation finds the loss this rule prevents.
    pub lease_checks_in_sync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            instances: 3,
            duration_ms: 20_000,
            order_every_ms: 5,
            on_standby_loss: OnStandbyLoss::Shrink,
            faults: true,
            clock_drift: 0.02,
            lease_checks_in_sync: true,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The first violation, if any.
    pub violation: Option<String>,
    /// Orders the counterparty had answered.
    pub answers: u64,
    /// Leases taken.
    pub failovers: u64,
    /// The last steps (printed with a violation).
    pub trace: Vec<String>,
}

/// Runs one seed.
pub fn run(seed: u64, opts: &Options) -> Outcome {
    let mut world = world::World::new(seed, opts.clone());
    world.run(opts.duration_ms);
    Outcome {
        seed,
        violation: world.ledger.violations.first().cloned(),
        answers: world.ledger.answers,
        failovers: world.ledger.failovers,
        trace: world.trace(),
    }
}
