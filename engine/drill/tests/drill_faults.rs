//! `fix-drill run --fault …` as CI runs it: a small fixed sample of each fault that needs
//! no second test binary's environment of its own (the long campaigns run outside CI:
//! `fix-drill run --cycles 100 --fault F`). Every engine runs under the fault shim
//! (`faults/fault_shim.c`), switched from outside the process.
//!
//! Its own test binary: the shim is passed through this process's environment.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::drill::{run, trading, DrillOptions, Fault, Report};
use fix_drill::trader::Trader;
use std::sync::Once;
use std::time::Duration;

static SHIM: Once = Once::new();

/// Every engine this process starts runs under the fault shim.
fn under_the_shim() {
    SHIM.call_once(|| {
        let shim_dir = std::env::temp_dir().join(format!("fix-drill-shim-{}", std::process::id()));
        let shim = fix_drill::shim::build(&shim_dir).expect("the fault shim");
        std::env::set_var("FIX_DRILL_ENGINE_PRELOAD", shim);
        std::env::set_var("FIX_FAULT_ERRNO", "28"); // ENOSPC
    });
}

async fn drill(backend: Backend, fault: Fault, cycles: u32) -> Report {
    let dir = tempfile::tempdir().expect("tmp");
    under_the_shim();
    let mut group = GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        backend,
        "replicated",
        2,
    );
    group.netns = fault.needs_netns();
    let opts = DrillOptions {
        group,
        cycles,
        rate: 200,
        dwell: Duration::from_millis(500),
        quiesce: false,
        fault,
    };
    let report = run(&opts, &Servers::from_env(), dir.path(), |cycle, line| {
        eprintln!("  {fault:?} cycle {cycle}: {line}")
    })
    .await
    .unwrap_or_else(|e| panic!("{fault:?} drill: {e}"));
    println!("{}\n{}", Report::header(), report.row());
    let t = &report.tally;
    assert!(t.sent > 100, "the load ran: {t:?}");
    assert_eq!(
        (
            t.lost,
            t.unflagged_duplicates,
            t.gaps,
            report.stale_takeovers,
            report.stuck_probes
        ),
        (0, 0, 0, 0, 0),
        "{fault:?}: lost, unflagged duplicates, gaps, stale or second leaders, stuck probes"
    );
    assert_eq!(report.to_leader.len(), cycles as usize);
    let j = &report.journals;
    assert_eq!(j.journals, 2, "both journals read: {j:?}");
    assert!(
        j.violations.is_empty(),
        "{fault:?}: journal invariants: {j:?}"
    );
    report
}

/// The leader's disk fills (ENOSPC on fsync) instead of a kill: it steps down at once,
/// the standby takes over with everything answered, twice. PostgreSQL: a SQLite lease
/// file would fail with the journal and blur the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_leader_hands_over_with_nothing_lost() {
    drill(Backend::Postgres, Fault::DiskFull, 2).await;
}

/// The leader's fsyncs take 3 s, past the lease's TTL of 1.5 s, instead of a kill: it
/// declares its journal failed and steps down, the standby takes over, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_slower_than_the_lease_hands_over_with_nothing_lost() {
    drill(Backend::Postgres, Fault::SlowDisk, 2).await;
}

/// The standby's wall clock 10 s ahead and the leader's 10 s behind for 3 s under load:
/// SQLite's `now` is the engine process's clock, so a lease judged by clocks would look
/// expired to the standby. It must not lead; then the usual kill and takeover, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stepped_clocks_hand_no_lease_over() {
    drill(Backend::Sqlite, Fault::ClockStep, 2).await;
}

/// A second counterparty stops reading (zero TCP window) while the leader has reports
/// for it: `/readyz` answers every probe as leader within 1 s, no standby leads, the
/// trader's orders are all answered; then the usual kill and takeover, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterparty_that_stops_reading_moves_no_lease() {
    drill(Backend::Postgres, Fault::ZeroWindow, 2).await;
}

/// The counterparty is cut from the leader only for 3 s (network namespaces; the leader
/// keeps the standby and the lease): no standby leads, the counterparty gets back in to
/// the same leader with nothing lost; then the usual kill and takeover, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterparty_cut_from_the_leader_moves_no_lease() {
    drill(Backend::Sqlite, Fault::CounterpartyCut, 2).await;
}

/// A pair on PostgreSQL under the fault shim with `durability`, trading at 200 orders/s:
/// its directory, the cluster, the leader's index and the counterparty.
async fn shim_pair(durability: &str) -> (tempfile::TempDir, Cluster, usize, Trader) {
    under_the_shim();
    let dir = tempfile::tempdir().expect("tmp");
    let group = GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        Backend::Postgres,
        durability,
        2,
    );
    let cluster = Cluster::start(&group, &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let (l, trader) = trading(&cluster, 200).await.expect("trading");
    (dir, cluster, l, trader)
}

