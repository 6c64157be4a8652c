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
    assert!(out.contains("status") && out.contains("--output"), "{out}");
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
