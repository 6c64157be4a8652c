//! What the record stream means: session states, application batches and the epoch
//! history, rebuilt the same way whether records come from recovery, from this
//! instance's own appends or from a leader's replication stream.

use crate::outbound_index::OutboundIndex;
use crate::record::{Record, RecordKind};
use std::collections::{BTreeMap, HashMap};

/// Where a stored message's payload lies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// What the journal knows about one session.
#[derive(Debug, Clone)]
pub(crate) struct SessionState {
    pub(crate) no: u32,
    pub(crate) next_sender: u64,
    pub(crate) next_target: u64,
    pub(crate) created: i64,
    /// Where each sent message lies, for resends.
    pub(crate) outbound: OutboundIndex,
    /// Inbound application messages the application has not processed yet.
    pub(crate) inbound: BTreeMap<u64, Loc>,
    /// Every inbound message up to this one has been processed by the application.
    pub(crate) processed: u64,
}

impl SessionState {
    fn new(no: u32) -> Self {
        Self {
            no,
            next_sender: 1,
            next_target: 1,
            created: 0,
            outbound: OutboundIndex::default(),
            inbound: BTreeMap::new(),
            processed: 0,
        }
    }
}

/// A batched record waiting for its session's `Processed` record. Only the location is
/// kept (the payload is in the segment file); a Reset's time is the one payload needed.
#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: RecordKind,
    seq: u64,
    loc: Loc,
    reset_time: i64,
}

/// The meaning of the record stream so far.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) sessions: HashMap<String, SessionState>,
    pub(crate) by_no: HashMap<u32, String>,
    batches: HashMap<u32, Vec<Pending>>,
    /// Each epoch that wrote records, with the stream position of its first record.
    pub(crate) epochs: Vec<(u64, u64)>,
}

fn reset_time(payload: &[u8]) -> i64 {
    let mut t = [0u8; 8];
    if payload.len() == 8 {
        t.copy_from_slice(payload);
    }
    i64::from_le_bytes(t)
}

impl StreamState {
    /// The newest epoch any record was written under.
    pub(crate) fn max_epoch(&self) -> u64 {
        self.epochs.last().map_or(0, |e| e.0)
    }

    /// Applies the record that starts at stream `position` and whose payload lies at
    /// `segment`/`offset`.
    pub(crate) fn apply(&mut self, r: &Record<'_>, position: u64, segment: u64, offset: u64) {
        if self.epochs.last().is_none_or(|e| r.epoch > e.0) {
            self.epochs.push((r.epoch, position));
        }
        if r.kind == RecordKind::Session {
            let key = String::from_utf8_lossy(r.payload).into_owned();
            self.by_no.insert(r.session, key.clone());
            self.sessions
                .entry(key)
                .or_insert_with(|| SessionState::new(r.session));
            return;
        }
        let loc = Loc {
            segment,
            offset,
            len: r.payload.len() as u32,
        };
        let pending = Pending {
            kind: r.kind,
            seq: r.seq,
            loc,
            reset_time: reset_time(r.payload),
        };
        if r.batched {
            self.batches.entry(r.session).or_default().push(pending);
            return;
        }
        let Some(s) = self
            .by_no
            .get(&r.session)
            .and_then(|k| self.sessions.get_mut(k))
        else {
            return;
        };
        match r.kind {
            RecordKind::Abort => {
                if let Some(b) = self.batches.get_mut(&r.session) {
                    b.clear();
                }
            }
            RecordKind::Processed => {
                if let Some(b) = self.batches.get_mut(&r.session) {
                    for p in b.drain(..) {
                        apply_to_session(s, p);
                    }
                }
                apply_to_session(s, pending);
            }
            _ => apply_to_session(s, pending),
        }
    }

    /// Sessions whose last application batch has no commit yet.
    pub(crate) fn open_batches(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .batches
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(no, _)| *no)
            .collect();
        v.sort_unstable();
        v
    }

    /// The number a newly declared session gets.
    pub(crate) fn next_session_no(&self) -> u32 {
        self.by_no.keys().max().map_or(1, |m| m + 1)
    }

    /// Where this stream and one with `other` epochs (ending at `other_end`) stop
    /// agreeing, given this stream ends at `own_end`. Records of one epoch come from one
    /// leader, so two streams agree up to the end of the last epoch they share with the
    /// same start.
    pub(crate) fn common_prefix(&self, own_end: u64, other: &[(u64, u64)], other_end: u64) -> u64 {
        crate::replication::agreed_prefix(&self.epochs, own_end, other, other_end)
    }
}

fn apply_to_session(s: &mut SessionState, p: Pending) {
    match p.kind {
        RecordKind::Session | RecordKind::Abort => {}
        RecordKind::Outbound => {
            s.outbound.insert(p.seq, p.loc);
            s.next_sender = p.seq + 1;
        }
        RecordKind::Inbound => {
            s.next_target = p.seq + 1;
            if p.seq > s.processed {
                s.inbound.insert(p.seq, p.loc);
            }
        }
        RecordKind::Processed => {
            s.processed = s.processed.max(p.seq);
            s.inbound = s.inbound.split_off(&(p.seq + 1));
        }
        RecordKind::NextSender => {
            // Messages at or above a number set back belong to the old sequence.
            s.outbound.truncate_from(p.seq);
            s.next_sender = p.seq;
        }
        RecordKind::NextTarget => s.next_target = p.seq,
        RecordKind::Reset => {
            s.outbound.clear();
            s.inbound.clear();
            s.processed = 0;
            s.next_sender = 1;
            s.next_target = 1;
            s.created = p.reset_time;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_epochs(epochs: &[(u64, u64)]) -> StreamState {
        StreamState {
            epochs: epochs.to_vec(),
            ..StreamState::default()
        }
    }

    #[test]
    fn a_prefix_agrees_entirely() {
        let leader = with_epochs(&[(1, 0), (2, 500), (3, 900)]);
        assert_eq!(leader.common_prefix(1200, &[(1, 0), (2, 500)], 700), 700);
        assert_eq!(leader.common_prefix(1200, &[(1, 0), (2, 500)], 900), 900);
        assert_eq!(leader.common_prefix(1200, &[], 0), 0);
    }

    #[test]
    fn an_old_leaders_unreplicated_tail_is_cut_where_the_new_epoch_began() {
        // The old leader (epoch 2) wrote up to 1000; the standby had 800 when it took
        // over with epoch 3.
        let new_leader = with_epochs(&[(1, 0), (2, 500), (3, 800)]);
        assert_eq!(
            new_leader.common_prefix(1500, &[(1, 0), (2, 500)], 1000),
            800
        );
        // An epoch the leader never saw.
        let leader = with_epochs(&[(1, 0), (3, 600)]);
        assert_eq!(leader.common_prefix(900, &[(1, 0), (2, 600)], 700), 600);
    }
}
