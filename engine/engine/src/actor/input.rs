//! Input: bytes read from the counterparty, framed and handed to the session one message
//! at a time; what the session delivers is collected for the turn's flush.

use super::{now, read_buffer, Delivery, SessionActor};
use fix_codec::{frame, FrameError};
use fix_session::{Disposition, SessionEvent};

/// The most messages one turn frames, and how many a task handles before it lets the
/// other tasks run. 64 orders are about 0.2 ms of work: the turn still batches them into
/// one store commit and one socket write, and a flooding session delays a neighbour by
/// no more than that per round of the scheduler.
pub(super) const MESSAGES_PER_TURN: usize = 64;

impl SessionActor {
    pub(super) fn on_read(&mut self, r: std::io::Result<usize>, deliveries: &mut Vec<Delivery>) {
        match r {
            Ok(0) => {
                tracing::info!(session = %self.span_name(), "counterparty closed the connection");
                self.close();
            }
            Ok(n) => {
                if let Some(c) = &mut self.conn {
                    c.filled += n;
                }
                self.process_input(deliveries);
            }
            Err(e) => {
                tracing::warn!(session = %self.span_name(), error = %e, "read failed");
                self.close();
            }
        }
    }

    /// Frames and hands the complete messages in the buffer to the session, until the
    /// turn's budget ([`MESSAGES_PER_TURN`]) is spent: what is left waits for the next
    /// turn (`input_pending`).
    pub(super) fn process_input(&mut self, deliveries: &mut Vec<Delivery>) {
        self.input_pending = false;
        let Some(conn) = &mut self.conn else { return };
        let max = self.plan.config.max_message_size;
        let t = now();
        let mut pos = self.consumed;
        let mut fatal = None;
        while pos < conn.filled {
            if self.since_yield >= MESSAGES_PER_TURN {
                // Anything but a partial message is work for the next turn.
                self.input_pending = !matches!(
                    frame::check(&conn.buf[pos..conn.filled], max),
                    Err(FrameError::Incomplete)
                );
                break;
            }
            let chunk = &conn.buf[pos..conn.filled];
            match frame::check(chunk, max) {
                Ok(f) => {
                    let bytes = &chunk[..f.len];
                    self.log.record('<', bytes);
                    self.counted_in.inc();
                    // A ResendRequest is answered a window at a time (fix-session's
                    // `resend.rs`): no call here holds the thread for long.
                    match self.session.handle_message(t, bytes) {
                        Disposition::Deliver => deliveries.push(Delivery::Frame(pos, f.len)),
                        Disposition::Admin => deliveries.push(Delivery::Admin(pos, f.len)),
                        Disposition::Consumed => {}
                    }
                    while let Some(ev) = self.session.poll_event() {
                        match ev {
                            SessionEvent::Deliver(m) => deliveries.push(Delivery::Owned(m)),
                            other => self.events.push(other),
                        }
                    }
                    pos += f.len;
                    self.since_yield += 1;
                }
                Err(FrameError::Incomplete) => break,
                Err(e @ FrameError::TooLarge { .. }) => {
                    self.session.handle_bad_frame(t, &e);
                    fatal = Some(e.to_string());
                    break;
                }
                Err(
                    e @ (FrameError::Garbled { skip, .. } | FrameError::BadChecksum { skip, .. }),
                ) => {
                    self.log.record('<', &chunk[..skip.min(chunk.len())]);
                    self.session.handle_bad_frame(t, &e);
                    pos += skip.max(1);
                }
            }
        }
        self.consumed = pos;
        if let Some(why) = fatal {
            tracing::warn!(session = %self.span_name(), error = %why, "disconnecting: a message this large cannot be skipped safely");
            self.events.push(SessionEvent::Disconnect { reason: why });
        }
    }

    /// Moves the unread tail of the read buffer to the front (see [`read_buffer`]).
    pub(super) fn compact(&mut self) {
        if let Some(conn) = &mut self.conn {
            read_buffer::compact(conn, self.consumed, self.plan.config.max_message_size);
        }
        self.consumed = 0;
    }
}
