//! A failing disk under the leader, injected from outside the process: every engine runs
//! under the LD_PRELOAD shim `engine/drill/faults/fault_shim.c`, and touching a file in
//! the leader's directory makes its fsyncs, or its journal writes, fail (EIO, ENOSPC).
//! The leader must give the lease up at once and never contend again, `/healthz` must
//! say why, the in-sync standby must take over, and the counterparty must lose nothing.
//!
//! Its own test binary: the shim is passed through this process's environment.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::drill::trading;
use std::time::{Duration, Instant};

fn group() -> GroupOptions {
    // Not SQLite: its lease file would fail with the journal and blur the cause.
    GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        Backend::Postgres,
        "replicated",
        2,
    )
}

async fn healthz(cluster: &Cluster, i: usize) -> (u16, String) {
    fix_drill::http::request(
        cluster.nodes[i].admin_addr(),
        "GET",
        "/healthz",
        None,
        Duration::from_secs(1),
    )
    .await
    .unwrap_or((0, String::new()))
}

/// Which call of the engine's journal fails.
#[derive(Clone, Copy, Debug)]
enum Failing {
    Fsync,
    Write,
}

fn fail(cluster: &Cluster, i: usize, call: Failing, on: bool) {
    match call {
        Failing::Fsync => cluster.nodes[i].fail_fsync(on),
        Failing::Write => cluster.nodes[i].fail_journal_writes(on),
    }
    .expect("switch the disk fault");
}

async fn failing_disk(call: Failing, errno: &str, what: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    // Read by the engines' shim (inherited when they start).
    std::env::set_var("FIX_FAULT_ERRNO", errno);
    let mut cluster = Cluster::start(&group(), &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let (l, mut trader) = trading(&cluster, 200).await.expect("trading");
    let s = 1 - l;

    fail(&cluster, l, call, true);
    cluster
        .wait_promoted(s, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| {
            panic!("{what}: the standby must take over from a leader whose {call:?} fails: {e}")
        });
    let (code, body) = healthz(&cluster, l).await;
    assert_eq!(code, 503, "{what}: /healthz of the failed leader: {body}");
    assert!(body.contains("journal failed"), "{body}");

    // Healing the disk does not bring it back: a failed journal needs a restart.
    fail(&cluster, l, call, false);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            !cluster.nodes[l].is_leader().await,
            "{what}: the failed instance led again{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tally = trader.settle(Duration::from_secs(30)).await;
    println!("{what}: counterparty {tally:?}");
    assert!(tally.sent > 100, "{tally:?}");
    assert_eq!(
        (tally.lost, tally.gaps, tally.unflagged_duplicates),
        (0, 0, 0),
        "{what}: {tally:?}{}",
        cluster.logs()
    );

    // Restarted, it follows the new leader.
    cluster.nodes[l].kill9();
    cluster.nodes[l].start().expect("restart");
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("the restarted instance follows");
    trader.shutdown().await;
    let check = cluster
        .stop_and_check_journals(Duration::from_secs(20))
        .await
        .expect("the journals are read");
    println!("{what}: journals {check:?}");
    assert!(
        check.journals == 2 && check.violations.is_empty(),
        "{what}: journal invariants: {check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_fsync_fails_steps_down_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    std::env::set_var(
        "FIX_DRILL_ENGINE_PRELOAD",
        fix_drill::shim::build(dir.path()).expect("the fault shim"),
    );
    failing_disk(Failing::Fsync, "5", "EIO on fsync").await;
    failing_disk(Failing::Fsync, "28", "ENOSPC on fsync").await;
    failing_disk(Failing::Write, "28", "ENOSPC on write").await;
    failing_disk(Failing::Write, "5", "EIO on write").await;
    a_standby_whose_journal_fails_never_leads().await;
}

/// The standby's journal writes fail (ENOSPC) while it follows: it must say so on
/// `/healthz`, stop contending, and not lead after the leader is killed. The old leader,
/// restarted, leads again with everything it answered; the standby, restarted on a
/// healed disk, catches up.
async fn a_standby_whose_journal_fails_never_leads() {
    let dir = tempfile::tempdir().expect("tmp");
    std::env::set_var("FIX_FAULT_ERRNO", "28");
    let mut cluster = Cluster::start(&group(), &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let (l, mut trader) = trading(&cluster, 200).await.expect("trading");
    let s = 1 - l;
    fail(&cluster, s, Failing::Write, true);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = healthz(&cluster, s).await;
        if code == 503 && body.contains("journal failed") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the standby's failed journal never showed on /healthz: {code} {body}{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let readiness = cluster.nodes[s].readiness().await.expect("/readyz");
    assert!(
        !readiness.contends,
        "a failed standby must not contend: {readiness:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[l].kill9();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            !cluster.nodes[s].is_leader().await,
            "the standby with a failed journal took over{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.nodes[l].start().expect("restart the old leader");
    cluster
        .wait_promoted(l, Duration::from_secs(20))
        .await
        .expect("the restarted leader leads again");
    let tally = trader.settle(Duration::from_secs(30)).await;
    println!("failed standby: counterparty {tally:?}");
    assert!(tally.sent > 100, "{tally:?}");
    assert_eq!(
        (tally.lost, tally.gaps, tally.unflagged_duplicates),
        (0, 0, 0),
        "failed standby: {tally:?}{}",
        cluster.logs()
    );
    fail(&cluster, s, Failing::Write, false);
    cluster.nodes[s].kill9();
    cluster.nodes[s]
        .start()
        .expect("restart the standby on a healed disk");
    cluster
        .wait_caught_up(s, Duration::from_secs(20))
        .await
        .expect("the restarted standby follows");
    trader.shutdown().await;
    let check = cluster
        .stop_and_check_journals(Duration::from_secs(20))
        .await
        .expect("the journals are read");
    assert!(
        check.journals == 2 && check.violations.is_empty(),
        "failed standby: journal invariants: {check:?}"
    );
}
