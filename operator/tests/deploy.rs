//! `fixctl deploy` against moto (CloudFormation change sets, SSM, ECS), started by
//! scripts/test.sh (`FIX_TEST_MOTO_URL`). Each test uses its own stack names.
//!
//! The rolling upgrade runs against a real replicated engine pair (processes, SQLite
//! lease) with a counterparty trading. Moto is not faithful here: a CloudFormation update
//! that changes a task definition's image lists no resource change and leaves the ECS
//! services on their old task definitions, and moto runs no ECS tasks; so the engines are
//! not restarted, and the test checks the stack's parameters phase by phase, the leader's
//! step-down and the standbys catching up, which is what the upgrade waits on.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::trader::Trader;
use fix_operator::deploy::plan::DeployPlan;
use fix_operator::deploy::stacks::Outcome;
use fix_operator::deploy::{run, DeployError};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// The ECS supervisor's configuration (fixctl's format), written to SSM beside the
/// engines'.
const SUPERVISOR_TOML: &str = "token_env = 'FIX_ADMIN_TOKEN'\n[[engine]]\nname = 'engine-a'\nadmin = 'engine-a.fix.engines.internal:9100'\n[lease]\nurl = 'dynamodb://fix-leases?region=us-east-1'\ngroup = 'fix'\n[[ecs]]\nregion = 'us-east-1'\ncluster = 'fix-engines'\nservices = ['engine-a']\n";

fn write_plan(dir: &Path, name: &str, engine_toml: &str) -> DeployPlan {
    std::fs::write(dir.join("engine-a.toml"), engine_toml).expect("toml");
    std::fs::write(dir.join("supervisor.toml"), SUPERVISOR_TOML).expect("toml");
    let yaml = format!(
        "region: {REGION}\nendpointUrl: {}\nstacks:\n  - name: {name}-network\n    template: {}\n    parameters: {{Name: {name}}}\n  - name: {name}-config\n    template: {}\n    parameters: {{Name: {name}, ConfigParameterPrefix: /{name}/engines}}\nengineConfig:\n  prefix: /{name}/engines\n  files: {{engine-a: engine-a.toml}}\nsupervisorConfig:\n  parameter: /{name}/supervisor\n  file: supervisor.toml\n",
        moto(),
        infra("network.yaml"),
        infra("config.yaml")
    );
    let path = dir.join("deploy.yaml");
    std::fs::write(&path, yaml).expect("yaml");
    DeployPlan::from_file(&path).expect("plan")
}

async fn stack(name: &str) -> Option<aws_sdk_cloudformation::types::Stack> {
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
        .and_then(|o| o.stacks().first().cloned())
}

async fn stack_status(name: &str) -> Option<String> {
    stack(name)
        .await
        .and_then(|s| s.stack_status().map(|s| s.as_str().to_string()))
}

