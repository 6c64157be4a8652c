//! `fix-operator ecs`: the supervisor outside Kubernetes. Two supervisor processes elect
//! one through the engines' lease store; it moves Global Accelerator or ARC routing
//! controls (the emulator, through the real SDKs) to the leader of a real engine pair through kills of the
//! leader, and the other takes over when the acting one is killed. An old leader that
//! still claims to lead (a stand-in: a real engine stops claiming the moment its lease
//! is no longer trusted) has its task stopped on moto's ECS, and only its own.

#[path = "support/stand_in.rs"]
mod stand_in;
use stand_in::{readiness, stand_in};

#[path = "support/moto_ecs.rs"]
mod moto_ecs;

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::node::TOKEN;
use fix_operator::config::FixctlConfig;
use fix_operator::ecs_supervisor::EcsSupervisor;
use fix_operator::emulator::{provision, Emulator};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

/// A cluster name no other test run uses on the shared moto.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The supervisors' configuration: `engines` (name, admin), the lease, the router
/// section, and the engines' services in `ecs_cluster` on moto.
fn config(
    dir: &Path,
    engines: &[(String, SocketAddr)],
    lease_url: &str,
    router: &str,
    ecs_cluster: &str,
) -> PathBuf {
    let mut text = format!("token_env = \"FIX_TEST_ADMIN_TOKEN\"\n\n{router}\n");
    for (name, admin) in engines {
        text += &format!("[[engine]]\nname = \"{name}\"\nadmin = \"{admin}\"\n\n");
    }
    let services: Vec<String> = engines.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    text += &format!(
        "[lease]\nurl = \"{lease_url}\"\ngroup = \"drill\"\n\n[[ecs]]\nregion = \"{REGION}\"\ncluster = \"{ecs_cluster}\"\nservices = [{}]\nendpoint_url = \"{}\"\n\n[supervisor]\npoll_ms = 20\n",
        services.join(", "),
        moto_ecs::moto_url()
    );
    let path = dir.join("supervisor.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// One `fix-operator ecs` process.
struct SupervisorProcess {
    child: Child,
    status: SocketAddr,
}

impl SupervisorProcess {
    /// Starts it on a port of its own choosing, read from its log once it listens.
    fn start(config: &Path, owner: &str, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fix-operator"))
            .args(["ecs", "--log-json", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--owner", owner])
            .env("FIX_TEST_ADMIN_TOKEN", TOKEN)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("fix-operator ecs");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let listen = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| v["fields"]["listen"].as_str().map(str::to_string));
            if let Some(addr) = listen {
                let status = addr.parse().expect("listen address");
                return Self { child, status };
            }
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                panic!("fix-operator ecs did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its `/status`, or `None` while it does not answer.
    async fn status(&self) -> Option<Value> {
        let (code, body) = fix_engine::admin::client::request(
            self.status,
            "GET",
            "/status",
            None,
            Duration::from_secs(2),
        )
        .await
        .ok()?;
        (code == 200).then(|| serde_json::from_str(&body).expect("status JSON"))
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SupervisorProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn acting(s: &Value) -> bool {
    s["acting"].as_bool().expect("acting")
}

fn transitions(s: &Value) -> Vec<(Option<String>, String)> {
    s["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["from"].as_str().map(str::to_string),
                t["to"].as_str().expect("to").to_string(),
            )
        })
        .collect()
}

/// Waits until `check` holds for the two supervisors' statuses (`None` for one that
/// does not answer); panics with both statuses and their logs after `limit`.
async fn wait_statuses(
    what: &str,
    sups: &[&SupervisorProcess],
    logs: &Path,
    limit: Duration,
    check: impl Fn(&[Option<Value>]) -> bool,
) -> Vec<Option<Value>> {
    let deadline = Instant::now() + limit;
    loop {
        let mut seen = Vec::new();
        for s in sups {
            seen.push(s.status().await);
        }
        if check(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = std::fs::read_dir(logs)
                .expect("dir")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("supervisor-"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            panic!(
                "{what}: not within {limit:?}: {seen:#?}\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one acting supervisor of `seen`, asserting there is exactly one and that the
/// others have changed nothing.
fn the_acting_one(seen: &[Option<Value>]) -> usize {
    let acting: Vec<usize> = (0..seen.len())
        .filter(|i| seen[*i].as_ref().is_some_and(acting))
        .collect();
    assert_eq!(acting.len(), 1, "exactly one supervisor acts: {seen:#?}");
    acting[0]
}

/// The `[router]` section the supervisors use, on the emulator.
#[derive(Clone, Copy, Debug)]
enum Routing {
    GlobalAccelerator,
    Arc,
}

async fn router_section(emu: &Emulator, routing: Routing, names: &[String]) -> String {
    match routing {
        Routing::GlobalAccelerator => {
            let endpoints: Vec<String> = names.iter().map(|n| format!("nlb-{n}")).collect();
            let group = provision::global_accelerator(&emu.url(), 9878, &endpoints)
                .await
                .expect("accelerator");
            format!(
                "[router]\nkind = \"global-accelerator\"\nendpoint_url = \"{}\"\nendpoint_group_arn = \"{group}\"\nendpoints = {{ {} }}\n",
                emu.url(),
                names
                    .iter()
                    .map(|n| format!("\"{n}\" = \"nlb-{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Routing::Arc => {
            let (endpoints, controls, _rule) = provision::arc(
                &emu.url(),
                names,
                aws_sdk_route53recoverycontrolconfig::types::RuleType::Atleast,
            )
            .await
            .expect("ARC cluster, controls and an at-least-one-On rule");
            format!(
                "[router]\nkind = \"arc\"\nendpoint_url = \"{}\"\ncluster_endpoints = [{}]\ncontrols = {{ {} }}\n",
                emu.url(),
                endpoints
                    .iter()
                    .map(|e| format!("{{ url = \"{}\", region = \"{}\" }}", e.url, e.region))
                    .collect::<Vec<_>>()
                    .join(", "),
                controls
                    .iter()
                    .map(|(n, arn)| format!("\"{n}\" = \"{arn}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_supervisors_moves_global_accelerator_through_kills_of_the_leader_and_of_itself()
{
    supervised_through_kills(Routing::GlobalAccelerator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_supervisors_moves_arc_routing_controls_through_kills_of_the_leader_and_of_itself(
) {
    supervised_through_kills(Routing::Arc).await;
}

/// Two `fix-operator ecs` over a real engine pair: one acts, routing follows kills of the
/// engine leader, and the other takes over when the acting one is killed.
async fn supervised_through_kills(routing: Routing) {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions::new(
        PathBuf::from(env!("CARGO_BIN_EXE_fixctl")),
        Backend::Sqlite,
        "replicated",
        2,
    );
    let mut cluster = Cluster::start(&opts, &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let engines: Vec<(String, SocketAddr)> = cluster
        .nodes
        .iter()
        .map(|n| (n.spec.name.clone(), n.admin_addr()))
        .collect();
    let names: Vec<String> = engines.iter().map(|(n, _)| n.clone()).collect();

    let emu = Emulator::start().await.expect("emulator");
    let section = router_section(&emu, routing, &names).await;
    let ecs_cluster = unique("fix-sup");
    let service_names: Vec<&str> = names.iter().map(String::as_str).collect();
    moto_ecs::engines(REGION, &ecs_cluster, &service_names).await;
    let path = config(
        dir.path(),
        &engines,
        &cluster.lease.url,
        &section,
        &ecs_cluster,
    );
    let router = FixctlConfig::from_file(&path)
        .expect("config")
        .router(&path)
        .await
        .expect("router");

    let mut sups = [
        SupervisorProcess::start(&path, "sup-1", &dir.path().join("supervisor-1.log")),
        SupervisorProcess::start(&path, "sup-2", &dir.path().join("supervisor-2.log")),
    ];
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let refs: Vec<&SupervisorProcess> = sups.iter().collect();
    let seen = wait_statuses(
        "routed to the first leader",
        &refs,
        dir.path(),
        Duration::from_secs(20),
        |s| {
            s.iter()
                .flatten()
                .any(|v| transitions(v).iter().any(|(_, to)| *to == names[leader]))
        },
    )
    .await;
    let first = the_acting_one(&seen);
    let idle = 1 - first;
    assert!(
        transitions(seen[idle].as_ref().expect("answers")).is_empty(),
        "the supervisor that does not act changes nothing: {seen:#?}"
    );
    assert_eq!(
        router.current().await.expect("read back"),
        Some(names[leader].clone())
    );
    cluster
        .wait_caught_up(1 - leader, Duration::from_secs(20))
        .await
        .expect("standby caught up");

    // kill -9 of the engine leader: the acting supervisor moves traffic to the other.
    cluster.nodes[leader].kill9();
    let second = 1 - leader;
    let seen = wait_statuses(
        "routed to the new leader",
        &refs,
        dir.path(),
        Duration::from_secs(20),
        |s| {
            s[first].as_ref().is_some_and(|v| {
                transitions(v).last() == Some(&(Some(names[leader].clone()), names[second].clone()))
            })
        },
    )
    .await;
    assert_eq!(the_acting_one(&seen), first);
    assert!(transitions(seen[idle].as_ref().expect("answers")).is_empty());
    assert_eq!(
        router.current().await.expect("read back"),
        Some(names[second].clone())
    );
    let fences = &seen[first].as_ref().expect("answers")["fences"];
    assert_eq!(
        fences.as_array().map(Vec::len),
        Some(0),
        "a dead leader needs no fence: {fences}"
    );
    for n in &names {
        assert_eq!(
            moto_ecs::running(REGION, &ecs_cluster, n).await.0.len(),
            1,
            "{n}'s task runs"
        );
    }

    // The old leader comes back as a standby; then the acting supervisor dies.
    cluster.nodes[leader].start().expect("restart");
    cluster
        .wait_caught_up(leader, Duration::from_secs(30))
        .await
        .expect("the old leader follows");
    drop(refs);
    sups[first].kill9();
    let idle_ref = [&sups[idle]];
    wait_statuses(
        "the other supervisor acts",
        &idle_ref,
        dir.path(),
        Duration::from_secs(10),
        |s| s[0].as_ref().is_some_and(acting),
    )
    .await;

    // kill -9 of the engine leader again: the new acting supervisor, which resumed from
    // the routing read back, moves traffic back.
    cluster.nodes[second].kill9();
    let seen = wait_statuses(
        "routed back by the other supervisor",
        &idle_ref,
        dir.path(),
        Duration::from_secs(20),
        |s| {
            s[0].as_ref().is_some_and(|v| {
                transitions(v).last() == Some(&(Some(names[second].clone()), names[leader].clone()))
            })
        },
    )
    .await;
    let status = seen[0].as_ref().expect("answers");
    assert_eq!(
        transitions(status),
        vec![(Some(names[second].clone()), names[leader].clone())],
        "the new supervisor resumed from where traffic went: one transition, from the routed leader"
    );
    assert_eq!(
        router.current().await.expect("read back"),
        Some(names[leader].clone())
    );

    // Routing changed behind the supervisor's back (a deposed supervisor's call landing
    // late, say): the acting one notices when it reads the routing back, and repairs it.
    router.route_to(&names[second]).await.expect("route away");
    wait_statuses(
        "routing repaired",
        &idle_ref,
        dir.path(),
        Duration::from_secs(15),
        |s| s[0].as_ref().is_some_and(|v| transitions(v).len() == 2),
    )
    .await;
    assert_eq!(
        router.current().await.expect("read back"),
        Some(names[leader].clone())
    );
}

async fn in_process(path: &Path, owner: &str) -> SocketAddr {
    let sup = EcsSupervisor::from_file(path, owner)
        .await
        .expect("supervisor");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sup.run(listener));
    addr
}

async fn status_of(addr: SocketAddr) -> Value {
    let (_, body) =
        fix_engine::admin::client::request(addr, "GET", "/status", None, Duration::from_secs(2))
            .await
            .expect("status");
    serde_json::from_str(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_leader_that_still_claims_the_lead_has_its_own_ecs_task_stopped_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = Arc::new(Mutex::new(readiness("leader", 1)));
    let y = Arc::new(Mutex::new(readiness("standby", 0)));
    let engines = vec![
        ("engine-x".to_string(), stand_in(Arc::clone(&x)).await),
        ("engine-y".to_string(), stand_in(Arc::clone(&y)).await),
    ];
    let ecs_cluster = unique("fix-fence");
    moto_ecs::engines(REGION, &ecs_cluster, &["engine-x", "engine-y"]).await;
    let lease_url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let path = config(
        dir.path(),
        &engines,
        &lease_url,
        "[router]\nkind = \"none\"\n",
        &ecs_cluster,
    );
    let a = in_process(&path, "sup-a").await;
    let b = in_process(&path, "sup-b").await;
    let routed_to = |to: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (sa, sb) = (status_of(a).await, status_of(b).await);
            let all: Vec<_> = transitions(&sa)
                .into_iter()
                .chain(transitions(&sb))
                .collect();
            if all.iter().any(|(_, t)| t == to) {
                assert!(
                    !(acting(&sa) && acting(&sb)),
                    "two supervisors act: {sa:#} {sb:#}"
                );
                return (sa, sb);
            }
            assert!(
                Instant::now() < deadline,
                "not routed to {to}: {sa:#} {sb:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    routed_to("engine-x").await;

    // y wins the lease with epoch 2; x, hung, still claims epoch 1.
    *y.lock().expect("lock") = readiness("leader", 2);
    routed_to("engine-y").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let fences = loop {
        let (sa, sb) = (status_of(a).await, status_of(b).await);
        let fences: Vec<Value> = [sa, sb]
            .iter()
            .flat_map(|s| s["fences"].as_array().cloned().unwrap_or_default())
            .collect();
        if !fences.is_empty() {
            break fences;
        }
        assert!(Instant::now() < deadline, "no fence recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fences.len(),
        1,
        "one fence, by the acting supervisor: {fences:#?}"
    );
    let f = &fences[0];
    assert_eq!(f["instance"], "engine-x");
    assert_eq!(f["error"], Value::Null, "{f}");
    let (x_running, _) = moto_ecs::running(REGION, &ecs_cluster, "engine-x").await;
    let (y_running, _) = moto_ecs::running(REGION, &ecs_cluster, "engine-y").await;
    assert!(
        x_running.is_empty(),
        "the old leader's task is stopped: {x_running:?}"
    );
    assert_eq!(y_running.len(), 1, "the new leader's task runs on");
    assert_eq!(f["tasks"].as_array().map(Vec::len), Some(1), "{f}");
}

#[tokio::test]
async fn a_configuration_the_supervisor_cannot_act_on_is_refused_with_what_to_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let lease_url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let engines = vec![("engine-a".to_string(), "127.0.0.1:1".parse().expect("addr"))];
    let path = config(dir.path(), &engines, &lease_url, "", "c");
    let text = std::fs::read_to_string(&path).expect("read");

    let cases = [
        (
            text.replace("services = [\"engine-a\"]", "services = [\"engine-b\"]"),
            "engine engine-a has no ECS service",
        ),
        (
            text.replace(
                "[supervisor]\n",
                "[supervisor]\nelection_group = \"drill\"\n",
            ),
            "is the engines' own lease group",
        ),
        (
            text.replace("poll_ms = 20", "poll_ms = 20\nttl_ms = 800\nrenew_ms = 700"),
            "renew_ms (700 ms) must be below",
        ),
        (
            text.replace("admin = \"127.0.0.1:1\"", "admin = \"engine-a.fix.local\""),
            "is not IP:PORT or HOST:PORT",
        ),
        (
            text.replace("[lease]\n", "[lease-store]\n"),
            "unknown field",
        ),
        (
            text.replace(
                "[lease]\n",
                "[[engine]]\nname = \"engine-b\"\nadmin = \"127.0.0.1:2\"\necs_service = \"engine-a\"\n\n[lease]\n",
            ),
            "engines engine-a and engine-b share the ECS service engine-a",
        ),
        (
            format!("{text}\n[[ecs]]\nregion = \"us-west-2\"\ncluster = \"c\"\nservices = [\"engine-a\"]\n"),
            "engine engine-a has no region, and there are 2 [[ecs]] entries",
        ),
    ];
    for (i, (bad, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&p, bad).expect("write");
        let err = match EcsSupervisor::from_file(&p, "s").await {
            Ok(_) => panic!("case {i} accepted: {bad}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "case {i}: {err:?} should say {want:?}");
    }
    // A Cloud Map name is an admin address as good as an IP.
    let named = text.replace(
        "admin = \"127.0.0.1:1\"",
        "admin = \"engine-a.fix.local:9100\"",
    );
    let p = dir.path().join("named.toml");
    std::fs::write(&p, named).expect("write");
    EcsSupervisor::from_file(&p, "s")
        .await
        .expect("HOST:PORT accepted");
}
