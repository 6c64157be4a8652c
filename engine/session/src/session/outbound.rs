//! Building and sending: admin messages, application messages, rejects, logouts and
//! resends.

use super::{Now, Outgoing, SendError, Session, State};
use crate::event::{LogLevel, SessionEvent};
use fix_codec::dictionary::{Reject, SessionRejectReason as Reason};
use fix_codec::message::split_fields;
use fix_codec::{tags, MessageBuilder, MessageRef};

/// The reverse route of `msg` as QuickFIX writes it on an answer: OnBehalfOfCompID,
/// OnBehalfOfSubID and (FIX.4.1 on) OnBehalfOfLocationID become DeliverTo…, and the other
/// way round; empty values are not carried over. Header fields (`tag=value SOH`…) in tag
/// order.
pub fn route_back(msg: MessageRef<'_>, begin_string: &str) -> Vec<u8> {
    let locations = begin_string != "FIX.4.0";
    // (tag written, tag read), in the order of the tags written.
    let swaps = [
        (tags::ON_BEHALF_OF_COMP_ID, tags::DELIVER_TO_COMP_ID),
        (tags::ON_BEHALF_OF_SUB_ID, tags::DELIVER_TO_SUB_ID),
        (tags::DELIVER_TO_COMP_ID, tags::ON_BEHALF_OF_COMP_ID),
        (tags::DELIVER_TO_SUB_ID, tags::ON_BEHALF_OF_SUB_ID),
        (tags::ON_BEHALF_OF_LOCATION_ID, tags::DELIVER_TO_LOCATION_ID),
        (tags::DELIVER_TO_LOCATION_ID, tags::ON_BEHALF_OF_LOCATION_ID),
    ];
    // Nothing is allocated for the usual message, which has no third-party routing.
    let mut out = Vec::new();
    for (to, from) in swaps {
        if !locations
            && matches!(
                to,
                tags::ON_BEHALF_OF_LOCATION_ID | tags::DELIVER_TO_LOCATION_ID
            )
        {
            continue;
        }
        if let Some(v) = msg.get(from).filter(|v| !v.is_empty()) {
            out.extend_from_slice(itoa::Buffer::new().format(to).as_bytes());
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(0x01);
        }
    }
    out
}

