//! Interop with QuickFIX as the counterparty, both directions, FIX.4.0 to FIX.4.4 and
//! FIXT.1.1 with FIX.5.0, FIX.5.0SP1 and FIX.5.0SP2: logon, order and execution round trip, a forced gap on each side
//! answered by resend and gap fill, a session Reject of each validation kind (QuickFIX
//! initiator), a reset by ResetSeqNumFlag (from FIX.4.1 on), logout.

use fix_e2e::interop::{
    begin_string_of, engine_config, free_port, read_until, spawn_peer, stop_peer, Recorder,
};
use fix_e2e::wait::{eventually, reaches_state};
use fix_engine::Engine;
use fix_session::{SessionId, State};
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

/// Every version: the FIX.5.0 ones over FIXT.1.1 with that DefaultApplVerID.
const VERSIONS: [&str; 8] = [
    "FIX.4.0",
    "FIX.4.1",
    "FIX.4.2",
    "FIX.4.3",
    "FIX.4.4",
    "FIX.5.0",
    "FIX.5.0SP1",
    "FIX.5.0SP2",
];

const LIMIT: Duration = Duration::from_secs(15);

/// Runs the QuickFIX peer in `role` to its end; returns what it printed, once it
/// succeeded.
async fn run_peer(role: &str, port: u16, begin: &str, workdir: &std::path::Path) -> String {
    let peer = spawn_peer(role, port, begin, workdir);
    let output = tokio::task::spawn_blocking(move || peer.wait_with_output())
        .await
        .expect("join")
        .expect("peer ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{begin} QuickFIX {role}: {stdout}");
    assert!(
        output.status.success(),
        "QuickFIX {role} checks failed for {begin}: {stdout}"
    );
    stdout
}

/// QuickFIX initiator → our acceptor running `exec`.
async fn quickfix_initiator_against_our_acceptor(begin: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let engine = Engine::start(engine_config(
        begin,
        "acceptor",
        port,
        &dir.path().join("data"),
    ))
    .await
    .expect("engine starts");
    let stdout = run_peer("initiator", port, begin, &dir.path().join("qf")).await;
    for check in [
        "logon",
        "order_round_trip",
        "engine_requested_resend",
        "order_after_gap_fill",
        "engine_resent_poss_dup",
        "order_after_resend",
        "logout",
        "no_reject_before_faults",
        "no_business_reject_received",
        "reject_R1",
        "reject_R2",
        "reject_R3",
        "reject_R4",
        "order_after_rejects",
        "rejected_not_delivered",
    ]
    .into_iter()
    .chain(
        [
            "reject_R1_reason",
            "reject_R2_reason",
            "reject_R3_reason",
            "reject_R4_reason",
        ]
        .into_iter()
        .filter(|_| !["FIX.4.0", "FIX.4.1"].contains(&begin)),
    ) {
        assert!(
            stdout.contains(&format!("\"{check}\": true")),
            "{begin}: check {check} missing or false: {stdout}"
        );
    }
    // A reset: QuickFIX starts again with ResetOnLogon=Y (FIX.4.0 has no
    // ResetSeqNumFlag).
    if begin != "FIX.4.0" {
        let stdout = run_peer("reset", port, begin, &dir.path().join("qf")).await;
        for check in [
            "logon_after_reset",
            "reset_logon_at_one",
            "order_after_reset",
            "no_reject_after_reset",
            "logout_after_reset",
        ] {
            assert!(
                stdout.contains(&format!("\"{check}\": true")),
                "{begin}: check {check} missing or false: {stdout}"
            );
        }
    }
    let id = SessionId::new(begin_string_of(begin), "ENGINE", "QF");
    let status = engine.handle().status(&id).await.expect("status");
    assert_eq!(status.state, State::Disconnected, "{begin}: logged out");
    engine.shutdown().await;
}

