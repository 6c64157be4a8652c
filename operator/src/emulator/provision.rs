//! Setting up routing resources through the real SDK clients (against the emulator or,
//! with the same calls, AWS): a Global Accelerator with one endpoint group, or an ARC
//! cluster with a control panel, a routing control per instance and an assertion rule
//! that keeps at least one of them On.

use crate::router::arc::ClusterEndpoint;
use aws_sdk_globalaccelerator::types::{EndpointConfiguration, PortRange, Protocol};
use aws_sdk_route53recoverycontrolconfig::types::{NewAssertionRule, RuleConfig, RuleType};
use std::collections::BTreeMap;

/// "Operation: Code: message" for an SDK error (service errors by their code).
fn err<E, R>(what: &str, e: aws_sdk_globalaccelerator::error::SdkError<E, R>) -> String
where
    E: aws_sdk_globalaccelerator::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_globalaccelerator::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{what}: {code}: {msg}"),
        _ => format!(
            "{what}: {}",
            aws_sdk_globalaccelerator::error::DisplayErrorContext(&e)
        ),
    }
}

/// A Global Accelerator client with test credentials in us-west-2 against `url`.
pub fn ga_client(url: &str) -> aws_sdk_globalaccelerator::Client {
    use aws_sdk_globalaccelerator::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_globalaccelerator::Client::from_conf(
        aws_sdk_globalaccelerator::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build(),
    )
}

/// An ARC control-config client with test credentials against `url`.
pub fn arc_config_client(url: &str) -> aws_sdk_route53recoverycontrolconfig::Client {
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

/// An ARC cluster data-plane client with test credentials against `url`.
pub fn arc_cluster_client(url: &str) -> aws_sdk_route53recoverycluster::Client {
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

/// An accelerator, a TCP listener on `port` and one endpoint group (us-east-1) holding
/// `endpoints` (endpoint ids) at weight 0; returns the group's ARN.
pub async fn global_accelerator(
    url: &str,
    port: u16,
    endpoints: &[String],
) -> Result<String, String> {
    let c = ga_client(url);
    let listener = accelerator_listener(&c, port).await?;
    let mut req = c
        .create_endpoint_group()
        .listener_arn(listener)
        .endpoint_group_region("us-east-1")
        .idempotency_token("fix-group");
    for id in endpoints {
        req = req.endpoint_configurations(
            EndpointConfiguration::builder()
                .endpoint_id(id)
                .weight(0)
                .build(),
        );
    }
    req.send()
        .await
        .map_err(|e| err("CreateEndpointGroup", e))?
        .endpoint_group
        .and_then(|g| g.endpoint_group_arn)
        .ok_or_else(|| "CreateEndpointGroup returned no ARN".to_string())
}

/// An accelerator, a TCP listener on `port` and one endpoint group per region in
/// `regions` (each with one endpoint, the region's load balancer) at traffic dial 0;
/// returns region → endpoint group ARN, for traffic dials between regions.
pub async fn global_accelerator_regions(
    url: &str,
    port: u16,
    regions: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let c = ga_client(url);
    let listener = accelerator_listener(&c, port).await?;
    let mut groups = BTreeMap::new();
    for region in regions {
        let arn = c
            .create_endpoint_group()
            .listener_arn(&listener)
            .endpoint_group_region(region)
            .traffic_dial_percentage(0.0)
            .endpoint_configurations(
                EndpointConfiguration::builder()
                    .endpoint_id(format!("nlb-{region}"))
                    .weight(100)
                    .build(),
            )
            .idempotency_token(format!("fix-group-{region}"))
            .send()
            .await
            .map_err(|e| err("CreateEndpointGroup", e))?
            .endpoint_group
            .and_then(|g| g.endpoint_group_arn)
            .ok_or("CreateEndpointGroup returned no ARN")?;
        groups.insert(region.clone(), arn);
    }
    Ok(groups)
}

/// An accelerator with a TCP listener on `port`; returns the listener's ARN.
async fn accelerator_listener(
    c: &aws_sdk_globalaccelerator::Client,
    port: u16,
) -> Result<String, String> {
    let acc = c
        .create_accelerator()
        .name("fix-engines")
        .idempotency_token("fix-accelerator")
        .send()
        .await
        .map_err(|e| err("CreateAccelerator", e))?
        .accelerator
        .and_then(|a| a.accelerator_arn)
        .ok_or("CreateAccelerator returned no ARN")?;
    let listener = c
        .create_listener()
        .accelerator_arn(acc)
        .port_ranges(
            PortRange::builder()
                .from_port(i32::from(port))
                .to_port(i32::from(port))
                .build(),
        )
        .protocol(Protocol::Tcp)
        .idempotency_token("fix-listener")
        .send()
        .await
        .map_err(|e| err("CreateListener", e))?
        .listener
        .and_then(|l| l.listener_arn)
        .ok_or("CreateListener returned no ARN")?;
    Ok(listener)
}

/// An ARC cluster with a control panel, one routing control per name in `instances`, and
/// an assertion rule of `kind` over them (`Atleast`: at least one On); returns the
/// cluster endpoints, instance → control ARN, and the rule's ARN.
pub async fn arc(
    url: &str,
    instances: &[String],
    kind: RuleType,
) -> Result<(Vec<ClusterEndpoint>, BTreeMap<String, String>, String), String> {
    let c = arc_config_client(url);
    let cluster = c
        .create_cluster()
        .cluster_name("fix-engines")
        .send()
        .await
        .map_err(|e| err("CreateCluster", e))?
        .cluster
        .ok_or("CreateCluster returned no cluster")?;
    let endpoints = cluster
        .cluster_endpoints()
        .iter()
        .map(|e| ClusterEndpoint {
            url: e.endpoint().unwrap_or_default().to_string(),
            region: e.region().unwrap_or_default().to_string(),
        })
        .collect();
    let cluster_arn = cluster.cluster_arn().ok_or("no cluster ARN")?.to_string();
    let panel = c
        .create_control_panel()
        .cluster_arn(&cluster_arn)
        .control_panel_name("fix-engines")
        .send()
        .await
        .map_err(|e| err("CreateControlPanel", e))?
        .control_panel
        .and_then(|p| p.control_panel_arn)
        .ok_or("CreateControlPanel returned no ARN")?;
    let mut controls = BTreeMap::new();
    for name in instances {
        let arn = c
            .create_routing_control()
            .cluster_arn(&cluster_arn)
            .control_panel_arn(&panel)
            .routing_control_name(name)
            .send()
            .await
            .map_err(|e| err("CreateRoutingControl", e))?
            .routing_control
            .and_then(|r| r.routing_control_arn)
            .ok_or("CreateRoutingControl returned no ARN")?;
        controls.insert(name.clone(), arn);
    }
    let rule = c
        .create_safety_rule()
        .assertion_rule(
            NewAssertionRule::builder()
                .control_panel_arn(&panel)
                .name("keep-engines-on")
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
        .map_err(|e| err("CreateSafetyRule", e))?
        .assertion_rule
        .and_then(|r| r.safety_rule_arn)
        .ok_or("CreateSafetyRule returned no ARN")?;
    Ok((endpoints, controls, rule))
}
