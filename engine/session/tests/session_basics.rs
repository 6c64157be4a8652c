//! Session behaviour with simulated time: no sockets, no clocks.

use fix_codec::human::{encode_human, to_human};
use fix_codec::UtcTimestamp;
use fix_session::*;
use std::time::{Duration, Instant};

struct Harness {
    session: Session,
    now: Now,
}

impl Harness {
    fn acceptor() -> Self {
        let now = Now {
            mono: Instant::now(),
            wall: UtcTimestamp::from_ymd_hms(2024, 5, 1, 12, 0, 0).expect("valid"),
        };
        let config = SessionConfig::new(SessionId::new("FIX.4.2", "ISLD", "TW"), Role::Acceptor);
        let dicts = Dictionaries::builtin("FIX.4.2").expect("builtin");
        let mut session = Session::new(config, Box::new(MemoryStore::new(now.wall)), dicts, now);
        session.handle_connect(now);
        Self { session, now }
    }

    fn time(&self) -> String {
        self.now.wall.format(fix_codec::TimePrecision::Millis)
    }

    /// Sends `fields` (without 8/9/10; `<T>` is replaced by the current time).
    fn recv(&mut self, fields: &str) -> Disposition {
        let text = fields.replace("<T>", &self.time());
        let wire = encode_human(&text, "FIX.4.2");
        self.session.handle_message(self.now, &wire)
    }

    /// Everything the session wants to send, as `|` strings, with 52/122/10/9 dropped.
    fn sent(&mut self) -> Vec<String> {
        let out = self
            .session
            .poll_transmit()
            .map(to_human)
            .unwrap_or_default();
        self.session.clear_transmit();
        out.split("8=FIX.4.2|")
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.split('|')
                    .filter(|f| !f.is_empty())
                    .filter(|f| {
                        !["9=", "10=", "52=", "122="]
                            .iter()
                            .any(|p| f.starts_with(p))
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now.plus(Duration::from_secs(secs));
        self.session.handle_timeout(self.now);
    }

    /// The application sends an ExecutionReport with `body`.
    fn send_report(&mut self, body: &[u8]) -> Result<u64, SendError> {
        self.session.send(
            self.now,
            Outgoing {
                msg_type: b"8",
                header: b"",
                body,
            },
        )
    }

    fn logon(&mut self) {
        let _ = self.recv("35=A|34=1|49=TW|52=<T>|56=ISLD|98=0|108=30|");
        assert_eq!(self.sent(), vec!["35=A|34=1|49=ISLD|56=TW|98=0|108=30"]);
        self.events();
    }

    /// The application sends `n` ExecutionReports (OrderID O<i>, ExecID E<i>).
    fn send_reports(&mut self, n: usize) {
        for i in 0..n {
            let body = format!("37=O{i}\x0117=E{i}\x01");
            self.send_report(body.as_bytes()).expect("stored");
        }
    }

    /// A second Logon (MsgSeqNum 3, after the first Logon and one more message).
    fn logon_again(&mut self) {
        let _ = self.recv("35=A|34=3|49=TW|52=<T>|56=ISLD|98=0|108=30|");
        self.events();
    }
}

#[test]
fn a_valid_logon_is_answered_and_the_session_becomes_active() {
    let mut h = Harness::acceptor();
    h.logon();
    assert_eq!(h.session.state(), State::Active);
    assert_eq!(h.session.next_target_seq(), 2);
}

#[test]
fn a_first_message_that_is_not_a_logon_disconnects() {
    let mut h = Harness::acceptor();
    let _ = h.recv("35=0|34=1|49=TW|52=<T>|56=ISLD|");
    assert!(h.sent().is_empty());
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::Disconnect { .. })));
}

#[test]
fn a_gap_is_requested_and_queued_messages_are_delivered_once_filled() {
    let mut h = Harness::acceptor();
    h.logon();
    assert_eq!(
        h.recv("35=D|34=4|49=TW|52=<T>|56=ISLD|11=C|"),
        Disposition::Consumed
    );
    assert_eq!(h.sent(), vec!["35=2|34=2|49=ISLD|56=TW|7=2|16=0"]);
    assert_eq!(
        h.recv("35=D|34=2|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|11=A|"),
        Disposition::Deliver
    );
    assert_eq!(
        h.recv("35=4|34=3|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|123=Y|36=4|"),
        Disposition::Admin
    );
    let delivered: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Deliver(m) => m.as_ref().get_str(11).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec!["C"]);
    assert_eq!(h.session.next_target_seq(), 5);
}

