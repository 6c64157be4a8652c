//! A failing disk under the leader, injected from outside the process: every engine runs
//! under the LD_PRELOAD shim `engine/drill/faults/fault_shim.c`, and touching a file in
//! the leader's directory makes its fsyncs fail (EIO, then ENOSPC in a second group).
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

async fn failing_fsync(errno: &str, what: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    // Read by the engines' shim (inherited when they start).
    std::env::set_var("FIX_FAULT_ERRNO", errno);
    let mut cluster = Cluster::start(&group(), &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let (l, mut trader) = trading(&cluster, 200).await.expect("trading");
    let s = 1 - l;

    cluster.nodes[l].fail_fsync(true).expect("fail the disk");
    cluster
        .wait_promoted(s, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| {
            panic!("{what}: the standby must take over from a leader whose fsync fails: {e}")
        });
    let (code, body) = healthz(&cluster, l).await;
    assert_eq!(code, 503, "{what}: /healthz of the failed leader: {body}");
    assert!(body.contains("journal failed"), "{body}");

    // Healing the disk does not bring it back: a failed journal needs a restart.
    cluster.nodes[l].fail_fsync(false).expect("heal");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_fsync_fails_steps_down_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    std::env::set_var(
        "FIX_DRILL_ENGINE_PRELOAD",
        fix_drill::shim::build(dir.path()).expect("the fault shim"),
    );
    failing_fsync("5", "EIO").await;
    failing_fsync("28", "ENOSPC").await;
}
