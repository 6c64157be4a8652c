//! Where each sent message of one session lies in the journal, for resends.
//!
//! Sent messages have consecutive sequence numbers almost always, so the index is dense:
//! runs of consecutive numbers in fixed-size chunks, 16 bytes per message, allocated a
//! chunk at a time (never a table that rehashes or a buffer that doubles with every
//! message sent). It lives until the session's sequence numbers are reset.

use crate::stream::Loc;

/// Messages per chunk.
const CHUNK: usize = 4096;

/// Consecutive sequence numbers from `first`.
#[derive(Debug, Clone)]
struct Run {
    first: u64,
    locs: Vec<Loc>,
}

impl Run {
    fn new(first: u64, loc: Loc) -> Self {
        let mut locs = Vec::with_capacity(CHUNK);
        locs.push(loc);
        Self { first, locs }
    }

    /// The number after the last one held.
    fn end(&self) -> u64 {
        self.first + self.locs.len() as u64
    }
}

/// The journal locations of one session's sent messages by sequence number.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutboundIndex {
    runs: Vec<Run>,
}

impl OutboundIndex {
    /// Records where message `seq` lies. A number at or below one held replaces it and
    /// forgets the numbers after it (they belonged to the sequence before a set-back).
    pub(crate) fn insert(&mut self, seq: u64, loc: Loc) {
        if self.runs.last().is_some_and(|r| seq < r.end()) {
            self.truncate_from(seq);
        }
        match self.runs.last_mut() {
            Some(run) if run.end() == seq && run.locs.len() < CHUNK => run.locs.push(loc),
            _ => self.runs.push(Run::new(seq, loc)),
        }
    }

    fn truncate_from(&mut self, seq: u64) {
        while let Some(run) = self.runs.last_mut() {
            if run.first >= seq {
                self.runs.pop();
                continue;
            }
            let keep = (seq - run.first) as usize;
            run.locs.truncate(keep);
            break;
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.runs = Vec::new();
    }

    /// The messages with `begin <= seq <= end`, in order.
    pub(crate) fn range(&self, begin: u64, end: u64) -> impl Iterator<Item = (u64, Loc)> + '_ {
        let start = self.runs.partition_point(|r| r.end() <= begin);
        self.runs[start..]
            .iter()
            .take_while(move |r| r.first <= end)
            .flat_map(move |r| {
                let from = begin.saturating_sub(r.first) as usize;
                let to = (end.saturating_add(1).min(r.end()) - r.first) as usize;
                r.locs[from.min(to)..to]
                    .iter()
                    .enumerate()
                    .map(move |(i, loc)| (r.first + (from + i) as u64, *loc))
            })
    }

    /// Messages held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.runs.iter().map(|r| r.locs.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seq: u64) -> Loc {
        Loc {
            segment: seq / 1000,
            offset: seq * 10,
            len: seq as u32,
        }
    }

    fn seqs(index: &OutboundIndex, begin: u64, end: u64) -> Vec<u64> {
        index
            .range(begin, end)
            .map(|(seq, l)| {
                assert_eq!(l.offset, seq * 10, "location of {seq}");
                seq
            })
            .collect()
    }

    #[test]
    fn ranges_cross_chunks_and_gaps() {
        let mut index = OutboundIndex::default();
        for seq in (1..=10_000).chain(10_050..=10_060) {
            index.insert(seq, loc(seq));
        }
        assert_eq!(index.len(), 10_011);
        assert_eq!(
            seqs(&index, 4_090, 4_100),
            (4_090..=4_100).collect::<Vec<_>>()
        );
        assert_eq!(
            seqs(&index, 9_998, 10_051),
            vec![9_998, 9_999, 10_000, 10_050, 10_051]
        );
        assert_eq!(seqs(&index, 10_001, 10_049), Vec::<u64>::new());
        assert_eq!(seqs(&index, 0, 3), vec![1, 2, 3]);
        assert_eq!(seqs(&index, 10_060, u64::MAX), vec![10_060]);
        assert_eq!(seqs(&index, 20_000, u64::MAX), Vec::<u64>::new());
        assert_eq!(seqs(&index, 5, 4), Vec::<u64>::new());
    }

    #[test]
    fn a_set_back_replaces_what_followed() {
        let mut index = OutboundIndex::default();
        for seq in 1..=5_000 {
            index.insert(seq, loc(seq));
        }
        index.insert(100, loc(100));
        assert_eq!(index.len(), 100);
        assert_eq!(seqs(&index, 1, u64::MAX).last(), Some(&100));
        index.insert(101, loc(101));
        assert_eq!(seqs(&index, 99, 200), vec![99, 100, 101]);
        index.clear();
        assert_eq!(index.len(), 0);
    }
}
