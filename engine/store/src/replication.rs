//! The replication protocol between a leader and its standbys, sans-IO: frames in bytes
//! out, and the standby-side rule that refuses anything from an older epoch.
//!
//! The leader streams its journal records verbatim; a standby appends them to its own
//! journal, so positions (byte offsets in the record stream) mean the same on both, and
//! acknowledges what it has made durable.
//!
//! ```text
//! Format (little endian):
//!   len u32 (bytes after the crc) | crc32 u32 (over kind..payload) | kind u8 | epoch u64 | payload
//! kinds:
//!   1 Hello    standby → leader  payload: from_position u64 | n u32 | n × (epoch u64,
//!                                  start u64) | standby id (UTF-8)
//!   2 Records  leader → standby  payload: start_position u64 | journal records
//!   3 Ack      standby → leader  payload: durable_position u64 | written_position u64
//!                                  (the second is optional: without it, written = durable)
//!   4 Refused  either way        payload: position u64 (the sender's journal end) |
//!                                  reason (UTF-8)
//!   5 Truncate leader → standby  payload: position u64 (cut your stream back to here,
//!                                  then say Hello again)
//! ```

use thiserror::Error;

/// Bytes before the payload.
const HEADER: usize = 4 + 4 + 1 + 8;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A standby asks for the stream from `from_position`.
    Hello {
        /// The highest epoch the standby knows.
        epoch: u64,
        /// Where its journal ends.
        from_position: u64,
        /// Its journal's epoch history: (epoch, stream position of its first record).
        epochs: Vec<(u64, u64)>,
        /// Who it is.
        standby: String,
    },
    /// Journal records starting at `start_position`.
    Records {
        /// The leader's epoch.
        epoch: u64,
        /// Stream position of the first byte of `records`.
        start_position: u64,
        /// Whole journal records, verbatim.
        records: Vec<u8>,
    },
    /// The standby has made everything before `durable_position` durable, and written
    /// everything before `written_position` to its journal files (not yet synced; never
    /// less than `durable_position`).
    Ack {
        /// The epoch the standby follows.
        epoch: u64,
        /// Durable up to here.
        durable_position: u64,
        /// Written up to here.
        written_position: u64,
    },
    /// The peer refuses to go on.
    Refused {
        /// The sender's newest epoch.
        epoch: u64,
        /// Where the sender's journal ends (a standby that finds no leader defers to a
        /// peer with a newer journal).
        position: u64,
        /// Why.
        reason: String,
    },
    /// The standby's stream diverged from the leader's after `position` (an old leader's
    /// records that were never replicated): cut it back and say Hello again.
    Truncate {
        /// The leader's epoch.
        epoch: u64,
        /// Where the two streams stop agreeing.
        position: u64,
    },
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello { .. } => 1,
            Frame::Records { .. } => 2,
            Frame::Ack { .. } => 3,
            Frame::Refused { .. } => 4,
            Frame::Truncate { .. } => 5,
        }
    }

    /// The epoch the frame carries.
    pub fn epoch(&self) -> u64 {
        match self {
            Frame::Hello { epoch, .. }
            | Frame::Records { epoch, .. }
            | Frame::Ack { epoch, .. }
            | Frame::Refused { epoch, .. }
            | Frame::Truncate { epoch, .. } => *epoch,
        }
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More bytes are needed.
    #[error("incomplete replication frame")]
    Incomplete,
    /// CRC mismatch, unknown kind or malformed payload: the connection must be dropped.
    #[error("corrupt replication frame: {0}")]
    Corrupt(&'static str),
    /// Larger than the agreed maximum.
    #[error("replication frame of {0} bytes exceeds the maximum")]
    TooLarge(usize),
}

/// Appends the encoded frame to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(frame.kind());
    out.extend_from_slice(&frame.epoch().to_le_bytes());
    match frame {
        Frame::Hello {
            from_position,
            epochs,
            standby,
            ..
        } => {
            out.extend_from_slice(&from_position.to_le_bytes());
            out.extend_from_slice(&(epochs.len() as u32).to_le_bytes());
            for (e, start) in epochs {
                out.extend_from_slice(&e.to_le_bytes());
                out.extend_from_slice(&start.to_le_bytes());
            }
            out.extend_from_slice(standby.as_bytes());
        }
        Frame::Records {
            start_position,
            records,
            ..
        } => {
            out.extend_from_slice(&start_position.to_le_bytes());
            out.extend_from_slice(records);
        }
        Frame::Ack {
            durable_position,
            written_position,
            ..
        } => {
            out.extend_from_slice(&durable_position.to_le_bytes());
            out.extend_from_slice(&written_position.to_le_bytes());
        }
        Frame::Refused {
            position, reason, ..
        } => {
            out.extend_from_slice(&position.to_le_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
        Frame::Truncate { position, .. } => out.extend_from_slice(&position.to_le_bytes()),
    }
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

fn decode_hello(epoch: u64, payload: &[u8]) -> Result<Frame, FrameError> {
    let from_position =
        u64_at(payload, 0).ok_or(FrameError::Corrupt("Hello without a position"))?;
    let count = payload
        .get(8..12)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(FrameError::Corrupt("Hello without an epoch history"))?;
    let text_at = count
        .checked_mul(16)
        .and_then(|n| n.checked_add(12))
        .filter(|end| *end <= payload.len())
        .ok_or(FrameError::Corrupt("Hello epoch history cut short"))?;
    let epochs = (0..count)
        .filter_map(|i| Some((u64_at(payload, 12 + i * 16)?, u64_at(payload, 20 + i * 16)?)))
        .collect();
    let standby = String::from_utf8(payload[text_at..].to_vec())
        .map_err(|_| FrameError::Corrupt("text is not UTF-8"))?;
    Ok(Frame::Hello {
        epoch,
        from_position,
        epochs,
        standby,
    })
}

/// Decodes the frame at the start of `buf`; returns it and the bytes it used.
pub fn decode(buf: &[u8], max_frame: usize) -> Result<(Frame, usize), FrameError> {
    if buf.len() < 8 {
        return Err(FrameError::Incomplete);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max_frame {
        return Err(FrameError::TooLarge(len));
    }
    if len < HEADER - 8 {
        return Err(FrameError::Corrupt("shorter than its header"));
    }
    let total = 8 + len;
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if crc32fast::hash(&buf[8..total]) != crc {
        return Err(FrameError::Corrupt("checksum mismatch"));
    }
    let epoch = u64_at(buf, 9).ok_or(FrameError::Corrupt("no epoch"))?;
    let payload = &buf[HEADER..total];
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::Corrupt("text is not UTF-8"))
    };
    let frame = match buf[8] {
        1 => decode_hello(epoch, payload)?,
        2 => Frame::Records {
            epoch,
            start_position: u64_at(payload, 0)
                .ok_or(FrameError::Corrupt("Records without a position"))?,
            records: payload[8..].to_vec(),
        },
        3 => {
            let durable_position =
                u64_at(payload, 0).ok_or(FrameError::Corrupt("Ack without a position"))?;
            Frame::Ack {
                epoch,
                durable_position,
                // An older standby says nothing of what it wrote: no more than is durable.
                written_position: u64_at(payload, 8).unwrap_or(durable_position),
            }
        }
        4 => Frame::Refused {
            epoch,
            position: u64_at(payload, 0)
                .ok_or(FrameError::Corrupt("Refused without a position"))?,
            reason: text(&payload[8..])?,
        },
        5 => Frame::Truncate {
            epoch,
            position: u64_at(payload, 0)
                .ok_or(FrameError::Corrupt("Truncate without a position"))?,
        },
        _ => return Err(FrameError::Corrupt("unknown frame kind")),
    };
    Ok((frame, total))
}

/// Where two record streams stop agreeing: one with epoch history `own` (as from
/// `Journal::epoch_history`: each epoch with the stream position it starts at) ending at
/// `own_end`, the other with `other` ending at `other_end`. Records of one epoch come from
/// one leader, so two streams agree up to the end of the last epoch they share with the
/// same start.
pub fn agreed_prefix(
    own: &[(u64, u64)],
    own_end: u64,
    other: &[(u64, u64)],
    other_end: u64,
) -> u64 {
    let end_of =
        |list: &[(u64, u64)], i: usize, last: u64| list.get(i + 1).map_or(last, |next| next.1);
    let mut agreed = 0;
    for (i, &(epoch, start)) in other.iter().enumerate() {
        let Some(j) = own.iter().position(|e| e.0 == epoch) else {
            return agreed.min(start);
        };
        if own[j].1 != start {
            return agreed.min(start).min(own[j].1);
        }
        let theirs = end_of(other, i, other_end);
        let ours = end_of(own, j, own_end);
        agreed = theirs.min(ours);
        if theirs != ours {
            return agreed;
        }
    }
    agreed.min(other_end)
}

/// The standby's fencing rule: it follows the newest epoch it has seen and refuses any
/// frame from an older one (an old leader that came back after a pause or a network cut).
#[derive(Debug, Clone, Default)]
pub struct EpochGate {
    newest: u64,
}

impl EpochGate {
    /// A gate that has seen `newest` (e.g. recovered from the journal).
    pub fn new(newest: u64) -> Self {
        Self { newest }
    }

    /// The newest epoch seen.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Accepts a frame from `epoch` (raising the gate) or says why not; `position` is the
    /// standby's journal end, for the refusal.
    pub fn admit(&mut self, epoch: u64, position: u64) -> Result<(), Frame> {
        if epoch < self.newest {
            return Err(Frame::Refused {
                epoch: self.newest,
                position,
                reason: format!("stale leader: epoch {epoch} is older than {}", self.newest),
            });
        }
        self.newest = epoch;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Hello {
                epoch: 3,
                from_position: 4096,
                epochs: vec![(1, 0), (3, 2048)],
                standby: "engine-b".into(),
            },
            Frame::Records {
                epoch: 4,
                start_position: 4096,
                records: vec![1, 2, 3, 0, 255],
            },
            Frame::Ack {
                epoch: 4,
                durable_position: 4096,
                written_position: 4101,
            },
            Frame::Refused {
                epoch: 5,
                position: 4101,
                reason: "stale leader".into(),
            },
            Frame::Truncate {
                epoch: 6,
                position: 777,
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_and_streams_back_to_back() {
        let mut buf = Vec::new();
        for f in frames() {
            encode(&f, &mut buf);
        }
        let mut at = 0;
        for want in frames() {
            let (got, used) = decode(&buf[at..], 1 << 20).expect("decodes");
            assert_eq!(got, want);
            at += used;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn an_ack_without_a_written_position_counts_as_written_up_to_durable() {
        // An older standby's Ack: the durable position alone, 8 bytes.
        let mut old = vec![0u8; 8];
        old.push(3);
        old.extend_from_slice(&7u64.to_le_bytes());
        old.extend_from_slice(&500u64.to_le_bytes());
        let len = (old.len() - 8) as u32;
        let crc = crc32fast::hash(&old[8..]);
        old[..4].copy_from_slice(&len.to_le_bytes());
        old[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&old, 1 << 20).expect("decodes").0,
            Frame::Ack {
                epoch: 7,
                durable_position: 500,
                written_position: 500
            }
        );
        // And an older leader reads the durable position first, as before.
        let mut new = Vec::new();
        encode(
            &Frame::Ack {
                epoch: 7,
                durable_position: 500,
                written_position: 900,
            },
            &mut new,
        );
        assert_eq!(&new[HEADER..HEADER + 8], &500u64.to_le_bytes());
    }

    #[test]
    fn prefixes_are_incomplete_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(&frames()[1], &mut buf);
        for n in 0..buf.len() {
            assert_eq!(
                decode(&buf[..n], 1 << 20).err(),
                Some(FrameError::Incomplete),
                "prefix {n}"
            );
        }
        for i in 8..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(decode(&bad, 1 << 20), Err(FrameError::Corrupt(_))),
                "flip at {i}"
            );
        }
        assert_eq!(
            decode(&buf, 4).err(),
            Some(FrameError::TooLarge(buf.len() - 8))
        );
    }

    #[test]
    fn a_standby_refuses_frames_from_an_older_epoch() {
        let mut gate = EpochGate::new(4);
        assert!(gate.admit(4, 0).is_ok());
        assert!(gate.admit(6, 0).is_ok());
        match gate.admit(5, 10) {
            Err(Frame::Refused {
                epoch: 6,
                position: 10,
                reason,
            }) => {
                assert!(reason.contains("stale"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(gate.newest(), 6);
    }
}
