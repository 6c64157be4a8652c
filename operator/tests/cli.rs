//! `fixctl` as a user runs it: help text, JSON output, and errors that say what to do.

use std::process::Command;

fn fixctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args(args)
        .output()
        .expect("run fixctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_commands_and_hides_the_engine_mode() {
    let (ok, out, _) = fixctl(&["--help"]);
    assert!(ok);
    for command in ["local", "failover", "status", "--output"] {
        assert!(out.contains(command), "{command} in {out}");
    }
    let (ok, out, _) = fixctl(&["local", "--help"]);
    assert!(ok && out.contains("up") && out.contains("drill"), "{out}");
    assert!(
        !out.contains("engine  "),
        "the engine mode is internal: {out}"
    );
    let (ok, out, _) = fixctl(&["status", "--help"]);
    assert!(ok && out.contains("NAME=ADDR"), "{out}");
}

#[test]
fn a_malformed_engine_address_says_how_to_write_it() {
    let (ok, _, err) = fixctl(&["status", "--engine", "127.0.0.1:9100"]);
    assert!(!ok);
    assert!(err.contains("NAME=IP:PORT"), "{err}");
    let (ok, _, err) = fixctl(&["status", "--engine", "a=nowhere"]);
    assert!(!ok);
    assert!(err.contains("admin listen address"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_engine_and_fails_when_none_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let toml = format!(
        "[engine]\ndata_dir = '{}'\n[engine.admin]\nlisten = '127.0.0.1:0'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        dir.path().display()
    );
    let engine =
        fix_engine::Engine::start(fix_engine::EngineConfig::from_toml(&toml, "t").expect("config"))
            .await
            .expect("engine");
    let admin = engine.admin_addr().expect("admin").to_string();
    let dead = "b=127.0.0.1:1".to_string();
    let a = format!("a={admin}");
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        fixctl(&[
            "status", "--engine", &a, "--engine", &dead, "--output", "json",
        ])
    })
    .await
    .expect("join");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(v["routing"]["router"], "none", "{out}");
    let v = &v["engines"];
    assert_eq!(v[0]["name"], "a");
    assert_eq!(v[0]["readiness"]["role"], "leader");
    assert_eq!(
        v[0]["readiness"]["sessions"][0]["id"],
        "FIX.4.4:EXEC->CLIENT"
    );
    assert_eq!(v[1]["reachable"], false);
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || fixctl(&["status", "--engine", &format!("a={admin}")]))
            .await
            .expect("join");
    assert!(ok);
    assert!(
        out.contains("leader") && out.contains("FIX.4.4:EXEC->CLIENT Disconnected"),
        "{out}"
    );
    let (ok, _, err) = fixctl(&["status", "--engine", "x=127.0.0.1:1"]);
    assert!(!ok);
    assert!(err.contains("no engine answered"), "{err}");
    engine.shutdown().await;
}

#[test]
fn local_drill_reports_every_phase_and_nothing_lost_with_each_router() {
    for (router, name) in [
        ("proxy", "local-proxy"),
        ("global-accelerator", "global-accelerator"),
        ("arc", "route53-arc"),
    ] {
        let (ok, out, err) = fixctl(&[
            "local",
            "drill",
            "--cycles",
            "1",
            "--rate",
            "100",
            "--listen",
            "127.0.0.1:0",
            "--router",
            router,
            "--output",
            "json",
        ]);
        assert!(ok, "{router}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
        assert_eq!(v["router"], name, "{out}");
        let c = &v["cycles"][0];
        assert_ne!(c["killed"], c["new_leader"], "{out}");
        for phase in [
            "detected_ms",
            "lease_granted_ms",
            "routed_ms",
            "first_logon_ms",
        ] {
            assert!(c[phase].as_f64().is_some(), "{phase} in {out}");
        }
        assert!(
            c["lease_granted_ms"].as_f64() <= c["routed_ms"].as_f64(),
            "{out}"
        );
        assert!(v["sent"].as_u64().is_some_and(|n| n > 0), "{out}");
        assert_eq!(v["sent"], v["answered"], "{out}");
        for zero in ["lost", "unflagged_duplicates", "gaps"] {
            assert_eq!(v[zero], 0, "{router}: {zero} in {out}");
        }
        assert!(err.contains("cycle 1:"), "progress on stderr: {err}");
    }
}

fn pair_config(dir: &std::path::Path, name: &str) -> fix_engine::EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{d}/{name}'\n[engine.lease]\nurl = 'sqlite://{d}/lease.db'\nowner = '{name}'\nttl_ms = 900\nrenew_interval_ms = 150\nsafety_margin_ms = 200\n[engine.admin]\nlisten = '127.0.0.1:0'\ntoken = 'tok'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        d = dir.display()
    );
    fix_engine::EngineConfig::from_toml(&toml, name).expect("config")
}

fn leads(e: &fix_engine::Engine) -> bool {
    matches!(e.handle().role(), fix_lease::Leadership::Leader { .. })
}

