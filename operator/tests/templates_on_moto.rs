//! CloudFormation templates deployed on moto as CloudFormation would: the network stack
//! with its exports, then the stacks that import them. (`fixctl deploy` goes through
//! change sets, for which moto publishes no exports, so these use `CreateStack`.)
//! moto creates `supervisor.yaml` and `msk.yaml`; it cannot create `engines.yaml` or
//! `lease.yaml` (it fails inside on their resources), which cfn-lint checks instead.

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
        let cluster = outputs
            .iter()
            .find(|(k, _)| k == "ClusterName")
            .map(|(_, v)| v.clone())
            .expect("ClusterName output");
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
async fn the_msk_stack_deploys_into_the_network() {
    let name = unique();
    create(
        &format!("{name}-network"),
        "network.yaml",
        &[("Name", &name)],
    )
    .await
    .expect("network stack");
    create(
        &format!("{name}-msk"),
        "msk.yaml",
        &[("Name", &name), ("NetworkStack", &name)],
    )
    .await
    .expect("msk stack");
}
