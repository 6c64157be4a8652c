//! A flood of connections that never log on: beyond `[engine.connections]` caps they
//! queue, beyond the queue's caps they are closed at accept (no file descriptor or task
//! is kept for them), one host cannot take every slot, and a counterparty from another
//! address still logs on and trades. The admin API's connections are capped the same
//! way, while open.

use fix_e2e::client::{FixClient, Received};
use fix_e2e::http::request;
use fix_e2e::trading::field;
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 40;
const PER_ADDRESS: usize = 8;
const QUEUED_PER_ADDRESS: usize = 8;

fn config(dir: &std::path::Path) -> EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{d}'\napp = 'exec'\nfsync = false\n\
         [engine.connections]\nmax_pending = 64\nmax_pending_per_address = {PER_ADDRESS}\n\
         max_queued = 64\nmax_queued_per_address = {QUEUED_PER_ADDRESS}\n\
         [engine.admin]\nlisten = '127.0.0.1:0'\n\
         [[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nlogon_timeout = 30\n",
        d = dir.display()
    );
    EngineConfig::from_toml(&toml, "flood").expect("config")
}

/// A connection to `to` from 127.0.0.2 (another loopback address: another "host").
async fn connect_from_other_host(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    socket.connect(to).await.expect("connect")
}

/// Whether the engine closed `s` within `wait` (read returns end of stream).
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_caps_are_closed_and_others_still_log_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let engine = Engine::start(config(dir.path())).await.expect("engine");
    let id = SessionId::new("FIX.4.4", "EXEC", "CLIENT");
    let port = engine.listen_addr(&id).expect("port");

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(connect_from_other_host(port).await);
    }
    let mut closed = 0;
    for s in &mut flood {
        if closed_within(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    println!("idle connections from 127.0.0.2: {FLOOD}, closed at once: {closed}");
    assert_eq!(
        closed,
        FLOOD - PER_ADDRESS - QUEUED_PER_ADDRESS,
        "beyond max_pending_per_address connections queue, beyond max_queued_per_address they are closed at accept"
    );

    // Another address still gets a slot and trades.
    let mut c = FixClient::new("FIX.4.4");
    c.connect(port).await.expect("connect");
    c.send("35=A|34=1|49=CLIENT|52=<TIME>|56=EXEC|98=0|108=30|")
        .await
        .expect("logon");
    let answer = c.next(Duration::from_secs(5)).await;
    assert_eq!(field(&answer, "35").as_deref(), Some("A"), "{answer:?}");
    c.send("35=D|34=2|49=CLIENT|52=<TIME>|56=EXEC|11=o1|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("order");
    assert!(matches!(
        c.next(Duration::from_secs(5)).await,
        Received::Message(_)
    ));

    let (code, metrics) = request(
        engine.admin_addr().expect("admin"),
        "GET",
        "/metrics",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{metrics}");
    let want = format!(
        "fix_connections_refused_total {}",
        FLOOD - PER_ADDRESS - QUEUED_PER_ADDRESS
    );
    assert!(metrics.contains(&want), "missing `{want}` in:\n{metrics}");

    // A pending connection that goes away gives its slot back.
    flood.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from_other_host(port).await;
    assert!(
        !closed_within(&mut again, Duration::from_millis(300)).await,
        "slots are given back when pending connections close"
    );
    engine.shutdown().await;
}

/// Idle connections to the admin API beyond 32 from one address are closed at accept
/// (counted in `fix_admin_connections_refused_total`); probes from another address are
/// still answered, and a closed connection gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_beyond_the_cap_are_closed_and_probes_still_answered() {
    const ADMIN_PER_ADDRESS: usize = 32;
    let dir = tempfile::tempdir().expect("tmp");
    let engine = Engine::start(config(dir.path())).await.expect("engine");
    let admin = engine.admin_addr().expect("admin");

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(connect_from_other_host(admin).await);
    }
    let mut closed = 0;
    for s in &mut flood {
        if closed_within(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    println!("idle admin connections from 127.0.0.2: {FLOOD}, closed at once: {closed}");
    assert_eq!(closed, FLOOD - ADMIN_PER_ADDRESS);

    let (code, body) = request(admin, "GET", "/readyz", None, None).await;
    assert_eq!(
        code, 200,
        "a probe from 127.0.0.1 is still answered: {body}"
    );
    let (code, metrics) = request(admin, "GET", "/metrics", None, None).await;
    assert_eq!(code, 200, "{metrics}");
    let want = format!(
        "fix_admin_connections_refused_total {}",
        FLOOD - ADMIN_PER_ADDRESS
    );
    assert!(metrics.contains(&want), "missing `{want}` in:\n{metrics}");

    flood.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from_other_host(admin).await;
    assert!(
        !closed_within(&mut again, Duration::from_millis(300)).await,
        "slots are given back when admin connections close"
    );
    engine.shutdown().await;
}