#[test]
fn a_second_gap_after_a_filled_one_is_requested_again() {
    // QuickFIX keeps the range it asked for as BeginSeqNo..(the message that showed the
    // gap - 1) even when it sends EndSeqNo 0, so a later gap is asked for again.
    let mut h = Harness::acceptor();
    h.logon();
    let _ = h.recv("35=D|34=4|49=TW|52=<T>|56=ISLD|11=C|");
    assert_eq!(h.sent(), vec!["35=2|34=2|49=ISLD|56=TW|7=2|16=0"]);
    let _ = h.recv("35=4|34=2|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|123=Y|36=4|");
    assert_eq!(h.session.next_target_seq(), 5);
    h.sent();
    assert_eq!(
        h.recv("35=D|34=7|49=TW|52=<T>|56=ISLD|11=F|"),
        Disposition::Consumed
    );
    assert_eq!(h.sent(), vec!["35=2|34=3|49=ISLD|56=TW|7=5|16=0"]);
    let _ = h.recv("35=4|34=5|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|123=Y|36=7|");
    assert_eq!(h.session.next_target_seq(), 8);
}

#[test]
fn a_resend_that_ends_just_below_a_logon_too_high_asks_for_nothing_more() {
    let mut h = Harness::acceptor();
    let _ = h.recv("35=A|34=5|49=TW|52=<T>|56=ISLD|98=0|108=30|");
    assert_eq!(
        h.sent(),
        vec![
            "35=A|34=1|49=ISLD|56=TW|98=0|108=30",
            "35=2|34=2|49=ISLD|56=TW|7=1|16=0"
        ]
    );
    let _ = h.recv("35=4|34=1|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|123=Y|36=4|");
    assert_eq!(
        h.recv("35=D|34=4|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|11=A|"),
        Disposition::Deliver
    );
    assert_eq!(h.session.next_target_seq(), 5);
    assert_eq!(h.sent(), Vec::<String>::new(), "no second ResendRequest");
    // The Logon's own number is then filled by the next message showing the gap.
    let _ = h.recv("35=D|34=6|49=TW|52=<T>|56=ISLD|11=B|");
    assert_eq!(h.sent(), vec!["35=2|34=3|49=ISLD|56=TW|7=5|16=0"]);
}

#[test]
fn resend_gap_fills_admin_messages_and_resends_application_messages() {
    let mut h = Harness::acceptor();
    h.logon();
    let seq = h.send_report(b"37=O1\x0117=E1\x01").expect("stored");
    assert_eq!(seq, 2);
    h.advance(30); // heartbeat 3
    h.sent();
    let _ = h.recv("35=2|34=2|49=TW|52=<T>|56=ISLD|7=1|16=0|");
    assert_eq!(
        h.sent(),
        vec![
            "35=4|34=1|43=Y|49=ISLD|56=TW|36=2|123=Y",
            "35=8|34=2|43=Y|49=ISLD|56=TW|37=O1|17=E1",
            "35=4|34=3|43=Y|49=ISLD|56=TW|36=4|123=Y",
        ]
    );
}

