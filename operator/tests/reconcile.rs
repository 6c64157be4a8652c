//! Reconcile scenarios against the fake API server (kube's `tower_test` mock service,
//! answered by a stateful stand-in of the API server), in the style of
//! kube-rs/controller-rs: the real `reconcile` and `error_policy` are called with a real
//! `kube::Client`. The lease stores are real (SQLite), routing is the Global Accelerator
//! emulator through the real SDK, and the supervision scenarios run real engine
//! processes.

mod support;

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::node::TOKEN;
use fix_operator::emulator::Emulator;
use fix_operator::k8s::controller::{error_policy, reconcile, Context, Settings, FINALIZER};
use fix_operator::k8s::crd::FixSession;
use fix_operator::k8s::error::ReconcileError;
use fix_operator::k8s::group::Addressing;
use fix_operator::k8s::metrics::Metrics;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::runtime::controller::Action;
use kube::Api;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_api::FakeApi;

const NS: &str = "trading";
const FIXSESSIONS: &str = "apis/fix.fixengine.dev/v1alpha1/namespaces/trading/fixsessions";
const SETS: &str = "apis/apps/v1/namespaces/trading/statefulsets";
const MAPS: &str = "api/v1/namespaces/trading/configmaps";
const SERVICES: &str = "api/v1/namespaces/trading/services";
const BUDGETS: &str = "apis/policy/v1/namespaces/trading/poddisruptionbudgets";
const SECRETS: &str = "api/v1/namespaces/trading/secrets";

const SESSIONS: &str = "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '0.0.0.0:9878'\n";

struct World {
    fake: FakeApi,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
    lease_url: String,
}

fn world_with(addressing: Addressing) -> World {
    let dir = tempfile::tempdir().expect("tmp");
    let lease_url = format!("sqlite://{}", dir.path().join("lease.db").display());
    world_at(addressing, dir, lease_url)
}

fn world_at(addressing: Addressing, dir: tempfile::TempDir, lease_url: String) -> World {
    let fake = FakeApi::default();
    let metrics = Arc::new(Metrics::default());
    let settings = Settings {
        addressing,
        poll: Duration::from_millis(20),
        status_refresh: Duration::from_secs(1),
        failover_limit: Duration::from_secs(20),
        ..Settings::default()
    };
    let ctx = Context::new(fake.client(), settings, Arc::clone(&metrics));
    secret(&fake, "lease", "url", &lease_url);
    secret(&fake, "admin", "token", TOKEN);
    World {
        fake,
        ctx,
        metrics,
        _dir: dir,
        lease_url,
    }
}

