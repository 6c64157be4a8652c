//! Multi-region rotation and disaster recovery end to end, on loopback: two "regions"
//! (us-east-1 and us-west-2) of two engine processes each, one lease in DynamoDB on moto
//! with the active-region pin, the journal replicated to all four, Route 53 ARC routing
//! controls and Global Accelerator traffic dials per region on the emulator, each
//! region's engine services on moto's ECS (what a DR fences), and a FIX counterparty
//! sending orders throughout. The shipped runbooks run as they are.

use aws_sdk_route53recoverycontrolconfig::types::RuleType;
use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::node::TOKEN;
use fix_drill::trader::{Tally, Trader};
use fix_operator::config::FixctlConfig;
use fix_operator::emulator::{provision, Emulator};
use fix_operator::runbook::executor::{run, RunOptions};
use fix_operator::runbook::report::Report;
use fix_operator::runbook::state::{RunState, StepStatus};
use fix_operator::runbook::system::System;
use fix_operator::runbook::{load, RunbookError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const ECS_SERVICES: [&str; 2] = ["engine-a", "engine-b"];

#[path = "support/moto_ecs.rs"]
mod moto_ecs;
use moto_ecs::moto_url;

async fn ecs_engines(region: &str, cluster: &str) {
    moto_ecs::engines(region, cluster, &ECS_SERVICES).await;
}

/// (desired counts of the services, running tasks) of `cluster` in `region`.
async fn ecs_state(region: &str, cluster: &str) -> (Vec<i32>, usize) {
    let c = moto_ecs::client(region);
    let services = c
        .describe_services()
        .cluster(cluster)
        .set_services(Some(ECS_SERVICES.map(String::from).to_vec()))
        .send()
        .await
        .expect("describe services");
    let desired = services
        .services()
        .iter()
        .map(|s| s.desired_count())
        .collect();
    let running = c
        .list_tasks()
        .cluster(cluster)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .expect("list tasks");
    (desired, running.task_arns().len())
}

/// Two regions of two engines, routed to the east, with a counterparty trading.
struct TwoRegions {
    dir: tempfile::TempDir,
    cluster: Cluster,
    _emulator: Emulator,
    config: PathBuf,
    trader: Trader,
    /// The ECS cluster of each region's engine services on moto.
    ecs_cluster: String,
}

fn runbook_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks")
        .join(name)
}

fn toml_map(m: &BTreeMap<String, String>) -> String {
    let kv: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
        .collect();
    format!("{{ {} }}", kv.join(", "))
}

async fn two_regions() -> TwoRegions {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_fixctl")),
        backend: Backend::Dynamodb,
        durability: "replicated".into(),
        lease_ms: (1500, 300, 300),
        instances: 4,
        names: ["use1-a", "use1-b", "usw2-a", "usw2-b"]
            .map(String::from)
            .to_vec(),
        regions: [EAST, EAST, WEST, WEST].map(String::from).to_vec(),
        active_region: Some(EAST.into()),
        cross_region_sync: false,
        kafka: None,
        netns: false,
        stalled_reader: false,
        sessions: 1,
    };
    let cluster = Cluster::start(&opts, &Servers::from_env(), dir.path())
        .await
        .expect("four engines with the lease on moto (FIX_TEST_MOTO_URL)");
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    assert!(
        leader < 2,
        "the pinned east region leads, not instance {leader}"
    );
    for i in (0..4).filter(|i| *i != leader) {
        cluster
            .wait_caught_up(i, Duration::from_secs(20))
            .await
            .expect("every standby follows the leader");
    }
    let emulator = Emulator::start().await.expect("emulator");
    let url = emulator.url();
    let regions = vec![EAST.to_string(), WEST.to_string()];
    let (endpoints, controls, _rule) = provision::arc(&url, &regions, RuleType::Atleast)
        .await
        .expect("ARC control panel");
    let dials = provision::global_accelerator_regions(&url, 9878, &regions)
        .await
        .expect("GA endpoint groups");
    let mut config = String::from("token_env = \"FIX_ROTATION_TEST_TOKEN\"\n");
    for n in &cluster.nodes {
        config.push_str(&format!(
            "[[engine]]\nname = \"{}\"\nadmin = \"{}\"\nregion = \"{}\"\n",
            n.spec.name,
            n.admin_addr(),
            n.spec.region.as_deref().unwrap_or_default()
        ));
    }
    config.push_str(&format!(
        "[lease]\nurl = \"{}\"\ngroup = \"drill\"\n",
        cluster.lease.url
    ));
    let cluster_endpoints: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{{ url = \"{}\", region = \"{}\" }}", e.url, e.region))
        .collect();
    config.push_str(&format!(
        "[[region_router]]\nkind = \"arc\"\nendpoint_url = \"{url}\"\ncluster_endpoints = [{}]\ncontrols = {}\n",
        cluster_endpoints.join(", "),
        toml_map(&controls)
    ));
    config.push_str(&format!(
        "[[region_router]]\nkind = \"global-accelerator\"\nendpoint_url = \"{url}\"\ndial_groups = {}\n",
        toml_map(&dials)
    ));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let ecs_cluster = format!("fix-engines-{}-{nanos}", std::process::id());
    ecs_engines(EAST, &ecs_cluster).await;
    ecs_engines(WEST, &ecs_cluster).await;
    for region in [EAST, WEST] {
        config.push_str(&format!(
            "[[ecs]]\nregion = \"{region}\"\ncluster = \"{ecs_cluster}\"\nservices = [\"engine-a\", \"engine-b\"]\nendpoint_url = \"{}\"\n",
            moto_url()
        ));
    }
    let path = dir.path().join("system.toml");
    std::fs::write(&path, config).expect("write the system file");
    let sys = system(&path).await;
    for r in [&sys.arc, &sys.dials].into_iter().flatten() {
        r.route_to(EAST).await.expect("route to the east");
    }
    let trader = Trader::start(&cluster.fix_addrs(), 100)
        .await
        .expect("counterparty");
    assert!(
        trader.wait_logged_on(Duration::from_secs(20)).await,
        "the counterparty never logged on"
    );
    // Orders flow for a while before anything moves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    TwoRegions {
        dir,
        cluster,
        _emulator: emulator,
        config: path,
        trader,
        ecs_cluster,
    }
}

