//! A standby's expectation that it is about to take over: set when the stream from the
//! leader breaks (its process died, its host went silent) while this instance may take
//! over, cleared when the standby follows a leader again or its role changes, and over
//! on its own after a limit (two TTLs: a takeover comes within one TTL of the leader's
//! last renew, so an expectation older than that was wrong, for example because another
//! instance won or this one is not in the recorded in-sync set).
//!
//! Two things act on it. The lease keeper is told to read the lease at once
//! ([`fix_lease::LookNow`]), so that its watch of the dead leader's last beat starts as
//! early as it can. And the sessions hold a counterparty's connection unanswered instead
//! of refusing it (up to a limit), so that the counterparty's Logon is answered the moment
//! this instance leads, not after its next reconnect interval. Neither shortens anything
//! the lease guarantees: the lease is still taken only after the old holder's beat stood
//! unchanged for a TTL, and a held connection is not read nor written while standby.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared expectation (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct TakeoverHint {
    /// Until when a takeover is expected.
    until: Arc<Mutex<Option<Instant>>>,
    limit: Duration,
    look: Option<fix_lease::LookNow>,
}

impl TakeoverHint {
    /// A hint that lasts `limit` and also tells `look` (the lease keeper) when the
    /// leader is gone.
    pub(crate) fn new(limit: Duration, look: Option<fix_lease::LookNow>) -> Self {
        Self {
            until: Arc::default(),
            limit,
            look,
        }
    }

    fn set(&self, until: Option<Instant>) {
        *self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }

    /// The stream from the leader broke.
    pub(crate) fn leader_gone(&self) {
        self.set(Some(Instant::now() + self.limit));
        if let Some(look) = &self.look {
            look.look_now();
        }
    }

    /// A leader streams to this standby again, or this instance's role changed.
    pub(crate) fn clear(&self) {
        self.set(None);
    }

    /// Until when this standby expects to take over, if it does now.
    pub(crate) fn expected_until(&self) -> Option<Instant> {
        let until = *self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.filter(|t| Instant::now() < *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TakeoverHint {
        fn expected(&self) -> bool {
            self.expected_until().is_some()
        }
    }

    #[test]
    fn expected_from_the_break_until_cleared_or_over_and_shared_by_clones() {
        let hint = TakeoverHint::new(Duration::from_secs(60), None);
        let seen = hint.clone();
        assert!(!seen.expected());
        hint.leader_gone();
        assert!(seen.expected());
        seen.clear();
        assert!(!hint.expected());
        let brief = TakeoverHint::new(Duration::from_millis(20), None);
        brief.leader_gone();
        assert!(brief.expected());
        std::thread::sleep(Duration::from_millis(30));
        assert!(!brief.expected(), "over after its limit");
    }
}
