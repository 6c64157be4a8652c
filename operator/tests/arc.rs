//! Route 53 ARC through the real `aws-sdk-route53recoverycontrolconfig` and
//! `aws-sdk-route53recoverycluster` clients pointed at the local emulator: both APIs
//! answer as the service documents (safety-rule refusals and unknown resources
//! included), and the router flips routing controls in one call, trying the cluster's
//! regional endpoints in turn.

use aws_sdk_route53recoverycluster::types::RoutingControlState;
use aws_sdk_route53recoverycontrolconfig::types::RuleType;
use fix_operator::emulator::Emulator;
use fix_operator::router::arc::{ArcRouter, ClusterEndpoint};
use fix_operator::router::TrafficRouter;
use std::collections::BTreeMap;

use fix_operator::emulator::provision::{
    arc_cluster_client as cluster_client, arc_config_client as config_client,
};

/// A cluster with one control panel, a routing control per instance and an assertion
/// rule of `kind` over both; returns (cluster endpoints, controls, rule ARN).
async fn setup(
    emu: &Emulator,
    kind: RuleType,
) -> (Vec<ClusterEndpoint>, BTreeMap<String, String>, String) {
    let names = ["engine-a".to_string(), "engine-b".to_string()];
    fix_operator::emulator::provision::arc(&emu.url(), &names, kind)
        .await
        .expect("provision through the control-config SDK")
}

#[tokio::test]
async fn both_arc_apis_answer_the_sdks_as_the_service_documents() {
    let emu = Emulator::start().await.expect("emulator");
    let (_, controls, rule) = setup(&emu, RuleType::Atleast).await;
    let config = config_client(&emu.url());
    let cluster_arn = config
        .create_cluster()
        .cluster_name("second")
        .send()
        .await
        .expect("CreateCluster")
        .cluster
        .and_then(|c| c.cluster_arn)
        .expect("arn");
    let described = config
        .describe_cluster()
        .cluster_arn(&cluster_arn)
        .send()
        .await
        .expect("DescribeCluster (the ARN travels in the path)");
    assert_eq!(
        described.cluster.and_then(|c| c.name),
        Some("second".into())
    );
    let a = &controls["engine-a"];
    let cluster = cluster_client(&emu.url());
    cluster
        .update_routing_control_state()
        .routing_control_arn(a)
        .routing_control_state(RoutingControlState::On)
        .send()
        .await
        .expect("turn a On");
    let got = cluster
        .get_routing_control_state()
        .routing_control_arn(a)
        .send()
        .await
        .expect("GetRoutingControlState");
    assert_eq!(got.routing_control_state(), &RoutingControlState::On);
    assert_eq!(got.routing_control_name(), Some("engine-a"));

    // Turning the only On control Off breaks "at least one On": refused.
    let e = cluster
        .update_routing_control_state()
        .routing_control_arn(a)
        .routing_control_state(RoutingControlState::Off)
        .send()
        .await
        .expect_err("safety rule")
        .into_service_error();
    assert!(e.is_conflict_exception(), "{e:?}");
    // Unless the rule is overridden (break glass).
    cluster
        .update_routing_control_state()
        .routing_control_arn(a)
        .routing_control_state(RoutingControlState::Off)
        .safety_rules_to_override(&rule)
        .send()
        .await
        .expect("overridden");
    let e = cluster
        .get_routing_control_state()
        .routing_control_arn(format!("{a}-nope"))
        .send()
        .await
        .expect_err("unknown control")
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = config_client(&emu.url())
        .describe_cluster()
        .cluster_arn("arn:aws:route53-recovery-control::123456789012:cluster/none")
        .send()
        .await
        .expect_err("unknown cluster")
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
}

#[tokio::test]
async fn the_router_flips_controls_in_one_call_trying_endpoints_in_turn() {
    // The first regional endpoint is down; the router moves on to the next.
    let emu = Emulator::start_with_dead_endpoints(&[("http://127.0.0.1:1", "us-east-1")])
        .await
        .expect("emulator");
    let (endpoints, controls, _) = setup(&emu, RuleType::Atleast).await;
    assert_eq!(endpoints.len(), 2);
    let router = ArcRouter::new(endpoints, controls.clone(), Vec::new(), true).await;
    router.route_to("engine-a").await.expect("route to a");
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-a".into())
    );
    router
        .route_to("engine-b")
        .await
        .expect("route to b: one call, never zero On");
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-b".into())
    );
    {
        let arc = emu.state().arc.lock().expect("lock");
        assert_eq!(arc.is_on(&controls["engine-a"]), Some(false));
        assert_eq!(arc.is_on(&controls["engine-b"]), Some(true));
    }
    let e = router
        .route_to("engine-z")
        .await
        .expect_err("unknown")
        .to_string();
    assert!(e.contains("engine-a, engine-b"), "{e}");
    emu.throttle_next(100);
    let e = router
        .route_to("engine-a")
        .await
        .expect_err("throttled everywhere")
        .to_string();
    assert!(
        e.contains("no cluster endpoint answered") && e.contains("ThrottlingException"),
        "{e}"
    );
    emu.throttle_next(0);
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-b".into()),
        "nothing changed"
    );
}

#[tokio::test]
async fn a_safety_rule_refusal_is_reported_and_changes_nothing() {
    let emu = Emulator::start().await.expect("emulator");
    // AND: both controls must stay On, so routing to one instance is refused.
    let (endpoints, controls, _) = setup(&emu, RuleType::And).await;
    let cluster = cluster_client(&emu.url());
    let entries = controls
        .values()
        .map(|arn| {
            aws_sdk_route53recoverycluster::types::UpdateRoutingControlStateEntry::builder()
                .routing_control_arn(arn)
                .routing_control_state(RoutingControlState::On)
                .build()
                .expect("entry")
        })
        .collect();
    cluster
        .update_routing_control_states()
        .set_update_routing_control_state_entries(Some(entries))
        .send()
        .await
        .expect("both On satisfies AND");
    let router = ArcRouter::new(endpoints, controls.clone(), Vec::new(), true).await;
    let e = router
        .route_to("engine-a")
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("safety rule") && e.contains("keep-engines-on"),
        "{e}"
    );
    let arc = emu.state().arc.lock().expect("lock");
    assert_eq!(
        arc.is_on(&controls["engine-b"]),
        Some(true),
        "nothing changed"
    );
}
