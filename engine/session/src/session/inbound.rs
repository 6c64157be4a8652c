//! Handling of one inbound message in QuickFIX's order: structure, BeginString,
//! validation against the dictionaries, SendingTime and CompIDs, sequence number, then the
//! message itself.

use super::outbound::is_admin;
use super::queue::{Insert, Queued, MAX_QUEUED_BYTES};
use super::{Now, Role, Session, State};
use crate::event::{Disposition, LogLevel, SessionEvent};
use fix_codec::dictionary::{Reject, SessionRejectReason as Reason};
use fix_codec::message::split_fields;
use fix_codec::{tags, MessageRef, OwnedMessage, UtcTimestamp};

fn reject(reason: Reason, tag: Option<u32>) -> Reject {
    Reject {
        reason,
        ref_tag: tag,
    }
}

/// What is wrong with a PossDupFlag=Y message's OrigSendingTime, if anything: the Reject
/// to send, and whether a Logout follows. SequenceReset is exempt.
fn poss_dup_problem(msg: MessageRef<'_>) -> Option<(Reject, bool)> {
    if msg.msg_type() == b"4" {
        return None;
    }
    let Some(orig) = msg.get(tags::ORIG_SENDING_TIME) else {
        return Some((
            reject(Reason::RequiredTagMissing, Some(tags::ORIG_SENDING_TIME)),
            false,
        ));
    };
    let sending = msg.get(tags::SENDING_TIME).and_then(UtcTimestamp::parse);
    match (UtcTimestamp::parse(orig), sending) {
        (Some(o), Some(s)) if o > s => {
            Some((reject(Reason::SendingTimeAccuracyProblem, None), true))
        }
        (None, _) => Some((
            reject(Reason::IncorrectDataFormat, Some(tags::ORIG_SENDING_TIME)),
            false,
        )),
        _ => None,
    }
}

impl Session {
    /// Processes one parsed message. `from_queue` is set when it had been held behind a
    /// sequence gap.
    pub(super) fn process(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        resend_served: bool,
    ) -> Disposition {
        let fields = msg.fields();
        if fields.len() < 3 || fields[2].tag != tags::MSG_TYPE {
            self.log(
                LogLevel::Warn,
                "ignored message: MsgType (35) is not the third field".into(),
            );
            return Disposition::Consumed;
        }
        if msg.begin_string() != self.config.id.begin_string.as_bytes() {
            return self.on_wrong_begin_string(now, msg);
        }
        let msg_type = msg.msg_type();
        // SequenceReset-Reset is taken whatever its MsgSeqNum (test case 11), 0 included.
        let reset = msg_type == b"4" && !msg.get_flag(tags::GAP_FILL_FLAG);
        let seq = match msg.get_u64(tags::MSG_SEQ_NUM) {
            Ok(Some(s)) if s > 0 || reset => s,
            _ => return self.fail_logged_out_or_in(now, "MsgSeqNum (34) missing or invalid"),
        };
        match self.state {
            State::AwaitingLogon | State::LogonSent => {
                if msg_type != b"A" {
                    self.log(
                        LogLevel::Warn,
                        "first message is not a Logon: disconnecting".into(),
                    );
                    self.state = State::Closing;
                    self.disconnect("first message was not a Logon");
                    return Disposition::Consumed;
                }
                self.on_logon(now, msg, seq);
                return if self.state == State::Active {
                    Disposition::Admin
                } else {
                    Disposition::Consumed
                };
            }
            State::Active | State::LogoutSent => {}
            State::Disconnected | State::Closing => return Disposition::Consumed,
        }
        let expected = self.store.next_target_seq();
        // As QuickFIX: the message is validated before its sequence number is looked at.
        if self.config.validate {
            // Session-level messages are validated with the transport dictionary only (on
            // FIXT.1.1 a tag of FIX.5.0 is not a tag of the session layer).
            let app = self.dicts.app.as_deref().filter(|_| !is_admin(msg_type));
            if let Err(rej) = self.validator.validate(&self.dicts.transport, app, msg) {
                self.send_reject(now, msg, &rej, None);
                if seq == expected && msg_type != b"4" {
                    self.advance_target(seq);
                }
                return Disposition::Consumed;
            }
        }
        if !self.check_identity_and_time(now, msg, seq, expected) {
            return Disposition::Consumed;
        }
        if msg_type == b"A" && msg.get_flag(tags::RESET_SEQ_NUM_FLAG) {
            self.on_reset_logon(now, msg, seq);
            return Disposition::Admin;
        }
        let gap_fill = msg.get_flag(tags::GAP_FILL_FLAG);
        match msg_type {
            b"4" if !gap_fill => {
                self.on_sequence_reset(now, msg, seq);
                return Disposition::Admin;
            }
            b"5" => {
                self.on_logout(now, seq, expected);
                return Disposition::Admin;
            }
            b"2" if !resend_served && seq != expected => self.on_resend_request(now, msg),
            _ => {}
        }
        if seq > expected {
            self.queue_and_request(now, msg, seq, msg_type == b"2");
            return Disposition::Consumed;
        }
        if seq < expected {
            self.on_seq_too_low(now, msg, seq, expected);
            return Disposition::Consumed;
        }
        if msg.get_flag(tags::POSS_DUP_FLAG) && !self.check_poss_dup(now, msg, seq) {
            return Disposition::Consumed;
        }
        self.dispatch(now, msg, seq, resend_served)
    }

