//! A raw FIX test client over TCP: sends framed or raw bytes, reads whole frames, and
//! tells a close from a time-out.

use fix_codec::human::{encode_human, from_human};
use fix_codec::{frame, FrameError, TimePrecision, UtcTimestamp};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What waiting for the next message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A whole frame (or, if the bytes were not FIX, everything buffered).
    Message(Vec<u8>),
    /// The peer closed the connection.
    Closed,
    /// Nothing arrived in time.
    TimedOut,
}

/// A connection to the engine under test.
pub struct FixClient {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    begin_string: String,
}

/// Replaces `<TIME>`, `<TIME-121>`, `<TIME+10>` with the current time shifted by seconds.
/// One "now" serves the whole text, so SendingTime and OrigSendingTime written as
/// `<TIME>` in one message are equal (not a millisecond apart).
pub fn with_times(text: &str) -> String {
    with_times_in(text, TimePrecision::Millis)
}

/// SendingTime precision: whole seconds before FIX.4.2, milliseconds after.
fn precision_of(begin_string: &str) -> TimePrecision {
    match begin_string {
        "FIX.4.0" | "FIX.4.1" => TimePrecision::Seconds,
        _ => TimePrecision::Millis,
    }
}

/// A message built from `|`-separated fields (8, 9, 10 filled in, times substituted).
pub fn message_bytes(fields: &str, begin_string: &str) -> Vec<u8> {
    encode_human(
        &with_times_in(fields, precision_of(begin_string)),
        begin_string,
    )
}

/// `|`-separated text exactly as written (for garbled input); `<BEGIN>`, `<LEN>`,
/// `<SUM>` and `<BADSUM>` become the BeginString, the right BodyLength, the right
/// CheckSum and a wrong one (the right one plus 1: a fixed wrong value is right once in
/// 256 times, as SendingTime changes).
pub fn raw_bytes(text: &str, begin_string: &str) -> Vec<u8> {
    let text = with_times_in(
        &text.replace("<BEGIN>", begin_string),
        precision_of(begin_string),
    );
    let mut bytes = from_human(&text);
    if let Some(at) = find(&bytes, b"<LEN>") {
        let body_start = at + 5 + 1;
        let body_end = find(&bytes, b"\x0110=").map_or(bytes.len(), |e| e + 1);
        let len = body_end.saturating_sub(body_start).to_string();
        bytes.splice(at..at + 5, len.bytes());
    }
    for (mark, off) in [(&b"<SUM>"[..], 0), (&b"<BADSUM>"[..], 1)] {
        if let Some(at) = find(&bytes, mark) {
            let sum: u32 = bytes[..at.saturating_sub(3)]
                .iter()
                .map(|b| u32::from(*b))
                .sum();
            let value = format!("{:03}", (sum + off) % 256);
            bytes.splice(at..at + mark.len(), value.bytes());
        }
    }
    bytes
}

/// [`with_times`] at a given precision (FIX.4.0 and FIX.4.1 have whole seconds only).
pub fn with_times_in(text: &str, precision: TimePrecision) -> String {
    let now = UtcTimestamp::now();
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<TIME") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let spec = &rest[start + 5..start + end];
        let shift: i64 = spec.trim_start_matches('+').parse().unwrap_or(0);
        let t = now.add_nanos(shift * 1_000_000_000);
        out.push_str(&t.format(precision));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl FixClient {
    /// A client that is not connected yet.
    pub fn new(begin_string: &str) -> Self {
        Self {
            stream: None,
            buf: Vec::new(),
            begin_string: begin_string.to_string(),
        }
    }

    /// Connects (dropping any previous connection).
    pub async fn connect(&mut self, addr: std::net::SocketAddr) -> std::io::Result<()> {
        self.stream = Some(TcpStream::connect(addr).await?);
        self.buf.clear();
        Ok(())
    }

    /// Takes a connection made to this side (the counterparty of an initiator).
    pub fn attach(&mut self, stream: TcpStream) {
        self.stream = Some(stream);
        self.buf.clear();
    }

    /// Connects with a receive buffer of about `bytes` (set before the handshake, so the
    /// TCP window stays that small): a counterparty that stops reading blocks the peer's
    /// writes soon.
    pub async fn connect_small_window(
        &mut self,
        addr: std::net::SocketAddr,
        bytes: u32,
    ) -> std::io::Result<()> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        self.stream = Some(socket.connect(addr).await?);
        self.buf.clear();
        Ok(())
    }

    /// Connects a new client.
    pub async fn connected(
        begin_string: &str,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        let mut c = Self::new(begin_string);
        c.connect(addr).await?;
        Ok(c)
    }

    /// Closes the connection.
    pub fn disconnect(&mut self) {
        self.stream = None;
    }

    /// Sends a message built from `|`-separated fields (8, 9, 10 filled in, times
    /// substituted).
    pub async fn send(&mut self, fields: &str) -> std::io::Result<()> {
        let bytes = message_bytes(fields, &self.begin_string);
        self.send_bytes(&bytes).await
    }

    /// Sends `|`-separated text exactly as written (for garbled input); `<BEGIN>`,
    /// `<LEN>` and `<SUM>` become the BeginString, the right BodyLength and CheckSum.
    pub async fn send_raw(&mut self, text: &str) -> std::io::Result<()> {
        let bytes = raw_bytes(text, &self.begin_string);
        self.send_bytes(&bytes).await
    }

    /// Sends bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Some(s) => s.write_all(bytes).await,
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "not connected",
            )),
        }
    }

    /// The next message, a close, or a time-out after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match frame::check(&self.buf, 1 << 20) {
                Ok(f) => return Received::Message(self.buf.drain(..f.len).collect()),
                Err(FrameError::Incomplete) => {}
                Err(_) => return Received::Message(std::mem::take(&mut self.buf)),
            }
            let Some(stream) = &mut self.stream else {
                return Received::Closed;
            };
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Err(_) => return Received::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.stream = None;
                    return Received::Closed;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;

    #[test]
    fn a_bad_checksum_is_never_the_right_one() {
        let good = raw_bytes("8=<BEGIN>|9=<LEN>|35=0|34=2|10=<SUM>|", "FIX.4.2");
        let bad = raw_bytes("8=<BEGIN>|9=<LEN>|35=0|34=2|10=<BADSUM>|", "FIX.4.2");
        assert!(fix_codec::frame::check(&good, 1 << 20).is_ok());
        assert!(fix_codec::frame::check(&bad, 1 << 20).is_err());
    }
}
