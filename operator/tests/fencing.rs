//! The supervisor against engines that misbehave (stand-ins serving `/readyz`): an old
//! leader that still claims to lead after the lease moved on is routed away from and
//! handed to the fencing hook.

#[path = "support/stand_in.rs"]
mod stand_in;
use stand_in::{readiness, stand_in};

use fix_operator::router::none::NoRouter;
use fix_operator::router::TrafficRouter;
use fix_operator::supervisor::{Instance, Options, Supervisor};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One instance per (name, readiness), each behind a `/readyz` stand-in answering it.
async fn instances_behind(answers: &[(&str, &Arc<Mutex<serde_json::Value>>)]) -> Vec<Instance> {
    let mut out = Vec::new();
    for (name, answer) in answers {
        out.push(Instance {
            name: (*name).into(),
            admin: stand_in(Arc::clone(answer)).await.into(),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_that_still_claims_the_lead_is_routed_away_from_and_fenced() {
    let x = Arc::new(Mutex::new(readiness("leader", 1)));
    let y = Arc::new(Mutex::new(readiness("standby", 0)));
    let instances = instances_behind(&[("x", &x), ("y", &y)]).await;
    let fenced = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook_log = Arc::clone(&fenced);
    let router = Arc::new(NoRouter::default());
    let supervisor = Supervisor::spawn(
        instances,
        Arc::clone(&router) as Arc<dyn TrafficRouter>,
        Options {
            fence: Some(Arc::new(
                move |r: fix_operator::supervisor::FenceRequest| {
                    hook_log.lock().expect("lock").push(r.instance)
                },
            )),
            ..Options::default()
        },
    );
    let wait = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let s = &supervisor;
        async move {
            while s.transitions().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "transition {n}: {:?}",
                    s.transitions()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait(1).await;
    assert_eq!(router.current().await.expect("read"), Some("x".into()));

    // y wins the lease with epoch 2; x, hung, still claims epoch 1.
    *y.lock().expect("lock") = readiness("leader", 2);
    wait(2).await;
    let t = &supervisor.transitions()[1];
    assert_eq!(
        (t.from.as_deref(), t.to.as_str(), t.epoch),
        (Some("x"), "y", 2)
    );
    assert!(!t.old_leader_fenced && t.fence_hook_called, "{t:?}");
    assert_eq!(*fenced.lock().expect("lock"), vec!["x".to_string()]);
    assert_eq!(router.current().await.expect("read"), Some("y".into()));

    // Once x reports standby nothing more happens.
    *x.lock().expect("lock") = readiness("standby", 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(supervisor.transitions().len(), 2);
    assert_eq!(fenced.lock().expect("lock").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_answering_something_unreadable_that_never_led_is_not_fenced() {
    // x leads; z answers a /readyz body this supervisor cannot read (a newer engine
    // during an upgrade, say). z never had traffic: it is not taken for a stale leader.
    let x = Arc::new(Mutex::new(readiness("leader", 1)));
    let z = Arc::new(Mutex::new(serde_json::json!(
        "a readiness format from the future"
    )));
    let instances = instances_behind(&[("x", &x), ("z", &z)]).await;
    let fenced = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook_log = Arc::clone(&fenced);
    let supervisor = Supervisor::spawn(
        instances,
        Arc::new(NoRouter::default()) as Arc<dyn TrafficRouter>,
        Options {
            fence: Some(Arc::new(
                move |r: fix_operator::supervisor::FenceRequest| {
                    hook_log.lock().expect("lock").push(r.instance)
                },
            )),
            ..Options::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while supervisor.transitions().is_empty() {
        assert!(Instant::now() < deadline, "never routed to x");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snapshot = supervisor.snapshot();
    assert!(
        snapshot
            .instances
            .iter()
            .any(|(n, s)| n == "z" && s.unreadable.is_some()),
        "{snapshot:?}"
    );
    assert!(
        fenced.lock().expect("lock").is_empty(),
        "z was fenced: {:?}",
        fenced.lock().expect("lock")
    );
}