/// Engines `a` (leading) and `b` (standby) sharing a SQLite lease, in this process.
async fn start_pair(dir: &std::path::Path) -> (fix_engine::Engine, fix_engine::Engine) {
    let a = fix_engine::Engine::start(pair_config(dir, "a"))
        .await
        .expect("a");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !leads(&a) {
        assert!(std::time::Instant::now() < deadline, "a never led");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let b = fix_engine::Engine::start(pair_config(dir, "b"))
        .await
        .expect("b");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_the_lead_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = start_pair(dir.path()).await;
    let ea = format!("a={}", a.admin_addr().expect("admin"));
    let eb = format!("b={}", b.admin_addr().expect("admin"));
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            fixctl(&refs)
        })
    };
    let base = vec![
        "failover".to_string(),
        "--engine".into(),
        ea.clone(),
        "--engine".into(),
        eb.clone(),
    ];
    let with = |extra: &[&str]| {
        let mut v = base.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let (ok, _, err) = run(with(&["--region", "eu-west-1"])).await.expect("join");
    assert!(
        !ok && err.contains("--config FILE") && err.contains("[[region_router]]"),
        "{err}"
    );
    let (ok, _, err) = run(with(&["--to", "c"])).await.expect("join");
    assert!(
        !ok && err.contains("no such engine") && err.contains("a, b"),
        "{err}"
    );
    let (ok, _, err) = run(with(&["--to", "a"])).await.expect("join");
    assert!(!ok && err.contains("already leads"), "{err}");
    let (ok, out, err) = run(with(&["--dry-run"])).await.expect("join");
    assert!(ok, "{err}");
    assert!(
        out.contains("a steps down") && out.contains("Nothing was changed"),
        "{out}"
    );
    assert!(leads(&a), "a dry run changes nothing");
    let (ok, _, err) = run(with(&[])).await.expect("join");
    assert!(!ok && err.contains("FIX_ADMIN_TOKEN"), "{err}");

    let (ok, out, err) = run(with(&["--token", "tok", "--output", "json"]))
        .await
        .expect("join");
    assert!(ok, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str()),
        (Some("a"), Some("b")),
        "{out}"
    );
    assert!(leads(&b) && !leads(&a));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_names_the_engines_and_the_router_that_failover_moves() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = start_pair(dir.path()).await;
    let emu = fix_operator::emulator::Emulator::start()
        .await
        .expect("emulator");
    let group = fix_operator::emulator::provision::global_accelerator(
        &emu.url(),
        9878,
        &["nlb-a".to_string(), "nlb-b".to_string()],
    )
    .await
    .expect("provision");
    let write = |router: &str| {
        let path = dir.path().join("fixctl.toml");
        let text = format!(
            "token_env = 'FIXCTL_TEST_TOKEN'\n[[engine]]\nname = 'a'\nadmin = '{}'\n[[engine]]\nname = 'b'\nadmin = '{}'\n{router}",
            a.admin_addr().expect("admin"),
            b.admin_addr().expect("admin"),
        );
        std::fs::write(&path, text).expect("write config");
        path.display().to_string()
    };
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_fixctl"))
                .args(&args)
                .env("FIXCTL_TEST_TOKEN", "tok")
                .output()
                .expect("run fixctl");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = |cfg: &str, rest: &[&str]| {
        let mut v = vec!["--config".to_string(), cfg.to_string()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };

    // Bad router settings are named.
    let bad = write("[router]\nkind = 'carrier-pigeon'\n");
    let (ok, _, err) = run(args(&bad, &["status"])).await.expect("join");
    assert!(
        !ok && err.contains("carrier-pigeon") && err.contains("global-accelerator"),
        "{err}"
    );
    let bad = write(&format!(
        "[router]\nkind = 'global-accelerator'\nendpoint_url = '{}'\nendpoint_group_arn = '{group}'\nendpoints = {{ a = 'nlb-a' }}\n",
        emu.url()
    ));
    let (ok, _, err) = run(args(&bad, &["status"])).await.expect("join");
    assert!(!ok && err.contains("no entry for b"), "{err}");

    let cfg = write(&format!(
        "[router]\nkind = 'global-accelerator'\nendpoint_url = '{}'\nendpoint_group_arn = '{group}'\nendpoints = {{ a = 'nlb-a', b = 'nlb-b' }}\n",
        emu.url()
    ));
    let (ok, out, err) = run(args(&cfg, &["status", "--output", "json"]))
        .await
        .expect("join");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["routing"]["router"], "global-accelerator", "{out}");
    assert_eq!(v["engines"][0]["readiness"]["role"], "leader", "{out}");

    let (ok, out, err) = run(args(&cfg, &["failover", "--output", "json"]))
        .await
        .expect("join");
    assert!(ok, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(t["to"], "b", "{out}");
    let (ok, out, err) = run(args(&cfg, &["status", "--output", "json"]))
        .await
        .expect("join");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["routing"]["routed_to"], "b",
        "traffic follows the failover: {out}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn local_up_serves_through_the_proxy_and_ctrl_c_stops_everything() {
    use std::io::{BufRead, BufReader, Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args([
            "local",
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fixctl local up");
    // Its stderr, line by line, read on a thread so that a missing line fails the test
    // instead of hanging it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_line = |what: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {what:?} on fixctl's stderr: {e}"),
            }
        }
    };
    let line = wait_line("leader and standby running");
    assert!(line.contains(&port.to_string()), "{line}");
    let work_dir = line
        .split("Journals and logs in ")
        .nth(1)
        .and_then(|r| r.split(". ").next())
        .expect("the work directory")
        .to_string();
    // A counterparty logs on through the proxy.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    let logon = fix_codec::human::encode_human(
        &fix_e2e::client::with_times("35=A|34=1|49=CLIENT|52=<TIME>|56=EXEC|98=0|108=30|"),
        "FIX.4.4",
    );
    s.write_all(&logon).expect("logon");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("logon answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("35=A"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The live view prints one JSON snapshot per line (NDJSON).
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    loop {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).expect("status view") > 0,
            "status view ended"
        );
        let v: serde_json::Value =
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not one JSON line: {e}: {l}"));
        let engines = v["engines"].as_array().expect("engines");
        let leads = engines.iter().any(|e| e["readiness"]["role"] == "leader");
        if leads && v["routed_to"].is_string() {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
    });
    // An engine killed from outside is started again, as Kubernetes or ECS would.
    let config = format!("{work_dir}/engine-1/engine.toml");
    let killed = Command::new("pkill")
        .args(["-9", "-f", &config])
        .status()
        .expect("pkill");
    assert!(killed.success(), "no engine process runs with {config}");
    let line = wait_line("started it again");
    assert!(line.contains("engine-b"), "{line}");

    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    wait_line("stopping");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the proxy is gone"
    );
}

