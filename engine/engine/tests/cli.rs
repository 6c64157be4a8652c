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
