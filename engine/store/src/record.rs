//! The journal's record encoding.

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Declares session number `session` with its id text as payload.
    Session = 1,
    /// An outbound message with sequence number `seq`.
    Outbound = 2,
    /// An inbound message accepted at `seq`.
    Inbound = 3,
    /// The next outbound sequence number is now `seq`.
    NextSender = 4,
    /// The next inbound sequence number is now `seq`.
    NextTarget = 5,
    /// The session was reset; payload is the reset time (i64 LE nanoseconds).
    Reset = 6,
    /// The application has processed every inbound message up to `seq`; commits the
    /// session's open batch.
    Processed = 7,
    /// Discards the session's open batch (written by recovery for a batch a crash cut).
    Abort = 8,
}

/// Set on the kind byte of a record that belongs to an application batch: it takes
/// effect only when the session's next `Processed` record follows.
pub const BATCH_FLAG: u8 = 0x80;

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Session,
            2 => Self::Outbound,
            3 => Self::Inbound,
            4 => Self::NextSender,
            5 => Self::NextTarget,
            6 => Self::Reset,
            7 => Self::Processed,
            8 => Self::Abort,
            _ => return None,
        })
    }
}

/// Bytes before the payload.
pub const HEADER_LEN: usize = 4 + 4 + 1 + 4 + 8 + 8;

// Format (little endian):
//   payload_len u32 | crc32 u32 (over kind..payload) | kind u8 (| BATCH_FLAG) | session u32
//   | seq u64 | epoch u64 (the leadership epoch it was written under) | payload
/// Where a record comes from and under which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What it says.
    pub kind: RecordKind,
    /// Part of an application batch.
    pub batched: bool,
    /// Session number.
    pub session: u32,
    /// Sequence number (meaning depends on kind).
    pub seq: u64,
    /// Leadership epoch it was written under (0 without a lease).
    pub epoch: u64,
}

/// Appends one encoded record to `out`.
pub fn encode(out: &mut Vec<u8>, m: Meta, payload: &[u8]) {
    let Meta {
        kind,
        batched,
        session,
        seq,
        epoch,
    } = m;
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8 | if batched { BATCH_FLAG } else { 0 });
    out.extend_from_slice(&session.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One decoded record, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it says.
    pub kind: RecordKind,
    /// Part of an application batch (see [`BATCH_FLAG`]).
    pub batched: bool,
    /// Session number.
    pub session: u32,
    /// Sequence number (meaning depends on kind).
    pub seq: u64,
    /// Leadership epoch it was written under.
    pub epoch: u64,
    /// Payload bytes.
    pub payload: &'a [u8],
}

/// Why bytes do not decode to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends inside the record.
    Truncated,
    /// The CRC does not match, or the kind is unknown.
    Corrupt,
}

/// Decodes the record at the start of `buf`; returns it and its total length.
pub fn decode(buf: &[u8], max_payload: usize) -> Result<(Record<'_>, usize), DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let len = word(0) as usize;
    if len > max_payload {
        return Err(DecodeError::Corrupt);
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    if crc32fast::hash(&buf[8..total]) != word(4) {
        return Err(DecodeError::Corrupt);
    }
    let kind = RecordKind::from_u8(buf[8] & !BATCH_FLAG).ok_or(DecodeError::Corrupt)?;
    let batched = buf[8] & BATCH_FLAG != 0;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&buf[13..21]);
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&buf[21..29]);
    Ok((
        Record {
            kind,
            batched,
            session: word(9),
            seq: u64::from_le_bytes(seq),
            epoch: u64::from_le_bytes(epoch),
            payload: &buf[HEADER_LEN..total],
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let m = Meta {
            kind: RecordKind::Outbound,
            batched: true,
            session: 7,
            seq: 42,
            epoch: 9,
        };
        encode(&mut buf, m, b"8=FIX.4.2\x01");
        let (r, n) = decode(&buf, 1 << 20).expect("decodes");
        assert_eq!(n, buf.len());
        assert_eq!(
            (r.kind, r.batched, r.session, r.seq, r.epoch, r.payload),
            (RecordKind::Outbound, true, 7, 42, 9, &b"8=FIX.4.2\x01"[..])
        );
    }

    #[test]
    fn a_flipped_bit_is_detected_and_a_short_buffer_is_truncated() {
        let mut buf = Vec::new();
        let m = Meta {
            kind: RecordKind::Inbound,
            batched: false,
            session: 1,
            seq: 1,
            epoch: 0,
        };
        encode(&mut buf, m, b"hello");
        for n in 0..buf.len() {
            assert_eq!(
                decode(&buf[..n], 1 << 20).err(),
                Some(DecodeError::Truncated)
            );
        }
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode(&buf, 1 << 20).err(), Some(DecodeError::Corrupt));
    }
}
