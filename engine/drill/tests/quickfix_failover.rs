//! The failover promise judged by an independent counterparty: QuickFIX (the C++ engine
//! of the Python package, with its file store and both engines as alternate addresses)
//! trades with a replicated pair while the standby is stopped and resumed and the leader
//! is killed, twice. Nothing it was answered may be lost, every order it sent must be
//! answered, and its session must continue without a sequence reset: QuickFIX itself
//! would log out on a MsgSeqNum too low.
//!
//! Needs `FIX_QUICKFIX_PYTHON` and `FIX_DICTIONARY_DIR` (set by `scripts/test.sh`).

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (scripts/test.sh does)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickfix_counterparty_loses_nothing_across_stalls_and_kills() {
    let dir = tempfile::tempdir().expect("tmp");
    let group = GroupOptions::new(
        env!("CARGO_BIN_EXE_fix-drill").into(),
        Backend::Sqlite,
        "replicated",
        2,
    );
    let mut cluster = Cluster::start(&group, &Servers::from_env(), dir.path())
        .await
        .expect("cluster");
    let first = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    cluster
        .wait_caught_up(1 - first, Duration::from_secs(20))
        .await
        .expect("caught up");
    let ports: Vec<String> = cluster
        .fix_addrs()
        .iter()
        .map(|a| a.port().to_string())
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/qf_peer.py");
    let mut peer = Command::new(env("FIX_QUICKFIX_PYTHON"))
        .arg(script)
        .args(["--role", "trader", "--begin", "FIX.4.4"])
        .args(["--sender", "CLIENT", "--target", "EXEC"])
        .args([
            "--ports",
            &ports.join(","),
            "--rate",
            "100",
            "--settle",
            "30",
        ])
        .arg("--dict-dir")
        .arg(env("FIX_DICTIONARY_DIR"))
        .arg("--workdir")
        .arg(dir.path().join("quickfix"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start QuickFIX");
    // QuickFIX's lines (events, then the report) are read as they come, so that the
    // test can wait for its logons and the pipe never fills.
    let lines = {
        let out = BufReader::new(peer.stdout.take().expect("stdout"));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        rx
    };
    let mut logons = 0;
    // Waits (up to `limit`) until QuickFIX has logged on `n` times in all.
    let mut wait_logons = |n: usize, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        while logons < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains("\"logon\"") => logons += 1,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    };
    // QuickFIX tries the addresses in order: when the standby's comes first, it refuses
    // the Logon (QuickFIX reports a logout for it) before the leader answers.
    assert!(
        tokio::task::block_in_place(|| wait_logons(1, Duration::from_secs(20))),
        "QuickFIX did not log on"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 1. The standby stalls for 3 s under load; the leader is killed; the standby comes
    //    back (out of the in-sync set: it must not lead), the old leader restarts and leads.
    let standby = 1 - first;
    cluster.nodes[standby].pause().expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.nodes[first].kill9();
    cluster.nodes[standby].resume().expect("SIGCONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !cluster.nodes[standby].is_leader().await,
        "the stale standby took over{}",
        cluster.logs()
    );
    cluster.nodes[first].start().expect("restart");
    cluster
        .wait_promoted(first, Duration::from_secs(20))
        .await
        .expect("the restarted leader leads");
    cluster
        .wait_caught_up(standby, Duration::from_secs(20))
        .await
        .expect("the standby catches up");
    // QuickFIX reconnects on its own schedule: it must be trading with this leader
    // before it is killed too (else it would skip a leader and log on only twice).
    assert!(
        tokio::task::block_in_place(|| wait_logons(2, Duration::from_secs(20))),
        "QuickFIX did not log on to the restarted leader{}",
        cluster.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. A plain kill of the leader: the in-sync standby takes over.
    cluster.nodes[first].kill9();
    cluster
        .wait_promoted(standby, Duration::from_secs(20))
        .await
        .expect("the standby takes over");
    cluster.nodes[first].start().expect("restart");
    // Its third logon (it reconnects after each failover, on its own schedule).
    let third = tokio::task::block_in_place(|| wait_logons(3, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_secs(1)).await;

    drop(peer.stdin.take());
    let mut result = String::new();
    tokio::task::block_in_place(|| {
        while let Ok(l) = lines.recv_timeout(Duration::from_secs(60)) {
            result = l;
        }
    });
    let _ = peer.wait();
    println!("QuickFIX counterparty: {result}");
    let v: serde_json::Value = serde_json::from_str(&result).expect("QuickFIX's report");
    assert!(v["sent"].as_u64().unwrap_or(0) > 300, "load ran: {v}");
    assert_eq!(
        v["unanswered_count"],
        0,
        "orders never answered: {v}{}",
        cluster.logs()
    );
    assert_eq!(v["filled"], v["sent"], "{v}");
    assert!(
        third && v["logons"].as_u64().unwrap_or(0) >= 3,
        "it failed over twice: {v}"
    );
    let texts = v["texts"].as_array().cloned().unwrap_or_default();
    assert!(
        !texts.iter().any(|t| {
            let t = t.as_str().unwrap_or_default();
            t.contains("too low") || t.starts_with("3:")
        }),
        "no sequence reset, no reject: {v}"
    );
    let check = cluster
        .stop_and_check_journals(Duration::from_secs(20))
        .await
        .expect("the journals are read");
    println!("journals: {check:?}");
    assert!(
        check.journals == 2 && check.violations.is_empty(),
        "journal invariants: {check:?}"
    );
}
