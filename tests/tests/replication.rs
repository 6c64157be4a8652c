//! Two engines replicating the journal (SQLite lease, `replicated` durability): the
//! standby's journal follows the leader's, replication can be paused and resumed, and a
//! standby that takes over continues the sessions with the same sequence numbers and can
//! resend what the old leader sent.

use fix_codec::human::to_human;
use fix_e2e::client::{FixClient, Received};
use fix_e2e::http::request;
use fix_e2e::interop::free_port;
use fix_e2e::wait::eventually;
use fix_engine::{Engine, EngineConfig};
use fix_lease::Leadership;
use fix_session::SessionId;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "t0ken";

fn config(dir: &Path, name: &str, me: u16, peer: u16) -> EngineConfig {
    keyed_config(dir, name, me, peer, None)
}

/// With `key`, the group's replication key is read from that file.
fn keyed_config(dir: &Path, name: &str, me: u16, peer: u16, key: Option<&Path>) -> EngineConfig {
    let key = key.map_or(String::new(), |k| format!("key_file = '{}'\n", k.display()));
    let toml = format!(
        "[engine]\ndata_dir = '{d}/{name}'\napp = 'echo'\n\
         [engine.lease]\nurl = 'sqlite://{d}/lease.db'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\n\
         [engine.replication]\nlisten = '127.0.0.1:{me}'\npeers = ['127.0.0.1:{peer}']\ndurability = 'replicated'\nstandby_wait_ms = 5000\n{key}\
         [engine.admin]\nlisten = '127.0.0.1:0'\ntoken = '{TOKEN}'\n\
         [[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        d = dir.display()
    );
    EngineConfig::from_toml(&toml, name).expect("config")
}

fn leads(e: &Engine) -> bool {
    matches!(e.handle().role(), Leadership::Leader { .. })
}

fn id() -> SessionId {
    SessionId::new("FIX.4.4", "ISLD", "TW")
}

fn field(r: &Received, tag: &str) -> Option<String> {
    let Received::Message(m) = r else { return None };
    to_human(m)
        .split('|')
        .find_map(|f| f.strip_prefix(&format!("{tag}=")).map(str::to_string))
}

async fn expect(c: &mut FixClient, msg_type: &str) -> Received {
    let r = c.next(Duration::from_secs(5)).await;
    assert_eq!(field(&r, "35").as_deref(), Some(msg_type), "{r:?}");
    r
}

/// A counterparty logged on to `leader`'s session (MsgSeqNum 1 used).
async fn logged_on(leader: &Engine) -> FixClient {
    let mut c = FixClient::connected("FIX.4.4", leader.listen_addr(&id()).expect("port"))
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    expect(&mut c, "A").await;
    c
}

