//! Which broker acknowledgements prove that a record is stored.
//!
//! An idempotent producer whose retried batch the broker calls a duplicate
//! (`DUPLICATE_SEQUENCE_NUMBER`) reports that batch as delivered without a base offset:
//! librdkafka then numbers the batch's records from -1 on, so the first record reads
//! -1 and the others 0, 1, 2 … — offsets that look real. A broker that lost its data
//! (or its producer state) in a crash between recording a batch's sequence number and
//! storing the batch answers exactly so, for records it never stored; taking those
//! offsets at face value loses every record of the batch but the first.
//!
//! [`Judge`] is the producer's context and sees every delivery report on librdkafka's
//! polling thread, in the order librdkafka reports them. Each record carries the serial
//! number it was queued with. A delivery without an offset marks every record queued
//! before it as unproven (a duplicate batch was formed before its report arrived),
//! whatever offsets their own reports carry; the caller produces each of them again,
//! flagged as possibly published. Records queued afterwards are judged on their own.

use futures::channel::oneshot;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the broker's answer proves about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Stored at this partition and offset.
    Stored {
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
    /// Acknowledged, but not proven stored: no offset, or a batch reported without one.
    Unproven,
    /// Not taken (librdkafka's error), or dropped by the producer.
    Failed(String),
}

/// Serial numbers, shared by every producer the bridge creates (one replaces another
/// after a fatal error).
#[derive(Debug, Default)]
pub(crate) struct Serials {
    /// The last serial handed out.
    queued: AtomicU64,
    /// Records with a serial up to this one are unproven.
    unproven_upto: AtomicU64,
}

impl Serials {
    /// The serial for the next record queued.
    pub(crate) fn next(&self) -> u64 {
        self.queued.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Judges one delivery report of the record queued as `serial`.
    fn judge(&self, serial: u64, partition: i32, offset: i64) -> Delivered {
        if offset < 0 {
            // Everything queued so far may share the duplicate batch.
            self.unproven_upto
                .fetch_max(self.queued.load(Ordering::SeqCst), Ordering::SeqCst);
            return Delivered::Unproven;
        }
        if serial <= self.unproven_upto.load(Ordering::SeqCst) {
            return Delivered::Unproven;
        }
        Delivered::Stored { partition, offset }
    }
}

/// What each queued record carries to its delivery report.
pub(crate) struct Ticket {
    /// Its serial ([`Serials::next`]); 0 for a record nobody waits for.
    pub(crate) serial: u64,
    /// Where the verdict goes; `None` for a record nobody waits for (events).
    pub(crate) verdict: Option<oneshot::Sender<Delivered>>,
}

/// The bridge producer's context: judges every delivery report.
#[derive(Clone)]
pub(crate) struct Judge {
    pub(crate) serials: Arc<Serials>,
}

impl ClientContext for Judge {}

impl ProducerContext for Judge {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let verdict = match result {
            Ok(m) if ticket.serial == 0 => Delivered::Stored {
                partition: m.partition(),
                offset: m.offset(),
            },
            Ok(m) => self.serials.judge(ticket.serial, m.partition(), m.offset()),
            Err((e, _)) => Delivered::Failed(e.to_string()),
        };
        if let Some(tx) = ticket.verdict {
            let _ = tx.send(verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(partition: i32, offset: i64) -> Delivered {
        Delivered::Stored { partition, offset }
    }

    #[test]
    fn a_duplicate_batch_leaves_every_record_queued_before_its_report_unproven() {
        let s = Serials::default();
        let first = s.next();
        assert_eq!(s.judge(first, 0, 0), stored(0, 0));
        // Three records batched together; the broker calls the batch a duplicate.
        let batch: Vec<u64> = (0..3).map(|_| s.next()).collect();
        assert_eq!(s.judge(batch[0], 0, -1), Delivered::Unproven);
        // librdkafka numbers the rest from -1 on: 0 and 1 are not offsets.
        assert_eq!(s.judge(batch[1], 0, 0), Delivered::Unproven);
        assert_eq!(s.judge(batch[2], 0, 1), Delivered::Unproven);
        // Their copies, queued after the report, are judged on their own.
        let copy = s.next();
        assert_eq!(s.judge(copy, 0, 41), stored(0, 41));
    }

    #[test]
    fn offsets_are_taken_when_no_batch_came_back_without_one() {
        let s = Serials::default();
        for offset in 0..5 {
            let serial = s.next();
            assert_eq!(s.judge(serial, 2, offset), stored(2, offset));
        }
    }
}