#[test]
fn a_long_resend_comes_whole_a_window_at_a_time_and_new_messages_follow_it() {
    let mut h = Harness::acceptor();
    h.logon();
    // 2 500 reports (2..=2501), then a heartbeat (2502), more than two 1 024-message
    // windows of the store.
    h.send_reports(2_500);
    h.advance(30);
    h.sent();
    let _ = h.recv("35=2|34=2|49=TW|52=<T>|56=ISLD|7=1|16=0|");
    // Each input builds one window; the session asks to be called again at once.
    let mut sent = h.sent();
    let mut steps = vec![sent.len()];
    let mut new_report = None;
    while h.session.resend_pending() {
        let due = h.session.poll_timeout().expect("a timer while resending");
        assert!(due <= h.now.mono, "the next window is due at once");
        if new_report.is_none() {
            // The application sends meanwhile: its message waits for the resend.
            new_report = Some(h.send_report(b"37=NEW\x0117=NEW\x01").expect("stored"));
        }
        h.session.handle_timeout(h.now);
        let more = h.sent();
        steps.push(more.len());
        sent.extend(more);
    }
    assert_eq!(new_report, Some(2_503), "numbered after the heartbeat");
    assert!(
        steps.len() == 3 && steps.iter().all(|&n| n <= 1_025),
        "three windows of at most 1 024 stored messages (and a gap fill): {steps:?}"
    );
    assert_eq!(
        sent.len(),
        2_503,
        "one GapFill, 2 500 reports, one GapFill, the new report"
    );
    assert_eq!(sent[0], "35=4|34=1|43=Y|49=ISLD|56=TW|36=2|123=Y");
    for (i, m) in sent[1..2_501].iter().enumerate() {
        assert_eq!(
            *m,
            format!("35=8|34={}|43=Y|49=ISLD|56=TW|37=O{i}|17=E{i}", i + 2)
        );
    }
    assert_eq!(sent[2_501], "35=4|34=2502|43=Y|49=ISLD|56=TW|36=2503|123=Y");
    assert_eq!(sent[2_502], "35=8|34=2503|49=ISLD|56=TW|37=NEW|17=NEW");
}

#[test]
fn a_disconnect_ends_a_resend_under_way_and_drops_nothing_stored() {
    let mut h = Harness::acceptor();
    h.logon();
    h.send_reports(2_000);
    h.sent();
    let _ = h.recv("35=2|34=2|49=TW|52=<T>|56=ISLD|7=1|16=0|");
    assert!(h.session.resend_pending());
    let seq = h.send_report(b"37=LATE\x0117=LATE\x01").expect("stored");
    h.session.handle_disconnect(h.now);
    assert!(
        !h.session.resend_pending(),
        "nothing more for a closed connection"
    );
    h.sent();
    // The next connection's resend brings the report that was waiting.
    h.session.handle_connect(h.now);
    h.logon_again();
    h.sent();
    let _ = h.recv(&format!("35=2|34=4|49=TW|52=<T>|56=ISLD|7={seq}|16=0|"));
    let sent = h.sent();
    assert_eq!(
        sent.first(),
        Some(&format!("35=8|34={seq}|43=Y|49=ISLD|56=TW|37=LATE|17=LATE")),
        "{sent:?}"
    );
    assert_eq!(
        sent.len(),
        2,
        "the report, then a gap fill over the Logon: {sent:?}"
    );
}

#[test]
fn silence_brings_a_test_request_then_a_disconnect() {
    let mut h = Harness::acceptor();
    h.logon();
    h.advance(30);
    assert_eq!(h.sent(), vec!["35=0|34=2|49=ISLD|56=TW"]);
    h.advance(6);
    assert_eq!(h.sent(), vec!["35=1|34=3|49=ISLD|56=TW|112=TEST"]);
    h.events();
    h.advance(36);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::Disconnect { reason } if reason.contains("heartbeat"))));
}

#[test]
fn a_sequence_number_too_low_without_poss_dup_logs_out() {
    let mut h = Harness::acceptor();
    h.logon();
    let _ = h.recv("35=0|34=2|49=TW|52=<T>|56=ISLD|");
    let _ = h.recv("35=0|34=2|49=TW|52=<T>|56=ISLD|");
    assert_eq!(
        h.sent(),
        vec!["35=5|34=2|49=ISLD|56=TW|58=MsgSeqNum too low, expecting 3 but received 2"]
    );
}

#[test]
fn a_sending_time_far_off_is_rejected_and_logged_out() {
    let mut h = Harness::acceptor();
    h.logon();
    let early = h
        .now
        .wall
        .add_nanos(-121_000_000_000)
        .format(fix_codec::TimePrecision::Millis);
    let _ = h.recv(&format!("35=0|34=2|49=TW|52={early}|56=ISLD|"));
    assert_eq!(
        h.sent(),
        vec![
            "35=3|34=2|49=ISLD|56=TW|45=2|58=SendingTime accuracy problem|372=0|373=10",
            "35=5|34=3|49=ISLD|56=TW",
        ]
    );
    assert_eq!(h.session.state(), State::LogoutSent);
}