async fn standby_position(e: &Engine) -> u64 {
    let (code, body) = request(
        e.admin_addr().expect("admin"),
        "GET",
        "/replication",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["follower"]["position"].as_u64().unwrap_or(0)
}

/// Waits until the leader at `admin` has recorded both instances in the in-sync set.
async fn in_sync_pair(admin: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = request(admin, "GET", "/replication", Some(TOKEN), None).await;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let recorded = v["in_sync"]["recorded"].as_array().map_or(0, Vec::len);
        if recorded == 2 && v["standbys"].as_array().is_some_and(|s| s.len() == 1) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never joined the in-sync set: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_continues_the_sequence_and_resends_what_the_old_leader_sent() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pa, pb) = (free_port(), free_port());
    let a = Engine::start(config(dir.path(), "a", pa, pb))
        .await
        .expect("a");
    let b = Engine::start(config(dir.path(), "b", pb, pa))
        .await
        .expect("b");
    eventually("a leader", Duration::from_secs(10), || {
        leads(&a) || leads(&b)
    })
    .await;
    let (leader, standby) = if leads(&a) { (&a, &b) } else { (&b, &a) };

    let mut c = logged_on(leader).await;
    for n in 2..=6 {
        c.send(&format!(
            "35=D|34={n}|49=TW|52=<TIME>|56=ISLD|11=ord{n}|21=1|55=X|54=1|60=<TIME>|40=1|38=10|"
        ))
        .await
        .expect("order");
        let echo = expect(&mut c, "D").await;
        assert_eq!(field(&echo, "11"), Some(format!("ord{n}")));
    }
    // The leader answers alone until the standby has caught up and joined the in-sync
    // set; from then on every message waits for it.
    let la = leader.admin_addr().expect("admin");
    in_sync_pair(la).await;

    // Paused replication: with `replicated` durability the leader sends nothing more.
    assert_eq!(
        request(la, "POST", "/replication/pause", Some(TOKEN), None)
            .await
            .0,
        200
    );
    let before = standby_position(standby).await;
    c.send("35=D|34=7|49=TW|52=<TIME>|56=ISLD|11=ord7|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("order");
    assert_eq!(
        c.next(Duration::from_millis(600)).await,
        Received::TimedOut,
        "held back while no standby has it"
    );
    assert_eq!(standby_position(standby).await, before);
    // The leader shows what the standby lacks, per session.
    let (_, body) = request(la, "GET", "/replication", Some(TOKEN), None).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let lag = &v["standbys"][0];
    assert!(lag["lag_bytes"].as_u64().is_some_and(|b| b > 0), "{body}");
    assert!(
        lag["lag_records"]["FIX.4.4:ISLD->TW"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "the order is not on the standby: {body}"
    );
    assert_eq!(v["paused"]["all"], true, "{body}");
    assert_eq!(
        request(la, "POST", "/replication/resume", Some(TOKEN), None)
            .await
            .0,
        200
    );
    let echo = expect(&mut c, "D").await;
    assert_eq!(field(&echo, "11").as_deref(), Some("ord7"));

    // Pausing this one standby by name holds sends back the same way.
    let name = if std::ptr::eq(standby, &a) { "a" } else { "b" };
    let (code, _) = request(
        la,
        "POST",
        &format!("/replication/pause?standby={name}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200);
    c.send("35=D|34=8|49=TW|52=<TIME>|56=ISLD|11=ord8|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("order");
    assert_eq!(c.next(Duration::from_millis(600)).await, Received::TimedOut);
    let (_, body) = request(la, "GET", "/replication", Some(TOKEN), None).await;
    assert!(
        body.contains(&format!("\"standbys\":[\"{name}\"]")) && body.contains("\"all\":false"),
        "{body}"
    );
    let (code, _) = request(
        la,
        "POST",
        &format!("/replication/resume?standby={name}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let echo = expect(&mut c, "D").await;
    assert_eq!(field(&echo, "11").as_deref(), Some("ord8"));

    // Fail over; the counterparty comes back to the new leader with its sequence numbers.
    in_sync_pair(la).await;
    leader.handle().step_down(Duration::from_secs(60)).await;
    assert_eq!(c.next(Duration::from_secs(2)).await, Received::Closed);
    eventually("the standby to lead", Duration::from_secs(5), || {
        leads(standby)
    })
    .await;
    let mut c = FixClient::connected("FIX.4.4", standby.listen_addr(&id()).expect("port"))
        .await
        .expect("connect");
    // Ask for everything again: the new leader resends what the old one sent.
    c.send("35=A|34=9|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    let logon = expect(&mut c, "A").await;
    assert_eq!(
        field(&logon, "34").as_deref(),
        Some("9"),
        "sequence continues: {logon:?}"
    );
    c.send("35=2|34=10|49=TW|52=<TIME>|56=ISLD|7=2|16=0|")
        .await
        .expect("resend request");
    let mut resent = Vec::new();
    for _ in 0..7 {
        let r = expect(&mut c, "D").await;
        assert_eq!(field(&r, "43").as_deref(), Some("Y"), "PossDup: {r:?}");
        resent.push(field(&r, "11").unwrap_or_default());
    }
    assert_eq!(
        resent,
        ["ord2", "ord3", "ord4", "ord5", "ord6", "ord7", "ord8"]
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The standby's half of the replication handshake with a leader that has no key
/// (`FIXREPL2`, mode 0, its nonce; answered with a nonce and an empty proof); returns the
/// mode the leader announced.
async fn open_handshake(s: &mut tokio::net::TcpStream) -> u8 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut prelude = [0u8; 41];
    s.read_exact(&mut prelude)
        .await
        .expect("the leader's challenge");
    assert_eq!(&prelude[..8], b"FIXREPL2", "{prelude:?}");
    s.write_all(&[0u8; 64]).await.expect("answer");
    prelude[8]
}

async fn frame_exchange(
    addr: std::net::SocketAddr,
    send: &[u8],
) -> Option<fix_store::replication::Frame> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    open_handshake(&mut s).await;
    // The leader may drop the connection while this is still being written (a frame
    // over the limit is refused on its length): what it answered is what counts.
    let _ = s.write_all(send).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    fix_store::replication::decode(&buf, 1 << 20)
        .ok()
        .map(|(f, _)| f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_port_refuses_garbage_stale_peers_and_asks_to_a_standby() {
    use fix_store::replication::{encode, Frame};
    let dir = tempfile::tempdir().expect("tmp");
    let (pa, pb) = (free_port(), free_port());
    let a = Engine::start(config(dir.path(), "a", pa, pb))
        .await
        .expect("a");
    eventually("a to lead", Duration::from_secs(10), || leads(&a)).await;
    let b = Engine::start(config(dir.path(), "b", pb, pa))
        .await
        .expect("b");
    let leader: std::net::SocketAddr = format!("127.0.0.1:{pa}").parse().expect("addr");
    let standby: std::net::SocketAddr = format!("127.0.0.1:{pb}").parse().expect("addr");

    // Garbage: the connection is dropped, nothing answered.
    assert_eq!(
        frame_exchange(leader, b"GET / HTTP/1.1\r\n\r\n and more bytes").await,
        None
    );
    // A peer that has seen a newer epoch than the leader's: refused as stale.
    let mut hello = Vec::new();
    encode(
        &Frame::Hello {
            epoch: 99,
            from_position: 0,
            epochs: vec![],
            standby: "intruder".into(),
        },
        &mut hello,
    );
    match frame_exchange(leader, &hello).await {
        Some(Frame::Refused { reason, .. }) => assert!(reason.contains("stale"), "{reason}"),
        other => panic!("expected a refusal: {other:?}"),
    }
    // A standby does not serve its journal; it says where its journal ends.
    let mut hello = Vec::new();
    encode(
        &Frame::Hello {
            epoch: 0,
            from_position: 0,
            epochs: vec![],
            standby: "c".into(),
        },
        &mut hello,
    );
    match frame_exchange(standby, &hello).await {
        Some(Frame::Refused { reason, .. }) => {
            assert!(reason.contains("not the leader"), "{reason}")
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    // The pair is unharmed: b still catches up and follows a.
    eventually("b following a", Duration::from_secs(10), || {
        b.handle()
            .replication()
            .is_some_and(|r| r.follower().caught_up)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Defect 5 of issue 18: a peer on the replication port can neither make the leader
/// buffer a huge frame nor count as holding what it was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_standby_can_neither_bloat_the_leader_nor_ack_what_it_was_not_sent() {
    use fix_store::replication::{encode, Frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tmp");
    let (a, leader, _, _) = leading_engine(dir.path()).await;

    // A Hello of 1.6 MB (an epoch history of 100 000 entries): refused unread.
    let mut huge = Vec::new();
    encode(
        &Frame::Hello {
            epoch: 0,
            from_position: 0,
            epochs: (0..100_000u64).map(|e| (e, e)).collect(),
            standby: "bloat".into(),
        },
        &mut huge,
    );
    assert!(huge.len() > 1 << 20);
    assert_eq!(frame_exchange(leader, &huge).await, None);

    // A "standby" that acknowledges everything at once counts for what it was sent.
    let mut s = tokio::net::TcpStream::connect(leader)
        .await
        .expect("connect");
    let mut hello = Vec::new();
    encode(
        &Frame::Hello {
            epoch: 0,
            from_position: 0,
            epochs: vec![],
            standby: "liar".into(),
        },
        &mut hello,
    );
    open_handshake(&mut s).await;
    s.write_all(&hello).await.expect("hello");
    let mut ack = Vec::new();
    encode(
        &Frame::Ack {
            epoch: 0,
            durable_position: u64::MAX,
            written_position: u64::MAX,
        },
        &mut ack,
    );
    s.write_all(&ack).await.expect("ack");
    let mut sink = vec![0u8; 1 << 16];
    let _ = tokio::time::timeout(Duration::from_millis(300), s.read(&mut sink)).await;
    let r = a.handle().replication().expect("replication");
    let liar = r
        .standbys()
        .into_iter()
        .find(|v| v.name == "liar")
        .expect("registered");
    assert!(
        liar.acked <= liar.sent,
        "acknowledged {} of {} sent",
        liar.acked,
        liar.sent
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_peers_holding_the_groups_key_replicate() {
    use fix_store::replication::{encode, Frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tmp");
    let (key, wrong) = (dir.path().join("key"), dir.path().join("wrong"));
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").expect("key");
    std::fs::write(&wrong, "fedcba9876543210fedcba9876543210").expect("key");
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = Engine::start(keyed_config(dir.path(), "a", pa, pb, Some(&key)))
        .await
        .expect("a");
    eventually("a to lead", Duration::from_secs(10), || leads(&a)).await;
    let b = Engine::start(keyed_config(dir.path(), "b", pb, pa, Some(&key)))
        .await
        .expect("b");
    let leader: std::net::SocketAddr = format!("127.0.0.1:{pa}").parse().expect("addr");

    // The same key: b follows, and an order is answered once b has it.
    in_sync_pair(a.admin_addr().expect("admin")).await;
    let mut c = logged_on(&a).await;
    c.send("35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=k1|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("order");
    expect(&mut c, "D").await;
    assert!(standby_position(&b).await > 0, "the keyed standby follows");

    // A peer without the key: told the leader wants one, and its Hello is never read.
    let mut s = tokio::net::TcpStream::connect(leader)
        .await
        .expect("connect");
    assert_eq!(
        open_handshake(&mut s).await,
        1,
        "the leader announces a key"
    );
    let mut hello = Vec::new();
    encode(
        &Frame::Hello {
            epoch: 0,
            from_position: 0,
            epochs: vec![],
            standby: "intruder".into(),
        },
        &mut hello,
    );
    let _ = s.write_all(&hello).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(
        buf.is_empty(),
        "nothing is sent to a peer without the key: {buf:?}"
    );

    // An engine with another key: refused both ways, and it says which setting to fix.
    let other = Engine::start(keyed_config(dir.path(), "c", pc, pa, Some(&wrong)))
        .await
        .expect("c");
    let oa = other.admin_addr().expect("admin");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        let (_, body) = request(oa, "GET", "/replication", Some(TOKEN), None).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if let Some(e) = v["follower"]["last_error"].as_str() {
            break e.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error shown: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(error.contains("key differs"), "{error}");
    assert_eq!(
        standby_position(&other).await,
        0,
        "nothing was replicated to it"
    );
    let names: Vec<String> = a
        .handle()
        .replication()
        .expect("replication")
        .standbys()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["b"], "only the keyed standby is connected");
    other.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

/// Engine `a` started and leading, with its replication address and the ports of `a`
/// and of its (not yet started) peer `b`.
async fn leading_engine(dir: &Path) -> (Engine, std::net::SocketAddr, u16, u16) {
    let (pa, pb) = (free_port(), free_port());
    let a = Engine::start(config(dir, "a", pa, pb)).await.expect("a");
    eventually("a to lead", Duration::from_secs(10), || leads(&a)).await;
    let leader = format!("127.0.0.1:{pa}").parse().expect("addr");
    (a, leader, pa, pb)
}

/// A connection to the replication port from `source` (a loopback address of its own).
async fn connect_from(source: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Idle connections that never authenticate are capped per address: past four from one
/// address the leader closes new ones at once, and the group's own standby (another
/// address) still joins while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_replication_connections_are_capped() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("tmp");
    let (a, leader, pa, pb) = leading_engine(dir.path()).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.2", leader).await;
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut first))
            .await
            .expect("the leader opens the handshake")
            .expect("read");
        assert_eq!(n, 1, "an admitted connection gets the handshake");
        idle.push(s);
    }
    let mut fifth = connect_from("127.0.0.2", leader).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), fifth.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))) && buf.is_empty(),
        "the fifth connection from one address is closed at once, unread: {read:?} {buf:?}"
    );

    let b = Engine::start(config(dir.path(), "b", pb, pa))
        .await
        .expect("b");
    in_sync_pair(a.admin_addr().expect("admin")).await;
    let (code, metrics) = fix_e2e::http::request(
        a.admin_addr().expect("admin"),
        "GET",
        "/metrics",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{metrics}");
    let want = "fix_replication_connections_refused_total 1";
    assert!(metrics.contains(want), "missing `{want}` in:\n{metrics}");
    drop(idle);
    b.shutdown().await;
    a.shutdown().await;
}
