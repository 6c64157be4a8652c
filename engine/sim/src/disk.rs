//! A journal on an in-memory disk: a byte stream of fixed-size records, the position
//! made durable by the last completed fsync, and the epoch history. A crash keeps only
//! what was durable.

/// Bytes in one record: epoch, MsgSeqNum and the order it carries, little-endian.
pub const RECORD: usize = 24;

/// One record of the simulated stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The epoch it was written under.
    pub epoch: u64,
    /// The MsgSeqNum it took.
    pub seq: u64,
    /// The counterparty's order it answers.
    pub order: u64,
}

impl Entry {
    /// Its bytes.
    pub fn encode(&self) -> [u8; RECORD] {
        let mut b = [0u8; RECORD];
        b[..8].copy_from_slice(&self.epoch.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..].copy_from_slice(&self.order.to_le_bytes());
        b
    }

    /// The record at the start of `b`.
    pub fn decode(b: &[u8]) -> Entry {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Entry {
            epoch: word(0),
            seq: word(8),
            order: word(16),
        }
    }
}

/// The journal of one instance.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    bytes: Vec<u8>,
    durable: u64,
    epochs: Vec<(u64, u64)>,
}

impl Journal {
    /// Where the stream ends.
    pub fn end(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Where the last completed fsync left it.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Each epoch with the position it starts at.
    pub fn epochs(&self) -> Vec<(u64, u64)> {
        self.epochs.clone()
    }

    /// The newest epoch in the stream.
    pub fn newest_epoch(&self) -> u64 {
        self.epochs.last().map_or(0, |e| e.0)
    }

    /// The stream's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The next MsgSeqNum.
    pub fn next_seq(&self) -> u64 {
        self.bytes.len() as u64 / RECORD as u64 + 1
    }

    /// Appends one record (a leader's write).
    pub fn append(&mut self, entry: Entry) -> u64 {
        self.push(&entry.encode());
        self.end()
    }

    /// Appends a leader's records verbatim at `start`, which must be the end.
    pub fn append_replicated(&mut self, start: u64, records: &[u8]) -> Result<u64, String> {
        if start != self.end() || !records.len().is_multiple_of(RECORD) {
            return Err(format!(
                "records for {start} (+{}) do not follow the journal's end {}",
                records.len(),
                self.end()
            ));
        }
        for r in records.chunks(RECORD) {
            self.push(r);
        }
        Ok(self.end())
    }

    fn push(&mut self, record: &[u8]) {
        let epoch = Entry::decode(record).epoch;
        if self.newest_epoch() != epoch {
            self.epochs.push((epoch, self.end()));
        }
        self.bytes.extend_from_slice(record);
    }

    /// Durable records from `from`, at most `max` bytes (whole records).
    pub fn read_stream(&self, from: u64, max: usize) -> Vec<u8> {
        if from >= self.durable {
            return Vec::new();
        }
        let end = self
            .durable
            .min(from + (max / RECORD * RECORD).max(RECORD) as u64);
        self.bytes[from as usize..end as usize].to_vec()
    }

    /// An fsync issued now makes this much durable when it completes.
    pub fn synced(&mut self, upto: u64) {
        self.durable = self.durable.max(upto.min(self.end()));
    }

    /// Cuts the stream back to `position` (whole records).
    pub fn truncate(&mut self, position: u64) {
        let position = position.min(self.end());
        self.bytes.truncate(position as usize);
        self.durable = self.durable.min(position);
        self.epochs.retain(|e| e.1 < position);
    }

    /// A crash: only what was durable survives.
    pub fn crash(&mut self) {
        let durable = self.durable;
        self.truncate(durable);
    }

    /// The record at `position`, if the stream holds one there.
    pub fn entry_at(&self, position: u64) -> Option<Entry> {
        let p = position as usize;
        (p + RECORD <= self.bytes.len()).then(|| Entry::decode(&self.bytes[p..p + RECORD]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_what_was_synced_and_epochs_follow_the_records() {
        let mut j = Journal::default();
        j.append(Entry {
            epoch: 1,
            seq: 1,
            order: 7,
        });
        j.synced(j.end());
        j.append(Entry {
            epoch: 2,
            seq: 2,
            order: 8,
        });
        assert_eq!(j.epochs(), vec![(1, 0), (2, RECORD as u64)]);
        j.crash();
        assert_eq!(j.end(), RECORD as u64);
        assert_eq!(j.epochs(), vec![(1, 0)]);
        assert_eq!(j.read_stream(0, 1 << 20).len(), RECORD);
    }
}