async fn system(path: &Path) -> System {
    let cfg = FixctlConfig::from_file(path).expect("system file");
    let mut sys = System::from_config(&cfg, path).await.expect("system");
    sys.token = Some(TOKEN.into());
    sys
}

fn params(source: &str, target: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("source".to_string(), source.to_string()),
        ("target".to_string(), target.to_string()),
    ])
}

async fn run_runbook(
    g: &TwoRegions,
    file: &str,
    source: &str,
    target: &str,
    state: &Path,
) -> Result<Report, RunbookError> {
    let (book, p) = load::load(&runbook_path(file), &params(source, target)).expect("runbook");
    let sys = system(&g.config).await;
    let opts = RunOptions {
        state: state.to_path_buf(),
        poll: Duration::from_millis(50),
    };
    run(&book, &p, &sys, &opts, |line| eprintln!("[{file}] {line}")).await
}

/// Orders keep flowing after the move; then every order is accounted for.
async fn settle(g: &mut TwoRegions) -> Tally {
    let book = g.trader.book();
    let before = book.tally().sent;
    let deadline = Instant::now() + Duration::from_secs(10);
    while book.tally().sent < before + 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    g.trader.settle(Duration::from_secs(20)).await
}

fn region_of(g: &TwoRegions, name: &str) -> String {
    g.cluster
        .nodes
        .iter()
        .find(|n| n.spec.name == name)
        .and_then(|n| n.spec.region.clone())
        .unwrap_or_default()
}

fn print(what: &str, r: &Report, t: &Tally) {
    println!(
        "{what}:\n{}  orders sent {}, lost {}, duplicates without PossDupFlag {}, flagged {}, gaps {}",
        r.human(),
        t.sent,
        t.lost,
        t.unflagged_duplicates,
        t.flagged_duplicates,
        t.gaps
    );
}

fn assert_lossless(t: &Tally, logs: &str) {
    assert_eq!(
        (t.lost, t.unflagged_duplicates, t.gaps),
        (0, 0, 0),
        "{t:?}{logs}"
    );
    assert!(t.sent > 50, "too few orders to prove anything: {t:?}");
}