/// Pods that do not answer (nothing listens on these loopback ports).
fn silent() -> Addressing {
    let port = fix_e2e::interop::free_port();
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    Addressing::Fixed(
        (0..4)
            .map(|i| (format!("fs-{i}"), addr))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn secret(fake: &FakeApi, name: &str, key: &str, value: &str) {
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    fake.put(SECRETS, serde_json::to_value(s).expect("secret json"));
}

fn fixsession(name: &str, spec: Value) -> Value {
    let mut base = json!({
        "image": "fix-engine:test",
        "instances": 2,
        "config": {"inline": SESSIONS},
        "lease": {"backend": "postgres", "urlSecret": {"name": "lease", "key": "url"}},
        "adminToken": {"name": "admin", "key": "token"},
    });
    json_patch::merge(&mut base, &spec);
    json!({
        "apiVersion": "fix.fixengine.dev/v1alpha1",
        "kind": "FixSession",
        "metadata": {"name": name, "namespace": NS},
        "spec": base,
    })
}

async fn run(w: &World, name: &str) -> Result<Action, ReconcileError> {
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    let fs = api.get(name).await.expect("the FixSession exists");
    reconcile(Arc::new(fs), Arc::clone(&w.ctx)).await
}

/// Reconciles as the controller would: the finalizer first, then until it succeeds.
async fn settle(w: &World, name: &str) -> Action {
    let first = run(w, name).await.expect("adding the finalizer");
    assert_eq!(
        first,
        Action::await_change(),
        "the first pass only adds the finalizer"
    );
    run(w, name).await.expect("applies")
}

fn condition(fs: &Value, type_: &str) -> (String, String) {
    let c = fs["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_else(|| panic!("no {type_} condition in {}", fs["status"]));
    (
        c["status"].as_str().unwrap_or_default().into(),
        c["reason"].as_str().unwrap_or_default().into(),
    )
}

#[tokio::test]
async fn create_adds_the_finalizer_then_applies_every_object_owned_and_server_side() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    let action = settle(&w, "fs").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fixsession");
    assert_eq!(fs["metadata"]["finalizers"], json!([FINALIZER]));
    let uid = fs["metadata"]["uid"].clone();
    for (collection, name) in [
        (MAPS, "fs-config"),
        (SERVICES, "fs-peers"),
        (SERVICES, "fs"),
        (BUDGETS, "fs"),
        (SETS, "fs"),
    ] {
        let obj = w
            .fake
            .get(collection, name)
            .unwrap_or_else(|| panic!("{collection}/{name} was not applied"));
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "FixSession", "{collection}/{name}");
        assert_eq!(owner["uid"], uid);
        assert_eq!(owner["controller"], true);
    }
    let applies: Vec<String> = w
        .fake
        .log()
        .into_iter()
        .filter(|l| l.starts_with("PATCH") && !l.contains("fixsessions"))
        .collect();
    assert_eq!(applies.len(), 5, "{applies:?}");
    assert!(
        applies
            .iter()
            .all(|l| l.contains("fieldManager=fix-operator") && l.contains("force=true")),
        "every object is applied server-side by fix-operator: {applies:?}"
    );
    // No spec.replicationKey: a random key is generated once, owned by the FixSession,
    // and the engines read it from there.
    let key = w
        .fake
        .get(SECRETS, "fs-replication-key")
        .expect("the generated replication key");
    assert_eq!(key["metadata"]["ownerReferences"][0]["uid"], uid);
    let generated = key["stringData"]["key"].as_str().expect("key").to_string();
    assert_eq!(generated.len(), 64, "32 random bytes, hex");
    run(&w, "fs").await.expect("again");
    let again = w
        .fake
        .get(SECRETS, "fs-replication-key")
        .expect("still there");
    assert_eq!(
        again["stringData"]["key"].as_str(),
        Some(generated.as_str()),
        "a later pass keeps the key (an engine restarted with another would be cut off)"
    );
    let set = w.fake.get(SETS, "fs").expect("statefulset");
    assert_eq!(set["spec"]["replicas"], 2);
    let map = w.fake.get(MAPS, "fs-config").expect("configmap");
    let toml0 = map["data"]["fs-0.toml"].as_str().expect("fs-0.toml");
    assert!(toml0.contains("url_env = \"FIX_LEASE_URL\""), "{toml0}");
    assert!(
        toml0.contains("key_env = \"FIX_REPLICATION_KEY\""),
        "{toml0}"
    );
    // Status: the generation observed, and the pods do not answer yet.
    assert_eq!(fs["status"]["observedGeneration"], 1);
    assert_eq!(
        condition(&fs, "Ready"),
        ("Unknown".into(), "NotPolledYet".into())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    run(&w, "fs").await.expect("refreshes the status");
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fixsession");
    assert_eq!(condition(&fs, "Ready"), ("False".into(), "NoLeader".into()));
    assert_eq!(
        condition(&fs, "Degraded"),
        ("True".into(), "InstanceUnreachable".into())
    );
}

#[tokio::test]
async fn an_update_reapplies_with_the_new_spec_and_observes_its_generation() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    settle(&w, "fs").await;
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    api.patch(
        "fs",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"instances": 3}})),
    )
    .await
    .expect("update");
    run(&w, "fs").await.expect("reapplies");
    let set = w.fake.get(SETS, "fs").expect("statefulset");
    assert_eq!(set["spec"]["replicas"], 3);
    let map = w.fake.get(MAPS, "fs-config").expect("configmap");
    assert!(
        map["data"]["fs-2.toml"].is_string(),
        "a TOML for the third pod"
    );
    let peers = map["data"]["fs-0.toml"].as_str().expect("toml");
    assert!(peers.contains("fs-2.fs-peers.trading.svc:9901"), "{peers}");
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fixsession");
    assert_eq!(fs["metadata"]["generation"], 2);
    assert_eq!(fs["status"]["observedGeneration"], 2);
    let supervised = w.ctx.groups().await["trading/fs"]
        .supervisor
        .instances()
        .len();
    assert_eq!(supervised, 3, "supervision restarted over three pods");
}

