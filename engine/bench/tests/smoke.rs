//! A smoke run of the load generator with a tiny load (benchmarks themselves never run in
//! CI): every order is answered and timed, in both loop modes and with both stores, and
//! the TCP floor runs beside it.

use std::process::Command;

fn rows(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_fix-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run fix-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect()
}

#[test]
fn open_loop_against_the_memory_store_times_every_order_beside_the_floor() {
    let r = rows(&[
        "rtt",
        "--messages",
        "300",
        "--warmup",
        "30",
        "--rate",
        "2000",
    ]);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r[0]["scenario"]
        .as_str()
        .is_some_and(|s| s.starts_with("tcp floor")));
    for row in &r {
        assert_eq!(row["count"], 300, "{row}");
        assert!(row["p50_us"].as_f64().is_some_and(|v| v > 0.0), "{row}");
        assert!(row["p99_us"].as_f64() >= row["p50_us"].as_f64(), "{row}");
    }
    // Corrected latency can only be at least the uncorrected one.
    assert!(r[1]["max_us"].as_f64() >= r[2]["max_us"].as_f64(), "{r:?}");
}

#[test]
fn closed_loop_against_the_journal_times_every_order() {
    let r = rows(&[
        "rtt",
        "--store",
        "journal",
        "--messages",
        "200",
        "--warmup",
        "20",
    ]);
    assert_eq!(r[1]["count"], 200, "{r:?}");
    assert!(
        r[1]["scenario"]
            .as_str()
            .is_some_and(|s| s.contains("journal")),
        "{r:?}"
    );
}

#[test]
fn an_unreachable_acceptor_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_fix-bench"))
        .args([
            "rtt",
            "--connect",
            "127.0.0.1:1",
            "--messages",
            "10",
            "--warmup",
            "0",
        ])
        .output()
        .expect("run fix-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading acceptor at 127.0.0.1:1"), "{err}");
}

#[test]
fn replicated_store_with_two_sessions_times_every_order() {
    let r = rows(&[
        "rtt",
        "--store",
        "replicated",
        "--sessions",
        "2",
        "--messages",
        "100",
        "--warmup",
        "10",
        "--no-floor",
        "--busy-poll",
    ]);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["count"], 100, "{r:?}");
    let name = r[0]["scenario"].as_str().unwrap_or_default();
    assert!(
        name.contains("replicated") && name.contains("2 sessions"),
        "{name}"
    );
    assert!(
        r[0]["distribution"].as_array().is_some_and(|d| d.len() > 3),
        "a distribution to plot: {r:?}"
    );
}

#[test]
fn max_rate_search_reports_its_steps() {
    let r = rows(&[
        "max-rate",
        "--base-rate",
        "500",
        "--start-rate",
        "1000",
        "--ceiling",
        "2000",
        "--seconds",
        "0.2",
        "--warmup",
        "50",
    ]);
    assert_eq!(r.len(), 1, "{r:?}");
    let steps = r[0]["steps"].as_array().cloned().unwrap_or_default();
    assert!(!steps.is_empty(), "{r:?}");
    let rate = r[0]["max_rate"].as_u64().unwrap_or(u64::MAX);
    assert!(rate <= 2000, "never above the ceiling: {r:?}");
    assert!(
        r[0]["base_p99_us"].as_f64().is_some_and(|v| v > 0.0),
        "{r:?}"
    );
}