    /// The messages that are in sequence and valid.
    fn dispatch(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        seq: u64,
        resend_served: bool,
    ) -> Disposition {
        match msg.msg_type() {
            b"0" => {}
            b"1" => {
                let id = msg.get(tags::TEST_REQ_ID).unwrap_or_default().to_vec();
                self.send_admin(now, b"0", |b| {
                    b.push(tags::TEST_REQ_ID, &id);
                });
            }
            b"2" if !resend_served => self.on_resend_request(now, msg),
            b"2" => {}
            b"3" => {
                let text = msg.get_str(tags::TEXT).unwrap_or("");
                let text = format!(
                    "counterparty rejected our message {}: {text}",
                    msg.get_str(tags::REF_SEQ_NUM).unwrap_or("?")
                );
                self.log(LogLevel::Warn, text);
            }
            b"4" => {
                // SequenceReset-GapFill in sequence.
                self.apply_new_seq_no(now, msg);
                return Disposition::Admin;
            }
            b"A" => {
                self.log(
                    LogLevel::Warn,
                    "Logon received while already logged on: ignored".into(),
                );
            }
            _ => {
                let r = self.store.save_inbound(seq, msg.bytes());
                return if self.store_ok(r) {
                    Disposition::Deliver
                } else {
                    Disposition::Consumed
                };
            }
        }
        self.advance_target(seq);
        Disposition::Admin
    }

    fn advance_target(&mut self, seq: u64) {
        if self.store.next_target_seq() == seq {
            let r = self.store.set_next_target_seq(seq + 1);
            self.store_ok(r);
        }
    }

    /// Before logon a bad message disconnects; after logon it gets a Logout first.
    fn fail_logged_out_or_in(&mut self, now: Now, text: &str) -> Disposition {
        if self.is_logged_on() {
            self.logout_and_disconnect(now, text);
        } else {
            self.log(LogLevel::Warn, format!("disconnecting: {text}"));
            self.state = State::Closing;
            self.disconnect(text);
        }
        Disposition::Consumed
    }

