//! [`MemoryStore`]: sequence numbers and sent messages in memory only.
//!
//! Sent messages are packed into fixed-size blocks (no allocation per message, no
//! buffer that doubles and copies everything it holds), and the oldest blocks are
//! dropped once the store holds more than its limit: a ResendRequest for a message no
//! longer held is answered with a SequenceReset-GapFill, as for an admin message.

use crate::store::{SessionStore, StoreError};
use fix_codec::UtcTimestamp;
use std::collections::VecDeque;

/// The default limit on the sent messages one [`MemoryStore`] keeps for resends.
pub const DEFAULT_MEMORY_STORE_BYTES: usize = 256 << 20;

/// Bytes of one block (a larger message gets a block of its own).
const BLOCK_BYTES: usize = 256 << 10;
/// Messages of one block at most.
const BLOCK_MESSAGES: usize = 2048;

/// Sent messages with consecutive positions in one buffer.
#[derive(Debug, Clone)]
struct Block {
    /// Each message's sequence number and where it ends in `bytes`, in order.
    index: Vec<(u64, usize)>,
    bytes: Vec<u8>,
}

impl Block {
    fn with_room_for(len: usize) -> Self {
        Self {
            index: Vec::with_capacity(BLOCK_MESSAGES),
            bytes: Vec::with_capacity(len.max(BLOCK_BYTES)),
        }
    }

    fn first_seq(&self) -> Option<u64> {
        self.index.first().map(|&(seq, _)| seq)
    }

    fn last_seq(&self) -> Option<u64> {
        self.index.last().map(|&(seq, _)| seq)
    }

    /// Whether a message of `len` bytes fits without a buffer growing.
    fn fits(&self, len: usize) -> bool {
        self.bytes.len() + len <= self.bytes.capacity() && self.index.len() < BLOCK_MESSAGES
    }

    fn push(&mut self, seq: u64, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        self.index.push((seq, self.bytes.len()));
    }

    /// Forgets the messages from `seq` on.
    fn truncate_from(&mut self, seq: u64) {
        let keep = self.index.partition_point(|&(s, _)| s < seq);
        let end = keep.checked_sub(1).map_or(0, |i| self.index[i].1);
        self.index.truncate(keep);
        self.bytes.truncate(end);
    }

    fn visit(&self, begin: u64, end: u64, visit: &mut dyn FnMut(u64, &[u8])) {
        let first = self.index.partition_point(|&(s, _)| s < begin);
        for i in first..self.index.len() {
            let (seq, stop) = self.index[i];
            if seq > end {
                break;
            }
            let start = i.checked_sub(1).map_or(0, |p| self.index[p].1);
            visit(seq, &self.bytes[start..stop]);
        }
    }
}

/// A store in memory only: fast, and lost with the process. It keeps the most recent
/// sent messages up to a byte limit ([`DEFAULT_MEMORY_STORE_BYTES`] unless given); a
/// resend of an older one becomes a SequenceReset-GapFill.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    next_sender: u64,
    next_target: u64,
    blocks: VecDeque<Block>,
    /// Bytes the blocks hold room for (what the limit counts).
    held: usize,
    limit: usize,
    created: UtcTimestamp,
}

impl MemoryStore {
    /// An empty store created at `now`, keeping up to [`DEFAULT_MEMORY_STORE_BYTES`] of
    /// sent messages.
    pub fn new(now: UtcTimestamp) -> Self {
        Self::with_limit(now, DEFAULT_MEMORY_STORE_BYTES)
    }

    /// An empty store created at `now`, keeping the most recent sent messages in blocks
    /// holding room for up to `limit` bytes. Messages are dropped a block (256 KiB) at a
    /// time, oldest first; the newest block always stays, whatever the limit.
    pub fn with_limit(now: UtcTimestamp, limit: usize) -> Self {
        Self {
            next_sender: 1,
            next_target: 1,
            blocks: VecDeque::new(),
            held: 0,
            limit,
            created: now,
        }
    }

    /// The oldest sent message still held for resends.
    pub fn first_held_seq(&self) -> Option<u64> {
        self.blocks.iter().find_map(Block::first_seq)
    }

    /// Drops everything stored from `seq` on (a sequence number set back).
    fn truncate_from(&mut self, seq: u64) {
        while let Some(last) = self.blocks.back_mut() {
            if last.first_seq().is_some_and(|first| first >= seq) {
                self.held -= last.bytes.capacity();
                self.blocks.pop_back();
                continue;
            }
            if last.last_seq().is_some_and(|s| s >= seq) {
                last.truncate_from(seq);
            }
            break;
        }
    }

    /// Drops the oldest blocks while more than the limit is held, never the newest.
    fn evict(&mut self) {
        while self.held > self.limit && self.blocks.len() > 1 {
            if let Some(old) = self.blocks.pop_front() {
                self.held -= old.bytes.capacity();
            }
        }
    }
}

