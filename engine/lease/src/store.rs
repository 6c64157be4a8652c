//! The lease port.

use async_trait::async_trait;
use std::time::Duration;
use thiserror::Error;

/// A lease granted to `owner` for `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The engine group (the set of sessions that fail over together).
    pub group: String,
    /// The holder's id (unique per engine instance).
    pub owner: String,
    /// The fencing token: grows with every acquire.
    pub epoch: u64,
    /// Expiry by the store's clock, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// The lease as stored, read by anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The current or last holder ('' when never held).
    pub owner: String,
    /// The current epoch.
    pub epoch: u64,
    /// Expiry by the store's clock, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// The store's clock when read, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The in-sync set recorded by the holder (`replicated` durability): only its
    /// members may acquire the lease next. `None` when none is recorded (anyone may).
    pub in_sync: Option<InSync>,
}

impl LeaseState {
    /// Whether someone held the lease when read, as the store's clock tells (for people
    /// and for the active-region pin; who may *take* the lease is decided by watching,
    /// [`LeaseStore::acquire`]). A released lease (`expires_at_ms` 0) is never held.
    pub fn is_held(&self) -> bool {
        !self.owner.is_empty() && self.expires_at_ms > self.now_ms
    }
}

/// The in-sync set as recorded: its members and the version of the write that recorded
/// it (a leader's writes carry growing versions, so a write that arrives late, expecting
/// an older version, is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InSync {
    /// The instances that may acquire the lease next (empty: no record, anyone may).
    pub members: Vec<String>,
    /// The recording write's version.
    pub version: u64,
}

impl InSync {
    /// The stored form: sorted members and `#VERSION`, comma-separated (owner names hold
    /// no comma and do not start with `#`: the engine's configuration refuses them);
    /// `None` for no record.
    pub(crate) fn encode(&self) -> Option<String> {
        let mut v = self.tokens();
        (!v.is_empty()).then(|| {
            v.sort_unstable();
            v.join(",")
        })
    }

    /// Members and `#VERSION` as separate tokens (DynamoDB's string set); empty for no
    /// record.
    pub(crate) fn tokens(&self) -> Vec<String> {
        if self.members.is_empty() {
            return Vec::new();
        }
        let mut v: Vec<String> = self.members.clone();
        v.sort_unstable();
        v.dedup();
        v.push(format!("#{}", self.version));
        v
    }

    /// Back from tokens.
    pub(crate) fn decode<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut rec = Self::default();
        for t in tokens {
            match t.strip_prefix('#') {
                Some(v) => rec.version = v.parse().unwrap_or(0),
                None if !t.is_empty() => rec.members.push(t.to_string()),
                None => {}
            }
        }
        rec.members.sort_unstable();
        (!rec.members.is_empty()).then_some(rec)
    }
}

