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
    assert!(err.contains("loading 127.0.0.1:1"), "{err}");
}