/// Whether a MsgType is a session-level (admin) message.
pub fn is_admin(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

impl Session {
    /// Writes the standard header for `seq` into the builder.
    pub(super) fn start_message(
        builder: &mut MessageBuilder,
        config: &crate::SessionConfig,
        now: Now,
        msg_type: &[u8],
        seq: u64,
        orig_sending_time: Option<&[u8]>,
    ) {
        let id = &config.id;
        builder
            .start(id.begin_string.as_bytes(), msg_type)
            .push_uint(tags::MSG_SEQ_NUM, seq);
        if orig_sending_time.is_some() {
            builder.push(tags::POSS_DUP_FLAG, b"Y");
        }
        builder
            .push_str(tags::SENDER_COMP_ID, &id.sender_comp_id)
            .push_timestamp(tags::SENDING_TIME, now.wall, config.timestamp_precision)
            .push_str(tags::TARGET_COMP_ID, &id.target_comp_id);
        if let Some(orig) = orig_sending_time {
            builder.push(tags::ORIG_SENDING_TIME, orig);
        }
    }

    /// Sends an admin message with the next sequence number. Admin messages are not
    /// kept for resend (they are gap-filled), only the sequence number advances.
    pub(super) fn send_admin(
        &mut self,
        now: Now,
        msg_type: &[u8],
        body: impl FnOnce(&mut MessageBuilder),
    ) {
        self.send_admin_routed(now, msg_type, b"", body);
    }

    /// [`Self::send_admin`] with extra header fields (`tag=value SOH`…, in tag order after
    /// TargetCompID): the reverse route of the message answered.
    pub(super) fn send_admin_routed(
        &mut self,
        now: Now,
        msg_type: &[u8],
        route: &[u8],
        body: impl FnOnce(&mut MessageBuilder),
    ) {
        if self.failed {
            return;
        }
        let seq = self.store.next_sender_seq();
        Self::start_message(&mut self.builder, &self.config, now, msg_type, seq, None);
        self.builder.push_raw(route);
        body(&mut self.builder);
        if let Some(h) = &self.hooks {
            h.to_admin(&self.config.id, msg_type, &mut self.builder);
        }
        self.builder.finish();
        let r = self.store.set_next_sender_seq(seq + 1);
        if self.store_ok(r) {
            self.emit_new(now);
        }
    }

    /// Sends an application message. It is stored first; it reaches the wire only while
    /// logged on (otherwise the counterparty gets it by resend after the next logon).
    /// Returns its sequence number.
    pub fn send(&mut self, now: Now, msg: Outgoing<'_>) -> Result<u64, SendError> {
        if self.failed {
            return Err(SendError::Stopped);
        }
        let seq = self.store.next_sender_seq();
        Self::start_message(
            &mut self.builder,
            &self.config,
            now,
            msg.msg_type,
            seq,
            None,
        );
        self.builder.push_raw(msg.header).push_raw(msg.body);
        self.builder.finish();
        let allowed = hooks_allow(
            self.hooks.as_deref(),
            &self.data_fields,
            &mut self.hook_spans,
            &self.config.id,
            self.builder.finished(),
            false,
        );
        if !allowed {
            return Err(SendError::Refused);
        }
        if let Err(e) = self.store.save_outbound(seq, self.builder.finished()) {
            self.store_ok(Err(e.clone()));
            return Err(SendError::Store(e));
        }
        if self.is_logged_on() {
            self.emit_new(now);
        }
        Ok(seq)
    }

    /// Asks the `to_app` hook (if any) whether `bytes` may go out.
    pub(super) fn app_allows(&mut self, bytes: &[u8], resend: bool) -> bool {
        hooks_allow(
            self.hooks.as_deref(),
            &self.data_fields,
            &mut self.hook_spans,
            &self.config.id,
            bytes,
            resend,
        )
    }

    /// Sends our Logon (initiator, or acceptor answering).
    pub(super) fn send_logon(&mut self, now: Now, reset: bool, heartbeat_secs: Option<u64>) {
        self.reset_sent = reset;
        let hb = heartbeat_secs.unwrap_or(self.config.heartbeat_interval.as_secs());
        let next_expected = (self.config.send_next_expected_msg_seq_num
            && self.config.has_next_expected())
        .then(|| self.store.next_target_seq());
        let appl_ver = (self.config.id.begin_string == "FIXT.1.1").then(|| {
            self.config
                .default_appl_ver_id
                .clone()
                .unwrap_or_else(|| "9".into())
        });
        let (user, pass) = (self.config.username.clone(), self.config.password.clone());
        // FIX.4.0 has no ResetSeqNumFlag: QuickFIX resets without saying so there.
        let reset_flag = reset && self.config.id.begin_string != "FIX.4.0";
        self.send_admin(now, b"A", |b| {
            b.push(tags::ENCRYPT_METHOD, b"0")
                .push_uint(tags::HEART_BT_INT, hb);
            if reset_flag {
                b.push(tags::RESET_SEQ_NUM_FLAG, b"Y");
            }
            // Tag order, as QuickFIX writes it: 98, 108, 141, 553, 554, 789, 1137.
            if let Some(u) = &user {
                b.push_str(tags::USERNAME, u);
            }
            if let Some(p) = &pass {
                b.push_str(tags::PASSWORD, p);
            }
            if let Some(n) = next_expected {
                b.push_uint(tags::NEXT_EXPECTED_MSG_SEQ_NUM, n);
            }
            if let Some(v) = &appl_ver {
                b.push_str(tags::DEFAULT_APPL_VER_ID, v);
            }
        });
    }

    /// Sends a session-level Reject for `msg`, written as QuickFIX writes it: reverse
    /// routed, RefSeqNum when `msg` had a MsgSeqNum, then (FIX.4.2 on) Text, RefTagID,
    /// RefMsgType and SessionRejectReason (in FIX.4.2 only the reasons 4.2 defines) in tag
    /// order; before FIX.4.2 the tag at fault goes into Text as `text (tag)`. `text`
    /// replaces the reason's customary Text.
    pub(super) fn send_reject(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        reject: &Reject,
        text: Option<&str>,
    ) {
        self.counters.rejects_sent += 1;
        let ref_seq = msg.get(tags::MSG_SEQ_NUM).filter(|v| !v.is_empty());
        let plain = text.unwrap_or(reject.reason.text());
        self.log(
            LogLevel::Warn,
            format!(
                "rejecting message {}: {plain}{}",
                String::from_utf8_lossy(ref_seq.unwrap_or(b"?")),
                reject
                    .ref_tag
                    .map(|t| format!(" (tag {t})"))
                    .unwrap_or_default()
            ),
        );
        let version = self.config.id.begin_string.as_str();
        let with_reasons = self.config.has_reject_reasons();
        let text = match reject.ref_tag {
            Some(tag) if !with_reasons => format!("{plain} ({tag})"),
            _ => plain.to_string(),
        };
        let reason = with_reasons
            && (version != "FIX.4.2" || reject.reason.code() <= Reason::InvalidMsgType.code());
        let ref_seq = ref_seq.map(<[u8]>::to_vec);
        let ref_msg_type = msg.msg_type().to_vec();
        let route = route_back(msg, version);
        self.send_admin_routed(now, b"3", &route, |b| {
            if let Some(seq) = &ref_seq {
                b.push(tags::REF_SEQ_NUM, seq);
            }
            b.push_str(tags::TEXT, &text);
            if with_reasons {
                if let Some(tag) = reject.ref_tag {
                    b.push_uint(tags::REF_TAG_ID, u64::from(tag));
                }
                if !ref_msg_type.is_empty() {
                    b.push(tags::REF_MSG_TYPE, &ref_msg_type);
                }
            }
            if reason {
                b.push_uint(tags::SESSION_REJECT_REASON, u64::from(reject.reason.code()));
            }
        });
    }

    /// Sends a session-level Reject for a message the application refused.
    pub fn reject_message(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        reason: fix_codec::dictionary::SessionRejectReason,
        ref_tag: Option<u32>,
        text: &str,
    ) {
        let reject = Reject { reason, ref_tag };
        self.send_reject(now, msg, &reject, Some(text));
    }

    /// Sends a BusinessMessageReject for `msg` as QuickFIX writes it (RefSeqNum, Text,
    /// RefMsgType, BusinessRejectReason; BusinessRejectRefID when given; DefaultApplVerID
    /// on FIXT.1.1), reverse routed.
    /// Before FIX.4.2, which has no BusinessMessageReject, it is a session Reject with
    /// RefSeqNum and Text.
    pub fn send_business_reject(
        &mut self,
        now: Now,
        msg: MessageRef<'_>,
        reason: u32,
        ref_id: Option<&str>,
        text: &str,
    ) {
        if !self.config.has_reject_reasons() {
            let ref_seq = msg.get(tags::MSG_SEQ_NUM).unwrap_or_default().to_vec();
            let route = route_back(msg, &self.config.id.begin_string);
            let text = text.to_string();
            self.send_admin_routed(now, b"3", &route, |b| {
                b.push(tags::REF_SEQ_NUM, &ref_seq)
                    .push_str(tags::TEXT, &text);
            });
            return;
        }
        let mut body = MessageBuilder::new();
        body.start_fields()
            .push(
                tags::REF_SEQ_NUM,
                msg.get(tags::MSG_SEQ_NUM).unwrap_or_default(),
            )
            .push_str(tags::TEXT, text)
            .push(tags::REF_MSG_TYPE, msg.msg_type());
        if let Some(id) = ref_id {
            body.push_str(tags::BUSINESS_REJECT_REF_ID, id);
        }
        body.push_uint(tags::BUSINESS_REJECT_REASON, u64::from(reason));
        if self.config.id.begin_string == "FIXT.1.1" {
            let appl_ver = self.config.default_appl_ver_id.as_deref().unwrap_or("9");
            body.push_str(tags::DEFAULT_APPL_VER_ID, appl_ver);
        }
        let route = route_back(msg, &self.config.id.begin_string);
        let outgoing = Outgoing {
            msg_type: b"j",
            header: &route,
            body: body.fields(),
        };
        if let Err(e) = self.send(now, outgoing) {
            self.log(
                LogLevel::Error,
                format!("BusinessMessageReject not sent: {e}"),
            );
        }
    }

    /// Sends Logout and waits for the answer.
    pub(super) fn initiate_logout(&mut self, now: Now, text: Option<&str>) {
        self.send_logout(now, text);
        self.state = State::LogoutSent;
        self.deadline = Some(now.mono + self.config.logout_timeout);
    }

    /// Sends Logout and disconnects at once.
    pub(super) fn logout_and_disconnect(&mut self, now: Now, text: &str) {
        self.log(LogLevel::Warn, format!("logging out: {text}"));
        self.send_logout(now, Some(text));
        self.finish_logout(now, text);
    }

    pub(super) fn send_logout(&mut self, now: Now, text: Option<&str>) {
        let text = text.map(str::to_string);
        self.send_admin(now, b"5", |b| {
            if let Some(t) = &text {
                b.push_str(tags::TEXT, t);
            }
        });
    }

    /// The logout is over: disconnect, and reset if configured.
    pub(super) fn finish_logout(&mut self, now: Now, reason: &str) {
        if self.is_logged_on() {
            self.events.push_back(SessionEvent::LoggedOut);
        }
        self.state = State::Closing;
        if self.config.reset_on_logout {
            self.reset_store(now);
        }
        self.disconnect(reason);
    }

    /// Sends a ResendRequest from the expected sequence number, chunked if configured.
    pub(super) fn request_resend(&mut self, now: Now, received: u64) {
        let begin = self.store.next_target_seq();
        let chunk = self.config.resend_request_chunk_size;
        // What is awaited ends before the message that showed the gap even when the
        // request is open-ended (as QuickFIX keeps it): a later gap is then asked for
        // again instead of waiting forever behind this request.
        let (end_field, end) = if chunk > 0 && received - begin >= chunk {
            (begin + chunk - 1, begin + chunk - 1)
        } else {
            (self.config.infinity_end_seq(), received.saturating_sub(1))
        };
        self.log(
            LogLevel::Info,
            format!("sequence gap: expected {begin}, received {received}; requesting resend"),
        );
        self.resend_end = Some(end);
        self.counters.resend_requests_sent += 1;
        self.send_admin(now, b"2", |b| {
            b.push_uint(tags::BEGIN_SEQ_NO, begin)
                .push_uint(tags::END_SEQ_NO, end_field);
        });
    }
}

/// Whether the `to_app` hook (if any) lets `bytes` go out; `spans` is scratch space.
fn hooks_allow(
    hooks: Option<&dyn crate::SessionHooks>,
    data_fields: &fix_codec::message::DataFieldTable,
    spans: &mut Vec<fix_codec::FieldSpan>,
    id: &crate::SessionId,
    bytes: &[u8],
    resend: bool,
) -> bool {
    let Some(h) = hooks else {
        return true;
    };
    if split_fields(bytes, data_fields, spans).is_err() {
        return true;
    }
    h.to_app(id, MessageRef::new(bytes, spans), resend)
}
