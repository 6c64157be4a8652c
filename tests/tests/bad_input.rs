//! Hostile or broken counterparties never crash, stall or block other sessions, and never
//! corrupt the journal: silent connections, oversized messages, unknown CompIDs, a second
//! connection for a logged-on session (duplicate identity), a half-open peer.

use fix_codec::human::to_human;
use fix_e2e::client::{FixClient, Received};
use fix_engine::{Engine, EngineConfig};
use fix_session::{SessionId, State};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LOGON_TW: &str = "35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|";

fn config(data: &std::path::Path) -> EngineConfig {
    let mut toml = format!("[engine]\ndata_dir = '{}'\napp = 'echo'\n", data.display());
    for target in ["TW", "TW2"] {
        toml.push_str(&format!(
            "[[session]]\nbegin_string = 'FIX.4.2'\nsender_comp_id = 'ISLD'\ntarget_comp_id = '{target}'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nlogon_timeout = 2\nmax_message_size = 4096\n"
        ));
    }
    EngineConfig::from_toml(&toml, "bad_input").expect("config")
}

fn text(r: &Received) -> String {
    match r {
        Received::Message(m) => to_human(m),
        other => format!("{other:?}"),
    }
}

/// The good session still answers a TestRequest promptly.
async fn good_session_answers(c: &mut FixClient, seq: u64, id: &str) {
    c.send(&format!("35=1|34={seq}|49=TW|52=<TIME>|56=ISLD|112={id}|"))
        .await
        .expect("send");
    let r = c.next(Duration::from_secs(3)).await;
    assert!(
        text(&r).contains(&format!("112={id}|")),
        "good session did not answer {id}: {}",
        text(&r)
    );
}

async fn closed_within(c: &mut FixClient, limit: Duration, what: &str) {
    let started = Instant::now();
    loop {
        match c.next(limit).await {
            Received::Closed => return,
            Received::TimedOut => panic!("{what}: still open after {limit:?}"),
            Received::Message(m) => {
                assert!(started.elapsed() < limit, "{what}: still talking");
                let t = to_human(&m);
                assert!(!t.contains("35=A|"), "{what}: must not be logged on: {t}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_counterparties_are_cut_off_without_disturbing_good_sessions() {
    let dir = tempfile::tempdir().expect("tmp");
    let engine = Engine::start(config(dir.path())).await.expect("engine");
    let addr: SocketAddr = engine
        .listen_addr(&SessionId::new("FIX.4.2", "ISLD", "TW"))
        .expect("addr");

    let mut good = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    good.send(LOGON_TW).await.expect("logon");
    assert!(text(&good.next(Duration::from_secs(3)).await).contains("35=A|"));

    // A connection that never says anything is closed after the logon timeout.
    let mut silent = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    // An oversized first message is refused at once.
    let mut huge = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    huge.send_raw("8=FIX.4.2|9=99999999|35=A|")
        .await
        .expect("send");
    closed_within(&mut huge, Duration::from_secs(1), "oversized first message").await;
    good_session_answers(&mut good, 2, "AFTER-HUGE").await;

    // Unknown CompIDs: no session, closed without an answer.
    let mut stranger = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    stranger
        .send("35=A|34=1|49=NOBODY|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("send");
    closed_within(&mut stranger, Duration::from_secs(1), "unknown CompIDs").await;

    // Duplicate identity (1b): a second Logon for TW while TW is logged on is refused.
    let mut twin = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    twin.send(LOGON_TW).await.expect("send");
    closed_within(&mut twin, Duration::from_secs(2), "duplicate identity").await;
    good_session_answers(&mut good, 3, "AFTER-TWIN").await;

    closed_within(&mut silent, Duration::from_secs(4), "silent connection").await;

    // TW2 logs on with HeartBtInt=1 and then goes quiet (half-open): TestRequest, then cut.
    let mut half_open = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    half_open
        .send("35=A|34=1|49=TW2|52=<TIME>|56=ISLD|98=0|108=1|")
        .await
        .expect("logon");
    let started = Instant::now();
    let mut saw_test_request = false;
    loop {
        match half_open.next(Duration::from_secs(5)).await {
            Received::Message(m) => saw_test_request |= to_human(&m).contains("35=1|"),
            Received::Closed => break,
            Received::TimedOut => panic!("half-open peer never cut off"),
        }
    }
    assert!(saw_test_request, "a TestRequest must come before the cut");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        started.elapsed()
    );
    good_session_answers(&mut good, 4, "AFTER-HALF-OPEN").await;

    // An oversized message from a logged-on session disconnects that session only.
    let mut big_talker = FixClient::connected("FIX.4.2", addr)
        .await
        .expect("connect");
    big_talker
        .send("35=A|34=2|49=TW2|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    let r = big_talker.next(Duration::from_secs(3)).await;
    assert!(text(&r).contains("35=A|"), "TW2 logon: {}", text(&r));
    let filler = "x".repeat(5000);
    big_talker
        .send(&format!(
            "35=D|34=3|49=TW2|52=<TIME>|56=ISLD|11=BIG|58={filler}|"
        ))
        .await
        .expect("send");
    closed_within(&mut big_talker, Duration::from_secs(2), "oversized message").await;
    good_session_answers(&mut good, 5, "AFTER-BIG").await;

    let handle = engine.handle();
    let tw = handle
        .status(&SessionId::new("FIX.4.2", "ISLD", "TW"))
        .await
        .expect("status");
    assert_eq!(
        (tw.state, tw.next_target_seq),
        (State::Active, 6),
        "the good session's sequence is intact"
    );
    engine.shutdown().await;

    // The journal reopens cleanly and kept the good session's sequence numbers.
    let engine = Engine::start(config(dir.path()))
        .await
        .expect("restart on the same journal");
    let after = engine
        .handle()
        .status(&SessionId::new("FIX.4.2", "ISLD", "TW"))
        .await
        .expect("status");
    assert_eq!(after.next_target_seq, 6);
    assert_eq!(
        after.next_sender_seq,
        tw.next_sender_seq + 1,
        "the shutdown Logout was journaled too"
    );
    engine.shutdown().await;
}
