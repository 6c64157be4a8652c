//! The connection's read buffer: small while the session is idle, larger while the
//! counterparty sends faster than one read takes in, and as large as the largest
//! allowed message when one needs it. A thousand idle sessions then hold a thousand
//! small buffers, not a thousand burst-sized ones.

use super::Conn;

/// The size a buffer starts at and returns to when idle.
pub(super) const START: usize = 4 * 1024;
/// The size it grows to, doubling, while reads keep filling it.
pub(super) const BURST: usize = 64 * 1024;

/// A buffer holding `initial` (bytes read before the session took the connection) and
/// the number of bytes filled.
pub(super) fn with(initial: Vec<u8>) -> (Vec<u8>, usize) {
    let filled = initial.len();
    let mut buf = initial;
    buf.resize(filled.max(START), 0);
    (buf, filled)
}

/// Moves the unread tail (from `consumed`) to the front. Grows the buffer when a single
/// message needs more room (up to `max_message` and a little), or when the last read
/// filled it (a burst: up to [`BURST`]).
pub(super) fn compact(conn: &mut Conn, consumed: usize, max_message: usize) {
    let was_full = conn.filled == conn.buf.len();
    conn.buf.copy_within(consumed..conn.filled, 0);
    conn.filled -= consumed;
    let len = conn.buf.len();
    if conn.filled == len {
        let grown = (len * 2).min(max_message + 64).max(len);
        conn.buf.resize(grown, 0);
    } else if was_full && len < BURST {
        conn.buf.resize((len * 2).min(BURST), 0);
    }
}

/// Gives a grown buffer back when it holds nothing (called from the session's timer,
/// at most about once a second).
pub(super) fn shrink_if_empty(conn: &mut Conn) {
    if conn.filled == 0 && conn.buf.len() > START {
        conn.buf = vec![0; START];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_small_keeps_what_was_read_and_rounds_up() {
        let (buf, filled) = with(b"8=FIX.4.4".to_vec());
        assert_eq!((buf.len(), filled), (START, 9));
        assert_eq!(&buf[..9], b"8=FIX.4.4");
        let big = vec![7u8; START + 10];
        let (buf, filled) = with(big);
        assert_eq!((buf.len(), filled), (START + 10, START + 10));
    }
}