/// Planned rotation east → west with `rotate-region.yaml`: RPO 0, a new epoch in the
/// west, routing moved, sequence numbers continued, every message in both regions, no
/// order lost. The DR runbook refuses to run while the east still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_rotation_moves_the_lead_with_nothing_lost() {
    let mut g = two_regions().await;
    let refused = run_runbook(
        &g,
        "dr-failover.yaml",
        EAST,
        WEST,
        &g.dir.path().join("dr.json"),
    )
    .await;
    assert!(
        matches!(&refused, Err(RunbookError::Refused { check, .. }) if check.contains("no instance of region us-east-1 answers")),
        "{refused:?}"
    );
    assert!(
        !g.dir.path().join("dr.json").exists(),
        "a refused run leaves no state"
    );

    let state = g.dir.path().join("rotate.json");
    let report = run_runbook(&g, "rotate-region.yaml", EAST, WEST, &state)
        .await
        .unwrap_or_else(|e| panic!("rotation: {e}{}", g.cluster.logs()));
    let tally = settle(&mut g).await;
    print("planned rotation us-east-1 → us-west-2", &report, &tally);

    assert_eq!(report.rpo_lag_bytes, Some(0), "RPO 0");
    for region in [EAST, WEST] {
        assert_eq!(
            ecs_state(region, &g.ecs_cluster).await,
            (vec![1, 1], 2),
            "a planned rotation stops no ECS service in {region}"
        );
    }
    let rto = report.rto_ms.expect("RTO measured");
    assert!(rto > 0, "RTO {rto}");
    let after = report.leader_after.clone().expect("new leader");
    assert_eq!(region_of(&g, &after), WEST);
    assert!(report.epoch_after > report.epoch_before, "{report:?}");
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Done));
    for (session, counts) in &report.reconciled {
        let recorded = counts["recorded"];
        assert!(recorded > 0, "{session}: {counts:?}");
        assert!(
            counts.values().all(|n| *n == recorded),
            "{session}: {counts:?}"
        );
    }
    assert_lossless(&tally, &g.cluster.logs());
    // Run again with the same state file: it is finished, nothing is done twice.
    let again = run_runbook(&g, "rotate-region.yaml", EAST, WEST, &state)
        .await
        .expect("a finished run reports again");
    assert_eq!(again.epoch_after, report.epoch_after);
    g.trader.shutdown().await;
}

/// The source region is lost (both its engines killed): `dr-failover.yaml` pins the lease
/// to the west without the east, a west standby takes over from its copy of the journal,
/// routing moves, and the counterparty recovers with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_failover_after_the_source_region_is_killed() {
    let mut g = two_regions().await;
    for n in &mut g.cluster.nodes[..2] {
        n.kill9();
    }
    let killed = Instant::now();
    let report = run_runbook(
        &g,
        "dr-failover.yaml",
        EAST,
        WEST,
        &g.dir.path().join("dr.json"),
    )
    .await
    .unwrap_or_else(|e| panic!("DR: {e}{}", g.cluster.logs()));
    let since_kill = killed.elapsed();
    let tally = settle(&mut g).await;
    print(
        "DR failover from the killed us-east-1 to us-west-2",
        &report,
        &tally,
    );
    println!(
        "  from the kill to the end of the DR runbook: {} ms",
        since_kill.as_millis()
    );
    let after = report.leader_after.clone().expect("new leader");
    assert_eq!(region_of(&g, &after), WEST);
    assert!(report.epoch_after > report.epoch_before, "{report:?}");
    assert_eq!(
        ecs_state(EAST, &g.ecs_cluster).await,
        (vec![0, 0], 0),
        "the DR fenced the source: its ECS services scaled to 0, their tasks stopped"
    );
    assert_eq!(
        ecs_state(WEST, &g.ecs_cluster).await,
        (vec![1, 1], 2),
        "the target's ECS services are untouched"
    );
    assert_lossless(&tally, &g.cluster.logs());
    g.trader.shutdown().await;
}

