//! Cross-region replication with real processes: a group of four, two per region, the
//! lease in SQLite, `replicated` durability. The leader reports its standbys with their
//! regions and the cross-region lag; with `cross_region = "async"` an order is filled
//! while the other region is held back (the lag shows it, and it catches up after), with
//! `"sync"` the fill waits until a standby of the other region has the order.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::http::request;
use fix_drill::node::TOKEN;
use fix_e2e::client::{FixClient, Received};
use fix_e2e::trading::{field, fill, logon};
use std::time::{Duration, Instant};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const REMOTE: [&str; 2] = ["usw2-a", "usw2-b"];

/// Four engines in two regions, east active and leading, every standby caught up.
async fn two_regions(sync: bool) -> (tempfile::TempDir, Cluster, usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        exe: env!("CARGO_BIN_EXE_fix-drill").into(),
        backend: Backend::Sqlite,
        durability: "replicated".into(),
        lease_ms: (1500, 300, 300),
        instances: 4,
        names: ["use1-a", "use1-b", REMOTE[0], REMOTE[1]]
            .map(String::from)
            .to_vec(),
        regions: [EAST, EAST, WEST, WEST].map(String::from).to_vec(),
        active_region: Some(EAST.into()),
        cross_region_sync: sync,
        kafka: None,
        netns: false,
        stalled_reader: false,
        sessions: 1,
    };
    let cluster = Cluster::start(&opts, &Servers::from_env(), dir.path())
        .await
        .expect("four engines");
    let l = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    assert!(l < 2, "the active region (east) leads: {}", cluster.logs());
    for i in (0..4).filter(|&i| i != l) {
        cluster
            .wait_caught_up(i, Duration::from_secs(20))
            .await
            .expect("caught up");
    }
    (dir, cluster, l)
}

/// The leader's `GET /replication`.
async fn replication(cluster: &Cluster, l: usize) -> serde_json::Value {
    let (status, body) = request(
        cluster.nodes[l].admin_addr(),
        "GET",
        "/replication",
        Some(fix_drill::node::TOKEN),
        Duration::from_secs(2),
    )
    .await
    .expect("GET /replication");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

async fn cross_lag(cluster: &Cluster, l: usize) -> u64 {
    replication(cluster, l).await["cross_region_lag_bytes"]
        .as_u64()
        .expect("a multi-region leader reports cross_region_lag_bytes")
}

async fn wait_cross_lag_zero(cluster: &Cluster, l: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cross_lag(cluster, l).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the other region never caught up: {}",
            replication(cluster, l).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pauses (or resumes) the leader's stream to both standbys of the other region.
async fn hold_remote(cluster: &Cluster, l: usize, hold: bool) {
    let verb = if hold { "pause" } else { "resume" };
    for name in REMOTE {
        let (status, body) = request(
            cluster.nodes[l].admin_addr(),
            "POST",
            &format!("/replication/{verb}?standby={name}"),
            Some(TOKEN),
            Duration::from_secs(2),
        )
        .await
        .expect("admin request");
        assert_eq!(status, 200, "{verb} {name}: {body}");
    }
}

/// Sends order `cl`; returns whether its fill arrived within `wait`.
async fn filled_within(c: &mut FixClient, seq: u64, cl: &str, wait: Duration) -> bool {
    c.send(&format!(
        "35=D|34={seq}|49=CLIENT|52=<TIME>|56=EXEC|11={cl}|21=1|55=X|54=1|60=<TIME>|40=1|38=10|"
    ))
    .await
    .expect("send order");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next(left).await {
            Received::Message(m) => {
                let r = Received::Message(m);
                if field(&r, "35").as_deref() == Some("8")
                    && field(&r, "39").as_deref() == Some("2")
                {
                    assert_eq!(field(&r, "11").as_deref(), Some(cl));
                    return true;
                }
            }
            Received::TimedOut => return false,
            Received::Closed => panic!("the engine closed the session"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reports_each_standby_region_and_the_cross_region_lag() {
    let (_dir, cluster, l) = two_regions(false).await;
    let view = replication(&cluster, l).await;
    let standbys = view["standbys"].as_array().expect("standbys");
    assert_eq!(standbys.len(), 3, "{view}");
    for s in standbys {
        let name = s["name"].as_str().expect("name");
        let remote = REMOTE.contains(&name);
        assert_eq!(s["region"], if remote { WEST } else { EAST }, "{s}");
        assert_eq!(s["remote"], remote, "{s}");
        assert!(
            !name.contains('\0'),
            "the region is not part of the name: {s}"
        );
    }
    wait_cross_lag_zero(&cluster, l).await;
    // A standby is not "remote" from its own region's point of view: the follower view of
    // a standby shows no cross-region figure.
    let other = (0..4).find(|&i| i != l).expect("a standby");
    let (_, body) = request(
        cluster.nodes[other].admin_addr(),
        "GET",
        "/replication",
        Some(fix_drill::node::TOKEN),
        Duration::from_secs(2),
    )
    .await
    .expect("GET /replication");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(v["cross_region_lag_bytes"].is_null(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cross_region_fills_while_the_other_region_lags() {
    let (_dir, cluster, l) = two_regions(false).await;
    let (mut c, _) = logon(cluster.nodes[l].fix_addr(), 1).await;
    fill(&mut c, 2, "before").await;
    wait_cross_lag_zero(&cluster, l).await;
    hold_remote(&cluster, l, true).await;
    assert!(
        filled_within(&mut c, 3, "held-west", Duration::from_secs(5)).await,
        "async: the nearest standby is enough{}",
        cluster.logs()
    );
    let lag = cross_lag(&cluster, l).await;
    assert!(
        lag > 0,
        "the held region lags: {}",
        replication(&cluster, l).await
    );
    hold_remote(&cluster, l, false).await;
    wait_cross_lag_zero(&cluster, l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_cross_region_holds_the_fill_until_the_other_region_has_it() {
    let (_dir, cluster, l) = two_regions(true).await;
    let (mut c, _) = logon(cluster.nodes[l].fix_addr(), 1).await;
    fill(&mut c, 2, "before").await;
    wait_cross_lag_zero(&cluster, l).await;
    hold_remote(&cluster, l, true).await;
    // The east standby has the order at once; the fill must still wait for the west.
    assert!(
        !filled_within(&mut c, 3, "held-west", Duration::from_millis(1500)).await,
        "sync: the fill went out before any standby of the other region had the order"
    );
    assert!(cross_lag(&cluster, l).await > 0);
    hold_remote(&cluster, l, false).await;
    let mut filled = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !filled && tokio::time::Instant::now() < deadline {
        let r = c.next(Duration::from_secs(1)).await;
        assert!(!matches!(r, Received::Closed), "session closed");
        filled = field(&r, "35").as_deref() == Some("8")
            && field(&r, "11").as_deref() == Some("held-west");
    }
    assert!(
        filled,
        "the fill went out once the west had the order{}",
        cluster.logs()
    );
    wait_cross_lag_zero(&cluster, l).await;
}