#[test]
fn the_store_failing_stops_the_session_without_sending() {
    struct Failing(MemoryStore);
    impl SessionStore for Failing {
        fn next_sender_seq(&self) -> u64 {
            self.0.next_sender_seq()
        }
        fn next_target_seq(&self) -> u64 {
            self.0.next_target_seq()
        }
        fn set_next_sender_seq(&mut self, s: u64) -> Result<(), StoreError> {
            self.0.set_next_sender_seq(s)
        }
        fn set_next_target_seq(&mut self, s: u64) -> Result<(), StoreError> {
            self.0.set_next_target_seq(s)
        }
        fn save_outbound(&mut self, _: u64, _: &[u8]) -> Result<(), StoreError> {
            Err(StoreError::Io {
                action: "appending",
                detail: "disk full".into(),
            })
        }
        fn save_inbound(&mut self, s: u64, m: &[u8]) -> Result<(), StoreError> {
            self.0.save_inbound(s, m)
        }
        fn load_outbound(
            &self,
            b: u64,
            e: u64,
            v: &mut dyn FnMut(u64, &[u8]),
        ) -> Result<(), StoreError> {
            self.0.load_outbound(b, e, v)
        }
        fn reset(&mut self, n: UtcTimestamp) -> Result<(), StoreError> {
            self.0.reset(n)
        }
        fn creation_time(&self) -> UtcTimestamp {
            self.0.creation_time()
        }
    }
    let mut h = Harness::acceptor();
    h.session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.2", "ISLD", "TW"), Role::Acceptor),
        Box::new(Failing(MemoryStore::new(h.now.wall))),
        Dictionaries::builtin("FIX.4.2").expect("builtin"),
        h.now,
    );
    h.session.handle_connect(h.now);
    h.logon();
    let r = h.send_report(b"37=O1\x01");
    assert!(matches!(r, Err(SendError::Store(_))));
    assert!(h.sent().is_empty(), "nothing unstored may be sent");
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::StoreFailed(_))));
}

struct Hooks;

impl SessionHooks for Hooks {
    fn to_admin(&self, _id: &SessionId, msg_type: &[u8], fields: &mut fix_codec::MessageBuilder) {
        if msg_type == b"0" {
            fields.push_str(58, "hooked");
        }
    }

    fn to_app(&self, _id: &SessionId, msg: fix_codec::MessageRef<'_>, resend: bool) -> bool {
        // New "STALE" messages may go out once, but are never resent; "NO" never goes out.
        let id = msg.get(37).unwrap_or_default();
        id != b"NO" && !(resend && id == b"STALE")
    }
}

#[test]
fn hooks_add_admin_fields_refuse_messages_and_turn_refused_resends_into_gap_fills() {
    let mut h = Harness::acceptor();
    h.session.set_hooks(std::sync::Arc::new(Hooks));
    h.logon();
    let refused = h.send_report(b"37=NO\x01");
    assert_eq!(refused, Err(SendError::Refused));
    assert_eq!(
        h.session.next_sender_seq(),
        2,
        "a refused message uses no sequence number"
    );
    h.send_report(b"37=STALE\x01").expect("sent once");
    h.advance(30);
    assert_eq!(
        h.sent(),
        vec![
            "35=8|34=2|49=ISLD|56=TW|37=STALE",
            "35=0|34=3|49=ISLD|56=TW|58=hooked"
        ]
    );
    let _ = h.recv("35=2|34=2|49=TW|52=<T>|56=ISLD|7=2|16=0|");
    assert_eq!(h.sent(), vec!["35=4|34=2|43=Y|49=ISLD|56=TW|36=4|123=Y"]);
}