/// The executor is killed mid-run (`fixctl runbook run` as a process, `kill -9` once the
/// lease move has started); the same command again resumes from the state file, does not
/// repeat the finished steps, and completes the rotation with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rotation_resumes_from_its_state_file() {
    let mut g = two_regions().await;
    let state = g.dir.path().join("resume.json");
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"));
        c.arg("--config")
            .arg(&g.config)
            .args(["runbook", "run"])
            .arg(runbook_path("rotate-region.yaml"))
            .args(["--param", "source=us-east-1", "--param", "target=us-west-2"])
            .arg("--state")
            .arg(&state)
            .env("FIX_ROTATION_TEST_TOKEN", TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let mut first = command().spawn().expect("start fixctl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let logout_started = loop {
        let s = RunState::load(&state).ok().flatten();
        if let Some(rec) = s.as_ref().and_then(|s| s.steps.get("move-lease")) {
            let logout = s
                .as_ref()
                .and_then(|s| s.steps.get("logout-source"))
                .cloned();
            let _ = rec;
            break logout.expect("logout-source ran before move-lease");
        }
        assert!(
            Instant::now() < deadline,
            "the run never reached move-lease: {:?}",
            first.try_wait()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _ = first.kill();
    let _ = first.wait();
    let killed = RunState::load(&state)
        .expect("state")
        .expect("a state file");
    assert!(killed.finished_ms.is_none(), "killed before the end");

    let out = command().output().expect("run fixctl again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stderr}\n{stdout}{}",
        g.cluster.logs()
    );
    assert!(stderr.contains("resuming:"), "{stderr}");
    assert!(stderr.contains("logout-source: already done"), "{stderr}");
    let done = RunState::load(&state)
        .expect("state")
        .expect("a state file");
    assert!(done.finished_ms.is_some());
    assert_eq!(
        done.steps["logout-source"].started_ms, logout_started.started_ms,
        "the finished step was not run again"
    );
    assert!(stdout.contains("RTO:"), "{stdout}");
    println!("resumed rotation:\n{stdout}");
    let tally = settle(&mut g).await;
    assert_lossless(&tally, &g.cluster.logs());
    g.trader.shutdown().await;
}

/// The dry run prints the plan, and with the system reachable says whether the run would
/// start; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_print_the_plan_and_change_nothing() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args(["runbook", "run"])
        .arg(runbook_path("rotate-region.yaml"))
        .args([
            "--param",
            "source=us-east-1",
            "--param",
            "target=us-west-2",
            "--dry-run",
        ])
        .output()
        .expect("fixctl");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    for line in [
        "runbook rotate-region (max_wait=60s, source=us-east-1, target=us-west-2)",
        "  - an instance of region us-east-1 leads",
        "1. rpo-gate: The target region has every journal record the leader made durable.",
        "     wait for the standbys of region us-west-2 lag by at most 0 byte(s) (up to 60s)",
        "     do       hold new logons and log every session out in region us-east-1",
        "     do       make us-west-2 the active region (lease pin), step the leader elsewhere down (out for 30s)",
        "     undo     make us-east-1 the active region (lease pin), step the leader elsewhere down (out for 5s)",
        "     do       ARC: routing control of us-west-2 On, the others Off",
        "     do       Global Accelerator: traffic dial of us-west-2 100, the others 0",
        "     wait for region us-west-2 stores every recorded outbound message (up to 30s)",
        "Nothing was changed (--dry-run).",
    ] {
        assert!(plan.contains(line), "missing {line:?} in:\n{plan}");
    }

    // Against a running system: `failover --region` finds the source and checks the
    // preconditions; the lease and routing stay as they were.
    let g = two_regions().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .arg("--config")
        .arg(&g.config)
        .args(["failover", "--region", WEST, "--dry-run"])
        .env("FIX_ROTATION_TEST_TOKEN", TOKEN)
        .output()
        .expect("fixctl");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        plan.contains("source=us-east-1, target=us-west-2"),
        "{plan}"
    );
    assert!(
        plan.contains("preconditions hold now: the run would start."),
        "{plan}"
    );
    let leader = g.cluster.leader().await.expect("one leader");
    assert!(leader < 2, "the east still leads");
    let sys = system(&g.config).await;
    for r in [&sys.arc, &sys.dials].into_iter().flatten() {
        assert_eq!(r.current().await.expect("routing").as_deref(), Some(EAST));
    }
    // Bad input: an unknown region and a missing parameter are named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .arg("--config")
        .arg(&g.config)
        .args(["failover", "--region", "eu-west-1", "--dry-run"])
        .env("FIX_ROTATION_TEST_TOKEN", TOKEN)
        .output()
        .expect("fixctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no instance is in region eu-west-1 (known regions: us-east-1, us-west-2)"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args(["runbook", "run"])
        .arg(runbook_path("dr-failover.yaml"))
        .args(["--param", "target=us-west-2", "--dry-run"])
        .output()
        .expect("fixctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("parameter source is required (the lost region): pass --param source=VALUE"),
        "{err}"
    );
    g.trader.shutdown().await;
}

/// What a fence does when ECS cannot stop the engines: an API that does not answer is
/// told apart from one that refuses (a wrong cluster), which a DR must never skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_fence_tells_silence_from_refusal() {
    let services = ECS_SERVICES.map(String::from).to_vec();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("addr");
    let dark = fix_operator::ecs::EcsEngines::new(
        EAST,
        "fix-engines",
        &services,
        Some(&format!("http://{closed}")),
    )
    .await;
    let e = dark.stop("test").await.expect_err("nothing answers");
    assert!(e.all_unreachable(), "{e}");
    assert_eq!(e.0.len(), 2, "every service is tried: {e}");

    let wrong =
        fix_operator::ecs::EcsEngines::new(EAST, "no-such-cluster", &services, Some(&moto_url()))
            .await;
    let e = wrong.stop("test").await.expect_err("no such cluster");
    assert!(!e.all_unreachable(), "a refusal is not silence: {e}");
}