    /// CompIDs and SendingTime. A failure sends Reject and Logout.
    fn check_identity_and_time(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        seq: u64,
        expected: u64,
    ) -> bool {
        // QuickFIX looks at SendingTime before the CompIDs.
        let problem = if !self.sending_time_ok(now, msg) {
            Some(Reason::SendingTimeAccuracyProblem)
        } else if self.config.check_comp_id && !self.comp_ids_match(msg) {
            Some(Reason::CompIdProblem)
        } else {
            None
        };
        let Some(reason) = problem else {
            return true;
        };
        self.send_reject(now, msg, &reject(reason, None), None);
        if seq == expected && !matches!(msg.msg_type(), b"A" | b"4") {
            self.advance_target(seq);
        }
        self.initiate_logout(now, None);
        false
    }

    fn comp_ids_match(&self, msg: MessageRef<'_>) -> bool {
        let id = &self.config.id;
        msg.get(tags::SENDER_COMP_ID) == Some(id.target_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID) == Some(id.sender_comp_id.as_bytes())
    }

    fn sending_time_ok(&self, now: Now, msg: MessageRef<'_>) -> bool {
        if !self.config.check_latency {
            return true;
        }
        match msg.get(tags::SENDING_TIME).and_then(UtcTimestamp::parse) {
            // A missing or unreadable SendingTime is judged by validation.
            None => true,
            Some(t) => now.wall.0.abs_diff(t.0) <= self.config.max_latency.as_nanos() as u64,
        }
    }

    /// PossDupFlag=Y with the expected MsgSeqNum: process it unless OrigSendingTime is
    /// wrong.
    fn check_poss_dup(&mut self, now: Now, msg: MessageRef<'_>, seq: u64) -> bool {
        let Some((rej, logout)) = poss_dup_problem(msg) else {
            return true;
        };
        self.send_reject(now, msg, &rej, None);
        self.advance_target(seq);
        if logout {
            self.initiate_logout(now, None);
        }
        false
    }

    fn on_seq_too_low(&mut self, now: Now, msg: MessageRef<'_>, seq: u64, expected: u64) {
        if !msg.get_flag(tags::POSS_DUP_FLAG) {
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            self.logout_and_disconnect(now, &text);
            return;
        }
        match poss_dup_problem(msg) {
            Some((rej, logout)) => {
                self.send_reject(now, msg, &rej, None);
                if logout {
                    self.initiate_logout(now, None);
                }
            }
            None => self.log(
                LogLevel::Info,
                format!("ignored possible duplicate {seq} (expecting {expected})"),
            ),
        }
    }

    fn queue_and_request(&mut self, now: Now, msg: MessageRef<'_>, seq: u64, resend_served: bool) {
        self.highest_seen = self.highest_seen.max(seq);
        let queued = Queued {
            bytes: msg.bytes().to_vec(),
            resend_served,
        };
        if self.queue.insert(seq, queued) == Insert::LeftOutFirst {
            self.log(
                LogLevel::Warn,
                format!(
                    "{MAX_QUEUED_BYTES} bytes already queued behind the gap: message {seq} and later ones are not kept; they are asked for again once the gap is filled"
                ),
            );
        }
        let expected = self.store.next_target_seq();
        let outstanding = self.resend_end.is_some_and(|end| end >= expected);
        if !outstanding {
            self.request_resend(now, seq);
        } else {
            self.log(
                LogLevel::Info,
                format!("message {seq} queued behind gap at {expected}"),
            );
        }
    }

    /// Processes queued messages that are now in sequence, and asks for the next chunk.
    pub(super) fn drain_queue(&mut self, now: Now) {
        loop {
            if !matches!(self.state, State::Active | State::LogoutSent) || self.failed {
                return;
            }
            let expected = self.store.next_target_seq();
            let Some(q) = self.queue.take(expected) else {
                break;
            };
            let mut spans = Vec::new();
            if split_fields(&q.bytes, &self.data_fields, &mut spans).is_err() {
                continue;
            }
            let d = self.process(now, MessageRef::new(&q.bytes, &spans), q.resend_served);
            if d == super::Disposition::Deliver {
                self.events
                    .push_back(SessionEvent::Deliver(OwnedMessage::from_parts(
                        q.bytes, spans,
                    )));
            }
            if self.store.next_target_seq() == expected {
                // The queued message did not advance the sequence (rejected logon-level
                // problem); stop rather than loop.
                break;
            }
        }
        let expected = self.store.next_target_seq();
        if let Some(end) = self.resend_end {
            if expected > end {
                self.resend_end = None;
                if self.highest_seen >= expected {
                    // Awaited through the highest number seen, itself included unless it
                    // is queued (it was left out of a full queue).
                    let highest = self.highest_seen;
                    let through = if self.queue.holds(highest) {
                        highest - 1
                    } else {
                        highest
                    };
                    self.request_resend(now, through + 1);
                }
            }
        }
    }

