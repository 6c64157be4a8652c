//! A logon storm: a thousand sessions on one port, every counterparty connecting at once
//! from one address (as through a proxy or a load balancer after a failover). With the
//! default `[engine.connections]` caps (16 pending per address) they queue for their turn
//! and every one logs on; none is closed for being one too many. It also prints how much
//! resident memory each logged-on, idle session added to the process (the engine's side
//! and this test's small client together).

use fix_e2e::client::{FixClient, Received};
use fix_e2e::trading::field;
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::time::{Duration, Instant};

const SESSIONS: usize = 1000;

/// This process's resident memory in KiB (`VmRSS`).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut toml = format!(
        "[engine]\ndata_dir = '{}'\nstore = 'memory'\napp = 'echo'\n",
        dir.display()
    );
    for k in 0..SESSIONS {
        toml.push_str(&format!(
            "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'C{k}'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nheartbeat_interval = 30\n"
        ));
    }
    EngineConfig::from_toml(&toml, "storm").expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_from_one_address_all_log_on_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let engine = Engine::start(config(dir.path())).await.expect("engine");
    let port = engine
        .listen_addr(&SessionId::new("FIX.4.4", "EXEC", "C0"))
        .expect("port");
    let before = rss_kb();
    let started = Instant::now();
    let logons: Vec<_> = (0..SESSIONS)
        .map(|k| {
            tokio::spawn(async move {
                let mut c = FixClient::connected("FIX.4.4", port).await?;
                c.send(&format!("35=A|34=1|49=C{k}|52=<TIME>|56=EXEC|98=0|108=30|"))
                    .await?;
                let answer = c.next(Duration::from_secs(20)).await;
                let took = started.elapsed();
                Ok::<_, std::io::Error>((field(&answer, "35"), answer, took, c))
            })
        })
        .collect();
    let mut answered = 0;
    let mut last = Duration::ZERO;
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    for (k, l) in logons.into_iter().enumerate() {
        match l.await.expect("task") {
            Ok((Some(t), _, took, c)) if t == "A" => {
                answered += 1;
                last = last.max(took);
                clients.push(c);
            }
            Ok((_, answer, _, _)) => failures.push(format!("C{k}: {answer:?}")),
            Err(e) => failures.push(format!("C{k}: {e}")),
        }
    }
    // Idle for a few heartbeat-timer turns: the read buffers of the burst shrink back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let per_session = rss_kb().saturating_sub(before) / SESSIONS as u64;
    println!(
        "{answered} of {SESSIONS} sessions logged on; the last after {last:?}; {per_session} KiB of resident memory per logged-on idle session"
    );
    assert!(
        failures.is_empty(),
        "{} sessions did not log on, e.g. {:?}",
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    );
    // Every session works: an order on the last one comes back.
    let mut c = clients.pop().expect("a client");
    c.send(&format!(
        "35=D|34=2|49=C{}|52=<TIME>|56=EXEC|11=o1|21=1|55=X|54=1|60=<TIME>|40=1|38=10|",
        SESSIONS - 1
    ))
    .await
    .expect("order");
    assert!(matches!(
        c.next(Duration::from_secs(5)).await,
        Received::Message(_)
    ));
    engine.shutdown().await;
}