#[tokio::test]
async fn delete_drains_routing_releases_the_lease_and_removes_the_finalizer() {
    let emu = Emulator::start().await.expect("emulator");
    let group = fix_operator::emulator::provision::global_accelerator(
        &emu.url(),
        9878,
        &["nlb-0".into(), "nlb-1".into()],
    )
    .await
    .expect("provision");
    let w = world_with(silent());
    let spec = json!({"routing": {
        "backend": "global-accelerator",
        "endpointUrl": emu.url(),
        "globalAccelerator": {"endpointGroupArn": group, "endpoints": {"fs-0": "nlb-0", "fs-1": "nlb-1"}},
    }});
    w.fake.put(FIXSESSIONS, fixsession("fs", spec));
    settle(&w, "fs").await;
    // Traffic goes to fs-0 and fs-0 holds the lease, as a running group would have it.
    let ga = fix_operator::router::global_accelerator::GlobalAcceleratorRouter::new(
        fix_operator::router::global_accelerator::Layout::Weights {
            group_arn: group.clone(),
            endpoints: BTreeMap::from([
                ("fs-0".into(), "nlb-0".into()),
                ("fs-1".into(), "nlb-1".into()),
            ]),
        },
        Some(&emu.url()),
    )
    .await;
    use fix_operator::router::TrafficRouter;
    ga.route_to("fs-0").await.expect("route");
    let store = fix_lease::connect(&w.lease_url).await.expect("lease store");
    let grant = store
        .acquire("fs", "fs-0", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("granted");

    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    api.delete("fs", &Default::default()).await.expect("delete");
    assert!(
        w.fake.get(FIXSESSIONS, "fs").is_some(),
        "held by the finalizer"
    );
    run(&w, "fs").await.expect("cleanup");

    assert!(
        w.fake.get(FIXSESSIONS, "fs").is_none(),
        "finalizer removed, object gone"
    );
    assert!(
        w.fake.get(SETS, "fs").is_none(),
        "StatefulSet deleted first"
    );
    assert_eq!(
        ga.current().await.expect("read back"),
        None,
        "drained: no endpoint has weight"
    );
    let state = store.read("fs").await.expect("read").expect("row");
    assert!(!state.is_held(), "released: {state:?}");
    assert_eq!(
        state.epoch, grant.epoch,
        "releasing does not bump the epoch"
    );
    let reasons = w.fake.event_reasons(NS);
    for r in ["RoutingDrained", "LeaseReleased"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    assert!(w.ctx.groups().await.is_empty(), "supervision stopped");
}

#[tokio::test]
async fn an_arc_safety_rule_that_refuses_the_drain_is_reported_and_deletion_goes_on() {
    let emu = Emulator::start().await.expect("emulator");
    let pods = vec!["fs-0".to_string(), "fs-1".to_string()];
    let (endpoints, controls, _rule) = fix_operator::emulator::provision::arc(
        &emu.url(),
        &pods,
        aws_sdk_route53recoverycontrolconfig::types::RuleType::Atleast,
    )
    .await
    .expect("provision");
    let w = world_with(silent());
    let cluster: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"url": e.url, "region": e.region}))
        .collect();
    let spec = json!({"routing": {"backend": "arc", "endpointUrl": emu.url(),
        "arc": {"clusterEndpoints": cluster, "routingControls": controls}}});
    w.fake.put(FIXSESSIONS, fixsession("fs", spec));
    settle(&w, "fs").await;
    let router =
        fix_operator::router::arc::ArcRouter::new(endpoints, controls.clone(), Vec::new(), true)
            .await;
    use fix_operator::router::TrafficRouter;
    router.route_to("fs-1").await.expect("route");
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    api.delete("fs", &Default::default()).await.expect("delete");
    run(&w, "fs").await.expect("cleanup goes on");
    assert!(w.fake.get(FIXSESSIONS, "fs").is_none());
    assert!(w
        .fake
        .event_reasons(NS)
        .contains(&"RoutingDrainRefused".to_string()));
    assert_eq!(
        router.current().await.expect("read back").as_deref(),
        Some("fs-1"),
        "left as the rule demands"
    );
}