/// Watches standby `s` for 4 s: it must never be out of the in-sync set.
async fn stays_in_sync(cluster: &Cluster, s: usize, why: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < until {
        let r = cluster.nodes[s].readiness().await.unwrap_or_default();
        assert_ne!(
            r.in_sync,
            Some(false),
            "the standby was dropped from the in-sync set {why}: {r:?}{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A leader whose fsyncs take 800 ms for 4 s under load (slower than standby_wait_ms,
/// faster than the lease): the standby, whose disk is fine, must stay in the in-sync set.
/// Found by the slow-disk campaign: the leader's sync held the journal's file lock through
/// the fsync, so the replication source could not read what was durable already, the
/// standby was blamed for the wait and dropped, and when the leader's disk then failed
/// nobody could lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_leader_disk_does_not_push_a_healthy_standby_out() {
    let (_dir, cluster, l, mut trader) = shim_pair("replicated").await;
    let s = 1 - l;
    cluster.nodes[l].slow_fsync(Some(800)).expect("slow disk");
    stays_in_sync(&cluster, s, "for the leader's slow disk").await;
    cluster.nodes[l].slow_fsync(None).expect("heal");
    assert!(
        cluster.nodes[l].is_leader().await,
        "800 ms is within the lease"
    );
    let t = trader.settle(Duration::from_secs(20)).await;
    assert_eq!((t.lost, t.unflagged_duplicates, t.gaps), (0, 0, 0), "{t:?}");
    trader.shutdown().await;
}

/// `replicated-written`: the standby's fsyncs take 800 ms under load (longer than
/// standby_wait_ms): its acknowledgements of what it *wrote* keep coming, so it stays in
/// the in-sync set (under `replicated` it is dropped: its durable acknowledgements lag).
/// Then the leader's machine is lost with its disk (`kill -9` and its journal deleted):
/// the standby, which had not synced much of what was answered, takes over with every
/// answered order, and a replacement with an empty disk catches up from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_written_keeps_a_standby_with_a_slow_disk_and_survives_the_leaders_machine() {
    let (_dir, mut cluster, l, mut trader) = shim_pair("replicated-written").await;
    let s = 1 - l;
    cluster.nodes[s]
        .slow_fsync(Some(800))
        .expect("slow standby disk");
    stays_in_sync(&cluster, s, "although it wrote everything at once").await;
    let answered = trader.book().tally().sent - trader.book().unanswered() as u64;
    cluster.nodes[l].kill9();
    let journal = cluster.nodes[l].spec.dir.join("journal");
    std::fs::remove_dir_all(&journal).expect("the leader's disk is gone");
    cluster.nodes[s].slow_fsync(None).expect("heal");
    println!("orders answered before the leader's machine was lost: {answered}");
    cluster
        .wait_promoted(s, Duration::from_secs(20))
        .await
        .expect("the standby takes over");
    let t = trader.settle(Duration::from_secs(30)).await;
    println!("counterparty: {t:?}");
    assert!(t.sent > 100, "load ran: {t:?}");
    assert_eq!(
        (t.lost, t.unflagged_duplicates, t.gaps),
        (0, 0, 0),
        "{t:?}{}",
        cluster.logs()
    );
    cluster.nodes[l]
        .start()
        .expect("a replacement with an empty disk");
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("the replacement catches up");
    trader.shutdown().await;
}

/// `replicated-written`: the standby's fsyncs take 3 s, past `sync_stall_ms` (the lease
/// TTL, 1.5 s, by default): what it writes may never reach its disk, so it stops counting
/// and the leader drops it from the in-sync set and goes on, nothing lost. (Without the
/// stall rule it stays in the set for as long as its page cache takes writes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_written_drops_a_standby_whose_disk_stalls() {
    let (_dir, cluster, l, mut trader) = shim_pair("replicated-written").await;
    let s = 1 - l;
    cluster.nodes[s]
        .slow_fsync(Some(3000))
        .expect("stalled standby disk");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = cluster.nodes[s].readiness().await.unwrap_or_default();
        if r.in_sync == Some(false) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a standby whose disk stalled stayed in the in-sync set: {r:?}{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.nodes[s].slow_fsync(None).expect("heal");
    assert!(cluster.nodes[l].is_leader().await, "the leader went on");
    let t = trader.settle(Duration::from_secs(30)).await;
    assert_eq!(
        (t.lost, t.unflagged_duplicates, t.gaps),
        (0, 0, 0),
        "{t:?}{}",
        cluster.logs()
    );
    trader.shutdown().await;
}
