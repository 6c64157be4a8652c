//! `[engine] delivery` on the fsyncing journal, counted on the engine's own commit
//! metric: `durable` takes two group commits per closed-loop order (the order before the
//! application sees it, the reply after), `early` one (the order and its reply
//! together), and neither sends a reply before it is durable.

use fix_e2e::client::{FixClient, Received};
use fix_e2e::interop::free_port;
use fix_engine::{Engine, EngineConfig};
use std::path::Path;
use std::time::Duration;

const ORDERS: u64 = 200;

fn engine_toml(data: &Path, port: u16, delivery: &str) -> EngineConfig {
    let toml = format!(
        "[engine]\ndata_dir = '{}'\nstore = 'journal'\nfsync = true\napp = 'echo'\ndelivery = '{delivery}'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:{port}'\nheartbeat_interval = 30\n",
        data.display()
    );
    EngineConfig::from_toml(&toml, "test").expect("config")
}

/// The engine's count of journal group commits (write + fdatasync).
fn commits(engine: &Engine) -> u64 {
    let text = engine.handle().metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix("fix_journal_fsync_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("fix_journal_fsync_seconds_count in the metrics")
}

/// Reads until a message holding `field` (`tag=value`) arrives.
async fn next_with(c: &mut FixClient, field: &str) -> Vec<u8> {
    let want = format!("\x01{field}\x01");
    loop {
        match c.next(Duration::from_secs(10)).await {
            Received::Message(m) => {
                if m.windows(want.len()).any(|w| w == want.as_bytes()) {
                    return m;
                }
            }
            other => panic!("expected a message with {field}, got {other:?}"),
        }
    }
}

/// Group commits per closed-loop order.
async fn commits_per_order(delivery: &str) -> f64 {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let engine = Engine::start(engine_toml(dir.path(), port, delivery))
        .await
        .expect("engine");
    let addr = ([127, 0, 0, 1], port).into();
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send("35=A|34=1|49=CLIENT|56=EXEC|52=<TIME>|98=0|108=30|")
        .await
        .expect("logon");
    next_with(&mut c, "35=A").await;
    let before = commits(&engine);
    for i in 0..ORDERS {
        c.send(&format!(
            "35=D|34={}|49=CLIENT|56=EXEC|52=<TIME>|11=O{i}|21=1|55=IBM|54=1|60=<TIME>|38=100|40=1|",
            i + 2
        ))
        .await
        .expect("order");
        // The echo of this very order: a closed loop, one order in flight.
        next_with(&mut c, &format!("11=O{i}")).await;
    }
    let per_order = (commits(&engine) - before) as f64 / ORDERS as f64;
    engine.shutdown().await;
    per_order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_delivery_takes_one_group_commit_per_round_trip_and_durable_two() {
    let early = commits_per_order("early").await;
    let durable = commits_per_order("durable").await;
    println!("group commits per closed-loop order: early {early:.2}, durable {durable:.2}");
    assert!(
        early <= 1.05,
        "early delivery took {early:.2} commits per order: the order and its reply were not synced together"
    );
    assert!(
        durable >= 1.95,
        "durable delivery took {durable:.2} commits per order: the application saw orders before they were synced"
    );
}

#[test]
fn early_delivery_with_the_kafka_bridge_is_refused_naming_the_fix() {
    let toml =
        "[engine]\napp = 'kafka'\ndelivery = 'early'\n[engine.kafka]\nbrokers = '127.0.0.1:9092'\n";
    let err = EngineConfig::from_toml(toml, "test")
        .and_then(|c| c.plans())
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("delivery") && text.contains("durable"),
        "the error names the key and the fix: {text}"
    );
}
