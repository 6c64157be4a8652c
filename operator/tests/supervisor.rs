//! The supervisor with the local proxy against a real engine pair (processes, SQLite
//! lease, replicated journal): traffic follows the leader through `kill -9` and through a
//! manual failover, each transition is recorded with its phases, and bad requests change
//! nothing; a manual failover with no standby that may take over steps nothing down.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::node::TOKEN;
use fix_e2e::client::Received;
use fix_e2e::trading::{fill, logon};
use fix_operator::router::local_proxy::LocalProxy;
use fix_operator::router::TrafficRouter;
use fix_operator::supervisor::{
    Instance, LeaseWatch, Options, Supervisor, SupervisorError, Transition,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A replicated engine pair (SQLite lease) run by fixctl's engine mode.
async fn pair() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        exe: std::path::PathBuf::from(env!("CARGO_BIN_EXE_fixctl")),
        backend: Backend::Sqlite,
        durability: "replicated".into(),
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
    };
    let cluster = Cluster::start(&opts, &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    (dir, cluster)
}

/// The local proxy in front of the cluster's engines and a supervisor routing it (with
/// the admin token; with `lease`, reading the lease too).
async fn proxied(cluster: &Cluster, lease: Option<LeaseWatch>) -> (Arc<LocalProxy>, Supervisor) {
    let endpoints = cluster
        .nodes
        .iter()
        .map(|n| (n.spec.name.clone(), n.fix_addr()))
        .collect();
    let proxy = Arc::new(
        LocalProxy::start("127.0.0.1:0".parse().expect("addr"), endpoints)
            .await
            .expect("proxy"),
    );
    let instances = cluster.nodes.iter().map(Instance::from).collect();
    let supervisor = Supervisor::spawn(
        instances,
        Arc::clone(&proxy) as Arc<dyn TrafficRouter>,
        Options {
            token: Some(TOKEN.into()),
            lease,
            ..Options::default()
        },
    );
    (proxy, supervisor)
}