#[tokio::test]
async fn cleanup_waits_for_the_pods_before_releasing_the_lease() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    settle(&w, "fs").await;
    let store = fix_lease::connect(&w.lease_url).await.expect("lease store");
    store
        .acquire("fs", "fs-0", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("granted");
    w.fake.put(
        "api/v1/namespaces/trading/pods",
        json!({"metadata": {"name": "fs-0", "namespace": NS, "labels": fix_operator::k8s::resources::labels("fs")}}),
    );
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    api.delete("fs", &Default::default()).await.expect("delete");
    let err = run(&w, "fs").await.expect_err("a pod still runs");
    assert!(matches!(err, ReconcileError::PodsStillRunning(1)), "{err}");
    assert!(
        store
            .read("fs")
            .await
            .expect("read")
            .expect("row")
            .is_held(),
        "not released while a pod runs"
    );
    let fs: FixSession =
        serde_json::from_value(w.fake.get(FIXSESSIONS, "fs").expect("still there")).expect("fs");
    assert_eq!(
        error_policy(Arc::new(fs), &err, Arc::clone(&w.ctx)),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn api_errors_are_counted_and_retried_with_growing_backoff() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    run(&w, "fs").await.expect("finalizer");
    w.fake.fail("PATCH", "/statefulsets/fs", 500, 2);
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    let mut delays = Vec::new();
    for _ in 0..2 {
        let fs = Arc::new(api.get("fs").await.expect("get"));
        let err = reconcile(Arc::clone(&fs), Arc::clone(&w.ctx))
            .await
            .expect_err("the API fails");
        assert!(err.to_string().contains("applying StatefulSet fs"), "{err}");
        assert_eq!(err.metric_label(), "api_error");
        delays.push(error_policy(fs, &err, Arc::clone(&w.ctx)));
    }
    assert_eq!(
        delays,
        vec![
            Action::requeue(Duration::from_secs(1)),
            Action::requeue(Duration::from_secs(2))
        ]
    );
    assert_eq!(w.metrics.failures_of("api_error"), 2);
    run(&w, "fs").await.expect("the API is back");
    assert_eq!(
        w.ctx.failures("trading/fs"),
        0,
        "success resets the backoff"
    );
    assert!(w.fake.get(SETS, "fs").is_some());
    let text = w.metrics.encode();
    assert!(
        text.contains("fix_operator_reconcile_failures_total{error=\"api_error\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_conflict_on_the_finalizer_is_retried_and_the_next_pass_adds_it() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    w.fake.fail("PATCH", "/fixsessions/fs", 409, 1);
    let err = run(&w, "fs").await.expect_err("conflict");
    assert_eq!(err.metric_label(), "conflict");
    assert!(matches!(err, ReconcileError::Finalizer(_)), "{err}");
    assert!(w.fake.get(FIXSESSIONS, "fs").expect("fs")["metadata"]["finalizers"].is_null());
    settle(&w, "fs").await;
    assert_eq!(w.metrics.failures_of("conflict"), 1);
    // A status write that conflicts fails the pass too, and the next one writes it.
    w.fake.fail("PATCH", "/fixsessions/fs/status", 409, 1);
    let err = run(&w, "fs").await.expect_err("status conflict");
    assert!(err.to_string().contains("writing the status"), "{err}");
    run(&w, "fs").await.expect("status written");
}

#[tokio::test]
async fn an_invalid_spec_is_an_event_and_a_ready_condition_and_applies_nothing() {
    let w = world_with(silent());
    let both = json!({"config": {"inline": SESSIONS, "configMap": {"name": "x", "key": "y"}}});
    w.fake.put(FIXSESSIONS, fixsession("fs", both));
    run(&w, "fs").await.expect("finalizer");
    let err = run(&w, "fs").await.expect_err("invalid");
    assert_eq!(err.metric_label(), "invalid_spec");
    assert!(
        err.to_string()
            .contains("exactly one of inline, configMap or quickfixSettings"),
        "{err}"
    );
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fs");
    assert_eq!(
        condition(&fs, "Ready"),
        ("False".into(), "InvalidSpec".into())
    );
    assert!(w
        .fake
        .event_reasons(NS)
        .contains(&"InvalidSpec".to_string()));
    assert!(w.fake.get(SETS, "fs").is_none(), "nothing applied");

    let owned = format!("{SESSIONS}[engine.lease]\nurl = 'sqlite://x'\n");
    w.fake.put(
        FIXSESSIONS,
        fixsession("own", json!({"config": {"inline": owned}})),
    );
    run(&w, "own").await.expect("finalizer");
    let err = run(&w, "own").await.expect_err("operator-owned section");
    assert!(err.to_string().contains("[engine.lease]"), "{err}");

    let bad_session = SESSIONS.replace("role = 'acceptor'", "role = 'both'");
    w.fake.put(
        FIXSESSIONS,
        fixsession("role", json!({"config": {"inline": bad_session}})),
    );
    run(&w, "role").await.expect("finalizer");
    let err = run(&w, "role").await.expect_err("the engine's own check");
    assert!(err.to_string().contains("role"), "{err}");

    let routing = json!({"routing": {"backend": "global-accelerator", "globalAccelerator": {"endpointGroupArn": "arn:g", "endpoints": {"route-0": "nlb-0"}}}});
    w.fake.put(FIXSESSIONS, fixsession("route", routing));
    run(&w, "route").await.expect("finalizer");
    let err = run(&w, "route")
        .await
        .expect_err("routing misses an instance");
    assert!(err.to_string().contains("no entry for route-1"), "{err}");
    secret(&w.fake, "short", "key", "tooshort");
    w.fake.put(
        FIXSESSIONS,
        fixsession(
            "key",
            json!({"replicationKey": {"name": "short", "key": "key"}}),
        ),
    );
    run(&w, "key").await.expect("finalizer");
    let err = run(&w, "key").await.expect_err("a key too short");
    assert!(
        err.to_string().contains("spec.replicationKey") && err.to_string().contains("at least 16"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_configmaps_and_secrets_are_named_with_the_fix() {
    let w = world_with(silent());
    let spec = json!({"config": {"inline": null, "configMap": {"name": "sessions", "key": "engine.toml"}}});
    w.fake.put(FIXSESSIONS, fixsession("fs", spec));
    run(&w, "fs").await.expect("finalizer");
    let err = run(&w, "fs").await.expect_err("no ConfigMap");
    let text = err.to_string();
    assert!(
        text.contains("ConfigMap sessions key engine.toml")
            && text.contains("kubectl create configmap"),
        "{text}"
    );
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fs");
    assert_eq!(
        condition(&fs, "Ready"),
        ("False".into(), "ConfigMapNotFound".into())
    );

    w.fake.put(MAPS, json!({"metadata": {"name": "sessions", "namespace": NS}, "data": {"engine.toml": SESSIONS}}));
    let spec = json!({"lease": {"urlSecret": {"name": "nope", "key": "url"}}});
    w.fake.put(FIXSESSIONS, fixsession("fs2", json!({"config": {"inline": null, "configMap": {"name": "sessions", "key": "engine.toml"}}})));
    settle(&w, "fs2").await;
    assert!(
        w.fake.get(SETS, "fs2").is_some(),
        "the ConfigMap's TOML was used"
    );
    w.fake.put(FIXSESSIONS, fixsession("fs3", spec));
    run(&w, "fs3").await.expect("finalizer");
    let err = run(&w, "fs3").await.expect_err("no Secret");
    assert!(err.to_string().contains("Secret nope key url"), "{err}");
    assert_eq!(err.metric_label(), "secret_not_found");
}

#[tokio::test]
async fn quickfix_settings_from_a_configmap_become_the_engines_toml() {
    let w = world_with(silent());
    let qf = "[DEFAULT]\nConnectionType=acceptor\nHeartBtInt=30\nSocketAcceptPort=9878\nFrobnicate=1\n\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID=EXEC\nTargetCompID=CLIENT\n";
    w.fake.put(
        MAPS,
        json!({"metadata": {"name": "qf", "namespace": NS}, "data": {"session.cfg": qf}}),
    );
    let spec = json!({"config": {"inline": null, "quickfixSettings": {"name": "qf", "key": "session.cfg"}}});
    w.fake.put(FIXSESSIONS, fixsession("fs", spec));
    settle(&w, "fs").await;
    let map = w.fake.get(MAPS, "fs-config").expect("configmap");
    let toml1 = map["data"]["fs-1.toml"].as_str().expect("toml");
    let config = fix_engine::config::EngineConfig::from_toml(
        &toml1.replace("url_env = \"FIX_LEASE_URL\"", "url = \"sqlite://x\""),
        "fs-1.toml",
    )
    .expect("the engine reads it");
    assert_eq!(config.sessions[0].sender_comp_id, "EXEC");
    assert_eq!(config.sessions[0].heartbeat_interval, Some(30));
    assert_eq!(
        config.engine.lease.expect("lease").owner.as_deref(),
        Some("fs-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_as_the_binary_runs_it_watches_reconciles_and_writes_status() {
    let w = world_with(silent());
    w.fake.put(FIXSESSIONS, fixsession("fs", json!({})));
    let controller = tokio::spawn(fix_operator::k8s::controller::run(
        Arc::clone(&w.ctx),
        Some(NS),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fs = w.fake.get(FIXSESSIONS, "fs").expect("fs");
        let polled = fs["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["reason"] == "NoLeader")
        });
        if polled && w.fake.get(SETS, "fs").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not reconcile: {}\n{:?}",
            fs,
            w.fake.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.abort();
    let log = w.fake.log();
    assert!(
        log.iter().any(|l| l
            .starts_with("WATCH /apis/fix.fixengine.dev/v1alpha1/namespaces/trading/fixsessions")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("WATCH /apis/apps/v1/namespaces/trading/statefulsets")),
        "owned objects watched: {log:?}"
    );
    assert!(w
        .metrics
        .encode()
        .contains("fix_operator_reconciliations_total"));
}

/// A replicated engine pair named like the StatefulSet's pods, lease on SQLite.
async fn engines(name: &str) -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        exe: std::path::PathBuf::from(env!("CARGO_BIN_EXE_fixctl")),
        backend: Backend::Sqlite,
        durability: "replicated".into(),
        lease_ms: (1500, 300, 300),
        instances: 2,
        names: vec![format!("{name}-0"), format!("{name}-1")],
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
        .expect("engines");
    (dir, cluster)
}

async fn until(w: &World, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        run(w, name).await.expect("reconciles");
        let fs = w.fake.get(FIXSESSIONS, name).expect("fs");
        if f(&fs) {
            return fs;
        }
        assert!(Instant::now() < deadline, "{what}: status {}", fs["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_engines_leader_in_status_and_manual_failover_by_annotation_and_by_fixctl() {
    let (dir, cluster) = engines("fs").await;
    let addressing = Addressing::Fixed(
        cluster
            .nodes
            .iter()
            .map(|n| (n.spec.name.clone(), n.admin_addr()))
            .collect(),
    );
    let w = world_at(addressing, dir, cluster.lease.url.clone());
    w.fake.put(
        FIXSESSIONS,
        fixsession("fs", json!({"lease": {"group": "drill"}})),
    );
    settle(&w, "fs").await;
    // Ready as soon as the leader serves; not Degraded once the standby answers too
    // (it may still be starting when the leader is first routed to).
    let fs = until(
        &w,
        "fs",
        "a leader in the status and both instances answering",
        |fs| {
            fs["status"]["leader"].is_string()
                && condition(fs, "Ready").0 == "True"
                && condition(fs, "Degraded").0 == "False"
        },
    )
    .await;
    let first = fs["status"]["leader"].as_str().expect("leader").to_string();
    assert_eq!(
        condition(&fs, "LeaseHeld"),
        ("True".into(), "LeaderElected".into())
    );
    assert_eq!(condition(&fs, "Degraded").0, "False");
    assert!(w
        .fake
        .event_reasons(NS)
        .contains(&"LeaderElected".to_string()));

    // Manual failover through the annotation.
    let api: Api<FixSession> = Api::namespaced(w.ctx.client.clone(), NS);
    api.patch(
        "fs",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
            "fix.fixengine.dev/failover": "any", "fix.fixengine.dev/failover-id": "req-1"}}})),
    )
    .await
    .expect("annotate");
    run(&w, "fs").await.expect("carries out the failover");
    let fs = w.fake.get(FIXSESSIONS, "fs").expect("fs");
    let m = &fs["status"]["manualFailover"];
    assert_eq!(m["id"], "req-1");
    assert_eq!(m["outcome"], "Succeeded", "{m}");
    let second = fs["status"]["leader"].as_str().expect("leader").to_string();
    assert_ne!(first, second);
    let last = &fs["status"]["lastFailover"];
    assert_eq!(last["from"], first.as_str());
    assert_eq!(last["to"], second.as_str());
    assert_eq!(last["reason"], "Manual");
    let phases: Vec<&str> = last["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["Detected", "LeaseGranted", "Routed"] {
        assert!(phases.contains(&p), "{p} in {phases:?}");
    }
    let reasons = w.fake.event_reasons(NS);
    for r in [
        "ManualFailoverRequested",
        "ManualFailoverCompleted",
        "FailoverCompleted",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    // The same id is not carried out twice.
    run(&w, "fs").await.expect("reconciles");
    let again = w.fake.get(FIXSESSIONS, "fs").expect("fs");
    assert_eq!(again["status"]["leader"], second.as_str());

    // Through fixctl's request, with the controller reconciling meanwhile.
    let ctx = Arc::clone(&w.ctx);
    let loop_api = api.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            if let Ok(fs) = loop_api.get("fs").await {
                let _ = reconcile(Arc::new(fs), Arc::clone(&ctx)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let result = fix_operator::k8s::failover::request(
        w.ctx.client.clone(),
        NS,
        "fs",
        &first,
        Duration::from_secs(40),
    )
    .await
    .expect("fixctl's failover request");
    reconciler.abort();
    assert_eq!(result.outcome, "Succeeded");
    assert!(
        result.message.contains(&format!("→ {first}")),
        "{}",
        result.message
    );
    let bad = fix_operator::k8s::failover::request(
        w.ctx.client.clone(),
        NS,
        "fs",
        "fs-9",
        Duration::from_millis(300),
    )
    .await;
    assert!(
        matches!(
            bad,
            Err(fix_operator::k8s::failover::RequestError::Timeout { .. })
        ),
        "no operator loop: {bad:?}"
    );
    drop(cluster);
}
