//! The holder's side: local deadlines that keep a lease from being trusted past its TTL.

use crate::store::{Grant, LeaseError, LeaseStore};
use std::time::{Duration, Instant};

/// The default time to live of a lease (800 ms): a standby takes over within about
/// that long of the leader's death (`fix-drill run`: kill→logon p99 ≈ 815 ms). Sized
/// from `fix-drill soak` (30 minutes at half the maximum sustainable rate on 2 cores,
/// PostgreSQL: no takeover, slowest renew ≤ 162 ms against a trust window of 650 ms);
/// a store far away (another region) needs more (`docs/bench/failover.md`).
pub const DEFAULT_TTL: Duration = Duration::from_millis(800);
/// The default renew interval (150 ms).
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_millis(150);
/// The default safety margin: how long before the TTL a holder stops trusting its lease
/// (150 ms: the holder's clock may run up to 18.75 % slower than a contender's).
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_millis(150);

/// How a node contends for and keeps a lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The engine group.
    pub group: String,
    /// This instance's id (must be unique per instance).
    pub owner: String,
    /// Time to live granted by each acquire or renew (default 800 ms).
    pub ttl: Duration,
    /// How often a holder renews (default 150 ms).
    pub renew_interval: Duration,
    /// How long before the TTL the holder stops trusting its lease (default 150 ms).
    pub safety_margin: Duration,
    /// The region this instance runs in. With it, the instance contends only while the
    /// group's active region (see [`crate::region`]) is this one or unset.
    pub region: Option<String>,
}

impl LeaseConfig {
    /// Defaults: TTL 800 ms, renew every 150 ms, stop trusting 150 ms before the TTL.
    pub fn new(group: &str, owner: &str) -> Self {
        Self {
            group: group.to_string(),
            owner: owner.to_string(),
            ttl: DEFAULT_TTL,
            renew_interval: DEFAULT_RENEW_INTERVAL,
            safety_margin: DEFAULT_SAFETY_MARGIN,
            region: None,
        }
    }

    /// How long after sending a request its grant may be trusted.
    pub fn trust_window(&self) -> Duration {
        self.ttl.saturating_sub(self.safety_margin)
    }
}

/// A held lease and the local moment it stops being trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// What the store granted.
    pub grant: Grant,
    /// Local monotonic deadline: request sent + TTL − margin. A contender starts its TTL
    /// of watching only after reading what this request wrote, so this always comes
    /// first, whatever any wall clock says ([`crate::watch`]).
    pub valid_until: Instant,
}

impl Holder {
    /// Whether the lease may still be acted on at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// Tries to take the lease.
    pub async fn acquire(
        store: &dyn LeaseStore,
        cfg: &LeaseConfig,
    ) -> Result<Option<Self>, LeaseError> {
        let sent = Instant::now();
        let grant = store.acquire(&cfg.group, &cfg.owner, cfg.ttl).await?;
        Ok(grant.map(|grant| Self {
            grant,
            valid_until: sent + cfg.trust_window(),
        }))
    }

    /// Tries to extend the lease; `Ok(None)` means it is lost.
    pub async fn renew(
        &self,
        store: &dyn LeaseStore,
        cfg: &LeaseConfig,
    ) -> Result<Option<Self>, LeaseError> {
        let sent = Instant::now();
        let grant = store.renew(&self.grant, cfg.ttl).await?;
        Ok(grant.map(|grant| Self {
            grant,
            valid_until: sent + cfg.trust_window(),
        }))
    }
}
