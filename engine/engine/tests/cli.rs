//! The `fix-engine` binary's command line: help, configuration checks, clear errors.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_describes_the_embedded_default_and_every_option() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for needle in [
        "127.0.0.1:9878",
        "--config",
        "--quickfix-settings",
        "--check",
        "--log-format",
    ] {
        assert!(t.contains(needle), "help lacks {needle}: {t}");
    }
}

#[test]
fn a_toml_typo_is_refused_with_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("e.toml");
    std::fs::write(&path, "[[session]]\nbegin_string = 'FIX.4.2'\nsender_comp_id = 'A'\ntarget_comp_id = 'B'\nrole = 'acceptor'\nlisten = '127.0.0.1:1'\nhearbeat_interval = 5\n").expect("write");
    let o = run(&["--config", path.to_str().unwrap_or_default(), "--check"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("hearbeat_interval") && t.contains("line 7"),
        "{t}"
    );
}

#[test]
fn the_configuration_can_come_from_an_environment_variable_as_on_ecs() {
    let toml = "[[session]]\nbegin_string = 'FIX.4.2'\nsender_comp_id = 'A'\ntarget_comp_id = 'B'\nrole = 'acceptor'\nlisten = '127.0.0.1:1'\n";
    let o = Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .args(["--config-env", "FIX_ENGINE_CONFIG", "--check"])
        .env("FIX_ENGINE_CONFIG", toml)
        .output()
        .expect("run");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("ok: FIX.4.2:A->B"), "{t}");

    let typo = toml.replace("role", "rol");
    let o = Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .args(["--config-env", "FIX_ENGINE_CONFIG", "--check"])
        .env("FIX_ENGINE_CONFIG", typo)
        .output()
        .expect("run");
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("$FIX_ENGINE_CONFIG") && t.contains("rol"), "{t}");

    let o = Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .args(["--config-env", "FIX_ENGINE_CONFIG", "--check"])
        .env_remove("FIX_ENGINE_CONFIG")
        .output()
        .expect("run");
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("FIX_ENGINE_CONFIG is not set"), "{t}");
}

#[test]
fn a_missing_config_file_names_the_path() {
    let o = run(&["--config", "/nonexistent/engine.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/engine.toml"));
}

#[test]
fn a_quickfix_settings_file_is_checked_with_warnings_for_unknown_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("qf.cfg");
    std::fs::write(&path, "[DEFAULT]\nConnectionType=acceptor\nMysteryKey=1\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID=A\nTargetCompID=B\nSocketAcceptHost=127.0.0.1\nSocketAcceptPort=9999\nHeartBtInt=20\n").expect("write");
    let o = run(&[
        "--quickfix-settings",
        path.to_str().unwrap_or_default(),
        "--check",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("unknown key MysteryKey") && t.contains("ok: FIX.4.4:A->B"),
        "{t}"
    );
}

#[test]
fn an_invalid_quickfix_value_fails_naming_key_value_and_allowed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("qf.cfg");
    std::fs::write(&path, "[SESSION]\nConnectionType=acceptor\nBeginString=FIX.4.4\nSenderCompID=A\nTargetCompID=B\nSocketAcceptPort=9999\nResetOnLogon=sometimes\n").expect("write");
    let o = run(&[
        "--quickfix-settings",
        path.to_str().unwrap_or_default(),
        "--check",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("ResetOnLogon") && t.contains("sometimes") && t.contains("Y or N"),
        "{t}"
    );
}

/// SIGTERM is how container runtimes and orchestrators stop a process: the engine logs its
/// sessions out and exits 0 (before, it only listened for Ctrl-C, and as a container's
/// first process it ignored SIGTERM until it was killed).
#[test]
fn sigterm_shuts_the_engine_down_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = \"{}\"\napp = \"exec\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nsender_comp_id = \"EXEC\"\ntarget_comp_id = \"CLIENT\"\nrole = \"acceptor\"\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the acceptor never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let log = text(&out);
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("shutting down"), "{log}");
}