    fn on_resend_request(&mut self, now: Now, msg: MessageRef<'_>) {
        let begin = msg.get_u64(tags::BEGIN_SEQ_NO).ok().flatten().unwrap_or(0);
        let end = msg.get_u64(tags::END_SEQ_NO).ok().flatten().unwrap_or(0);
        self.serve_resend(now, begin, end);
    }

    /// SequenceReset-Reset: sequence numbers of the message itself are ignored.
    fn on_sequence_reset(&mut self, now: Now, msg: MessageRef<'_>, _seq: u64) {
        if msg.get(tags::NEW_SEQ_NO).is_none() {
            let rej = reject(Reason::RequiredTagMissing, Some(tags::NEW_SEQ_NO));
            self.send_reject(now, msg, &rej, None);
            return;
        }
        self.apply_new_seq_no(now, msg);
    }

    /// NewSeqNo of a SequenceReset, as QuickFIX applies it: above the expected number it
    /// becomes the expected number; equal changes nothing; below gets a Reject (value
    /// incorrect, no RefTagID) and the expected number stays.
    fn apply_new_seq_no(&mut self, now: Now, msg: MessageRef<'_>) {
        let expected = self.store.next_target_seq();
        let new_seq = msg.get_u64(tags::NEW_SEQ_NO).ok().flatten().unwrap_or(0);
        if new_seq > expected {
            self.log(
                LogLevel::Info,
                format!("SequenceReset: next expected {expected} -> {new_seq}"),
            );
            let r = self.store.set_next_target_seq(new_seq);
            self.store_ok(r);
            self.queue.drop_below(new_seq);
        } else if new_seq < expected {
            self.send_reject(now, msg, &reject(Reason::ValueIncorrect, None), None);
        }
    }

    /// A BeginString other than the session's after logon: Logout ("Incorrect
    /// BeginString"), the message counted; before logon: disconnect.
    fn on_wrong_begin_string(&mut self, now: Now, msg: MessageRef<'_>) -> Disposition {
        if !self.is_logged_on() {
            return self.fail_logged_out_or_in(now, "Incorrect BeginString");
        }
        let seq = msg.get_u64(tags::MSG_SEQ_NUM).ok().flatten().unwrap_or(0);
        self.advance_target(seq);
        self.initiate_logout(now, Some("Incorrect BeginString"));
        Disposition::Consumed
    }

    fn on_logout(&mut self, now: Now, seq: u64, expected: u64) {
        if seq == expected {
            self.advance_target(seq);
        }
        if self.state == State::LogoutSent {
            self.log(LogLevel::Info, "logout handshake complete".into());
            self.finish_logout(now, "logout complete");
        } else {
            self.log(LogLevel::Info, "counterparty logged out".into());
            self.send_logout(now, None);
            self.finish_logout(now, "counterparty logged out");
        }
    }

