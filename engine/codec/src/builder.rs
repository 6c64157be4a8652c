//! Encoding: building a message into a reused buffer, then filling in BodyLength and CheckSum.

use crate::time::{TimePrecision, UtcTimestamp};
use crate::{frame::checksum, SOH};

/// Builds one message at a time into an internal buffer that is reused between messages.
///
/// Fields are written in the order they are pushed. [`MessageBuilder::finish`] writes
/// `8=`/`9=` in front and `10=` behind, without moving the body.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    begin_string: Vec<u8>,
    body_start: usize,
    start: usize,
}

impl Default for MessageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(512),
            begin_string: Vec::new(),
            body_start: 0,
            start: 0,
        }
    }

    /// Starts a new message with the given BeginString and MsgType.
    pub fn start(&mut self, begin_string: &[u8], msg_type: &[u8]) -> &mut Self {
        self.buf.clear();
        self.begin_string.clear();
        self.begin_string.extend_from_slice(begin_string);
        // Room for "8=<bs>SOH9=<up to 10 digits>SOH".
        self.body_start = 2 + begin_string.len() + 1 + 2 + 10 + 1;
        self.buf.resize(self.body_start, 0);
        self.push(crate::tags::MSG_TYPE, msg_type)
    }

    /// Starts a bare list of fields (no header, no trailer), for pre-encoding a body.
    pub fn start_fields(&mut self) -> &mut Self {
        self.buf.clear();
        self.begin_string.clear();
        self.body_start = 0;
        self.start = 0;
        self
    }

    /// The fields written since [`MessageBuilder::start_fields`] (or since `start`).
    pub fn fields(&self) -> &[u8] {
        &self.buf[self.body_start.min(self.buf.len())..]
    }

    /// Appends `tag=value SOH`.
    pub fn push(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        let mut t = itoa::Buffer::new();
        self.buf.extend_from_slice(t.format(tag).as_bytes());
        self.buf.push(b'=');
        self.buf.extend_from_slice(value);
        self.buf.push(SOH);
        self
    }

    /// Appends a text field.
    pub fn push_str(&mut self, tag: u32, value: &str) -> &mut Self {
        self.push(tag, value.as_bytes())
    }

    /// Appends an unsigned integer field.
    pub fn push_uint(&mut self, tag: u32, value: u64) -> &mut Self {
        let mut v = itoa::Buffer::new();
        let s = v.format(value);
        // Borrow dance: format into a stack buffer first.
        let mut tmp = [0u8; 20];
        tmp[..s.len()].copy_from_slice(s.as_bytes());
        self.push(tag, &tmp[..s.len()])
    }

    /// Appends a `Y`/`N` field.
    pub fn push_bool(&mut self, tag: u32, value: bool) -> &mut Self {
        self.push(tag, if value { b"Y" } else { b"N" })
    }

    /// Appends a UTCTimestamp field.
    pub fn push_timestamp(
        &mut self,
        tag: u32,
        ts: UtcTimestamp,
        precision: TimePrecision,
    ) -> &mut Self {
        let mut tmp = [0u8; 32];
        let n = ts.format_into(&mut tmp, precision);
        self.push(tag, &tmp[..n])
    }

    /// Appends already encoded fields (`tag=value SOH` …), for example a stored body.
    pub fn push_raw(&mut self, fields: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(fields);
        self
    }

    /// Writes BeginString, BodyLength and CheckSum and returns the finished message.
    pub fn finish(&mut self) -> &[u8] {
        let body_len = self.buf.len() - self.body_start;
        let mut len_buf = itoa::Buffer::new();
        let len = len_buf.format(body_len).as_bytes();
        let prefix_len = 2 + self.begin_string.len() + 1 + 2 + len.len() + 1;
        let start = self.body_start - prefix_len;
        let mut at = start;
        for part in [&b"8="[..], &self.begin_string, &[SOH], b"9=", len, &[SOH]] {
            self.buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let sum = checksum(&self.buf[start..]);
        self.buf.extend_from_slice(b"10=");
        self.buf.push(b'0' + sum / 100);
        self.buf.push(b'0' + (sum / 10) % 10);
        self.buf.push(b'0' + sum % 10);
        self.buf.push(SOH);
        self.start = start;
        &self.buf[start..]
    }

    /// The last finished message (empty before the first `finish`).
    pub fn finished(&self) -> &[u8] {
        &self.buf[self.start.min(self.buf.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::human::to_human;

    #[test]
    fn finished_messages_frame_and_checksum_correctly() {
        let mut b = MessageBuilder::new();
        b.start(b"FIX.4.2", b"0")
            .push_uint(34, 2)
            .push_str(49, "TW")
            .push_str(56, "ISLD");
        let msg = b.finish().to_vec();
        assert_eq!(
            to_human(&msg),
            "8=FIX.4.2|9=24|35=0|34=2|49=TW|56=ISLD|10=212|"
        );
        let f = frame::check(&msg, 4096).expect("valid frame");
        assert_eq!(f.len, msg.len());
    }

    #[test]
    fn the_builder_is_reusable() {
        let mut b = MessageBuilder::new();
        b.start(b"FIXT.1.1", b"A").push_uint(108, 30);
        let first = b.finish().to_vec();
        b.start(b"FIXT.1.1", b"A").push_uint(108, 30);
        assert_eq!(b.finish(), &first[..]);
    }
}