/// `fixctl in-sync clear` refuses while the lease is held, then without --yes, and with
/// it removes the recorded set (whose members are gone) so that anyone may lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_sync_set_is_cleared_only_while_the_lease_is_free_and_with_yes() {
    use fix_lease::InSync;
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let store = fix_lease::connect(&url).await.expect("store");
    let ttl = std::time::Duration::from_secs(30);
    let grant = store
        .acquire("g", "a", ttl)
        .await
        .expect("acquire")
        .expect("free");
    let set = InSync {
        members: vec!["a".into(), "gone".into()],
        version: 1,
    };
    assert!(store.set_in_sync(&grant, None, &set).await.expect("record"));
    let config = dir.path().join("fixctl.toml");
    std::fs::write(
        &config,
        format!("[lease]\nurl = \"{url}\"\ngroup = \"g\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");

    let (ok, out, _) = fixctl(&["--config", config, "in-sync", "show"]);
    assert!(
        ok && out.contains("held by a") && out.contains("a, gone"),
        "{out}"
    );
    let (ok, _, err) = fixctl(&["--config", config, "in-sync", "clear", "--yes"]);
    assert!(
        !ok && err.contains("held by a"),
        "refused while held: {err}"
    );

    assert!(store.release(&grant).await.expect("release"));
    let (ok, _, err) = fixctl(&["--config", config, "in-sync", "clear"]);
    assert!(
        !ok && err.contains("--yes") && err.contains("a, gone"),
        "{err}"
    );
    let kept = store.read("g").await.expect("read").and_then(|s| s.in_sync);
    assert_eq!(
        kept.map(|s| s.members),
        Some(vec!["a".to_string(), "gone".to_string()])
    );

    let (ok, out, err) = fixctl(&[
        "--config", config, "--output", "json", "in-sync", "clear", "--yes",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["in_sync"], serde_json::Value::Null, "{v}");
    assert!(store
        .read("g")
        .await
        .expect("read")
        .and_then(|s| s.in_sync)
        .is_none());
}

/// Scripts tell a bad command line (2) from an engine nobody reaches (3) from a failure of
/// the operation (1); `--help` lists the codes.
#[test]
fn exit_codes_tell_usage_from_unreachable_from_failure() {
    let code = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fixctl"))
            .args(args)
            .output()
            .expect("run fixctl")
            .status
            .code()
    };
    assert_eq!(code(&["--no-such-option"]), Some(2));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nobody listens on after this");
    assert_eq!(
        code(&["status", "--engine", &format!("a={dead}")]),
        Some(3),
        "no engine answered"
    );
    assert_eq!(
        code(&["failover", "--engine", &format!("a={dead}")]),
        Some(3),
        "no engine answered a failover either"
    );
    assert_eq!(
        code(&["status", "--engine", "127.0.0.1:9100"]),
        Some(2),
        "a malformed address is a usage error"
    );
    assert_eq!(
        code(&["deploy", "--file", "/no/such/deploy.yaml", "--dry-run"]),
        Some(1),
        "a missing deployment file fails the operation"
    );
    let (ok, out, _) = fixctl(&["--help"]);
    assert!(ok && out.contains("Exit codes"), "{out}");
}
