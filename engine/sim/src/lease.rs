//! The lease store as the engines see it (the semantics of `fix-lease`'s SQL and
//! DynamoDB stores): one row per group with the holder, its epoch, when the lease runs
//! out, and the recorded in-sync set. Operations are atomic; the simulation delays their
//! requests and answers.

use fix_cluster::in_sync::Stored;
use std::collections::BTreeMap;

/// The group's row.
#[derive(Debug, Clone, Default)]
pub struct LeaseStore {
    /// The holder and its epoch (the newest granted).
    pub holder: Option<String>,
    /// The newest epoch granted.
    pub epoch: u64,
    /// When the lease runs out (simulated ms); a release sets it to 0.
    pub expires_ms: u64,
    /// The recorded in-sync set.
    pub in_sync: Option<Stored>,
    /// Who each epoch was granted to.
    pub granted: BTreeMap<u64, String>,
    /// Whether acquiring checks the in-sync set (the rule of `replicated` durability;
    /// off only to show that the simulation finds what goes wrong without it).
    pub checks_in_sync: bool,
}

impl LeaseStore {
    /// An empty row.
    pub fn new(checks_in_sync: bool) -> Self {
        Self {
            checks_in_sync,
            ..Self::default()
        }
    }

    /// `owner` asks for the lease at `now`: the new epoch, or `None`.
    pub fn acquire(&mut self, owner: &str, now: u64, ttl: u64) -> Option<u64> {
        if now < self.expires_ms {
            return None;
        }
        let member = self
            .in_sync
            .as_ref()
            .is_none_or(|s| s.members.is_empty() || s.members.contains(owner));
        if self.checks_in_sync && !member {
            return None;
        }
        self.epoch += 1;
        self.holder = Some(owner.to_string());
        self.expires_ms = now + ttl;
        self.granted.insert(self.epoch, owner.to_string());
        Some(self.epoch)
    }

    /// The holder of `epoch` renews at `now`: whether it still holds the lease.
    pub fn renew(&mut self, owner: &str, epoch: u64, now: u64, ttl: u64) -> bool {
        let holds =
            self.holder.as_deref() == Some(owner) && self.epoch == epoch && now < self.expires_ms;
        if holds {
            self.expires_ms = now + ttl;
        }
        holds
    }

    /// The holder of `epoch` gives the lease up.
    pub fn release(&mut self, owner: &str, epoch: u64) {
        if self.holder.as_deref() == Some(owner) && self.epoch == epoch {
            self.expires_ms = 0;
        }
    }

    /// Records `new` as the in-sync set, if `epoch` is the current one held by `owner`
    /// and the stored set is `expected` (`None`: any).
    pub fn set_in_sync(
        &mut self,
        owner: &str,
        epoch: u64,
        expected: Option<&Stored>,
        new: &Stored,
    ) -> bool {
        if self.holder.as_deref() != Some(owner) || self.epoch != epoch || self.expires_ms == 0 {
            return false;
        }
        if let Some(expected) = expected {
            if self.in_sync.as_ref() != Some(expected) {
                return false;
            }
        }
        self.in_sync = (!new.members.is_empty()).then(|| new.clone());
        true
    }

    /// The stored set, if `owner` still holds `epoch`.
    pub fn read_in_sync(&self, owner: &str, epoch: u64) -> Option<Option<Stored>> {
        (self.holder.as_deref() == Some(owner) && self.epoch == epoch).then(|| self.in_sync.clone())
    }
}
