//! The failover promise as a user would judge it (issue 18): QuickFIX, an independent
//! engine with its own file store, trades through `fixctl local up` (one address, the
//! local proxy, as the README's quick start gives it) while the engines are stopped,
//! killed and resumed from outside, in turn:
//!
//! 1. the standby is frozen (SIGSTOP) for 3 s under load, the leader is killed, the
//!    standby resumes: out of the in-sync set, it must not lead; `local up` starts the
//!    killed leader again and it leads with everything it answered;
//! 2. the leader is frozen for 4 s (past the lease's 800 ms TTL), the standby takes over,
//!    the old leader resumes and must not lead again nor send a byte of its old term;
//! 3. the leader is killed; the standby takes over.
//!
//! Nothing QuickFIX was answered may be lost, every order it sent must be filled, and its
//! session must continue without a sequence reset: QuickFIX itself logs out on a MsgSeqNum
//! too low, and would report the Logout's text.
//!
//! Needs `FIX_QUICKFIX_PYTHON` and `FIX_DICTIONARY_DIR` (set by `scripts/test.sh`).

use fix_drill::quickfix::{no_reset_nor_reject, QuickFixTrader};
use fix_engine::admin::api::RoleName;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One engine of the local group, found from its configuration file.
struct Engine {
    config: PathBuf,
    admin: SocketAddr,
}

impl Engine {
    fn at(dir: &Path) -> Self {
        let config = dir.join("engine.toml");
        let text = std::fs::read_to_string(&config).expect("the engine's configuration");
        let admin = text
            .split("[engine.admin]\nlisten = '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no admin address in {}", config.display()));
        Self { config, admin }
    }

    /// The engine process's id (the one `local up` runs now).
    fn pid(&self) -> String {
        let out = Command::new("pgrep")
            .args(["-n", "-f", "--"])
            .arg(format!("--config {}", self.config.display()))
            .output()
            .expect("pgrep");
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!pid.is_empty(), "no process runs {}", self.config.display());
        pid
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {}", self.config.display());
    }

    async fn leads(&self) -> bool {
        fix_drill::http::readiness(self.admin)
            .await
            .is_some_and(|v| v.role == RoleName::Leader)
    }

    async fn in_sync_follower(&self) -> bool {
        fix_drill::http::readiness(self.admin)
            .await
            .is_some_and(|v| {
                let follower = v.replication.as_ref().and_then(|r| r.follower.as_ref());
                follower.is_some_and(|f| f.caught_up && f.leader.is_some())
                    && v.in_sync != Some(false)
            })
    }
}

/// `fixctl local up`, stopped with Ctrl-C (its engines log out and stop) however the
/// test ends.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader's index, once exactly one leads.
async fn leader(engines: &[Engine]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leading = Vec::new();
        for (i, e) in engines.iter().enumerate() {
            if e.leads().await {
                leading.push(i);
            }
        }
        if leading.len() == 1 {
            return leading[0];
        }
        assert!(Instant::now() < deadline, "no single leader: {leading:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `i` must not lead for `period`.
async fn never_leads(engines: &[Engine], i: usize, period: Duration, why: &str) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(!engines[i].leads().await, "engine {i} led although {why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickfix_through_local_up_loses_nothing_across_stops_kills_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let up = Command::new(env!("CARGO_BIN_EXE_fixctl"))
        .args(["local", "up", "--output", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fixctl local up");
    let up = Up(up);
    // `local up` makes its work directory inside `--dir`.
    let deadline = Instant::now() + Duration::from_secs(30);
    let configs = loop {
        let work = std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("engine-1").join("engine.toml").exists());
        if let Some(work) = work {
            break [work.join("engine-0"), work.join("engine-1")];
        }
        assert!(
            Instant::now() < deadline,
            "local up wrote no engine configuration"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let engines: Vec<Engine> = configs.iter().map(|d| Engine::at(d)).collect();
    let first = leader(&engines).await;
    let other = 1 - first;
    wait_until("the standby catching up", Duration::from_secs(20), || {
        engines[other].in_sync_follower()
    })
    .await;

    let mut quickfix =
        QuickFixTrader::start(&[port], &dir.path().join("quickfix")).expect("start QuickFIX");
    let mut logons =
        |n: usize, limit: Duration| tokio::task::block_in_place(|| quickfix.wait_logons(n, limit));
    assert!(
        logons(1, Duration::from_secs(20)),
        "QuickFIX did not log on through the proxy"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 1. The standby stalls under load; the leader dies; the stale standby must not lead,
    //    the leader that `local up` starts again does.
    engines[other].signal("-STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    engines[first].signal("-KILL");
    engines[other].signal("-CONT");
    never_leads(
        &engines,
        other,
        Duration::from_secs(2),
        "it missed what the leader acknowledged alone",
    )
    .await;
    wait_until(
        "local up restarting the killed leader, and it leading",
        Duration::from_secs(20),
        || engines[first].leads(),
    )
    .await;
    wait_until("the standby catching up", Duration::from_secs(20), || {
        engines[other].in_sync_follower()
    })
    .await;
    assert!(
        logons(2, Duration::from_secs(20)),
        "QuickFIX did not log on to the restarted leader"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. The leader freezes past its lease; the standby takes over; the old leader
    //    resumes and follows.
    engines[first].signal("-STOP");
    wait_until(
        "the standby taking over from a frozen leader",
        Duration::from_secs(20),
        || engines[other].leads(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    engines[first].signal("-CONT");
    never_leads(
        &engines,
        first,
        Duration::from_secs(2),
        "it was deposed while frozen",
    )
    .await;
    wait_until(
        "the resumed old leader following",
        Duration::from_secs(20),
        || engines[first].in_sync_follower(),
    )
    .await;
    assert!(
        logons(3, Duration::from_secs(20)),
        "QuickFIX did not log on to the new leader"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. A plain kill of the leader.
    engines[other].signal("-KILL");
    wait_until(
        "the in-sync standby taking over",
        Duration::from_secs(20),
        || engines[first].leads(),
    )
    .await;
    let fourth = logons(4, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let v = tokio::task::block_in_place(|| quickfix.finish()).expect("QuickFIX's report");
    println!("QuickFIX counterparty: {v}");
    drop(up);
    assert!(v["sent"].as_u64().unwrap_or(0) > 300, "load ran: {v}");
    assert_eq!(v["unanswered_count"], 0, "orders never answered: {v}");
    assert_eq!(v["filled"], v["sent"], "{v}");
    assert!(
        fourth && v["logons"].as_u64().unwrap_or(0) >= 4,
        "it failed over three times: {v}"
    );
    assert!(no_reset_nor_reject(&v), "no sequence reset, no reject: {v}");
}