    /// A Logon with ResetSeqNumFlag=Y while logged on: both sides start again at 1 and it
    /// is answered with a Logon with ResetSeqNumFlag=Y (unless we asked for the reset).
    fn on_reset_logon(&mut self, now: Now, msg: MessageRef<'_>, seq: u64) {
        self.log(
            LogLevel::Info,
            "Logon with ResetSeqNumFlag=Y: sequence numbers reset to 1".into(),
        );
        let answer = !self.reset_sent;
        if answer {
            self.reset_store(now);
        }
        // Whatever was awaited or queued belongs to the numbering that just ended.
        self.queue.clear();
        self.resend_end = None;
        self.highest_seen = 0;
        self.reset_sent = false;
        self.advance_target(seq);
        if answer {
            let hb = msg.get_u64(tags::HEART_BT_INT).ok().flatten();
            self.send_logon(now, true, hb);
            self.reset_sent = false;
        }
    }

    /// A Logon while waiting for one.
    fn on_logon(&mut self, now: Now, msg: MessageRef<'_>, seq: u64) {
        if self.config.check_comp_id && !self.comp_ids_match(msg) {
            let _ = self.fail_logged_out_or_in(now, "CompID problem on Logon");
            return;
        }
        // QuickFIX cannot answer a Logon it refuses with a Reject (it has no session
        // yet): it disconnects.
        if let Err(rej) = self.validator.validate(&self.dicts.transport, None, msg) {
            let _ = self.fail_logged_out_or_in(now, &format!("invalid Logon: {rej}"));
            return;
        }
        if !self.sending_time_ok(now, msg) {
            let text = "Logon SendingTime outside MaxLatency";
            let _ = self.fail_logged_out_or_in(now, text);
            return;
        }
        if msg.get(tags::ENCRYPT_METHOD) != Some(b"0") {
            self.logout_and_disconnect(
                now,
                "EncryptMethod (98) must be 0: encryption is done by TLS",
            );
            return;
        }
        let hb = msg.get_u64(tags::HEART_BT_INT).ok().flatten().unwrap_or(0);
        if let Some(auth) = self.authenticator.clone() {
            if let Err(text) = auth.authenticate(&self.config.id, msg) {
                self.logout_and_disconnect(now, &text);
                return;
            }
        }
        let they_reset = msg.get_flag(tags::RESET_SEQ_NUM_FLAG);
        let acceptor = self.config.role == Role::Acceptor;
        if (they_reset && !self.reset_sent) || (acceptor && self.config.reset_on_logon) {
            self.reset_store(now);
        }
        let expected = self.store.next_target_seq();
        if seq < expected {
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            self.logout_and_disconnect(now, &text);
            return;
        }
        let their_next = msg
            .get_u64(tags::NEXT_EXPECTED_MSG_SEQ_NUM)
            .ok()
            .flatten()
            .filter(|_| self.config.has_next_expected());
        let our_next = self.store.next_sender_seq();
        if their_next.is_some_and(|n| n > our_next) {
            let text = format!(
                "NextExpectedMsgSeqNum {} is higher than the next we will send ({our_next})",
                their_next.unwrap_or(0)
            );
            self.logout_and_disconnect(now, &text);
            return;
        }
        // Count the Logon before answering, so our NextExpectedMsgSeqNum is right.
        if seq == expected {
            self.advance_target(seq);
        }
        if acceptor {
            self.heartbeat = std::time::Duration::from_secs(hb);
            self.send_logon(now, they_reset, Some(hb));
        }
        self.state = State::Active;
        self.deadline = None;
        self.logged_on_this_connection = true;
        self.events.push_back(SessionEvent::LoggedOn);
        self.log(
            LogLevel::Info,
            format!(
                "logged on (heartbeat {hb} s, next sender {}, next target {})",
                self.store.next_sender_seq(),
                self.store.next_target_seq()
            ),
        );
        if let Some(n) = their_next.filter(|n| *n < our_next) {
            self.serve_resend(now, n, our_next - 1);
        }
        if seq > expected {
            // The Logon itself is not queued: the counterparty's resend covers its number
            // (a GapFill), or the next message shows the gap again.
            self.highest_seen = seq - 1;
            self.request_resend(now, seq);
        }
    }
}
