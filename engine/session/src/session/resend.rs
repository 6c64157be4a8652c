//! Answering a ResendRequest, a window of stored messages at a time.
//!
//! A resend of a long range (tens of thousands of messages after a long disconnect) is
//! not built in one call: each step reads at most [`RESEND_WINDOW`] stored messages and
//! turns them into resent copies (PossDupFlag=Y) and SequenceReset-GapFills. The first
//! step runs when the request arrives (a range of one window is answered at once, as
//! QuickFIX does); the next ones run from [`Session::handle_timeout`], which
//! [`Session::poll_timeout`] asks for at once while a resend is under way. The runtime
//! thus writes each window before the next is built, other work runs between steps, and
//! the transmit buffer holds one window, not the whole range.
//!
//! Messages with new sequence numbers produced meanwhile (the application's, heartbeats,
//! our own ResendRequest) are deferred until the resend is complete, so the counterparty
//! sees sequence numbers in order. Application messages are stored before they are
//! deferred: a disconnect drops what is deferred, and the next logon's resend brings it.

use super::outbound::is_admin;
use super::{Now, Session};
use crate::event::LogLevel;
use fix_codec::message::split_fields;
use fix_codec::{tags, MessageRef, UtcTimestamp};
use std::time::Instant;

/// Stored messages read from the store in one step of a resend.
pub(super) const RESEND_WINDOW: u64 = 1024;

/// Header fields the session writes itself; a stored message's copies are replaced on
/// resend.
const SESSION_HEADER: [u32; 10] = [
    tags::BEGIN_STRING,
    tags::BODY_LENGTH,
    tags::CHECK_SUM,
    tags::MSG_TYPE,
    tags::MSG_SEQ_NUM,
    tags::POSS_DUP_FLAG,
    tags::SENDER_COMP_ID,
    tags::SENDING_TIME,
    tags::TARGET_COMP_ID,
    tags::ORIG_SENDING_TIME,
];

/// A resend under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResendProgress {
    /// The first sequence number not yet read from the store.
    next: u64,
    /// The first sequence number not yet covered by a resent message or a gap fill.
    gap_start: u64,
    /// The last sequence number to answer for.
    end: u64,
    /// When the last step ran: the next is due at once.
    stepped_at: Instant,
}

impl ResendProgress {
    /// When the next step is due (the last step's time: at once).
    pub(super) fn due(&self) -> Instant {
        self.stepped_at
    }
}

impl Session {
    /// Whether a resend is under way (more steps to come from
    /// [`Session::handle_timeout`]).
    pub fn resend_pending(&self) -> bool {
        self.resend.is_some()
    }

    /// Answers a ResendRequest: stored application messages again (PossDupFlag=Y), and a
    /// SequenceReset-GapFill over admin messages and anything not stored. A request that
    /// arrives while another is being answered replaces it from its own BeginSeqNo.
    pub(super) fn serve_resend(&mut self, now: Now, begin: u64, end: u64) {
        let last = self.store.next_sender_seq().saturating_sub(1);
        let end = if end == 0 || end >= 999_999 || end > last {
            last
        } else {
            end
        };
        if begin == 0 || begin > end {
            self.log(
                LogLevel::Warn,
                format!("ResendRequest {begin}..{end} asks for nothing we sent (last sent {last})"),
            );
            return;
        }
        self.log(LogLevel::Info, format!("resending {begin}..={end}"));
        self.resend = Some(ResendProgress {
            next: begin,
            gap_start: begin,
            end,
            stepped_at: now.mono,
        });
        self.resend_step(now);
    }

    /// One window of the resend under way; once the range is answered, what was
    /// deferred follows.
    pub(super) fn resend_step(&mut self, now: Now) {
        let Some(mut p) = self.resend else { return };
        let to = p.end.min(p.next.saturating_add(RESEND_WINDOW - 1));
        let mut stored: Vec<(u64, Vec<u8>)> = Vec::new();
        let r = self.store.load_outbound(p.next, to, &mut |seq, bytes| {
            stored.push((seq, bytes.to_vec()))
        });
        if !self.store_ok(r) {
            self.resend = None;
            return;
        }
        let mut spans = Vec::new();
        for (seq, bytes) in stored {
            if split_fields(&bytes, &self.data_fields, &mut spans).is_err() {
                continue;
            }
            let msg = MessageRef::new(&bytes, &spans);
            if is_admin(msg.msg_type()) || !self.app_allows(&bytes, true) {
                continue;
            }
            if seq > p.gap_start {
                self.send_gap_fill(now, p.gap_start, seq);
            }
            self.resend_stored(now, msg);
            p.gap_start = seq + 1;
        }
        p.next = to.saturating_add(1);
        p.stepped_at = now.mono;
        if to < p.end && to != u64::MAX {
            self.resend = Some(p);
            return;
        }
        if p.gap_start <= p.end {
            self.send_gap_fill(now, p.gap_start, p.end + 1);
        }
        self.resend = None;
        let held = std::mem::take(&mut self.deferred);
        self.transmit.extend_from_slice(&held);
    }

    /// Sends the message in the builder, which has a new sequence number: now, or once
    /// the resend under way is complete.
    pub(super) fn emit_new(&mut self, now: Now) {
        if self.resend.is_some() {
            self.deferred.extend_from_slice(self.builder.finished());
        } else {
            self.transmit.extend_from_slice(self.builder.finished());
        }
        self.last_sent = now.mono;
    }

    fn send_gap_fill(&mut self, now: Now, seq: u64, new_seq: u64) {
        self.counters.gap_fills_sent += 1;
        let mut ts = [0u8; 32];
        let n = now
            .wall
            .format_into(&mut ts, self.config.timestamp_precision);
        Self::start_message(
            &mut self.builder,
            &self.config,
            now,
            b"4",
            seq,
            Some(&ts[..n]),
        );
        self.builder
            .push_uint(tags::NEW_SEQ_NO, new_seq)
            .push(tags::GAP_FILL_FLAG, b"Y");
        self.transmit.extend_from_slice(self.builder.finish());
        self.last_sent = now.mono;
    }

    fn resend_stored(&mut self, now: Now, msg: MessageRef<'_>) {
        let seq = msg.get_u64(tags::MSG_SEQ_NUM).ok().flatten().unwrap_or(0);
        let orig = msg
            .get(tags::SENDING_TIME)
            .filter(|t| UtcTimestamp::parse(t).is_some())
            .unwrap_or(b"");
        Self::start_message(
            &mut self.builder,
            &self.config,
            now,
            msg.msg_type(),
            seq,
            Some(orig),
        );
        for (tag, value) in msg.iter() {
            if !SESSION_HEADER.contains(&tag) {
                self.builder.push(tag, value);
            }
        }
        self.transmit.extend_from_slice(self.builder.finish());
        self.last_sent = now.mono;
    }
}