#[test]
fn a_24_hour_session_logs_out_when_its_next_period_begins_and_resets_on_the_next_logon() {
    let mut h = Harness::acceptor();
    // 12:00:00 now; a 24-hour session rolling over at 12:00:05 UTC.
    let mut config = SessionConfig::new(SessionId::new("FIX.4.2", "ISLD", "TW"), Role::Acceptor);
    let at = chrono::NaiveTime::from_hms_opt(12, 0, 5).expect("time");
    config.schedule = Some(Schedule::daily(at, at));
    let store = MemoryStore::new(h.now.wall.add_nanos(-3_600_000_000_000));
    h.session = Session::new(
        config,
        Box::new(store),
        Dictionaries::builtin("FIX.4.2").expect("builtin"),
        h.now,
    );
    h.session.handle_connect(h.now);
    h.logon();
    h.advance(4);
    assert!(h.sent().is_empty());
    h.advance(2);
    assert_eq!(
        h.sent(),
        vec!["35=5|34=2|49=ISLD|56=TW|58=Session end time reached"]
    );
    let _ = h.recv("35=5|34=2|49=TW|52=<T>|56=ISLD|");
    h.session.handle_disconnect(h.now);
    h.session.handle_connect(h.now);
    assert!(
        h.events().contains(&SessionEvent::SequenceReset),
        "a new period resets the sequence numbers"
    );
    assert_eq!(
        (h.session.next_sender_seq(), h.session.next_target_seq()),
        (1, 1)
    );
}

#[test]
fn answers_route_back_as_quickfix_does() {
    let route = |begin: &str, header: &str| {
        let bytes = encode_human(&format!("35=D|34=2|49=TW|56=ISLD|{header}"), begin);
        let mut spans = Vec::new();
        fix_codec::message::split_fields(&bytes, &Default::default(), &mut spans).expect("parses");
        let back = route_back(fix_codec::MessageRef::new(&bytes, &spans), begin);
        String::from_utf8_lossy(&back).replace('\x01', "|")
    };
    // OnBehalfOf* become DeliverTo* and the other way round, in tag order.
    assert_eq!(
        route("FIX.4.2", "115=JCD|116=CS|144=CHI|128=B|"),
        "115=B|128=JCD|129=CS|145=CHI|"
    );
    // Empty values are not carried over.
    assert_eq!(route("FIX.4.2", "115=JCD|116=|"), "128=JCD|");
    // FIX.4.0 has no LocationIDs.
    assert_eq!(route("FIX.4.0", "115=JCD|144=CHI|"), "128=JCD|");
}

#[test]
fn counters_follow_rejects_resends_gap_fills_timeouts_and_failed_logons() {
    let mut h = Harness::acceptor();
    // A connection dropped before its Logon is a failed logon.
    h.session.handle_disconnect(h.now);
    h.session.handle_connect(h.now);
    h.logon();
    // A gap: a ResendRequest.
    let _ = h.recv("35=0|34=3|49=TW|52=<T>|56=ISLD|");
    h.sent();
    // The counterparty asks for everything: admin messages are gap-filled.
    let _ = h.recv("35=2|34=2|43=Y|49=TW|52=<T>|56=ISLD|122=<T>|7=1|16=0|");
    h.sent();
    // A SendingTime far off: a session Reject (and a Logout).
    let early = h
        .now
        .wall
        .add_nanos(-121_000_000_000)
        .format(fix_codec::TimePrecision::Millis);
    let _ = h.recv(&format!("35=0|34=4|49=TW|52={early}|56=ISLD|"));
    let sent = h.sent();
    assert!(sent.iter().any(|m| m.starts_with("35=3|")), "{sent:?}");
    h.session.handle_disconnect(h.now);
    // Next connection: silence brings a TestRequest, then the timeout.
    h.session.handle_connect(h.now);
    let next = h.session.next_target_seq();
    let _ = h.recv(&format!("35=A|34={next}|49=TW|52=<T>|56=ISLD|98=0|108=30|"));
    h.sent();
    h.advance(36);
    h.advance(36);
    h.advance(36);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::Disconnect { reason } if reason.contains("heartbeat"))));
    h.session.handle_disconnect(h.now);
    let c = h.session.counters();
    assert_eq!(c.rejects_sent, 1, "{c:?}");
    assert_eq!(c.resend_requests_sent, 1, "{c:?}");
    assert!(c.gap_fills_sent >= 1, "{c:?}");
    assert_eq!(c.heartbeat_timeouts, 1, "{c:?}");
    assert_eq!(c.disconnects, 3, "{c:?}");
    assert_eq!(c.logon_failures, 1, "{c:?}");
}
