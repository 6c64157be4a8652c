//! `fixctl deploy` against moto (CloudFormation change sets, SSM), started by
//! scripts/test.sh (`FIX_TEST_MOTO_URL`). Each test uses its own stack names.

use fix_operator::deploy::plan::DeployPlan;
use fix_operator::deploy::stacks::Outcome;
use fix_operator::deploy::{run, DeployError};
use std::path::Path;

const REGION: &str = "eu-west-3";

fn moto() -> String {
    std::env::var("FIX_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("set FIX_TEST_MOTO_URL to a moto server (scripts/test.sh starts one)")
    })
}

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    format!("{tag}{n}")
}

fn infra(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra")
        .join(name)
        .display()
        .to_string()
}

const ENGINE_TOML: &str = "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '0.0.0.0:9878'\n";

fn write_plan(dir: &Path, name: &str, engine_toml: &str) -> DeployPlan {
    std::fs::write(dir.join("engine-a.toml"), engine_toml).expect("toml");
    let yaml = format!(
        "region: {REGION}\nendpointUrl: {}\nstacks:\n  - name: {name}-network\n    template: {}\n    parameters: {{Name: {name}}}\n  - name: {name}-config\n    template: {}\n    parameters: {{Name: {name}, ConfigParameterPrefix: /{name}/engines}}\nengineConfig:\n  prefix: /{name}/engines\n  files: {{engine-a: engine-a.toml}}\n",
        moto(),
        infra("network.yaml"),
        infra("config.yaml")
    );
    let path = dir.join("deploy.yaml");
    std::fs::write(&path, yaml).expect("yaml");
    DeployPlan::from_file(&path).expect("plan")
}

async fn stack_status(name: &str) -> Option<String> {
    let conf = aws_sdk_cloudformation::Config::builder()
        .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudformation::config::Region::new(REGION))
        .endpoint_url(moto())
        .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
            "t", "t", None, None, "s",
        ))
        .build();
    let c = aws_sdk_cloudformation::Client::from_conf(conf);
    c.describe_stacks()
        .stack_name(name)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.stacks()
                .first()
                .and_then(|s| s.stack_status().map(|s| s.as_str().to_string()))
        })
}

async fn ssm_value(name: &str) -> Option<String> {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new(REGION))
        .endpoint_url(moto())
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "t", "t", None, None, "s",
        ))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
        .get_parameter()
        .name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter().and_then(|p| p.value().map(str::to_string)))
}

#[tokio::test]
async fn a_dry_run_prints_the_change_sets_and_changes_nothing_then_the_deploy_creates_the_stacks() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("d");
    let plan = write_plan(dir.path(), &name, ENGINE_TOML);
    let report = run(&plan, true, &|_| {}).await.expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.stacks.len(), 2);
    assert!(report.stacks.iter().all(|s| s.outcome == Outcome::Planned));
    let net = &report.stacks[0];
    assert!(
        net.changes.iter().any(|c| c.action == "Add"
            && c.logical_id == "Vpc"
            && c.resource_type == "AWS::EC2::VPC"),
        "{:?}",
        net.changes
    );
    assert_eq!(
        stack_status(&format!("{name}-network")).await,
        None,
        "a dry run leaves no stack"
    );
    assert_eq!(
        ssm_value(&format!("/{name}/engines/engine-a")).await,
        None,
        "nor the engines' configuration"
    );

    let report = run(&plan, false, &|_| {}).await.expect("deploy");
    assert!(
        report.stacks.iter().all(|s| s.outcome == Outcome::Created),
        "{:?}",
        report.stacks
    );
    assert_eq!(
        stack_status(&format!("{name}-network")).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_status(&format!("{name}-config")).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        ssm_value(&format!("/{name}/engines/engine-a"))
            .await
            .as_deref(),
        Some(ENGINE_TOML)
    );
    assert_eq!(report.parameters, vec![format!("/{name}/engines/engine-a")]);

    // Again with the same templates: nothing to change.
    let again = run(&plan, false, &|_| {}).await.expect("redeploy");
    for s in &again.stacks {
        assert!(
            matches!(s.outcome, Outcome::Unchanged | Outcome::Updated),
            "{s:?}"
        );
    }
    eprintln!(
        "redeploy outcomes under moto: {:?}",
        again
            .stacks
            .iter()
            .map(|s| (s.outcome, s.changes.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        stack_status(&format!("{name}-network"))
            .await
            .as_deref()
            .map(|s| s.ends_with("_COMPLETE")),
        Some(true)
    );
}

#[tokio::test]
async fn an_engine_configuration_the_engine_refuses_stops_the_deploy_before_any_stack() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("b");
    let plan = write_plan(dir.path(), &name, &ENGINE_TOML.replace("acceptor", "both"));
    let err = run(&plan, false, &|_| {}).await.expect_err("refused");
    assert!(matches!(err, DeployError::Plan(_)), "{err}");
    assert!(
        err.to_string().contains("engine-a.toml") && err.to_string().contains("role"),
        "{err}"
    );
    assert_eq!(stack_status(&format!("{name}-network")).await, None);
}

#[test]
fn a_deployment_file_with_mistakes_names_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("deploy.yaml");
    std::fs::write(
        &path,
        "region: us-east-1\nstacks:\n  - name: n\n    template: nope.yaml\n",
    )
    .expect("write");
    let err = DeployPlan::from_file(&path).expect_err("missing template");
    assert!(
        err.to_string()
            .contains("template nope.yaml does not exist"),
        "{err}"
    );
    std::fs::write(&path, "region: us-east-1\nstack: []\n").expect("write");
    let err = DeployPlan::from_file(&path).expect_err("unknown key");
    assert!(err.to_string().contains("stack"), "{err}");
    std::fs::write(
        &path,
        format!(
            "region: us-east-1\nstacks:\n  - name: 9bad\n    template: {}\n",
            infra("network.yaml")
        ),
    )
    .expect("write");
    let err = DeployPlan::from_file(&path).expect_err("bad name");
    assert!(err.to_string().contains("starting with a letter"), "{err}");
}

#[test]
fn fixctl_deploy_dry_run_prints_each_change_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("c");
    write_plan(dir.path(), &name, ENGINE_TOML);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args(["deploy", "--dry-run", "--file"])
        .arg(dir.path().join("deploy.yaml"))
        .output()
        .expect("fixctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("stack {name}-network ({REGION})")),
        "{text}"
    );
    assert!(text.contains("Add      Vpc"), "{text}");
    assert!(
        text.contains(&format!("SSM /{name}/engines/engine-a (would be written)")),
        "{text}"
    );
    assert!(text.contains("Nothing was changed (--dry-run)."), "{text}");
}

#[test]
fn the_example_deployment_file_names_templates_that_exist() {
    let plan = DeployPlan::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/examples/deploy.yaml"),
    )
    .expect("the example reads");
    let names: Vec<&str> = plan.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fix-network",
            "fix-config",
            "fix-lease",
            "fix-engines",
            "fix-monitoring"
        ]
    );
}
