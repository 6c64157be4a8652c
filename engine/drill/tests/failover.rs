//! Failover with real processes, for every lease backend: `kill -9` of the leader under
//! load (every durability mode the backend allows), split brain (SIGSTOP past the TTL,
//! then SIGCONT), and the lease store going away and coming back — for everyone, and
//! for the leader alone (a network cut; not for SQLite, which has no network).
//!
//! PostgreSQL and MariaDB are the local servers; DynamoDB is moto at FIX_TEST_MOTO_URL
//! (scripts/test.sh starts it). Nothing here asserts a duration: RTO figures come from
//! the drill (`fix-drill run`).

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::drill::{self, DrillOptions};
use fix_e2e::client::Received;
use fix_e2e::trading::{fill, logon};
use std::time::{Duration, Instant};

fn servers() -> Servers {
    let s = Servers::from_env();
    assert!(
        s.moto.is_some(),
        "set FIX_TEST_MOTO_URL to a moto server (scripts/test.sh starts one)"
    );
    s
}

fn group(backend: Backend, durability: &str) -> GroupOptions {
    GroupOptions {
        exe: env!("CARGO_BIN_EXE_fix-drill").into(),
        backend,
        durability: durability.into(),
        lease_ms: (1500, 300, 300),
        instances: 2,
        names: Vec::new(),
        regions: Vec::new(),
        active_region: None,
        cross_region_sync: false,
        kafka: None,
        netns: false,
        stalled_reader: false,
        sessions: 1,
    }
}

