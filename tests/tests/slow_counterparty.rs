//! A counterparty that stops reading (its TCP window closes) while the engine has a lot
//! to send it: `/readyz` still answers at once, without waiting for the blocked session
//! (shown as its task last left it; `/sessions`, which asks the task, says it does not
//! answer), the engine's other sessions go on trading, and after two heartbeat intervals
//! without it reading the engine drops the connection rather than block its session for
//! ever.

use fix_e2e::client::{FixClient, Received};
use fix_e2e::http::request;
use fix_e2e::trading::field;
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> EngineConfig {
    let session = |target: &str, heartbeat: u32| {
        format!("[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = '{target}'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nheartbeat_interval = {heartbeat}\n")
    };
    let toml = format!(
        "[engine]\ndata_dir = '{d}'\napp = 'exec'\nfsync = false\n[engine.admin]\nlisten = '127.0.0.1:0'\ntoken = 't'\n{}{}",
        session("SLOW", 3),
        session("FAST", 1),
        d = dir.display()
    );
    EngineConfig::from_toml(&toml, "slow").expect("config")
}

fn order(seq: u64, id: &str) -> String {
    format!(
        "35=D|34={seq}|49={{ME}}|52=<TIME>|56=EXEC|11={id}|21=1|55=X|54=1|60=<TIME>|40=1|38=10|"
    )
}

async fn logon(c: &mut FixClient, me: &str) {
    c.send(&format!("35=A|34=1|49={me}|52=<TIME>|56=EXEC|98=0|108=30|"))
        .await
        .expect("logon");
    loop {
        match c.next(Duration::from_secs(5)).await {
            r @ Received::Message(_) if field(&r, "35").as_deref() == Some("A") => return,
            Received::Message(_) => {}
            other => panic!("no Logon answer: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterparty_that_stops_reading_holds_up_only_its_own_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let engine = Engine::start(config(dir.path())).await.expect("engine");
    let slow_id = SessionId::new("FIX.4.4", "EXEC", "SLOW");
    let fast_id = SessionId::new("FIX.4.4", "EXEC", "FAST");
    let admin = engine.admin_addr().expect("admin");

    let mut slow = FixClient::new("FIX.4.4");
    slow.connect_small_window(engine.listen_addr(&slow_id).expect("port"), 4096)
        .await
        .expect("connect");
    logon(&mut slow, "SLOW").await;
    // Orders, each answered with two execution reports it never reads, until the engine
    // stops reading them (its writes to this counterparty are blocked) or 100 000.
    let mut sent = 0;
    for n in 2..100_000u64 {
        let text = order(n, &format!("s{n}")).replace("{ME}", "SLOW");
        match tokio::time::timeout(Duration::from_secs(1), slow.send(&text)).await {
            Ok(r) => r.expect("send"),
            Err(_) => break,
        }
        sent = n;
    }
    println!("orders sent before the engine stopped reading: {sent}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    for _ in 0..5 {
        let asked = Instant::now();
        let (code, body) = request(admin, "GET", "/readyz", None, None).await;
        let took = asked.elapsed();
        assert_eq!(code, 200, "{body}");
        assert!(
            took < Duration::from_secs(2),
            "/readyz took {took:?} behind a counterparty that stopped reading: {body}"
        );
        assert!(body.contains("FIX.4.4:EXEC->FAST"), "{body}");
    }
    let slow_state = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        let sessions = v.get("sessions").unwrap_or(&v);
        sessions
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == "FIX.4.4:EXEC->SLOW"))
            .and_then(|s| s["state"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (_, body) = request(admin, "GET", "/readyz", None, None).await;
    assert_eq!(
        slow_state(&body),
        "Active",
        "/readyz shows the blocked session as its task last left it: {body}"
    );
    let (_, body) = request(admin, "GET", "/sessions", Some("t"), None).await;
    assert_eq!(
        slow_state(&body),
        "Unresponsive",
        "/sessions asks the task, which is blocked writing: {body}"
    );

    let mut fast = FixClient::connected("FIX.4.4", engine.listen_addr(&fast_id).expect("port"))
        .await
        .expect("connect");
    logon(&mut fast, "FAST").await;
    fast.send(&order(2, "f2").replace("{ME}", "FAST"))
        .await
        .expect("order");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fast.next(Duration::from_secs(5)).await {
            r @ Received::Message(_)
                if field(&r, "35").as_deref() == Some("8")
                    && field(&r, "11").as_deref() == Some("f2") =>
            {
                break
            }
            Received::Message(_) => {}
            other => panic!("the other session is held up too: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no execution report for FAST");
    }

    // The blocked write gives up after two heartbeat intervals (6 s here): the session is
    // free again, disconnected.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = request(admin, "GET", "/readyz", None, None).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let state = v["sessions"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == "FIX.4.4:EXEC->SLOW"))
            .map(|s| s["state"].as_str().unwrap_or("").to_string());
        if state.as_deref() == Some("Disconnected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled write never gave up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.shutdown().await;
}