/// The stack's image parameters.
async fn images(name: &str) -> BTreeMap<String, String> {
    stack(name)
        .await
        .map(|s| {
            s.parameters()
                .iter()
                .filter(|p| p.parameter_key().is_some_and(|k| k.starts_with("Image")))
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
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
    assert_eq!(
        ssm_value(&format!("/{name}/supervisor")).await.as_deref(),
        Some(SUPERVISOR_TOML)
    );
    assert_eq!(
        report.parameters,
        vec![
            format!("/{name}/supervisor"),
            format!("/{name}/engines/engine-a")
        ]
    );

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

#[tokio::test]
async fn a_supervisor_configuration_fixctl_cannot_read_stops_the_deploy_before_any_stack() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("s");
    let plan = write_plan(dir.path(), &name, ENGINE_TOML);
    std::fs::write(
        dir.path().join("supervisor.toml"),
        SUPERVISOR_TOML.replace("[lease]", "[leases]"),
    )
    .expect("toml");
    let err = run(&plan, false, &|_| {}).await.expect_err("refused");
    assert!(
        err.to_string().contains("supervisor.toml") && err.to_string().contains("leases"),
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
            "fix-supervisor",
            "fix-monitoring"
        ]
    );
    let supervisor = plan
        .supervisor_config
        .as_ref()
        .expect("the example configures the ECS supervisor");
    let cfg = fix_operator::config::FixctlConfig::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/examples")
            .join(&supervisor.file),
    )
    .expect("the example supervisor configuration reads");
    assert_eq!(cfg.engines.len(), 2);
    assert_eq!(cfg.ecs[0].services, ["engine-a", "engine-b"]);
    let rollout = plan.rollout.expect("the example rolls the engines");
    assert_eq!(rollout.stack, "fix-engines");
    let pins: Vec<&str> = rollout
        .engines
        .iter()
        .map(|e| e.image_parameter.as_str())
        .collect();
    assert_eq!(pins, ["ImageEngineA", "ImageEngineB"]);
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A replicated engine pair (SQLite lease), engine-a and engine-b, with one leader and a
/// caught-up standby; returns it with the leader's and the standby's index.
async fn running_pair(dir: &Path) -> (Cluster, usize, usize) {
    let opts = GroupOptions {
        exe: std::path::PathBuf::from(env!("CARGO_BIN_EXE_fixctl")),
        backend: Backend::Sqlite,
        durability: "replicated".into(),
        lease_ms: (1500, 300, 300),
        instances: 2,
        names: vec!["engine-a".into(), "engine-b".into()],
        regions: Vec::new(),
        active_region: None,
        cross_region_sync: false,
        kafka: None,
        netns: false,
        stalled_reader: false,
        sessions: 1,
    };
    let cluster = Cluster::start(&opts, &Servers::from_env(), dir)
        .await
        .expect("cluster");
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let standby = 1 - leader;
    cluster
        .wait_caught_up(standby, Duration::from_secs(20))
        .await
        .expect("a caught-up standby");
    (cluster, leader, standby)
}

const ROLLOUT_TOKEN_ENV: &str = "FIX_TEST_ROLLOUT_TOKEN";

/// A deployment file of one engines stack (tests/fixtures/ecs-pair.yaml) at `image`,
/// with a rollout section naming the pair's admin APIs.
fn rollout_plan(
    dir: &Path,
    name: &str,
    image: &str,
    pins: &str,
    cluster: Option<(&Cluster, &str)>,
) -> DeployPlan {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecs-pair.yaml");
    let mut yaml = format!(
        "region: {REGION}\nendpointUrl: {}\nstacks:\n  - name: {name}-engines\n    template: {}\n    parameters: {{Name: {name}, Image: \"{image}\"{pins}}}\n",
        moto(),
        fixture.display()
    );
    if let Some((c, token_env)) = cluster {
        yaml.push_str(&format!(
            "rollout:\n  stack: {name}-engines\n  tokenEnv: {token_env}\n  stepDownPauseMs: 2000\n  readyTimeoutS: 60\n  engines:\n"
        ));
        for (n, pin) in c.nodes.iter().zip(["ImageEngineA", "ImageEngineB"]) {
            yaml.push_str(&format!(
                "    - {{name: {}, admin: \"{}\", imageParameter: {pin}}}\n",
                n.spec.name,
                n.admin_addr()
            ));
        }
    }
    let path = dir.join(format!(
        "{name}-{}{}.yaml",
        image.replace([':', '/'], "-"),
        if pins.is_empty() { "" } else { "-pinned" }
    ));
    std::fs::write(&path, yaml).expect("yaml");
    DeployPlan::from_file(&path).expect("plan")
}

/// The image parameter that pins engine `i` (engine-a, engine-b).
fn pin(i: usize) -> &'static str {
    ["ImageEngineA", "ImageEngineB"][i]
}

