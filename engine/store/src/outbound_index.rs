//! Where each sent message of one session lies in the journal, for resends.
//!
//! Sent messages have consecutive sequence numbers almost always (admin messages are
//! not stored, so Heartbeats leave small holes), so the index is dense: runs of
//! consecutive numbers, 24 bytes per number, each run growing to at most [`CHUNK`]
//! entries (never a table that rehashes, or a buffer that doubles, with everything the
//! session ever sent). A hole of up to [`HOLE`] numbers stays inside its run as unused
//! entries; a larger one starts a new run. It lives until the session's sequence numbers
//! are reset.

use crate::stream::Loc;

/// Numbers per run at most.
const CHUNK: usize = 4096;
/// The largest hole kept inside a run.
const HOLE: u64 = 64;
/// An entry for a number with no stored message (a hole).
const NONE: Loc = Loc {
    segment: u64::MAX,
    offset: 0,
    len: 0,
};

fn is_none(loc: &Loc) -> bool {
    loc.segment == u64::MAX
}

/// Consecutive sequence numbers from `first`.
#[derive(Debug, Clone)]
struct Run {
    first: u64,
    locs: Vec<Loc>,
}

impl Run {
    fn new(first: u64, loc: Loc) -> Self {
        Self {
            first,
            locs: vec![loc],
        }
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
            Some(run)
                if seq >= run.end()
                    && seq - run.end() <= HOLE
                    && run.locs.len() + ((seq - run.end()) as usize) < CHUNK =>
            {
                let hole = (seq - run.end()) as usize;
                run.locs.extend(std::iter::repeat_n(NONE, hole));
                run.locs.push(loc);
            }
            _ => self.runs.push(Run::new(seq, loc)),
        }
    }

    /// Forgets the numbers from `seq` on (the next sender number set back).
    pub(crate) fn truncate_from(&mut self, seq: u64) {
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
                    .filter(|(_, loc)| !is_none(loc))
                    .map(move |(i, loc)| (r.first + (from + i) as u64, *loc))
            })
    }

    /// Messages held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.locs.iter().filter(|l| !is_none(l)).count())
            .sum()
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
    fn heartbeats_between_messages_stay_inside_one_run() {
        let mut index = OutboundIndex::default();
        // One report, then three Heartbeats (not stored), again and again.
        for k in 0..500 {
            index.insert(1 + 4 * k, loc(1 + 4 * k));
        }
        assert_eq!(index.len(), 500);
        assert_eq!(index.runs.len(), 1, "holes of 3 are kept inside the run");
        assert_eq!(seqs(&index, 2, 13), vec![5, 9, 13]);
        // A hole larger than HOLE starts a run of its own, small.
        index.insert(10_000, loc(10_000));
        assert_eq!(index.runs.len(), 2);
        assert!(index.runs[1].locs.capacity() < 16);
        assert_eq!(seqs(&index, 1_990, u64::MAX), vec![1_993, 1_997, 10_000]);
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
