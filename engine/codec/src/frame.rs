//! Framing: finding where one FIX message ends in a byte stream.
//!
//! A frame is `8=<BeginString>SOH 9=<BodyLength>SOH <body> 10=<CheckSum>SOH`. The check is
//! cheap and allocation-free: it reads BeginString and BodyLength, then verifies that the
//! trailer sits exactly where BodyLength says and that the checksum matches. The caller
//! keeps reading while the answer is [`FrameError::Incomplete`], and skips the reported
//! number of bytes on every other error.

use crate::SOH;
use thiserror::Error;

/// A complete, checksum-verified frame at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Total length of the frame in bytes, trailer included.
    pub len: usize,
    /// Byte range of the BeginString value within the frame.
    pub begin_string: (usize, usize),
    /// Offset of the first body byte (the byte after `9=N SOH`).
    pub body_start: usize,
}

impl Frame {
    /// The BeginString value of this frame.
    pub fn begin_string<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.begin_string.0..self.begin_string.1]
    }
}

/// Why the start of the buffer is not a usable frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More bytes are needed before anything can be decided.
    #[error("incomplete frame: need more bytes")]
    Incomplete,
    /// The bytes are not a FIX frame; skip `skip` bytes and look again.
    #[error("garbled frame ({reason}); skipping {skip} bytes")]
    Garbled {
        /// Bytes to discard.
        skip: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// BodyLength announces a message larger than the configured maximum.
    #[error("message of {announced} bytes exceeds the maximum of {max} bytes (raise max_message_size if this is legitimate)")]
    TooLarge {
        /// The announced total size.
        announced: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The frame is complete but its CheckSum does not match its bytes.
    #[error(
        "checksum mismatch: computed {computed:03}, received {received:03}; skipping {skip} bytes"
    )]
    BadChecksum {
        /// Bytes to discard (the whole frame).
        skip: usize,
        /// Checksum computed over the bytes.
        computed: u8,
        /// Checksum carried in tag 10.
        received: u8,
    },
}

/// Sum of all bytes modulo 256: the FIX CheckSum.
pub fn checksum(bytes: &[u8]) -> u8 {
    // Summing in u32 chunks lets the compiler vectorise; wrapping is fine because only the
    // low byte matters.
    bytes
        .iter()
        .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b))) as u8
}

/// Where the next plausible frame (`8=FIX`) starts after position 0, or the whole buffer
/// length minus a possible partial prefix when there is none.
fn resync_point(buf: &[u8]) -> usize {
    let mut from = 1;
    while let Some(pos) = memchr::memchr(b'8', &buf[from.min(buf.len())..]) {
        let at = from + pos;
        let rest = &buf[at..];
        let prefix = b"8=FIX";
        let n = rest.len().min(prefix.len());
        if rest[..n] == prefix[..n] && (at == 0 || buf[at - 1] == SOH) {
            return at;
        }
        from = at + 1;
    }
    buf.len()
}

fn parse_decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0')),
    )
}