/// `fixctl deploy` with a new image on a running pair: the dry run plans the three phases
/// and changes nothing; the upgrade pins the standby to the new image first, then the
/// leader steps down and the upgraded standby takes over, then the common image moves and
/// the pins are cleared; the counterparty loses no order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_moves_the_pair_standby_first_with_no_order_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("r");
    let stack_name = format!("{name}-engines");
    let (cluster, leader, standby) = running_pair(dir.path()).await;
    let (l, s) = (
        cluster.nodes[leader].spec.name.clone(),
        cluster.nodes[standby].spec.name.clone(),
    );
    let first = rollout_plan(
        dir.path(),
        &name,
        "fix-engine:1",
        "",
        Some((&cluster, ROLLOUT_TOKEN_ENV)),
    );
    let created = run(&first, false, &|_| {}).await.expect("create");
    assert!(created.rollout.is_none(), "a first creation is no upgrade");
    assert_eq!(
        images(&stack_name).await,
        params(&[
            ("Image", "fix-engine:1"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ])
    );
    let mut trader = Trader::start(&cluster.fix_addrs(), 100)
        .await
        .expect("counterparty");
    assert!(
        trader.wait_logged_on(Duration::from_secs(20)).await,
        "the counterparty never logged on"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = rollout_plan(
        dir.path(),
        &name,
        "fix-engine:2",
        "",
        Some((&cluster, ROLLOUT_TOKEN_ENV)),
    );
    std::env::remove_var(ROLLOUT_TOKEN_ENV);
    let err = run(&second, false, &|_| {}).await.expect_err("no token");
    assert!(err.to_string().contains(ROLLOUT_TOKEN_ENV), "{err}");
    std::env::set_var(ROLLOUT_TOKEN_ENV, fix_drill::node::TOKEN);

    let plan = run(&second, true, &|_| {})
        .await
        .expect("dry run")
        .rollout
        .expect("an image change is a rolling upgrade");
    let kinds: Vec<&str> = plan.phases.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["upgrade-standby", "step-down", "upgrade-old-leader"]
    );
    assert_eq!(
        (
            plan.phases[0].engine.as_str(),
            plan.phases[1].engine.as_str()
        ),
        (s.as_str(), l.as_str())
    );
    let mut standby_pinned = params(&[
        ("Image", "fix-engine:1"),
        ("ImageEngineA", ""),
        ("ImageEngineB", ""),
    ]);
    standby_pinned.insert(pin(standby).into(), "fix-engine:2".into());
    assert_eq!(plan.phases[0].parameters, standby_pinned);
    assert_eq!(
        plan.phases[2].parameters,
        params(&[
            ("Image", "fix-engine:2"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ])
    );
    assert_eq!(
        images(&stack_name).await,
        params(&[
            ("Image", "fix-engine:1"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ]),
        "a dry run changes nothing"
    );
    assert_eq!(cluster.leader().await, Some(leader), "nor the leader");
    let file = dir.path().join(format!("{name}-fix-engine-2.yaml"));
    let dry_run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
            .args(["deploy", "--dry-run", "--file"])
            .arg(file)
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(60), dry_run)
        .await
        .expect("fixctl deploy --dry-run finishes")
        .expect("join")
        .expect("fixctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "rolling upgrade fix-engine:1 -> fix-engine:2 (plan): leader {l} before"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("1. upgrade-standby    {s}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}=fix-engine:2", pin(standby))),
        "{text}"
    );

    let report = run(&second, false, &|_| {})
        .await
        .expect("rolling upgrade")
        .rollout
        .expect("its report");
    eprintln!(
        "rolling upgrade: {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    let kinds: Vec<&str> = report.phases.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["upgrade-standby", "step-down", "upgrade-old-leader"]
    );
    assert_eq!(
        (report.leader_before.as_str(), report.leader_after.as_str()),
        (l.as_str(), s.as_str())
    );
    assert_eq!(
        report.phases[0].parameters, standby_pinned,
        "read back after phase 1"
    );
    assert_eq!(
        report.phases[0].leader, l,
        "the leader kept the lead while its standby moved"
    );
    assert_eq!(report.phases[1].leader, s, "the upgraded standby took over");
    assert_eq!(
        images(&stack_name).await,
        params(&[
            ("Image", "fix-engine:2"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ])
    );
    assert_eq!(cluster.leader().await, Some(standby));
    cluster
        .wait_caught_up(leader, Duration::from_secs(20))
        .await
        .expect("the old leader follows the new one");

    // Orders go on flowing to the new leader before the books are closed.
    let book = trader.book();
    let before = book.tally().sent;
    let deadline = Instant::now() + Duration::from_secs(20);
    while book.tally().sent < before + 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tally = trader.settle(Duration::from_secs(20)).await;
    eprintln!("orders through the rolling upgrade: {tally:?}");
    assert_eq!(
        (tally.lost, tally.unflagged_duplicates, tally.gaps),
        (0, 0, 0),
        "{tally:?}{}",
        cluster.logs()
    );
    assert!(
        tally.sent > 50,
        "too few orders to prove anything: {tally:?}"
    );

    let again = run(&second, false, &|_| {}).await.expect("redeploy");
    assert!(
        again.rollout.is_none(),
        "the same image again is no upgrade"
    );
    trader.shutdown().await;
}

/// An upgrade cut off after its first phase (the standby pinned to the new image) is
/// resumed by deploying again: the standby is not touched again, the leader steps down
/// and the old leader is upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rolling_upgrade_resumes_after_its_done_phases() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("p");
    let token_env = "FIX_TEST_ROLLOUT_TOKEN_RESUME";
    std::env::set_var(token_env, fix_drill::node::TOKEN);
    let (cluster, leader, standby) = running_pair(dir.path()).await;
    let pinned = format!(", {}: fix-engine:2", pin(standby));
    // Where a cut-off upgrade leaves the stack: the standby pinned, Image still old.
    run(
        &rollout_plan(dir.path(), &name, "fix-engine:1", &pinned, None),
        false,
        &|_| {},
    )
    .await
    .expect("create, pinned");
    let report = run(
        &rollout_plan(
            dir.path(),
            &name,
            "fix-engine:2",
            "",
            Some((&cluster, token_env)),
        ),
        false,
        &|_| {},
    )
    .await
    .expect("resumed")
    .rollout
    .expect("its report");
    let kinds: Vec<(&str, &str)> = report
        .phases
        .iter()
        .map(|p| (p.kind.as_str(), p.engine.as_str()))
        .collect();
    let l = cluster.nodes[leader].spec.name.as_str();
    assert_eq!(kinds, [("step-down", l), ("upgrade-old-leader", l)]);
    assert_eq!(report.leader_after, cluster.nodes[standby].spec.name);
    assert_eq!(
        images(&format!("{name}-engines")).await,
        params(&[
            ("Image", "fix-engine:2"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ])
    );
}

/// An upgrade with a standby down would leave no engine to take over: it is refused,
/// naming the engine, and the stack is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_with_a_standby_down_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let name = unique("s");
    let stack_name = format!("{name}-engines");
    let (mut cluster, _, standby) = running_pair(dir.path()).await;
    run(
        &rollout_plan(
            dir.path(),
            &name,
            "fix-engine:1",
            "",
            Some((&cluster, ROLLOUT_TOKEN_ENV)),
        ),
        false,
        &|_| {},
    )
    .await
    .expect("create");
    cluster.nodes[standby].kill9();
    let err = run(
        &rollout_plan(
            dir.path(),
            &name,
            "fix-engine:2",
            "",
            Some((&cluster, ROLLOUT_TOKEN_ENV)),
        ),
        false,
        &|_| {},
    )
    .await
    .expect_err("refused");
    let down = &cluster.nodes[standby].spec.name;
    assert!(
        matches!(&err, DeployError::Rollout { engine, detail } if engine == down && detail.contains("does not answer")),
        "{err}"
    );
    assert_eq!(
        images(&stack_name).await,
        params(&[
            ("Image", "fix-engine:1"),
            ("ImageEngineA", ""),
            ("ImageEngineB", "")
        ])
    );
}

