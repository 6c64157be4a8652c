//! Which term may produce. The bridge's producer sends a record only while the gate is
//! open for the term the record was handled in, and holds the gate open (a read lock)
//! for the send itself. When a term ends the gate is closed first (the write lock waits
//! for sends in progress), then everything the producer still holds is purged, then the
//! gate opens for the next term, if this instance leads one: nothing a deposed leader
//! queued can reach a broker that comes back later, and no send slips in between the
//! check and the purge.

use std::sync::{Arc, RwLock};

/// Who may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Nobody: this instance does not lead (or has not started).
    Closed,
    /// The term with this epoch (`None`: no lease, the one term that never ends).
    For(Option<u64>),
}

/// The gate, shared by every clone of the producer.
#[derive(Clone)]
pub(crate) struct Gate(Arc<RwLock<Open>>);

impl Gate {
    /// A gate in state `open`.
    pub(crate) fn new(open: Open) -> Self {
        Self(Arc::new(RwLock::new(open)))
    }

    /// Runs `send` with the gate held open for the term of `epoch`; `None` (nothing
    /// run) when it is not open for that term.
    pub(crate) fn send_for<T>(&self, epoch: Option<u64>, send: impl FnOnce() -> T) -> Option<T> {
        let open = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (*open == Open::For(epoch)).then(send)
    }

    /// Runs `send` with the gate held open for whichever term it is open for; `None`
    /// when it is closed.
    pub(crate) fn send_if_open<T>(&self, send: impl FnOnce() -> T) -> Option<T> {
        let open = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (*open != Open::Closed).then(send)
    }

    /// Moves the gate to `next`. When a term it was open for ends, `purge` runs with
    /// the gate closed, before it opens for `next`. Returns whether a term ended.
    pub(crate) fn switch(&self, next: Open, purge: impl FnOnce()) -> bool {
        let mut open = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *open == next {
            return false;
        }
        let ended = *open != Open::Closed;
        *open = Open::Closed;
        if ended {
            purge();
        }
        *open = next;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_pass_only_for_the_open_term_and_a_term_change_purges_first() {
        let gate = Gate::new(Open::Closed);
        assert_eq!(gate.send_for(Some(5), || ()), None, "closed at first");
        assert_eq!(gate.send_if_open(|| ()), None);
        assert!(!gate.switch(Open::For(Some(5)), || panic!("nothing ended")));
        assert_eq!(gate.send_for(Some(5), || 1), Some(1));
        assert_eq!(gate.send_for(Some(4), || 1), None, "an older term's record");
        assert_eq!(gate.send_if_open(|| 2), Some(2));
        let mut purged = false;
        assert!(gate.switch(Open::For(Some(6)), || {
            // The purge runs with the gate closed: no send of any term gets in.
            purged = true;
        }));
        assert!(purged);
        assert_eq!(gate.send_for(Some(5), || ()), None, "the ended term");
        assert_eq!(gate.send_for(Some(6), || 3), Some(3));
        assert!(gate.switch(Open::Closed, || ()));
        assert_eq!(gate.send_if_open(|| ()), None, "deposed: no events either");
        assert!(!gate.switch(Open::Closed, || panic!("already closed")));
    }
}