/// Checks whether `buf` starts with one complete, valid FIX frame.
///
/// `max_size` bounds the total frame size; a larger BodyLength is reported as
/// [`FrameError::TooLarge`] before the bytes arrive, so a hostile peer cannot make the
/// reader buffer without limit.
pub fn check(buf: &[u8], max_size: usize) -> Result<Frame, FrameError> {
    let garbled = |reason| FrameError::Garbled {
        skip: resync_point(buf),
        reason,
    };
    if buf.len() < 2 {
        return if buf.is_empty() || buf[0] == b'8' {
            Err(FrameError::Incomplete)
        } else {
            Err(garbled("does not start with 8="))
        };
    }
    if &buf[..2] != b"8=" {
        return Err(garbled(
            "does not start with 8= (BeginString must be first)",
        ));
    }
    let Some(bs_end) = memchr::memchr(SOH, &buf[2..]).map(|p| p + 2) else {
        return if buf.len() > 32 {
            Err(garbled("BeginString not terminated"))
        } else {
            Err(FrameError::Incomplete)
        };
    };
    let rest = &buf[bs_end + 1..];
    if rest.len() < 2 {
        return Err(FrameError::Incomplete);
    }
    if &rest[..2] != b"9=" {
        return Err(garbled("BodyLength (9) is not the second field"));
    }
    let Some(len_end) = memchr::memchr(SOH, &rest[2..]).map(|p| p + 2) else {
        return if rest.len() > 12 {
            Err(garbled("BodyLength not terminated"))
        } else {
            Err(FrameError::Incomplete)
        };
    };
    let Some(body_len) = parse_decimal(&rest[2..len_end]) else {
        return Err(garbled("BodyLength is not a number"));
    };
    let body_start = bs_end + 1 + len_end + 1;
    let total = body_start + body_len + 7;
    if total > max_size {
        return Err(FrameError::TooLarge {
            announced: total,
            max: max_size,
        });
    }
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    let trailer = &buf[total - 7..total];
    if &trailer[..3] != b"10=" || trailer[6] != SOH {
        // As QuickFIX's parser: the frame runs to the next CheckSum field after where
        // BodyLength says the body ends, and is dropped whole (a message without a
        // CheckSum takes the next message with it).
        let from = body_start + body_len.saturating_sub(1);
        let next_checksum = memchr::memmem::find(&buf[from..], b"\x0110=").map(|p| from + p + 4);
        let end = next_checksum.and_then(|at| memchr::memchr(SOH, &buf[at..]).map(|p| at + p + 1));
        return match end {
            Some(skip) => Err(FrameError::Garbled {
                skip,
                reason: "CheckSum (10) not where BodyLength says",
            }),
            None if buf.len() < max_size => Err(FrameError::Incomplete),
            None => Err(garbled("CheckSum (10) not where BodyLength says")),
        };
    }
    let Some(received) = parse_decimal(&trailer[3..6]).filter(|v| *v < 256) else {
        return Err(garbled("CheckSum is not three digits"));
    };
    let computed = checksum(&buf[..total - 7]);
    if usize::from(computed) != received {
        return Err(FrameError::BadChecksum {
            skip: total,
            computed,
            received: received as u8,
        });
    }
    Ok(Frame {
        len: total,
        begin_string: (2, bs_end),
        body_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::human::from_human;

    const MAX: usize = 4096;

    #[test]
    fn a_valid_frame_is_found_and_its_length_reported() {
        let msg = from_human("8=FIX.4.2|9=5|35=0|10=161|");
        let frame = check(&msg, MAX).expect("valid");
        assert_eq!(frame.len, msg.len());
        assert_eq!(frame.begin_string(&msg), b"FIX.4.2");
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let msg = from_human("8=FIX.4.4|9=5|35=0|10=163|");
        for n in 0..msg.len() {
            assert_eq!(
                check(&msg[..n], MAX),
                Err(FrameError::Incomplete),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn wrong_checksum_is_reported_with_the_frame_length() {
        let msg = from_human("8=FIX.4.2|9=5|35=0|10=000|");
        match check(&msg, MAX) {
            Err(FrameError::BadChecksum { skip, received, .. }) => {
                assert_eq!(skip, msg.len());
                assert_eq!(received, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_body_length_too_large_runs_to_the_next_checksum_as_in_quickfix() {
        // QuickFIX's parser looks for the CheckSum field from where BodyLength says the
        // body ends: the next message's CheckSum, so both go as one garbled frame.
        let mut buf = from_human("8=FIX.4.2|9=7|35=0|10=161|");
        let next = from_human("8=FIX.4.2|9=5|35=0|10=161|");
        buf.extend_from_slice(&next);
        buf.extend_from_slice(b"xx");
        match check(&buf, MAX) {
            Err(FrameError::Garbled { skip, .. }) => assert_eq!(&buf[skip..], b"xx"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_body_length_too_small_drops_that_message_only() {
        let mut buf = from_human("8=FIX.4.2|9=3|35=0|10=161|");
        let next = from_human("8=FIX.4.2|9=5|35=0|10=161|");
        buf.extend_from_slice(&next);
        match check(&buf, MAX) {
            Err(FrameError::Garbled { skip, .. }) => assert_eq!(&buf[skip..], &next[..]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn out_of_order_first_fields_are_garbled() {
        let buf = from_human("35=0|8=FIX.4.2|9=5|10=161|");
        assert!(matches!(check(&buf, MAX), Err(FrameError::Garbled { .. })));
    }

    #[test]
    fn oversized_body_length_is_refused_before_the_bytes_arrive() {
        let buf = from_human("8=FIX.4.2|9=99999999|");
        assert!(matches!(check(&buf, MAX), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn checksum_is_the_byte_sum_modulo_256() {
        assert_eq!(checksum(&[255, 2]), 1);
        assert_eq!(checksum(b""), 0);
    }
}