#[test]
fn a_rollout_section_with_mistakes_names_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecs-pair.yaml");
    let base = format!(
        "region: us-east-1\nstacks:\n  - name: e\n    template: {}\n    parameters: {{Name: e, Image: i}}\n",
        fixture.display()
    );
    let path = dir.path().join("deploy.yaml");
    for (rollout, expected) in [
        ("rollout:\n  stack: other\n  engines: []\n", "rollout.stack other is not one of the stacks"),
        (
            "rollout:\n  stack: e\n  engines:\n    - {name: a, admin: \"127.0.0.1:1\", imageParameter: ImageEngineA}\n",
            "at least two",
        ),
        (
            "rollout:\n  stack: e\n  engines:\n    - {name: a, admin: \"127.0.0.1:1\", imageParameter: ImageEngineA}\n    - {name: b, admin: \"127.0.0.1:2\", imageParameter: ImageEngineC}\n",
            "ImageEngineC is not a parameter of",
        ),
        (
            "rollout:\n  stack: e\n  engines:\n    - {name: a, admin: \"127.0.0.1:1\", imageParameter: ImageEngineA}\n    - {name: a, admin: \"127.0.0.1:2\", imageParameter: ImageEngineB}\n",
            "a is listed twice",
        ),
        ("rollout:\n  stack: e\n  engine: []\n", "engine"),
    ] {
        std::fs::write(&path, format!("{base}{rollout}")).expect("write");
        let err = DeployPlan::from_file(&path).expect_err(rollout);
        assert!(err.to_string().contains(expected), "{rollout}: {err}");
    }
}