impl SessionStore for MemoryStore {
    fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }
    fn next_target_seq(&self) -> u64 {
        self.next_target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        // Messages at or above a number set back belong to the old sequence.
        self.truncate_from(seq);
        self.next_sender = seq;
        Ok(())
    }
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.next_target = seq;
        Ok(())
    }
    fn save_outbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        // A sequence number at or below one held replaces it and everything after it.
        if self.blocks.back().and_then(Block::last_seq) >= Some(seq) {
            self.truncate_from(seq);
        }
        match self.blocks.back_mut() {
            Some(block) if block.fits(message.len()) => block.push(seq, message),
            _ => {
                let mut block = Block::with_room_for(message.len());
                block.push(seq, message);
                self.held += block.bytes.capacity();
                self.blocks.push_back(block);
            }
        }
        self.evict();
        self.next_sender = seq + 1;
        Ok(())
    }
    fn save_inbound(&mut self, seq: u64, _message: &[u8]) -> Result<(), StoreError> {
        self.next_target = seq + 1;
        Ok(())
    }
    fn load_outbound(
        &self,
        begin: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        let first = self
            .blocks
            .partition_point(|b| b.last_seq().is_some_and(|s| s < begin));
        for block in self.blocks.range(first..) {
            if block.first_seq().is_some_and(|s| s > end) {
                break;
            }
            block.visit(begin, end, visit);
        }
        Ok(())
    }
    fn reset(&mut self, now: UtcTimestamp) -> Result<(), StoreError> {
        *self = Self::with_limit(now, self.limit);
        Ok(())
    }
    fn creation_time(&self) -> UtcTimestamp {
        self.created
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(store: &MemoryStore, begin: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        store
            .load_outbound(begin, end, &mut |s, m| out.push((s, m.to_vec())))
            .expect("memory store");
        out
    }

    fn message(seq: u64, len: usize) -> Vec<u8> {
        let mut m = format!("{seq}:").into_bytes();
        m.resize(len, b'x');
        m
    }

    #[test]
    fn messages_come_back_by_range_across_blocks() {
        let mut store = MemoryStore::new(UtcTimestamp::from_secs(0));
        for seq in 1..=3_000 {
            store.save_outbound(seq, &message(seq, 200)).expect("save");
        }
        assert!(store.blocks.len() > 1, "200 B × 3 000 spans several blocks");
        let got = held(&store, 1_000, 2_500);
        assert_eq!(got.len(), 1_501);
        for (seq, bytes) in got {
            assert_eq!(bytes, message(seq, 200));
        }
        assert_eq!(store.next_sender_seq(), 3_001);
    }

    #[test]
    fn gaps_in_sequence_numbers_are_kept() {
        let mut store = MemoryStore::new(UtcTimestamp::from_secs(0));
        for seq in [1, 2, 5, 9] {
            store.save_outbound(seq, &message(seq, 10)).expect("save");
        }
        let seqs: Vec<u64> = held(&store, 2, 8).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![2, 5]);
    }

    #[test]
    fn a_sequence_number_set_back_replaces_what_followed() {
        let mut store = MemoryStore::new(UtcTimestamp::from_secs(0));
        for seq in 1..=10 {
            store.save_outbound(seq, &message(seq, 10)).expect("save");
        }
        store.save_outbound(4, b"again").expect("save");
        let got = held(&store, 1, 20);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], (4, b"again".to_vec()));
        assert_eq!(store.held, BLOCK_BYTES, "one block");
        store.set_next_sender_seq(3).expect("set back");
        assert_eq!(held(&store, 1, 20).len(), 2, "3 and 4 forgotten");
    }

    #[test]
    fn the_oldest_messages_go_beyond_the_limit() {
        let mut store = MemoryStore::with_limit(UtcTimestamp::from_secs(0), 1 << 20);
        let big = 300 << 10;
        for seq in 1..=10 {
            store.save_outbound(seq, &message(seq, big)).expect("save");
        }
        assert!(store.held <= 1 << 20, "held {}", store.held);
        let first = store.first_held_seq().expect("something held");
        assert!(first > 1 && first <= 8, "first held {first}");
        let got = held(&store, 1, 10);
        assert_eq!(got.first().map(|m| m.0), Some(first));
        assert_eq!(got.last().map(|m| m.0), Some(10));
    }

    #[test]
    fn the_newest_block_stays_even_when_larger_than_the_limit() {
        let mut store = MemoryStore::with_limit(UtcTimestamp::from_secs(0), 100);
        store
            .save_outbound(1, &message(1, BLOCK_BYTES))
            .expect("save");
        store
            .save_outbound(2, &message(2, BLOCK_BYTES + 1))
            .expect("save");
        assert_eq!(held(&store, 1, 2).len(), 1);
        assert_eq!(store.first_held_seq(), Some(2));
    }
}
