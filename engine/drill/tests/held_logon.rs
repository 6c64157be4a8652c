//! A standby that expects to take over holds a counterparty's connection and answers its
//! Logon the moment it leads, so a counterparty with a long reconnect interval (QuickFIX's
//! `ReconnectInterval` defaults to 30 s) is back with the takeover, not a reconnect
//! interval later. Real processes, `kill -9`; nothing here asserts a duration: the
//! counterparty waits a minute between rounds of its addresses, so without the hold it
//! could not log on again within the test's limit at all.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::trader::Trader;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterparty_with_a_long_reconnect_interval_is_answered_at_the_takeover() {
    let dir = tempfile::tempdir().expect("tmp");
    let group = GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        Backend::Sqlite,
        "replicated",
        2,
    );
    let mut cluster = Cluster::start(&group, &Servers::from_env(), dir.path())
        .await
        .expect("group");
    let limit = Duration::from_secs(20);
    let leader = cluster.wait_settled(limit).await.expect("settled");
    let standby = 1 - leader;
    // The leader first: the counterparty logs on there, and after the kill tries the
    // standby 100 ms later, then waits a minute before its next round.
    let addrs = [
        cluster.nodes[leader].fix_addr(),
        cluster.nodes[standby].fix_addr(),
    ];
    let mut trader = Trader::start_with(&addrs, 50, 1, Duration::from_secs(60))
        .await
        .expect("counterparty");
    assert!(
        trader.wait_logged_on(limit).await,
        "logged on to the leader"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    cluster.nodes[leader].kill9();
    let book = trader.book();
    let logon = loop {
        if let Some(t) = book.first_logon_after(killed) {
            break t;
        }
        assert!(
            killed.elapsed() < limit,
            "the counterparty did not log on again within {limit:?} of the kill: the standby refused its connection instead of holding it until it led{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("kill→logon {:?}", logon - killed);
    assert_eq!(cluster.leader().await, Some(standby), "the standby leads");
    let tally = trader.settle(limit).await;
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.unflagged_duplicates, 0, "{tally:?}");
    assert_eq!(tally.gaps, 0, "{tally:?}");
    trader.shutdown().await;
}
