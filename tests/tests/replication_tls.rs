//! The replication channel over mutual TLS (`[engine.replication.tls]`): a pair whose
//! certificates the group's CA signed replicates and keeps its standby in sync, also
//! with one wildcard certificate for the peers' Service names shared by every instance
//! (what a FixSession's `spec.replicationTls` Secret holds); a standby with a
//! certificate from another CA, or without TLS, gets no record; a section missing a file
//! is refused at start with what to add.

use fix_e2e::client::FixClient;
use fix_e2e::http::request;
use fix_e2e::interop::free_port;
use fix_e2e::pki::Ca;
use fix_e2e::wait::eventually;
use fix_engine::{Engine, EngineConfig};
use fix_lease::Leadership;
use fix_session::SessionId;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "t0ken";

/// An instance's TLS settings; `None`: plain TCP.
type Files = Option<Tls>;

#[derive(Clone)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    /// The CA it trusts.
    ca: PathBuf,
    /// The name to verify in the leader's certificate (default: the peer's host).
    server_name: Option<String>,
}

fn signed(ca: &Ca, dir: &Path, name: &str, names: &[&str]) -> Files {
    let (cert, key) = ca.leaf(dir, name, names);
    Some(Tls {
        cert,
        key,
        ca: ca.pem.clone(),
        server_name: None,
    })
}

fn toml(dir: &Path, name: &str, me: u16, peer: u16, tls: &Files) -> String {
    let tls = tls.as_ref().map_or(String::new(), |t| {
        format!(
            "[engine.replication.tls]\ncert = '{}'\nkey = '{}'\nca = '{}'\n{}",
            t.cert.display(),
            t.key.display(),
            t.ca.display(),
            t.server_name
                .as_ref()
                .map_or(String::new(), |n| format!("server_name = '{n}'\n"))
        )
    });
    format!(
        "[engine]\ndata_dir = '{d}/{name}'\napp = 'echo'\n\
         [engine.lease]\nurl = 'sqlite://{d}/lease.db'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\n\
         [engine.replication]\nlisten = '127.0.0.1:{me}'\npeers = ['127.0.0.1:{peer}']\ndurability = 'replicated'\nstandby_wait_ms = 5000\n\
         {tls}\
         [engine.admin]\nlisten = '127.0.0.1:0'\ntoken = '{TOKEN}'\n\
         [[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        d = dir.display()
    )
}

async fn start(dir: &Path, name: &str, me: u16, peer: u16, tls: &Files) -> Engine {
    Engine::start(EngineConfig::from_toml(&toml(dir, name, me, peer, tls), name).expect("config"))
        .await
        .expect("engine starts")
}

fn leads(e: &Engine) -> bool {
    matches!(e.handle().role(), Leadership::Leader { .. })
}

async fn replication(e: &Engine) -> serde_json::Value {
    let (code, body) = request(
        e.admin_addr().expect("admin"),
        "GET",
        "/replication",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// A counterparty logs on to `leader` and sends `n` test requests (journaled both ways).
async fn traffic(leader: &Engine, n: u64) {
    let addr = leader
        .listen_addr(&SessionId::new("FIX.4.4", "ISLD", "TW"))
        .expect("port");
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send("35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|")
        .await
        .expect("logon");
    c.next(Duration::from_secs(5)).await;
    for k in 0..n {
        c.send(&format!(
            "35=1|34={}|49=TW|52=<TIME>|56=ISLD|112=T{k}|",
            k + 2
        ))
        .await
        .expect("test request");
        c.next(Duration::from_secs(5)).await;
    }
}

/// Starts a pair with these settings and waits until its standby has everything the
/// leader made durable after some traffic.
async fn replicates(dir: &Path, files_a: &Files, files_b: &Files) {
    let (pa, pb) = (free_port(), free_port());
    let a = start(dir, "a", pa, pb, files_a).await;
    let b = start(dir, "b", pb, pa, files_b).await;
    eventually("a leader", Duration::from_secs(10), || {
        leads(&a) || leads(&b)
    })
    .await;
    let (leader, standby) = if leads(&a) { (&a, &b) } else { (&b, &a) };
    traffic(leader, 5).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let l = replication(leader).await;
        let s = replication(standby).await;
        let recorded = l["in_sync"]["recorded"].as_array().map_or(0, Vec::len);
        let followed = s["follower"]["position"].as_u64().unwrap_or(0);
        if recorded == 2 && followed > 0 && followed == l["durable"].as_u64().unwrap_or(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never caught up over TLS: leader {l:#} standby {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_signed_by_the_groups_ca_replicates_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "group-ca");
    let a = signed(&ca, dir.path(), "a", &["127.0.0.1"]);
    let b = signed(&ca, dir.path(), "b", &["127.0.0.1"]);
    replicates(dir.path(), &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wildcard_certificate_for_the_peers_service_serves_every_instance() {
    // As the operator configures a FixSession with spec.replicationTls: the Secret's one
    // certificate on every pod, each following `<name>-<i>.<name>-peers.<ns>.svc`
    // (named here through server_name, the test having no cluster DNS).
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "group-ca");
    let shared = signed(&ca, dir.path(), "peers", &["*.orders-peers.trading.svc"]).map(|t| Tls {
        server_name: Some("orders-1.orders-peers.trading.svc".into()),
        ..t
    });
    replicates(dir.path(), &shared, &shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_from_another_ca_or_without_tls_gets_no_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "group-ca");
    let other = Ca::new(dir.path(), "other-ca");
    let leader_files = signed(&ca, dir.path(), "leader", &["127.0.0.1"]);
    // Trusts the group's CA (so it would accept the leader), but is signed by another.
    let intruder_files = signed(&other, dir.path(), "intruder", &["127.0.0.1"]).map(|t| Tls {
        ca: ca.pem.clone(),
        ..t
    });

    let (pl, ps) = (free_port(), free_port());
    let leader = start(dir.path(), "leader", pl, ps, &leader_files).await;
    eventually("the leader leads", Duration::from_secs(10), || {
        leads(&leader)
    })
    .await;
    traffic(&leader, 2).await;
    for (name, files) in [("intruder", intruder_files), ("plain", None)] {
        let standby = start(dir.path(), name, ps, pl, &files).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let l = replication(&leader).await;
        let s = replication(&standby).await;
        assert_eq!(
            l["standbys"].as_array().map(Vec::len),
            Some(0),
            "{name}: the leader streams to no one: {l:#}"
        );
        assert_eq!(
            s["follower"]["position"].as_u64().unwrap_or(0),
            0,
            "{name}: nothing was replicated to it: {s:#}"
        );
        assert!(!leads(&standby), "{name} never leads");
        standby.shutdown().await;
    }
}

#[test]
fn a_tls_section_missing_a_file_is_refused_with_what_to_add() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, _key) = ca.leaf(dir.path(), "a", &["127.0.0.1"]);
    let text = toml(dir.path(), "a", free_port(), free_port(), &None).replace(
        "[engine.admin]",
        &format!(
            "[engine.replication.tls]\ncert = '{}'\nca = '{}'\n[engine.admin]",
            cert.display(),
            ca.pem.display()
        ),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = match rt.block_on(Engine::start(
        EngineConfig::from_toml(&text, "a").expect("parses"),
    )) {
        Ok(_) => panic!("an engine started without a replication key file"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("[engine.replication.tls]") && err.contains("cert, key and ca"),
        "{err}"
    );
}