/// `replicated`, `replicated-written`: killed under load. `local`: killed once the
/// standby has everything (under load `local` may lose or repeat what the standby
/// lacked, by design; the drill reports those counts).
async fn kill9_under_load(backend: Backend) {
    let sql = matches!(backend, Backend::Postgres | Backend::Mysql);
    let modes: &[&str] = if sql {
        &["local", "replicated", "replicated-written", "sql"]
    } else {
        &["local", "replicated", "replicated-written"]
    };
    for &mode in modes {
        let dir = tempfile::tempdir().expect("tmp");
        let opts = DrillOptions {
            group: group(backend, mode),
            cycles: 2,
            rate: 100,
            dwell: Duration::from_millis(400),
            quiesce: mode == "local",
            fault: drill::Fault::None,
        };
        let report = drill::run(&opts, &servers(), dir.path(), |_, _| {})
            .await
            .unwrap_or_else(|e| panic!("{} {mode}: {e:#}", backend.name()));
        println!("{}\n{}", drill::Report::header(), report.row());
        let t = &report.tally;
        assert!(t.sent > 50, "load ran: {t:?}");
        assert_eq!(
            t.lost,
            0,
            "{} {mode}: orders without a fill: {t:?}",
            backend.name()
        );
        assert_eq!(
            t.unflagged_duplicates,
            0,
            "{} {mode}: {t:?}",
            backend.name()
        );
        assert_eq!(
            t.gaps,
            0,
            "{} {mode}: unfilled sequence gaps: {t:?}",
            backend.name()
        );
        assert_eq!(t.send_errors, 0, "{t:?}");
        assert_eq!(report.to_leader.len(), 2);
        assert_eq!(report.stale_takeovers, 0);
        let j = &report.journals;
        assert!(j.journals >= 2 && j.stream_bytes > 0, "{j:?}");
        assert!(
            j.violations.is_empty(),
            "{} {mode}: journal invariants: {j:?}",
            backend.name()
        );
    }
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    cluster: &Cluster,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A replicated pair on `backend` with the standby caught up and a counterparty logged
/// on to the leader that has had one order filled: (work dir, cluster, leader index,
/// the client, the fill's MsgSeqNum).
async fn trading_pair(
    backend: Backend,
) -> (
    tempfile::TempDir,
    Cluster,
    usize,
    fix_e2e::client::FixClient,
    u64,
) {
    let dir = tempfile::tempdir().expect("tmp");
    let cluster = Cluster::start(&group(backend, "replicated"), &servers(), dir.path())
        .await
        .expect("cluster");
    let l = cluster
        .wait_settled(Duration::from_secs(20))
        .await
        .expect("a leader and its standby caught up");
    let (mut c, _) = logon(cluster.nodes[l].fix_addr(), 1).await;
    let first_fill = fill(&mut c, 2, "before").await;
    (dir, cluster, l, c, first_fill)
}

async fn split_brain(backend: Backend) {
    let (_dir, cluster, l, mut old, first_fill) = trading_pair(backend).await;
    let s = 1 - l;

    cluster.nodes[l].pause().expect("SIGSTOP");
    let promoted = cluster
        .wait_promoted(s, Duration::from_secs(20))
        .await
        .expect("the standby takes over while the leader is frozen");
    let _ = promoted;
    // The counterparty moves to the new leader; sequence numbers continue.
    let (mut new, their) = logon(cluster.nodes[s].fix_addr(), 3).await;
    assert_eq!(
        their,
        first_fill + 1,
        "the new leader continues the old leader's sequence"
    );
    let fill2 = fill(&mut new, 4, "after").await;
    assert!(fill2 > their);
    // Bytes waiting in the frozen leader's socket when it wakes up.
    old.send("35=D|34=3|49=CLIENT|52=<TIME>|56=EXEC|11=stale|21=1|55=X|54=1|60=<TIME>|40=1|38=10|")
        .await
        .expect("write to the frozen leader's socket");
    cluster.nodes[l].resume().expect("SIGCONT");
    let heard = old.next(Duration::from_secs(3)).await;
    assert!(
        !matches!(heard, Received::Message(_)),
        "the old leader sent something after waking up: {heard:?}{}",
        cluster.logs()
    );
    eventually(
        "the old leader stepping down to standby",
        &cluster,
        || async {
            cluster.nodes[l]
                .readiness()
                .await
                .is_some_and(|v| v.role == fix_engine::admin::api::RoleName::Standby)
        },
    )
    .await;
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("the old leader follows the new one");
    assert_eq!(cluster.leader().await, Some(s), "exactly one leader");
    // The new leader is unaffected: its session goes on.
    let fill3 = fill(&mut new, 5, "later").await;
    assert!(fill3 > fill2);
}

async fn lease_outage(backend: Backend) {
    let (_dir, mut cluster, _leader, mut c, first_fill) = trading_pair(backend).await;

    cluster
        .lease
        .cut()
        .await
        .expect("take the lease store away");
    // The leader cannot renew: it fences itself (closes the FIX connection without
    // sending) and nobody leads while the store is away.
    let closed = c.next(Duration::from_secs(10)).await;
    assert_eq!(closed, Received::Closed, "{}", cluster.logs());
    eventually(
        "no leader while the lease store is away",
        &cluster,
        || async { cluster.leaders().await == 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        cluster.leaders().await,
        0,
        "nobody may lead without the lease store"
    );

    cluster.lease.restore().await;
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("one leader again");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        cluster.leader().await,
        Some(leader),
        "still exactly one leader{}",
        cluster.logs()
    );
    let (mut c, their) = logon(cluster.nodes[leader].fix_addr(), 3).await;
    assert_eq!(their, first_fill + 1, "sequence numbers continue");
    fill(&mut c, 4, "after").await;
}

/// Only the leader loses the lease store (a network cut between it and the database):
/// it fences itself, the standby takes over, and when the link comes back the old leader
/// stays a standby and follows.
async fn network_cut(backend: Backend) {
    let (_dir, cluster, l, mut c, first_fill) = trading_pair(backend).await;
    let s = 1 - l;

    // Network namespaces cannot reach these servers (they listen on loopback, which a
    // namespace does not share): the cut is a TCP proxy between the leader and the store.
    println!(
        "{}: leader-to-lease-store cut through a TCP proxy, not network namespaces (the server listens on loopback)",
        backend.name()
    );
    assert!(cluster.lease.cut_node(l), "a networked store");
    assert_eq!(
        c.next(Duration::from_secs(10)).await,
        Received::Closed,
        "{}",
        cluster.logs()
    );
    cluster
        .wait_promoted(s, Duration::from_secs(20))
        .await
        .expect("the standby, still connected, takes over");
    let (mut c, their) = logon(cluster.nodes[s].fix_addr(), 3).await;
    assert_eq!(their, first_fill + 1, "sequence numbers continue");
    fill(&mut c, 4, "after").await;

    cluster.lease.restore_node(l);
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("the old leader follows the new one");
    assert_eq!(cluster.leader().await, Some(s), "exactly one leader");
}

/// Bytes queued on one TCP connection on this host, as `ss` shows them: what the socket
/// from `local` to `peer` has received and not read, plus what it has sent and not had
/// acknowledged.
fn queued(local: std::net::SocketAddr, peer: std::net::SocketAddr) -> (u64, u64) {
    let out = std::process::Command::new("ss")
        .args(["-tnH", "state", "established"])
        .arg(format!(
            "( sport = :{} and dport = :{} )",
            local.port(),
            peer.port()
        ))
        .output()
        .expect("ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let cols: Vec<&str> = text.split_whitespace().collect();
    let n = |i: usize| cols.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (n(0), n(1))
}

/// Issue 18: SIGSTOP the leader while a session task is blocked writing to a counterparty
/// that stopped reading; its lease runs out. Then SIGCONT it and let the counterparty read
/// again at once. The write is a resend of thousands of reports (one ResendRequest after
/// a trading phase whose answers were read), so the engine holds no unread input and
/// closes with a FIN, not a reset that would drop queued bytes: the counterparty then
/// receives exactly what was queued in the sockets when the leader froze (`ss`), and a
/// byte more was written after the deposition (the blocked write went on when the window
/// opened). Either the standby takes over meanwhile, or (`regain`) the standby is frozen
/// too and the same instance takes the lease again under a new epoch: the old term's
/// blocked write must not go on in the new one. PostgreSQL lease: a process frozen in the
/// middle of a SQLite statement would hold the lease file's lock.
async fn frozen_in_a_blocked_write(regain: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        stalled_reader: true,
        sessions: 1,
        ..group(Backend::Postgres, "replicated")
    };
    let cluster = Cluster::start(&opts, &servers(), dir.path())
        .await
        .expect("cluster");
    let l = cluster
        .wait_settled(Duration::from_secs(20))
        .await
        .expect("a leader and its standby caught up");
    let s = 1 - l;
    let epoch = |i: usize| {
        let node = &cluster.nodes[i];
        async move { node.readiness().await.map_or(0, |v| v.epoch) }
    };
    let first_epoch = epoch(l).await;
    assert!(first_epoch > 0, "the leader's epoch");
    let fix = cluster.nodes[l].fix_addr();
    let mut slow = fix_drill::stalled_reader::StalledReader::log_on(fix)
        .await
        .expect("the stalled counterparty logs on");
    // About 7 MB of reports to resend: more than the sockets hold (4 MB at most).
    let t = Instant::now();
    slow.trade(12_000).await.expect("trading with answers read");
    println!("traded in {:?}", t.elapsed());
    slow.request_resend(1).await.expect("ResendRequest");
    let me = slow.local_addr().expect("address");
    // Until the resend is being written (building it takes a while) and blocks.
    let deadline = Instant::now() + Duration::from_secs(20);
    while queued(fix, me).1 == 0 {
        assert!(
            Instant::now() < deadline,
            "the resend never started{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if regain {
        cluster.nodes[s].pause().expect("SIGSTOP the standby");
    }
    cluster.nodes[l].pause().expect("SIGSTOP the leader");
    let frozen = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (unread, _) = queued(me, fix);
    let (engine_unread, unacked) = queued(fix, me);
    let in_flight = unread + unacked;
    println!(
        "at the freeze {unread} bytes unread by the counterparty, {unacked} unacknowledged, {engine_unread} unread by the engine"
    );
    assert!(
        unacked > 0,
        "the leader's writes were not blocked (nothing queued in its socket): the test shows nothing{}",
        cluster.logs()
    );
    assert_eq!(
        engine_unread, 0,
        "the engine holds unread input: its close would reset the connection and drop what is queued"
    );
    // The freeze outlasts the leader's trust in its lease (1.2 s after its last renew)
    // but not the write-stall limit (2 s): a blocked write that the deposition did not
    // stop would go on at the resume instead of timing out.
    if regain {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    } else {
        cluster
            .wait_promoted(s, Duration::from_secs(20))
            .await
            .expect("the standby takes over from the frozen leader");
    }
    cluster.nodes[l].resume().expect("SIGCONT");
    println!("frozen for {:?}", frozen.elapsed());
    let received = slow.read_to_close(Duration::from_secs(20)).await;
    println!("after the resume the counterparty read {received} bytes");
    assert!(
        received <= in_flight,
        "the deposed leader wrote {} bytes after its deposition{}",
        received - in_flight,
        cluster.logs()
    );
    if regain {
        eventually("the old leader leading again", &cluster, || async {
            epoch(l).await > first_epoch
        })
        .await;
        cluster.nodes[s].resume().expect("SIGCONT the standby");
        cluster
            .wait_caught_up(s, Duration::from_secs(20))
            .await
            .expect("the standby follows again");
    } else {
        cluster
            .wait_caught_up(l, Duration::from_secs(20))
            .await
            .expect("the old leader follows the new one");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_in_a_blocked_write_sends_no_byte_after_its_deposition() {
    frozen_in_a_blocked_write(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_write_does_not_go_on_when_its_leader_regains_the_lease() {
    frozen_in_a_blocked_write(true).await;
}

/// One test per backend for a scenario.
macro_rules! per_backend {
    ($scenario:ident: $($test:ident => $backend:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $scenario(Backend::$backend).await;
            }
        )+
    };
}

per_backend!(kill9_under_load:
    kill9_sqlite => Sqlite,
    kill9_postgres => Postgres,
    kill9_mysql => Mysql,
    kill9_dynamodb => Dynamodb,
);

per_backend!(split_brain:
    split_brain_sqlite => Sqlite,
    split_brain_postgres => Postgres,
    split_brain_mysql => Mysql,
    split_brain_dynamodb => Dynamodb,
);

per_backend!(lease_outage:
    lease_outage_sqlite => Sqlite,
    lease_outage_postgres => Postgres,
    lease_outage_mysql => Mysql,
    lease_outage_dynamodb => Dynamodb,
);

per_backend!(network_cut:
    network_cut_postgres => Postgres,
    network_cut_mysql => Mysql,
    network_cut_dynamodb => Dynamodb,
);