async fn next_transition(s: &Supervisor, count: usize) -> Transition {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = s.transitions().get(count - 1) {
            return t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no transition {count}: {:?}",
            s.transitions()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_the_leader_through_a_kill_and_a_manual_failover() {
    let (_dir, mut cluster) = pair().await;
    let lease = LeaseWatch {
        store: fix_lease::connect(&cluster.lease.url)
            .await
            .expect("lease store"),
        group: "drill".into(),
    };
    let (proxy, supervisor) = proxied(&cluster, Some(lease)).await;
    let first = next_transition(&supervisor, 1).await;
    assert_eq!(first.from, None);
    assert_eq!(
        first.lease_owner.as_deref(),
        Some(first.to.as_str()),
        "{first:?}"
    );
    assert_eq!(
        proxy.current().await.expect("read back"),
        Some(first.to.clone())
    );
    let l = cluster
        .nodes
        .iter()
        .position(|n| n.spec.name == first.to)
        .expect("known leader");
    cluster
        .wait_caught_up(1 - l, Duration::from_secs(20))
        .await
        .expect("caught up");

    let (mut c, _) = logon(proxy.addr(), 1).await;
    let seq = fill(&mut c, 2, "before").await;

    // kill -9: the supervisor routes to the new leader; the client reconnects through
    // the same address and its session continues.
    cluster.nodes[l].kill9();
    assert_eq!(c.next(Duration::from_secs(5)).await, Received::Closed);
    let second = next_transition(&supervisor, 2).await;
    assert_eq!(second.from.as_deref(), Some(first.to.as_str()));
    assert_eq!(second.to, cluster.nodes[1 - l].spec.name);
    assert!(second.old_leader_fenced, "{second:?}");
    assert!(second.epoch > first.epoch);
    assert_eq!(
        second.lease_owner.as_deref(),
        Some(second.to.as_str()),
        "{second:?}"
    );
    let (mut c, their) = logon(proxy.addr(), 3).await;
    assert_eq!(their, seq + 1, "the session continues on the new leader");
    fill(&mut c, 4, "after").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while supervisor.transitions()[1].first_logon_ms.is_none() {
        assert!(Instant::now() < deadline, "first logon not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = &supervisor.transitions()[1];
    println!("kill -9 failover: {t:?}");
    assert!(t.lease_granted_ms <= t.routed_ms);
    assert!(t.routed_ms <= t.first_logon_ms.unwrap_or(0.0));

    // Bad requests change nothing.
    match supervisor
        .failover(
            Some("engine-z"),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .await
    {
        Err(SupervisorError::UnknownInstance(name, known)) => {
            assert_eq!(name, "engine-z");
            assert!(known.contains("engine-a"), "{known}");
        }
        other => panic!("{other:?}"),
    }
    assert!(proxy.route_to("engine-z").await.is_err());
    assert_eq!(
        proxy.current().await.expect("read"),
        Some(second.to.clone())
    );

    // Manual failover back to the restarted instance.
    cluster.nodes[l].start().expect("restart");
    cluster
        .wait_caught_up(l, Duration::from_secs(20))
        .await
        .expect("caught up");
    let third = supervisor
        .failover(None, Duration::from_secs(30), Duration::from_secs(20))
        .await
        .expect("manual failover");
    assert_eq!(third.to, cluster.nodes[l].spec.name);
    assert!(third.old_leader_fenced, "{third:?}");
    assert_eq!(
        c.next(Duration::from_secs(5)).await,
        Received::Closed,
        "the proxy closes connections to the demoted endpoint"
    );
    let (mut c, their) = logon(proxy.addr(), 5).await;
    assert!(their > seq + 1, "the session continues: {their}");
    fill(&mut c, 6, "back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_moves_global_accelerator_weights_through_a_kill() {
    use fix_operator::emulator::Emulator;
    use fix_operator::router::global_accelerator::{GlobalAcceleratorRouter, Layout};

    let emu = Emulator::start().await.expect("emulator");
    let group = fix_operator::emulator::provision::global_accelerator(
        &emu.url(),
        9878,
        &["nlb-a".to_string(), "nlb-b".to_string()],
    )
    .await
    .expect("provision");
    let (_dir, mut cluster) = pair().await;
    let endpoints = [("engine-a", "nlb-a"), ("engine-b", "nlb-b")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let router = GlobalAcceleratorRouter::new(
        Layout::Weights {
            group_arn: group.clone(),
            endpoints,
        },
        Some(&emu.url()),
    )
    .await;
    let instances = cluster.nodes.iter().map(Instance::from).collect();
    let supervisor = Supervisor::spawn(instances, Arc::new(router), Options::default());
    let first = next_transition(&supervisor, 1).await;
    let weight_of = |id: &str| {
        let g = emu
            .state()
            .ga
            .lock()
            .expect("lock")
            .group(&group)
            .expect("group");
        g["EndpointDescriptions"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["EndpointId"] == id).cloned())
            .map(|d| d["Weight"].clone())
    };
    let leader_nlb = if first.to == "engine-a" {
        "nlb-a"
    } else {
        "nlb-b"
    };
    let other_nlb = if first.to == "engine-a" {
        "nlb-b"
    } else {
        "nlb-a"
    };
    assert_eq!(weight_of(leader_nlb), Some(100.into()));
    assert_eq!(weight_of(other_nlb), Some(0.into()));
    let l = cluster
        .nodes
        .iter()
        .position(|n| n.spec.name == first.to)
        .expect("leader");
    cluster
        .wait_caught_up(1 - l, Duration::from_secs(20))
        .await
        .expect("caught up");
    cluster.nodes[l].kill9();
    let second = next_transition(&supervisor, 2).await;
    assert_eq!(second.to, cluster.nodes[1 - l].spec.name);
    assert!(second.old_leader_fenced);
    assert_eq!(weight_of(other_nlb), Some(100.into()), "traffic moved");
    assert_eq!(weight_of(leader_nlb), Some(0.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_without_a_standby_that_may_take_over_leaves_the_leader_leading() {
    let (_dir, cluster) = pair().await;
    let (_proxy, supervisor) = proxied(&cluster, None).await;
    let first = next_transition(&supervisor, 1).await;
    let l = cluster
        .nodes
        .iter()
        .position(|n| n.spec.name == first.to)
        .expect("known leader");
    let standby = &cluster.nodes[1 - l];

    // The only standby is frozen (SIGSTOP): nothing may take over, so the leader is not
    // stepped down (before, it was, and the group had no leader for the whole pause).
    standby.pause().expect("SIGSTOP");
    let refused = supervisor
        .failover(None, Duration::from_secs(30), Duration::from_secs(2))
        .await;
    match &refused {
        Err(SupervisorError::NoCandidate { why, .. }) => {
            assert!(why.contains(&standby.spec.name), "{why}");
            assert!(why.contains("does not answer"), "{why}");
        }
        other => panic!("expected NoCandidate: {other:?}"),
    }
    let message = refused.expect_err("refused").to_string();
    assert!(message.contains("keeps leading"), "{message}");
    let v = cluster.nodes[l].readiness().await.expect("leader answers");
    assert!(v.leads(), "{v:?}");
    assert_eq!(v.epoch, first.epoch, "the leader never stepped down: {v:?}");
    assert_eq!(supervisor.transitions().len(), 1);

    // Thawed, the standby takes over as soon as it may: the supervisor waits for that
    // itself (no wait for catching up here).
    standby.resume().expect("SIGCONT");
    let second = supervisor
        .failover(None, Duration::from_secs(30), Duration::from_secs(20))
        .await
        .expect("manual failover once the standby may take over");
    assert_eq!(second.to, standby.spec.name);
    assert!(second.epoch > first.epoch);
}
