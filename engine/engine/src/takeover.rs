//! A standby's expectation that it is about to take over: set when the stream from the
//! leader breaks (its process died, its host went silent), cleared when the standby
//! follows a leader again or its role changes.
//!
//! Two things act on it. The lease keeper is told to read the lease at once
//! ([`fix_lease::LookNow`]), so that its watch of the dead leader's last beat starts as
//! early as it can. And the sessions hold a counterparty's connection unanswered instead
//! of refusing it (up to a limit), so that the counterparty's Logon is answered the moment
//! this instance leads, not after its next reconnect interval. Neither shortens anything
//! the lease guarantees: the lease is still taken only after the old holder's beat stood
//! unchanged for a TTL, and a held connection is not read nor written while standby.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The shared expectation (cheap to clone).
#[derive(Clone, Debug, Default)]
pub(crate) struct TakeoverHint {
    leader_gone: Arc<AtomicBool>,
    look: Option<fix_lease::LookNow>,
}

impl TakeoverHint {
    /// A hint that also tells `look` (the lease keeper) when the leader is gone.
    pub(crate) fn new(look: Option<fix_lease::LookNow>) -> Self {
        Self {
            leader_gone: Arc::default(),
            look,
        }
    }

    /// The stream from the leader broke.
    pub(crate) fn leader_gone(&self) {
        self.leader_gone.store(true, Ordering::SeqCst);
        if let Some(look) = &self.look {
            look.look_now();
        }
    }

    /// A leader streams to this standby again, or this instance's role changed.
    pub(crate) fn clear(&self) {
        self.leader_gone.store(false, Ordering::SeqCst);
    }

    /// Whether this standby expects to take over.
    pub(crate) fn expected(&self) -> bool {
        self.leader_gone.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_from_the_break_until_cleared_and_shared_by_clones() {
        let hint = TakeoverHint::new(None);
        let seen = hint.clone();
        assert!(!seen.expected());
        hint.leader_gone();
        assert!(seen.expected());
        seen.clear();
        assert!(!hint.expected());
    }
}
