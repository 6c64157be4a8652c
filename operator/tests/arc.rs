//! Route 53 ARC through the real `aws-sdk-route53recoverycontrolconfig` and
//! `aws-sdk-route53recoverycluster` clients pointed at the local emulator: both APIs
//! answer as the service documents (safety-rule refusals and unknown resources
//! included), and the router flips routing controls in one call, trying the cluster's
//! regional endpoints in turn.

use aws_sdk_route53recoverycluster::types::RoutingControlState;
use aws_sdk_route53recoverycontrolconfig::types::{NewAssertionRule, RuleConfig, RuleType};
use fix_operator::emulator::Emulator;
use fix_operator::router::arc::{ArcRouter, ClusterEndpoint};
use fix_operator::router::TrafficRouter;
use std::collections::BTreeMap;

fn config_client(url: &str) -> aws_sdk_route53recoverycontrolconfig::Client {
    use aws_sdk_route53recoverycontrolconfig::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_route53recoverycontrolconfig::Client::from_conf(
        aws_sdk_route53recoverycontrolconfig::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build(),
    )
}

fn cluster_client(url: &str) -> aws_sdk_route53recoverycluster::Client {
    use aws_sdk_route53recoverycluster::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_route53recoverycluster::Client::from_conf(
        aws_sdk_route53recoverycluster::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build(),
    )
}

/// A cluster with one control panel, a routing control per instance and an assertion
/// rule of `kind` over both; returns (cluster endpoints, controls, rule ARN).
async fn setup(
    emu: &Emulator,
    kind: RuleType,
) -> (Vec<ClusterEndpoint>, BTreeMap<String, String>, String) {
    let c = config_client(&emu.url());
    let cluster = c
        .create_cluster()
        .cluster_name("fix")
        .send()
        .await
        .expect("CreateCluster")
        .cluster
        .expect("cluster");
    let endpoints = cluster
        .cluster_endpoints()
        .iter()
        .map(|e| ClusterEndpoint {
            url: e.endpoint().unwrap_or_default().to_string(),
            region: e.region().unwrap_or_default().to_string(),
        })
        .collect();
    let cluster_arn = cluster.cluster_arn().expect("arn").to_string();
    let described = c
        .describe_cluster()
        .cluster_arn(&cluster_arn)
        .send()
        .await
        .expect("DescribeCluster (the ARN travels in the path)");
    assert_eq!(described.cluster.and_then(|c| c.name), Some("fix".into()));
    let panel = c
        .create_control_panel()
        .cluster_arn(&cluster_arn)
        .control_panel_name("fix-panel")
        .send()
        .await
        .expect("CreateControlPanel")
        .control_panel
        .and_then(|p| p.control_panel_arn)
        .expect("panel arn");
    let mut controls = BTreeMap::new();
    for name in ["engine-a", "engine-b"] {
        let arn = c
            .create_routing_control()
            .cluster_arn(&cluster_arn)
            .control_panel_arn(&panel)
            .routing_control_name(name)
            .send()
            .await
            .expect("CreateRoutingControl")
            .routing_control
            .and_then(|r| r.routing_control_arn)
            .expect("control arn");
        controls.insert(name.to_string(), arn);
    }
    let rule = c
        .create_safety_rule()
        .assertion_rule(
            NewAssertionRule::builder()
                .control_panel_arn(&panel)
                .name("keep-one-on")
                .set_asserted_controls(Some(controls.values().cloned().collect()))
                .rule_config(
                    RuleConfig::builder()
                        .r#type(kind)
                        .threshold(1)
                        .inverted(false)
                        .build(),
                )
                .wait_period_ms(5000)
                .build(),
        )
        .send()
        .await
        .expect("CreateSafetyRule")
        .assertion_rule
        .and_then(|r| r.safety_rule_arn)
        .expect("rule arn");
    (endpoints, controls, rule)
}

#[tokio::test]
async fn both_arc_apis_answer_the_sdks_as_the_service_documents() {
    let emu = Emulator::start().await.expect("emulator");
    let (_, controls, rule) = setup(&emu, RuleType::Atleast).await;
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
        e.contains("safety rule") && e.contains("keep-one-on"),
        "{e}"
    );
    let arc = emu.state().arc.lock().expect("lock");
    assert_eq!(
        arc.is_on(&controls["engine-b"]),
        Some(true),
        "nothing changed"
    );
}
