//! The lease store as the engines see it (the semantics of `fix-lease`'s SQL and
//! DynamoDB stores): one row per group with the holder, its epoch, when the lease runs
//! out, and the recorded in-sync set. Operations are atomic; the simulation delays their
//! requests and answers.

use fix_cluster::in_sync::Stored;
use std::collections::BTreeMap;

/// What a contender reads of the lease: the holder's epoch and its beat (which every
/// acquire and renew makes grow), or that it was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Beat {
    /// The epoch.
    pub epoch: u64,
    /// Grows with every acquire and renew.
    pub beat: u64,
    /// Given up by its holder (or never held).
    pub free: bool,
}

/// The group's row. No clock decides who holds it (as in `fix-lease`): a contender takes
/// the lease when it is free, or conditional on a beat it has watched unchanged for a
/// TTL by its own clock.
#[derive(Debug, Clone, Default)]
pub struct LeaseStore {
    /// The holder (of the newest epoch granted).
    pub holder: Option<String>,
    /// The newest epoch granted.
    pub epoch: u64,
    /// Grows with every acquire and renew.
    pub beat: u64,
    /// Released by its holder.
    pub released: bool,
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

    /// What a contender reads.
    pub fn beat(&self) -> Beat {
        Beat {
            epoch: self.epoch,
            beat: self.beat,
            free: self.holder.is_none() || self.released,
        }
    }

    /// `owner` asks for the lease, having watched `watched` unchanged for a TTL (if it
    /// has): the new epoch, or the beat it should watch.
    pub fn acquire(&mut self, owner: &str, watched: Option<Beat>) -> Result<u64, Beat> {
        let now = self.beat();
        if !now.free && watched != Some(now) {
            return Err(now);
        }
        let member = self
            .in_sync
            .as_ref()
            .is_none_or(|s| s.members.is_empty() || s.members.contains(owner));
        if self.checks_in_sync && !member {
            return Err(now);
        }
        self.epoch += 1;
        self.beat += 1;
        self.released = false;
        self.holder = Some(owner.to_string());
        self.granted.insert(self.epoch, owner.to_string());
        Ok(self.epoch)
    }

    /// The holder of `epoch` renews: whether it still holds the lease (nobody took it
    /// and it was not released).
    pub fn renew(&mut self, owner: &str, epoch: u64) -> bool {
        let holds = self.holder.as_deref() == Some(owner) && self.epoch == epoch && !self.released;
        if holds {
            self.beat += 1;
        }
        holds
    }

    /// The holder of `epoch` gives the lease up.
    pub fn release(&mut self, owner: &str, epoch: u64) {
        if self.holder.as_deref() == Some(owner) && self.epoch == epoch {
            self.released = true;
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
        if self.holder.as_deref() != Some(owner) || self.epoch != epoch || self.released {
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