/// A lease operation failed (as opposed to being refused, which is `Ok(None)`).
#[derive(Debug, Error)]
pub enum LeaseError {
    /// The store could not be reached.
    #[error("cannot connect to the {backend} lease store at {target}: {source}")]
    Connect {
        /// `sqlite`, `postgres`, `mysql`, …
        backend: &'static str,
        /// Where (credentials removed).
        target: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("lease store ({backend}) failed while {action}: {source}")]
    Query {
        /// The backend.
        backend: &'static str,
        /// What was being done.
        action: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// A DynamoDB call failed.
    #[error("lease store (dynamodb) failed while {action}: {detail}")]
    Dynamo {
        /// What was being done.
        action: &'static str,
        /// The SDK's error with its context.
        detail: String,
    },
    /// Another writer moved the active-region pin at the same moment.
    #[error("moving the active region of group {group} to {region}: another writer moved it at the same moment; read it again (fixctl status) and retry")]
    PinContended {
        /// The engine group.
        group: String,
        /// The region asked for.
        region: String,
    },
    /// The DynamoDB lease table is a global table whose replicas are eventually
    /// consistent: each region would decide leadership on its own replica.
    #[error("the lease table {table} is a global table with eventually consistent replicas ({regions}): a region cut off from the others would keep its leader while another region elects one. Make it a multi-Region strongly consistent table (MultiRegionConsistency: STRONG, as infra/lease.yaml does), or give every region's engines one home-region table without replicas (dynamodb://TABLE?region=HOME)")]
    EventualGlobalTable {
        /// The table.
        table: String,
        /// Its replicas' regions.
        regions: String,
    },
    /// The DynamoDB lease table does not exist where the store looked.
    #[error("the lease table {0} does not exist in this region: create it (infra/lease.yaml) or correct the table name and ?region= in [engine.lease] url")]
    TableMissing(String),
    /// The lease store URL is not one this crate knows.
    #[error("unsupported lease store URL '{0}': use sqlite://PATH, postgres://… or mysql://…")]
    UnsupportedUrl(String),
    /// A call got no answer in time.
    #[error("the lease store did not answer {0} in time (is it reachable?)")]
    Timeout(&'static str),
    /// The URL names a store this build left out.
    #[error("this build has no {backend} lease store: build with the `{feature}` feature (on by default)")]
    NotBuilt {
        /// The store.
        backend: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
}

/// Where leases live. Every method is one conditional statement against the store.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease if nobody holds it (never held, released, or unchanged for a TTL
    /// while this store watched it: call it again every interval) and `owner` is in the
    /// recorded in-sync set (or none is recorded), with a new epoch one above the last.
    /// `Ok(None)`: someone else holds it, the watch is not over, or `owner` is not in sync.
    async fn acquire(
        &self,
        group: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Grant>, LeaseError>;

    /// Extends a held lease. `Ok(None)`: it is no longer ours (released, or a newer epoch).
    async fn renew(&self, grant: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError>;

    /// Gives the lease up at once so a standby need not wait for the TTL. Returns whether
    /// it was still ours.
    async fn release(&self, grant: &Grant) -> Result<bool, LeaseError>;

    /// Records the in-sync set of `grant`'s group: the instances that hold every record
    /// the holder has acknowledged, the only ones that may acquire the lease next. Written
    /// only while `grant` is the live lease (owner, epoch, not released), so a deposed leader
    /// can never change it, and, with `expected`, only while the stored record is exactly
    /// that one (members and version; no members: none recorded), so a write that arrives
    /// late can never undo a newer one. A record without members removes it (anyone may
    /// acquire). Returns whether it was written.
    async fn set_in_sync(
        &self,
        grant: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError>;

    /// Removes the recorded in-sync set of `group` whoever holds the lease: the next
    /// election is open to every contender. Only for moving the active region to another
    /// region ([`crate::region::set_active_region`]), a decision that accepts losing what
    /// the old region acknowledged and the new one had not received (the rotation
    /// runbook's RPO gate measures it first).
    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError>;

    /// Removes the recorded in-sync set only if the lease's epoch is still `epoch`:
    /// `Ok(false)` when someone took the lease meanwhile (or the group was never leased),
    /// and nothing changed. For an operator who looked at the lease, found it free and its
    /// set naming only instances that are gone (`fixctl in-sync clear`).
    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError>;

    /// When the watch that kept the last refused [`LeaseStore::acquire`] of `group` from
    /// taking the lease ends (the beat it saw, unchanged for the TTL), if this store
    /// watches: a contender that calls again at that instant, and not a renew interval
    /// later, takes over as early as the rule allows. `None`: unknown (call again within
    /// an interval).
    fn watch_ends(&self, group: &str) -> Option<std::time::Instant> {
        let _ = group;
        None
    }

    /// The stored lease of `group`, if the group has ever been leased.
    async fn read(&self, group: &str) -> Result<Option<LeaseState>, LeaseError>;

    /// Backend name for logs and metrics.
    fn backend(&self) -> &'static str;
}
