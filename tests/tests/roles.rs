//! Leader and standby: two engines contending for one lease (SQLite). Only the leader
//! serves; a standby refuses logons and sends nothing; losing the lease closes the FIX
//! connections without another byte; stepping down hands over at once.

use fix_codec::human::to_human;
use fix_e2e::client::{FixClient, Received};
use fix_e2e::wait::eventually;
use fix_engine::{Engine, EngineConfig, EngineError};
use fix_lease::Leadership;
use fix_session::SessionId;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const LOGON: &str = "35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|141=Y|";

fn config(dir: &Path, name: &str, lease_db: &Path) -> EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{}'\napp = 'echo'\n[engine.lease]\nurl = 'sqlite://{}'\ngroup = 'g'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        dir.join(name).display(),
        lease_db.display()
    );
    EngineConfig::from_toml(&toml, name).expect("config")
}

fn is_leader(e: &Engine) -> bool {
    matches!(e.handle().role(), Leadership::Leader { .. })
}

fn addr(e: &Engine) -> SocketAddr {
    e.listen_addr(&SessionId::new("FIX.4.4", "ISLD", "TW"))
        .expect("listening")
}

async fn logon(addr: SocketAddr) -> (FixClient, Received) {
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send(LOGON).await.expect("send");
    let r = c.next(Duration::from_secs(3)).await;
    (c, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_serves_and_stepping_down_hands_over_without_a_byte_from_the_old_leader() {
    let dir = tempfile::tempdir().expect("tmp");
    let lease = dir.path().join("lease.db");
    let a = Engine::start(config(dir.path(), "a", &lease))
        .await
        .expect("a");
    let b = Engine::start(config(dir.path(), "b", &lease))
        .await
        .expect("b");
    eventually("a leader", Duration::from_secs(5), || {
        is_leader(&a) || is_leader(&b)
    })
    .await;
    assert!(!(is_leader(&a) && is_leader(&b)), "two leaders");
    let (leader, standby) = if is_leader(&a) { (&a, &b) } else { (&b, &a) };

    let (_, refused) = logon(addr(standby)).await;
    assert_eq!(refused, Received::Closed, "a standby refuses logons");
    let id = SessionId::new("FIX.4.4", "ISLD", "TW");
    let sent = standby.handle().send(&id, b"8", b"37=X\x01").await;
    assert!(matches!(sent, Err(EngineError::NotLeader(_))), "{sent:?}");

    let (mut client, answer) = logon(addr(leader)).await;
    assert!(
        matches!(&answer, Received::Message(m) if to_human(m).contains("|35=A|")),
        "{answer:?}"
    );

    let started = Instant::now();
    leader.handle().step_down(Duration::from_secs(60)).await;
    assert_eq!(
        client.next(Duration::from_secs(2)).await,
        Received::Closed,
        "closed without a Logout or anything else"
    );
    eventually("the standby to lead", Duration::from_secs(3), || {
        is_leader(standby)
    })
    .await;
    println!("step-down → new leader in {:?}", started.elapsed());
    assert!(!is_leader(leader));
    let (_, answer) = logon(addr(standby)).await;
    assert!(
        matches!(&answer, Received::Message(m) if to_human(m).contains("|35=A|")),
        "new leader serves: {answer:?}"
    );
    let (_, refused) = logon(addr(leader)).await;
    assert_eq!(refused, Received::Closed, "the old leader now refuses");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_shutting_down_releases_the_lease_for_an_immediate_takeover() {
    let dir = tempfile::tempdir().expect("tmp");
    let lease = dir.path().join("lease.db");
    let a = Engine::start(config(dir.path(), "a", &lease))
        .await
        .expect("a");
    eventually("a to lead", Duration::from_secs(5), || is_leader(&a)).await;
    let b = Engine::start(config(dir.path(), "b", &lease))
        .await
        .expect("b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!is_leader(&b));
    let started = Instant::now();
    a.shutdown().await;
    eventually("b to lead", Duration::from_secs(3), || is_leader(&b)).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "waited for the TTL: {:?}",
        started.elapsed()
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_does_not_listen_opens_its_port_only_when_it_leads() {
    let dir = tempfile::tempdir().expect("tmp");
    let lease = dir.path().join("lease.db");
    let port = fix_e2e::interop::free_port();
    let with_port = |name: &str, port: u16| {
        let toml = format!(
            "[engine]\ndata_dir = '{}'\napp = 'echo'\n[engine.lease]\nurl = 'sqlite://{}'\ngroup = 'g'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\nstandby_listens = false\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:{port}'\n",
            dir.path().join(name).display(),
            lease.display()
        );
        EngineConfig::from_toml(&toml, name).expect("config")
    };
    let a = Engine::start(with_port("a", 0)).await.expect("a");
    eventually("a to lead", Duration::from_secs(5), || is_leader(&a)).await;
    let b = Engine::start(with_port("b", port)).await.expect("b");
    let b_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::net::TcpStream::connect(b_addr).await;
    assert!(
        refused.is_err(),
        "a standby's FIX port is closed: {refused:?}"
    );
    let (_, answer) = logon(addr(&a)).await;
    assert!(matches!(&answer, Received::Message(m) if to_human(m).contains("|35=A|")));

    a.handle().step_down(Duration::from_secs(60)).await;
    eventually("b to lead", Duration::from_secs(3), || is_leader(&b)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let (_, answer) = loop {
        if tokio::net::TcpStream::connect(b_addr).await.is_ok() {
            break logon(b_addr).await;
        }
        assert!(Instant::now() < deadline, "b never opened its port");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        matches!(&answer, Received::Message(m) if to_human(m).contains("|35=A|")),
        "the new leader serves: {answer:?}"
    );
    let refused = tokio::net::TcpStream::connect(addr(&a)).await;
    assert!(
        refused.is_err(),
        "the old leader closed its port: {refused:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
