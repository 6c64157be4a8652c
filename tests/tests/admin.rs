//! The admin HTTP API on real sockets: readiness follows the lease, metrics count
//! messages, actions need the token, step-down hands over.

use fix_e2e::client::{FixClient, Received};
use fix_e2e::http::request;
use fix_e2e::wait::eventually;
use fix_engine::{Engine, EngineConfig};
use fix_lease::Leadership;
use fix_session::SessionId;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "s3cret-token";

fn config(dir: &Path, name: &str) -> EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{d}/{name}'\napp = 'echo'\n[engine.lease]\nurl = 'sqlite://{d}/lease.db'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\n[engine.admin]\nlisten = '127.0.0.1:0'\ntoken = '{TOKEN}'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        d = dir.display()
    );
    EngineConfig::from_toml(&toml, name).expect("config")
}

fn leads(e: &Engine) -> bool {
    matches!(e.handle().role(), Leadership::Leader { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_and_actions_follow_the_lease() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = Engine::start(config(dir.path(), "a")).await.expect("a");
    eventually("a to lead", Duration::from_secs(5), || leads(&a)).await;
    let b = Engine::start(config(dir.path(), "b")).await.expect("b");
    let (aa, ba) = (
        a.admin_addr().expect("admin a"),
        b.admin_addr().expect("admin b"),
    );

    assert_eq!(
        request(aa, "GET", "/healthz", None, None).await,
        (200, "ok".into())
    );
    let (code, body) = request(aa, "GET", "/readyz", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"role\":\"leader\"") && body.contains("FIX.4.4:ISLD->TW"),
        "{body}"
    );
    assert!(body.contains("\"lease_owner\":\"a\""), "{body}");
    let (code, body) = request(ba, "GET", "/readyz", None, None).await;
    assert_eq!(code, 503, "a standby is not ready: {body}");
    assert!(body.contains("\"role\":\"standby\""), "{body}");
    // The standby shows who holds the lease (read after its failed acquire).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, body) = request(ba, "GET", "/readyz", None, None).await;
        if body.contains("\"lease_owner\":\"a\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Traffic shows in the metrics.
    let id = SessionId::new("FIX.4.4", "ISLD", "TW");
    let mut c = FixClient::connected("FIX.4.4", a.listen_addr(&id).expect("fix port"))
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    assert!(matches!(
        c.next(Duration::from_secs(3)).await,
        Received::Message(_)
    ));
    // A gap (3 when 2 is expected): the engine asks for a resend.
    c.send("35=0|34=3|49=TW|52=<TIME>|56=ISLD|")
        .await
        .expect("heartbeat");
    assert!(matches!(
        c.next(Duration::from_secs(3)).await,
        Received::Message(_)
    ));
    // With a token, every read but /healthz and /readyz needs it (message bodies,
    // the group's layout).
    for path in [
        "/metrics",
        "/sessions",
        "/sessions/FIX.4.4/ISLD/TW",
        "/sessions/FIX.4.4/ISLD/TW/messages?from=1&to=5",
    ] {
        let (code, body) = request(aa, "GET", path, None, None).await;
        assert_eq!(code, 401, "GET {path} without the token: {body}");
        assert!(body.contains("engine.admin.token"), "{body}");
        assert_eq!(request(aa, "GET", path, Some("wrong"), None).await.0, 401);
    }
    let (code, text) = request(aa, "GET", "/metrics", Some(TOKEN), None).await;
    assert_eq!(code, 200);
    for needle in [
        "fix_messages_in_total{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 2",
        "fix_messages_out_total{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 2",
        "fix_session_logged_on{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 1",
        "fix_session_resend_requests_sent_total{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 1",
        "fix_session_rejects_sent_total{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 0",
        "fix_next_target_seq{begin_string=\"FIX.4.4\",sender_comp_id=\"ISLD\",target_comp_id=\"TW\"} 2",
        "fix_leader 1",
        concat!("fix_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    every_charted_metric_is_exported(&text);

    // Session endpoints and token-protected actions.
    let (code, body) = request(aa, "GET", "/sessions/FIX.4.4/ISLD/TW", Some(TOKEN), None).await;
    assert!(
        code == 200 && body.contains("\"next_sender_seq\":3"),
        "{code} {body}"
    );
    assert_eq!(
        request(aa, "GET", "/sessions/FIX.4.4/NOPE/TW", Some(TOKEN), None)
            .await
            .0,
        404
    );
    let set = Some(r#"{"next_sender":50}"#);
    assert_eq!(
        request(aa, "POST", "/sessions/FIX.4.4/ISLD/TW/sequence", None, set)
            .await
            .0,
        401
    );
    assert_eq!(
        request(
            aa,
            "POST",
            "/sessions/FIX.4.4/ISLD/TW/sequence",
            Some("wrong"),
            set
        )
        .await
        .0,
        401
    );
    assert_eq!(
        request(
            aa,
            "POST",
            "/sessions/FIX.4.4/ISLD/TW/sequence",
            Some(TOKEN),
            set
        )
        .await
        .0,
        200
    );
    let (_, body) = request(aa, "GET", "/sessions/FIX.4.4/ISLD/TW", Some(TOKEN), None).await;
    assert!(body.contains("\"next_sender_seq\":50"), "{body}");
    // Stored messages, and a reset refused while logged on.
    c.send("35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=stored1|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("order");
    assert!(matches!(
        c.next(Duration::from_secs(3)).await,
        Received::Message(_)
    ));
    let (code, body) = request(
        aa,
        "GET",
        "/sessions/FIX.4.4/ISLD/TW/messages?from=50&to=60",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let stored: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(stored[0]["seq"], 50, "{body}");
    assert!(
        stored[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("|35=D|") && m.contains("|11=stored1|")),
        "the echoed order is stored: {body}"
    );
    assert_eq!(
        request(
            aa,
            "GET",
            "/sessions/FIX.4.4/ISLD/TW/messages?from=5&to=2",
            Some(TOKEN),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        request(
            aa,
            "POST",
            "/sessions/FIX.4.4/ISLD/TW/sequence",
            Some(TOKEN),
            Some(r#"{"next_target":0}"#)
        )
        .await
        .0,
        400
    );

    assert_eq!(
        request(aa, "POST", "/sessions/FIX.4.4/ISLD/TW/reset", None, None)
            .await
            .0,
        401
    );
    let (code, body) = request(
        aa,
        "POST",
        "/sessions/FIX.4.4/ISLD/TW/reset",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 409, "refused while logged on: {body}");
    assert!(body.contains("logged on"), "{body}");

    // Manual failover through the API.
    assert_eq!(request(aa, "POST", "/step-down", None, None).await.0, 401);
    assert_eq!(
        request(aa, "POST", "/step-down?pause_ms=5000", Some(TOKEN), None)
            .await
            .0,
        202
    );
    assert_eq!(
        c.next(Duration::from_secs(2)).await,
        Received::Closed,
        "fenced: closed without a byte"
    );
    eventually("b to lead", Duration::from_secs(3), || leads(&b)).await;
    assert_eq!(request(ba, "GET", "/readyz", None, None).await.0, 200);
    assert_eq!(request(aa, "GET", "/readyz", None, None).await.0, 503);
    // A standby refuses the reset; the new leader, with nobody logged on, resets.
    assert_eq!(
        request(
            aa,
            "POST",
            "/sessions/FIX.4.4/ISLD/TW/reset",
            Some(TOKEN),
            None
        )
        .await
        .0,
        409
    );
    assert_eq!(
        request(
            ba,
            "POST",
            "/sessions/FIX.4.4/ISLD/TW/reset",
            Some(TOKEN),
            None
        )
        .await
        .0,
        200
    );
    let (_, body) = request(ba, "GET", "/sessions/FIX.4.4/ISLD/TW", Some(TOKEN), None).await;
    assert!(
        body.contains("\"next_sender_seq\":1") && body.contains("\"next_target_seq\":1"),
        "{body}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Every `fix_` metric the chart's alert rules and dashboard query is one the engine
/// exports (a renamed metric would silently blind an alert).
fn every_charted_metric_is_exported(scrape: &str) {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/fix-operator/files");
    let mut names = std::collections::BTreeSet::new();
    for file in ["alerts.yaml", "dashboard.json"] {
        let text = std::fs::read_to_string(format!("{chart}/{file}")).expect("chart file");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("fix_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if name.len() > "fix_".len() {
                names.insert(name);
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            scrape.contains(&format!("# TYPE {base} ")),
            "the chart queries {name}, which the engine does not export"
        );
    }
}
