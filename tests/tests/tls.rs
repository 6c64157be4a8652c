//! TLS between our initiator and our acceptor, with client certificates (mutual TLS);
//! a plain-TCP client gets nothing from a TLS acceptor.

use fix_e2e::interop::Recorder;
use fix_e2e::pki::Ca;
use fix_e2e::wait::{eventually, reaches_state};
use fix_engine::config::{AppKind, EngineSection, SessionSection, StoreKind, TlsSection};
use fix_engine::{Engine, EngineConfig};
use fix_session::{SessionId, State};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new(dir, "ca");
    Pki {
        server: ca.leaf(dir, "server", &["127.0.0.1", "fix.test"]),
        client: ca.leaf(dir, "client", &["client.fix.test"]),
        ca: ca.pem,
    }
}

fn session(sender: &str, target: &str, role: &str, addr: &str, tls: TlsSection) -> SessionSection {
    let mut s = SessionSection {
        begin_string: "FIX.4.4".into(),
        sender_comp_id: sender.into(),
        target_comp_id: target.into(),
        role: role.into(),
        reconnect_interval: Some(1),
        tls: Some(tls),
        ..SessionSection::default()
    };
    if role == "acceptor" {
        s.listen = Some(addr.into());
    } else {
        s.connect = vec![addr.into()];
    }
    s
}

fn engine_config(data: &Path, app: AppKind, s: SessionSection) -> EngineConfig {
    EngineConfig {
        engine: EngineSection {
            store: StoreKind::Journal,
            data_dir: data.to_path_buf(),
            app,
            ..EngineSection::default()
        },
        sessions: vec![s],
    }
}

/// An echo acceptor (ISLD ← TW) requiring client certificates signed by the test CA.
async fn mutual_tls_acceptor(dir: &Path, pki: &Pki) -> (Engine, std::net::SocketAddr) {
    let server_tls = TlsSection {
        cert: Some(pki.server.0.clone()),
        key: Some(pki.server.1.clone()),
        ca: Some(pki.ca.clone()),
        server_name: None,
    };
    let config = engine_config(
        &dir.join("a"),
        AppKind::Echo,
        session("ISLD", "TW", "acceptor", "127.0.0.1:0", server_tls),
    );
    let acceptor = Engine::start(config).await.expect("acceptor starts");
    let addr = acceptor
        .listen_addr(&SessionId::new("FIX.4.4", "ISLD", "TW"))
        .expect("bound");
    (acceptor, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_flow_over_mutual_tls_and_plain_tcp_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = pki(dir.path());
    let (acceptor, addr) = mutual_tls_acceptor(dir.path(), &pki).await;

    // A plain-TCP client speaking FIX to the TLS port gets no FIX answer.
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let logon = fix_codec::human::encode_human(
            "35=A|34=1|49=TW|52=20240101-00:00:00|56=ISLD|98=0|108=30|",
            "FIX.4.4",
        );
        let _ = s.write_all(&logon);
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    })
    .await
    .expect("join");
    assert!(
        !plain.windows(5).any(|w| w == b"35=A\x01"),
        "a TLS acceptor answered plain text"
    );

    let client_tls = TlsSection {
        cert: Some(pki.client.0.clone()),
        key: Some(pki.client.1.clone()),
        ca: Some(pki.ca.clone()),
        server_name: None,
    };
    let recorder = Arc::new(Recorder::default());
    let initiator = Engine::start_with(
        engine_config(
            &dir.path().join("i"),
            AppKind::Echo,
            session("TW", "ISLD", "initiator", &addr.to_string(), client_tls),
        ),
        recorder.clone(),
    )
    .await
    .expect("initiator starts");
    let id = SessionId::new("FIX.4.4", "TW", "ISLD");
    let handle = initiator.handle();
    let active = reaches_state(&handle, &id, State::Active, Duration::from_secs(10)).await;
    assert!(active, "initiator never logged on over TLS");
    let body = b"11=T1\x0121=1\x0155=IBM\x0154=1\x0160=20240101-00:00:00\x0138=5\x0140=1\x01";
    handle.send(&id, b"D", body).await.expect("send");
    eventually(
        "the order to come back over TLS",
        Duration::from_secs(5),
        || recorder.count(|m| m.msg_type == "D" && m.cl_ord_id == "T1") == 1,
    )
    .await;
    initiator.shutdown().await;
    acceptor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initiator_without_a_client_certificate_cannot_log_on_to_a_mutual_tls_acceptor() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = pki(dir.path());
    let (acceptor, addr) = mutual_tls_acceptor(dir.path(), &pki).await;
    let no_cert = TlsSection {
        ca: Some(pki.ca.clone()),
        ..TlsSection::default()
    };
    let initiator = Engine::start(engine_config(
        &dir.path().join("i"),
        AppKind::Echo,
        session("TW", "ISLD", "initiator", &addr.to_string(), no_cert),
    ))
    .await
    .expect("initiator starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = initiator
        .handle()
        .status(&SessionId::new("FIX.4.4", "TW", "ISLD"))
        .await
        .expect("status");
    assert_ne!(
        st.state,
        State::Active,
        "logged on without a client certificate"
    );
    let acc = acceptor
        .handle()
        .status(&SessionId::new("FIX.4.4", "ISLD", "TW"))
        .await
        .expect("status");
    assert_eq!(acc.state, State::Disconnected);
    initiator.shutdown().await;
    acceptor.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_file_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let tls = TlsSection {
        cert: Some(dir.path().join("nope.pem")),
        key: Some(dir.path().join("nope.key")),
        ..TlsSection::default()
    };
    let err = Engine::start(engine_config(
        &dir.path().join("a"),
        AppKind::Echo,
        session("ISLD", "TW", "acceptor", "127.0.0.1:0", tls),
    ))
    .await
    .err()
    .expect("must fail")
    .to_string();
    assert!(
        err.contains("nope.pem") && err.contains("certificate"),
        "{err}"
    );
}
