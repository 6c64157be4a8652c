//! CloudFormation templates deployed on moto as CloudFormation would: the network stack
//! with its exports, then the stacks that import them. (`fixctl deploy` goes through
//! change sets, for which moto publishes no exports, so these use `CreateStack`.)
//! moto creates `supervisor.yaml`, `msk.yaml`, `dns.yaml` and `peering.yaml`; it cannot
//! create `engines.yaml` or `lease.yaml` (it fails inside on their resources), which
//! cfn-lint checks instead.

#[path = "support/moto_ecs.rs"]
mod moto_ecs;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use std::path::Path;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

fn cloudformation() -> aws_sdk_cloudformation::Client {
    use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_cloudformation::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto_ecs::moto_url())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_cloudformation::Client::from_conf(conf)
}

/// A name no other run uses on the shared moto (lower case, short: it becomes part of
/// resource names).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("t{:x}{:x}", std::process::id() % 4096, nanos % 0xfffff)
}

/// Creates `stack` from `infra/TEMPLATE` with `params` and waits for it; returns its
/// outputs, or the status and reason it ended in.
async fn create(
    stack: &str,
    template: &str,
    params: &[(&str, &str)],
) -> Result<Vec<(String, String)>, String> {
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra")
            .join(template),
    )
    .expect("template");
    let c = cloudformation();
    c.create_stack()
        .stack_name(stack)
        .template_body(body)
        .set_parameters(Some(
            params
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(*k)
                        .parameter_value(*v)
                        .build()
                })
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .map_err(|e| aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .expect("describe")
            .stacks()
            .first()
            .cloned()
            .expect("the stack");
        match s.stack_status() {
            Some(StackStatus::CreateComplete) => {
                return Ok(s
                    .outputs()
                    .iter()
                    .map(|o| {
                        (
                            o.output_key().unwrap_or_default().to_string(),
                            o.output_value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect())
            }
            Some(StackStatus::CreateInProgress) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return Err(format!("{other:?}: {:?}", s.stack_status_reason())),
        }
    }
}

/// The output `key` of a stack's `outputs`.
fn output(outputs: &[(String, String)], key: &str) -> String {
    outputs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {key} output in {outputs:?}"))
}

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fix-admin-token";

#[tokio::test]
async fn the_supervisor_stack_defines_two_supervisors_reading_their_configuration_without_a_shell()
{
    let name = unique();
    create(
        &format!("{name}-network"),
        "network.yaml",
        &[("Name", &name)],
    )
    .await
    .expect("network stack");
    for routing in ["global-accelerator", "arc", "none"] {
        let sup = format!("{name}{}", &routing[..2]);
        let outputs = create(
            &format!("{sup}-supervisor"),
            "supervisor.yaml",
            &[
                ("Name", &sup),
                ("NetworkStack", &name),
                ("Image", "localhost/fix-operator:0.1.0"),
                ("AdminTokenSecretArn", SECRET),
                ("EnginesCluster", "fix-engines"),
                ("Routing", routing),
                (
                    "LeaseTableArn",
                    "arn:aws:dynamodb:us-east-1:123456789012:table/fix-leases",
                ),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("supervisor stack with {routing}: {e}"));
        let cluster = output(&outputs, "ClusterName");
        let ecs = moto_ecs::client(REGION);
        let services = ecs
            .describe_services()
            .cluster(&cluster)
            .services("supervisor")
            .send()
            .await
            .expect("describe services");
        let service = services.services().first().expect("the supervisor service");
        assert_eq!(service.desired_count(), 2, "two supervisors, one acting");
        let def = ecs
            .describe_task_definition()
            .task_definition(service.task_definition().expect("task definition"))
            .send()
            .await
            .expect("task definition")
            .task_definition
            .expect("task definition");
        let container = &def.container_definitions()[0];
        assert_eq!(
            container.command(),
            [
                "ecs",
                "--config-env",
                "FIX_SUPERVISOR_CONFIG",
                "--listen",
                "0.0.0.0:8080",
                "--log-json"
            ],
            "the image has no shell: the command is fix-operator's own arguments"
        );
        assert!(
            container.entry_point().is_empty(),
            "the image's entry point is kept"
        );
        let secrets: Vec<&str> = container.secrets().iter().map(|s| s.name()).collect();
        assert_eq!(secrets, ["FIX_SUPERVISOR_CONFIG", "FIX_ADMIN_TOKEN"]);
    }
}

#[tokio::test]
async fn the_msk_stack_deploys_into_the_network_with_either_client_authentication() {
    let name = unique();
    create(
        &format!("{name}-network"),
        "network.yaml",
        &[("Name", &name)],
    )
    .await
    .expect("network stack");
    for (auth, ca) in [
        (
            "tls",
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/fix-engines",
        ),
        ("iam", ""),
    ] {
        create(
            &format!("{name}-msk-{auth}"),
            "msk.yaml",
            &[
                ("Name", &format!("{name}{auth}")),
                ("NetworkStack", &name),
                ("ClientAuth", auth),
                ("CertificateAuthorityArn", ca),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("msk stack with {auth}: {e}"));
    }
}

fn route53() -> aws_sdk_route53::Client {
    use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto_ecs::moto_url())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_route53::Client::from_conf(conf)
}

#[tokio::test]
async fn the_fix_endpoint_name_fails_over_on_the_arc_routing_controls_health_checks() {
    use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType, ResourceRecordSetFailover};
    let name = unique();
    let r53 = route53();
    let zone = r53
        .create_hosted_zone()
        .name(format!("{name}.example.com"))
        .caller_reference(&name)
        .send()
        .await
        .expect("hosted zone")
        .hosted_zone
        .expect("zone")
        .id
        .rsplit('/')
        .next()
        .expect("zone id")
        .to_string();
    // The health checks arc.yaml makes: one per region's routing control.
    let mut checks = Vec::new();
    for region in ["east", "west"] {
        let id = r53
            .create_health_check()
            .caller_reference(format!("{name}-{region}"))
            .health_check_config(
                HealthCheckConfig::builder()
                    .r#type(HealthCheckType::RecoveryControl)
                    .routing_control_arn(format!(
                        "arn:aws:route53-recovery-control::123456789012:controlpanel/p/routingcontrol/{region}"
                    ))
                    .build()
                    .expect("health check config"),
            )
            .send()
            .await
            .expect("health check")
            .health_check
            .expect("health check")
            .id;
        checks.push(id);
    }
    let record = format!("fix.{name}.example.com");
    create(
        &format!("{name}-dns"),
        "dns.yaml",
        &[
            ("HostedZoneId", &zone),
            ("RecordName", &record),
            ("PrimaryEndpoint", "fix-east.elb.us-east-1.amazonaws.com"),
            ("SecondaryEndpoint", "fix-west.elb.us-west-2.amazonaws.com"),
            ("PrimaryHealthCheckId", &checks[0]),
            ("SecondaryHealthCheckId", &checks[1]),
        ],
    )
    .await
    .expect("dns stack");
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .expect("records");
    let mut failover: Vec<(String, String, String)> = sets
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == record)
        .map(|r| {
            (
                r.failover()
                    .map(|f| f.as_str().to_string())
                    .unwrap_or_default(),
                r.health_check_id().unwrap_or_default().to_string(),
                r.resource_records()
                    .first()
                    .map(|v| v.value().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    failover.sort();
    assert_eq!(
        failover,
        vec![
            (
                ResourceRecordSetFailover::Primary.as_str().to_string(),
                checks[0].clone(),
                "fix-east.elb.us-east-1.amazonaws.com".to_string()
            ),
            (
                ResourceRecordSetFailover::Secondary.as_str().to_string(),
                checks[1].clone(),
                "fix-west.elb.us-west-2.amazonaws.com".to_string()
            ),
        ],
        "the name answers with the primary while its control's check passes, else the secondary"
    );
}

#[tokio::test]
async fn two_network_stacks_peer_with_routes_and_the_replication_port_only() {
    // moto's CloudFormation looks for the peer VPC in the stack's own region whatever
    // PeerRegion says, so both "regions" are one here; the template is the same.
    let (a, b) = (unique(), unique());
    create(&format!("{a}-network"), "network.yaml", &[("Name", &a)])
        .await
        .expect("network a");
    let b_outputs = create(
        &format!("{b}-network"),
        "network.yaml",
        &[
            ("Name", &b),
            ("VpcCidr", "10.41.0.0/16"),
            ("PublicSubnetACidr", "10.41.0.0/24"),
            ("PublicSubnetBCidr", "10.41.1.0/24"),
            ("PrivateSubnetACidr", "10.41.2.0/24"),
            ("PrivateSubnetBCidr", "10.41.3.0/24"),
        ],
    )
    .await
    .expect("network b");
    let b_vpc = output(&b_outputs, "VpcId");
    let requester = create(
        &format!("{a}-peering"),
        "peering.yaml",
        &[
            ("Name", &a),
            ("NetworkStack", &a),
            ("Side", "requester"),
            ("PeerVpcId", &b_vpc),
            ("PeerRegion", REGION),
            ("PeerVpcCidr", "10.41.0.0/16"),
        ],
    )
    .await
    .expect("requester side");
    let connection = output(&requester, "PeeringConnectionId");
    create(
        &format!("{b}-peering"),
        "peering.yaml",
        &[
            ("Name", &b),
            ("NetworkStack", &b),
            ("Side", "accepter"),
            ("PeeringConnectionId", &connection),
            ("PeerVpcCidr", "10.40.0.0/16"),
        ],
    )
    .await
    .expect("accepter side");
    let resources = cloudformation()
        .describe_stack_resources()
        .stack_name(format!("{b}-peering"))
        .send()
        .await
        .expect("resources");
    // By logical id (moto lists the egress rule without its id or type).
    let ids: Vec<&str> = resources
        .stack_resources()
        .iter()
        .filter_map(|r| r.logical_resource_id())
        .collect();
    for id in ["RouteA", "RouteB", "ReplicationIn"] {
        assert!(ids.contains(&id), "the accepter has {id}: {ids:?}");
    }
    assert!(
        !ids.contains(&"Peering"),
        "the accepter creates no second connection: {ids:?}"
    );
}
