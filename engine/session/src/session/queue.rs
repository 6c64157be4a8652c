//! Messages received ahead of a gap, waiting for it to be filled.

use std::collections::BTreeMap;

/// Bytes of messages one session keeps ahead of a gap. Beyond it a message is not kept:
/// it is asked for again once the gap is filled (the counterparty's answer to an
/// open-ended ResendRequest covers it, and a later gap is requested anew), so nothing is
/// lost, and a counterparty that floods during a gap cannot exhaust memory.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// A message received ahead of the expected sequence number.
pub(super) struct Queued {
    pub(super) bytes: Vec<u8>,
    pub(super) resend_served: bool,
}

/// Messages ahead of a gap by sequence number, bounded by [`MAX_QUEUED_BYTES`].
#[derive(Default)]
pub(super) struct GapQueue {
    messages: BTreeMap<u64, Queued>,
    bytes: usize,
    /// A message was left out since the queue was last empty.
    overflowed: bool,
}

/// What [`GapQueue::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Insert {
    /// Kept (or already held).
    Kept,
    /// Left out, the queue being full; the first one since the queue was empty.
    LeftOutFirst,
    /// Left out, the queue being full.
    LeftOut,
}

impl GapQueue {
    /// Keeps message `seq` unless the queue is full.
    pub(super) fn insert(&mut self, seq: u64, message: Queued) -> Insert {
        self.insert_within(seq, message, MAX_QUEUED_BYTES)
    }

    fn insert_within(&mut self, seq: u64, message: Queued, limit: usize) -> Insert {
        if self.messages.contains_key(&seq) {
            return Insert::Kept;
        }
        if self.bytes + message.bytes.len() > limit {
            let first = !self.overflowed;
            self.overflowed = true;
            return if first {
                Insert::LeftOutFirst
            } else {
                Insert::LeftOut
            };
        }
        self.bytes += message.bytes.len();
        self.messages.insert(seq, message);
        Insert::Kept
    }

    /// Takes message `seq` after forgetting every one below it.
    pub(super) fn take(&mut self, seq: u64) -> Option<Queued> {
        self.drop_below(seq);
        let taken = self.messages.remove(&seq);
        if let Some(m) = &taken {
            self.bytes -= m.bytes.len();
        }
        if self.messages.is_empty() {
            self.overflowed = false;
        }
        taken
    }

    /// Forgets every message below `seq`.
    pub(super) fn drop_below(&mut self, seq: u64) {
        let kept = self.messages.split_off(&seq);
        for m in std::mem::replace(&mut self.messages, kept).values() {
            self.bytes -= m.bytes.len();
        }
        if self.messages.is_empty() {
            self.overflowed = false;
        }
    }

    /// Whether message `seq` is held.
    pub(super) fn holds(&self, seq: u64) -> bool {
        self.messages.contains_key(&seq)
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Queued {
        Queued {
            bytes: vec![b'x'; len],
            resend_served: false,
        }
    }

    #[test]
    fn a_full_queue_leaves_messages_out_and_counts_what_it_holds() {
        let mut q = GapQueue::default();
        assert_eq!(q.insert_within(5, message(40), 100), Insert::Kept);
        assert_eq!(q.insert_within(6, message(40), 100), Insert::Kept);
        assert_eq!(q.insert_within(7, message(40), 100), Insert::LeftOutFirst);
        assert_eq!(q.insert_within(8, message(40), 100), Insert::LeftOut);
        assert_eq!(q.insert_within(6, message(40), 100), Insert::Kept);
        assert_eq!(q.bytes, 80);
        assert!(q.take(4).is_none());
        assert!(q.take(6).is_some(), "5 is dropped on the way");
        assert_eq!(q.bytes, 0);
        assert_eq!(q.insert_within(9, message(40), 100), Insert::Kept);
        assert_eq!(q.insert_within(10, message(70), 100), Insert::LeftOutFirst);
    }
}
