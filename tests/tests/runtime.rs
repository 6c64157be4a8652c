//! Runtime behaviour over real sockets: initiator alternates and reconnects, session
//! schedules with their daily reset, and per-session message logs.

use fix_codec::human::to_human;
use fix_codec::{TimePrecision, UtcTimestamp};
use fix_e2e::client::{FixClient, Received};
use fix_e2e::interop::free_port;
use fix_e2e::wait::reaches_state;
use fix_engine::{Engine, EngineConfig};
use fix_session::{SessionId, State};
use std::path::Path;
use std::time::Duration;

fn acceptor_toml(data: &Path, port: u16, extra: &str) -> EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{}'\nlog_dir = '{}'\napp = 'echo'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:{port}'\n{extra}",
        data.join("data").display(),
        data.join("logs").display()
    );
    EngineConfig::from_toml(&toml, "test").expect("config")
}

async fn wait_state(engine: &Engine, id: &SessionId, want: State) -> bool {
    reaches_state(&engine.handle(), id, want, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initiator_tries_its_alternates_and_reconnects_after_the_acceptor_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let dead = free_port();
    let acceptor = Engine::start(acceptor_toml(&dir.path().join("a"), port, ""))
        .await
        .expect("acceptor");
    let toml = format!(
        "[engine]\ndata_dir = '{}'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'TW'\ntarget_comp_id = 'ISLD'\nrole = 'initiator'\nconnect = ['127.0.0.1:{dead}', '127.0.0.1:{port}']\nreconnect_interval = 1\n",
        dir.path().join("i").display()
    );
    let initiator = Engine::start(EngineConfig::from_toml(&toml, "i").expect("config"))
        .await
        .expect("initiator");
    let id = SessionId::new("FIX.4.4", "TW", "ISLD");
    assert!(
        wait_state(&initiator, &id, State::Active).await,
        "never logged on through the alternate"
    );
    let first = initiator.handle().status(&id).await.expect("status");
    assert_eq!(first.peer.map(|p| p.port()), Some(port));

    acceptor.shutdown().await;
    let acceptor = Engine::start(acceptor_toml(&dir.path().join("a"), port, ""))
        .await
        .expect("acceptor again");
    assert!(
        wait_state(&initiator, &id, State::Active).await,
        "never logged on again"
    );
    let second = initiator.handle().status(&id).await.expect("status");
    assert!(
        second.next_sender_seq > first.next_sender_seq,
        "sequence numbers continue across reconnects"
    );
    initiator.shutdown().await;
    acceptor.shutdown().await;
}

fn hms(t: UtcTimestamp) -> String {
    let text = t.format(TimePrecision::Seconds);
    text[9..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logon_outside_the_schedule_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let now = UtcTimestamp::now();
    let window = format!(
        "start_time = '{}'\nend_time = '{}'\n",
        hms(now.add_nanos(2 * 3_600_000_000_000)),
        hms(now.add_nanos(3 * 3_600_000_000_000))
    );
    let engine = Engine::start(acceptor_toml(dir.path(), port, &window))
        .await
        .expect("engine");
    let mut c = FixClient::connected("FIX.4.4", ([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("send");
    assert_eq!(
        c.next(Duration::from_secs(3)).await,
        Received::Closed,
        "outside the schedule"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_period_resets_sequence_numbers_and_messages_are_logged() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    // First period: no schedule; exchange a few messages.
    let engine = Engine::start(acceptor_toml(dir.path(), port, ""))
        .await
        .expect("engine");
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    assert!(matches!(
        c.next(Duration::from_secs(3)).await,
        Received::Message(_)
    ));
    c.send("35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=P1|")
        .await
        .expect("send");
    assert!(matches!(
        c.next(Duration::from_secs(3)).await,
        Received::Message(_)
    ));
    engine.shutdown().await;

    // A schedule whose period starts after the store was created: the next connection
    // starts again at 1.
    let start = UtcTimestamp::now().add_nanos(1_500_000_000);
    let window = format!(
        "start_time = '{}'\nend_time = '{}'\n",
        hms(start),
        hms(start.add_nanos(3_600_000_000_000))
    );
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let engine = Engine::start(acceptor_toml(dir.path(), port, &window))
        .await
        .expect("engine");
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    match c.next(Duration::from_secs(3)).await {
        Received::Message(m) => assert!(to_human(&m).contains("|35=A|34=1|"), "{}", to_human(&m)),
        other => panic!("no logon answer after the daily reset: {other:?}"),
    }
    engine.shutdown().await;

    let log = std::fs::read_to_string(dir.path().join("logs/FIX.4.4_ISLD__TW.messages.log"))
        .expect("message log");
    assert!(
        log.lines()
            .any(|l| l.contains(" < 8=FIX.4.4|") && l.contains("|112=P1|")),
        "inbound logged:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" > 8=FIX.4.4|") && l.contains("|35=0|") && l.contains("|112=P1|")),
        "outbound logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_disconnected_are_queued_and_delivered_by_resend_after_logon() {
    // FIX test case 16: queue outgoing messages while not logged on.
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let engine = Engine::start(acceptor_toml(dir.path(), port, ""))
        .await
        .expect("engine");
    let id = SessionId::new("FIX.4.4", "ISLD", "TW");
    let seq = engine
        .handle()
        .send(&id, b"8", b"37=Q1\x0111=C1\x0117=E1\x01150=0\x0139=0\x0155=IBM\x0154=1\x01151=1\x0114=0\x016=0\x01")
        .await
        .expect("stored while disconnected");
    assert_eq!(seq, 1);
    let mut c = FixClient::connected("FIX.4.4", ([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    let logon = c.next(Duration::from_secs(3)).await;
    assert!(
        matches!(&logon, Received::Message(m) if to_human(m).contains("|35=A|34=2|")),
        "{logon:?}"
    );
    // The counterparty sees the gap (expected 1, got 2) and asks for it.
    c.send("35=2|34=2|49=TW|52=<TIME>|56=ISLD|7=1|16=0|")
        .await
        .expect("resend request");
    let resent = c.next(Duration::from_secs(3)).await;
    let Received::Message(m) = resent else {
        panic!("no resend: {resent:?}")
    };
    let text = to_human(&m);
    assert!(
        text.contains("|35=8|34=1|43=Y|") && text.contains("|37=Q1|"),
        "{text}"
    );
    let fill = c.next(Duration::from_secs(3)).await;
    let Received::Message(m) = fill else {
        panic!("no gap fill: {fill:?}")
    };
    assert!(
        to_human(&m).contains("|35=4|34=2|43=Y|") && to_human(&m).contains("|36=3|123=Y|"),
        "{}",
        to_human(&m)
    );
    engine.shutdown().await;
}
