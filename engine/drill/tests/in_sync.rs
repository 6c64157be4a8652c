//! The in-sync rule under `replicated` (and `replicated-written`) durability, with real
//! processes: a standby that stalled while the leader went on without it must never take
//! over with its stale journal; only instances in the in-sync set recorded in the lease
//! store may lead.
//!
//! The standby is left behind in three ways: SIGSTOP, a two-way network partition and a
//! one-way cut of its acknowledgements (network namespaces with nftables; those need
//! root, as CI runs).
//!
//! Each scenario asserts from the counterparty's side (every order answered, no sequence
//! gap, no unflagged duplicate, the session continues without a reset) and that the
//! stale instance never reports leader.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::drill::{isolate, reconnect, trading, Fault};
use fix_drill::trader::Trader;
use std::time::{Duration, Instant};

fn group(backend: Backend, durability: &str, instances: usize) -> GroupOptions {
    GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        backend,
        durability,
        instances,
    )
}

/// Watches instance `i` for `period`: it must never report leader.
async fn never_leads(cluster: &Cluster, i: usize, period: Duration, why: &str) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(
            !cluster.nodes[i].is_leader().await,
            "{} took the lease although {why}{}",
            cluster.nodes[i].spec.name,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The counterparty's invariants once every order had time to be answered.
async fn settle_clean(trader: &mut Trader, cluster: &Cluster) {
    let tally = trader.settle(Duration::from_secs(30)).await;
    println!("counterparty: {tally:?}");
    assert!(tally.sent > 100, "load ran: {tally:?}");
    assert_eq!(
        tally.lost,
        0,
        "orders never answered: {:?}{}",
        trader.book().unanswered_orders(),
        cluster.logs()
    );
    assert_eq!(tally.gaps, 0, "sequence gaps: {tally:?}{}", cluster.logs());
    assert_eq!(tally.unflagged_duplicates, 0, "{tally:?}");
    assert!(
        trader.wait_logged_on(Duration::from_secs(10)).await,
        "the session continues"
    );
}

/// The journals' invariants once the group is stopped: every journal a prefix of the last
/// leader's, one writer per epoch, no sequence number reused.
async fn journals_agree(cluster: &mut Cluster) {
    let check = cluster
        .stop_and_check_journals(Duration::from_secs(20))
        .await
        .expect("the journals are read");
    println!("journals: {check:?}");
    assert!(check.journals >= 2, "{check:?}");
    assert!(
        check.violations.is_empty(),
        "journal invariants broken: {:?}",
        check.violations
    );
}

/// Issue 18, defect 1a: SIGSTOP the standby for 3 s under load (the leader goes on
/// without it), `kill -9` the leader, SIGCONT the standby. The standby is out of the
/// in-sync set: it must not lead. The old leader, restarted as a supervisor would,
/// leads again with every acknowledged record; the standby catches up and follows.
/// With a partition instead of SIGSTOP the standby stays alive and contends for the
/// lease (reachable to both) all along.
async fn stalled_standby(backend: Backend, durability: &str, fault: Fault) {
    let dir = tempfile::tempdir().expect("tmp");
    let servers = Servers::from_env();
    let opts = GroupOptions {
        netns: fault.needs_netns(),
        stalled_reader: false,
        sessions: 1,
        ..group(backend, durability, 2)
    };
    let mut cluster = Cluster::start(&opts, &servers, dir.path())
        .await
        .expect("cluster (partition faults: run as root with nftables installed)");
    let (l, mut trader) = trading(&cluster, 200).await.expect("trading");
    let s = 1 - l;

    isolate(&cluster, fault, l, s).expect("leave the standby behind");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answered_alone = trader.book().tally().sent - trader.book().unanswered() as u64;
    cluster.nodes[l].kill9();
    reconnect(&cluster, fault, s).expect("let the standby back");
    println!("orders answered before the kill: {answered_alone}");

    never_leads(
        &cluster,
        s,
        Duration::from_secs(3),
        "it missed what the leader acknowledged alone",
    )
    .await;

    cluster.nodes[l].start().expect("restart the old leader");
    cluster
        .wait_promoted(l, Duration::from_secs(20))
        .await
        .expect("the restarted leader, the only in-sync instance, leads again");
    cluster
        .wait_caught_up(s, Duration::from_secs(20))
        .await
        .expect("the stale standby catches up and follows");
    settle_clean(&mut trader, &cluster).await;
    trader.shutdown().await;
    journals_agree(&mut cluster).await;
}

/// Issue 18, defect 1b: three instances. One standby stalls and is left behind; the
/// leader dies. The stale standby must not win the election even when it is the only
/// contender for a while; the standby that stayed in sync takes over.
async fn three_instances(backend: Backend, durability: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let servers = Servers::from_env();
    let mut cluster = Cluster::start(&group(backend, durability, 3), &servers, dir.path())
        .await
        .expect("cluster");
    let l = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let standbys: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let (stale, synced) = (standbys[0], standbys[1]);
    for &i in &standbys {
        cluster
            .wait_caught_up(i, Duration::from_secs(20))
            .await
            .expect("caught up");
    }
    let mut trader = Trader::start(&cluster.fix_addrs(), 200)
        .await
        .expect("counterparty");
    assert!(trader.wait_logged_on(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.nodes[stale].pause().expect("SIGSTOP one standby");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.nodes[synced]
        .pause()
        .expect("SIGSTOP the in-sync standby");
    cluster.nodes[l].kill9();
    cluster.nodes[stale]
        .resume()
        .expect("SIGCONT the stale one");
    never_leads(
        &cluster,
        stale,
        Duration::from_secs(3),
        "it missed records the others acknowledged",
    )
    .await;
    cluster.nodes[synced].resume().expect("SIGCONT");
    cluster
        .wait_promoted(synced, Duration::from_secs(20))
        .await
        .expect("the in-sync standby takes over");
    cluster
        .wait_caught_up(stale, Duration::from_secs(20))
        .await
        .expect("the stale standby follows the new leader");
    settle_clean(&mut trader, &cluster).await;
    cluster.nodes[l].start().expect("restart the old leader");
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("the old leader follows");
    assert_eq!(cluster.leader().await, Some(synced), "exactly one leader");
    trader.shutdown().await;
    journals_agree(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_standby_sqlite() {
    stalled_standby(Backend::Sqlite, "replicated", Fault::StallStandby).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_standby_postgres() {
    stalled_standby(Backend::Postgres, "replicated", Fault::StallStandby).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_standby_sqlite() {
    stalled_standby(Backend::Sqlite, "replicated", Fault::PartitionStandby).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_whose_acks_are_cut_sqlite() {
    stalled_standby(Backend::Sqlite, "replicated", Fault::Asymmetric).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sqlite() {
    three_instances(Backend::Sqlite, "replicated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_mysql() {
    three_instances(Backend::Mysql, "replicated").await;
}

/// The same rule when acknowledgements count what a standby wrote, not what it synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_standby_replicated_written_sqlite() {
    stalled_standby(Backend::Sqlite, "replicated-written", Fault::StallStandby).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_replicated_written_postgres() {
    three_instances(Backend::Postgres, "replicated-written").await;
}
