//! The failover promise judged by an independent counterparty: QuickFIX (the C++ engine
//! of the Python package, with its file store and both engines as alternate addresses)
//! trades with a replicated pair while the standby is stopped and resumed and the leader
//! is killed, twice. Nothing it was answered may be lost, every order it sent must be
//! answered, and its session must continue without a sequence reset: QuickFIX itself
//! would log out on a MsgSeqNum too low.
//!
//! Needs `FIX_QUICKFIX_PYTHON` and `FIX_DICTIONARY_DIR` (set by `scripts/test.sh`).

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::quickfix::{no_reset_nor_reject, QuickFixTrader};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickfix_counterparty_loses_nothing_across_stalls_and_kills() {
    let dir = tempfile::tempdir().expect("tmp");
    let group = GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        Backend::Sqlite,
        "replicated",
        2,
    );
    let mut cluster = Cluster::start(&group, &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let first = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    cluster
        .wait_caught_up(1 - first, Duration::from_secs(20))
        .await
        .expect("caught up");
    let ports: Vec<u16> = cluster.fix_addrs().iter().map(|a| a.port()).collect();
    let mut quickfix =
        QuickFixTrader::start(&ports, &dir.path().join("quickfix")).expect("start QuickFIX");
    let mut wait_logons =
        |n: usize, limit: Duration| tokio::task::block_in_place(|| quickfix.wait_logons(n, limit));
    // QuickFIX tries the addresses in order: when the standby's comes first, it refuses
    // the Logon (QuickFIX reports a logout for it) before the leader answers.
    assert!(
        wait_logons(1, Duration::from_secs(20)),
        "QuickFIX did not log on"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 1. The standby stalls for 3 s under load; the leader is killed; the standby comes
    //    back (out of the in-sync set: it must not lead), the old leader restarts and leads.
    let standby = 1 - first;
    cluster.nodes[standby].pause().expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.nodes[first].kill9();
    cluster.nodes[standby].resume().expect("SIGCONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !cluster.nodes[standby].is_leader().await,
        "the stale standby took over{}",
        cluster.logs()
    );
    cluster.nodes[first].start().expect("restart");
    cluster
        .wait_promoted(first, Duration::from_secs(20))
        .await
        .expect("the restarted leader leads");
    cluster
        .wait_caught_up(standby, Duration::from_secs(20))
        .await
        .expect("the standby catches up");
    // QuickFIX reconnects on its own schedule: it must be trading with this leader
    // before it is killed too (else it would skip a leader and log on only twice).
    assert!(
        wait_logons(2, Duration::from_secs(20)),
        "QuickFIX did not log on to the restarted leader{}",
        cluster.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. A plain kill of the leader: the in-sync standby takes over.
    cluster.nodes[first].kill9();
    cluster
        .wait_promoted(standby, Duration::from_secs(20))
        .await
        .expect("the standby takes over");
    cluster.nodes[first].start().expect("restart");
    // Its third logon (it reconnects after each failover, on its own schedule).
    let third = wait_logons(3, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let v = tokio::task::block_in_place(|| quickfix.finish()).expect("QuickFIX's report");
    println!("QuickFIX counterparty: {v}");
    assert!(v["sent"].as_u64().unwrap_or(0) > 300, "load ran: {v}");
    assert_eq!(
        v["unanswered_count"],
        0,
        "orders never answered: {v}{}",
        cluster.logs()
    );
    assert_eq!(v["filled"], v["sent"], "{v}");
    assert!(
        third && v["logons"].as_u64().unwrap_or(0) >= 3,
        "it failed over twice: {v}"
    );
    assert!(no_reset_nor_reject(&v), "no sequence reset, no reject: {v}");
    let check = cluster
        .stop_and_check_journals(Duration::from_secs(20))
        .await
        .expect("the journals are read");
    println!("journals: {check:?}");
    assert!(
        check.journals == 2 && check.violations.is_empty(),
        "journal invariants: {check:?}"
    );
}