/// Our initiator → QuickFIX acceptor answering orders.
async fn our_initiator_against_quickfix_acceptor(begin: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let mut peer = spawn_peer("acceptor", port, begin, &dir.path().join("qf"));
    let stdin = peer.stdin.take();
    let mut out = BufReader::new(peer.stdout.take().expect("stdout"));
    let listening = read_until(&mut out, "listening");
    assert!(
        listening.iter().any(|l| l.contains("listening")),
        "QuickFIX acceptor did not start: {listening:?}"
    );
    let recorder = Arc::new(Recorder::default());
    let config = engine_config(begin, "initiator", port, &dir.path().join("data"));
    let engine = Engine::start_with(config, recorder.clone())
        .await
        .expect("engine starts");
    let handle = engine.handle();
    let id = SessionId::new(begin_string_of(begin), "ENGINE", "QF");
    let active = reaches_state(&handle, &id, State::Active, Duration::from_secs(15)).await;
    assert!(active, "{begin}: never logged on to QuickFIX");
    let order = |cl: &str| {
        let now = fix_codec::UtcTimestamp::now().format(fix_codec::TimePrecision::Seconds);
        // TransactTime is a field of NewOrderSingle from FIX.4.2 on.
        let time = if matches!(begin, "FIX.4.0" | "FIX.4.1") {
            String::new()
        } else {
            format!("60={now}\x01")
        };
        format!("11={cl}\x0121=1\x0155=IBM\x0154=1\x01{time}38=100\x0140=1\x01").into_bytes()
    };
    let filled = |cl: &'static str| {
        let r = recorder.clone();
        move || {
            r.count(|m| {
                m.msg_type == "8" && m.cl_ord_id == cl && (m.exec_type == "2" || m.exec_type == "F")
            }) >= 1
        }
    };

    handle.send(&id, b"D", &order("B1")).await.expect("send B1");
    eventually("the fill for B1", LIMIT, filled("B1")).await;

    // Our side skips five sequence numbers: QuickFIX asks for them, we gap-fill.
    let st = handle.status(&id).await.expect("status");
    handle
        .set_sequence_numbers(&id, Some(st.next_sender_seq + 5), None)
        .await
        .expect("set seq");
    handle.send(&id, b"D", &order("B2")).await.expect("send B2");
    eventually(
        "the fill for B2 after QuickFIX's resend request",
        LIMIT,
        filled("B2"),
    )
    .await;

    // We forget QuickFIX's last two messages: we ask for them and QuickFIX resends them.
    let st = handle.status(&id).await.expect("status");
    handle
        .set_sequence_numbers(&id, None, Some(st.next_target_seq - 2))
        .await
        .expect("set seq");
    handle.send(&id, b"D", &order("B3")).await.expect("send B3");
    eventually("the fill for B3", LIMIT, filled("B3")).await;
    let r = recorder.clone();
    eventually(
        "QuickFIX's resent messages (PossDupFlag=Y)",
        LIMIT,
        move || r.count(|m| m.poss_dup) >= 1,
    )
    .await;

    handle.logout(&id, None).await.expect("logout");
    let lines = tokio::task::spawn_blocking(move || {
        let lines = read_until(&mut out, "\"logout\"");
        (lines, out)
    })
    .await
    .expect("join");
    assert!(
        lines.0.iter().any(|l| l.contains("\"logout\"")),
        "{begin}: QuickFIX never saw our logout: {:?}",
        lines.0
    );
    engine.shutdown().await;
    stop_peer(peer, stdin);
    let seen = recorder.seen.lock().map(|s| s.clone()).unwrap_or_default();
    println!(
        "{begin} our initiator received {} application messages, {} flagged PossDup",
        seen.len(),
        seen.iter().filter(|m| m.poss_dup).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickfix_initiator_interoperates_with_our_acceptor_on_every_version() {
    for begin in VERSIONS {
        quickfix_initiator_against_our_acceptor(begin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_initiator_interoperates_with_a_quickfix_acceptor_on_every_version() {
    for begin in VERSIONS {
        our_initiator_against_quickfix_acceptor(begin).await;
    }
}
