//! Runs every scenario in `tests/scenarios/` against a real acceptor over TCP: fix-engine's
//! own behaviours (credentials, NextExpectedMsgSeqNum, chunked resends, timers, TLS). The
//! specification's session test cases, checked against QuickFIX for every version, are in
//! `tests/conformance/` (see `tests/conformance.rs`).

use fix_e2e::scenario::{run, Scenario};
use fix_e2e::scenario_sim::run_simulated;
use std::path::{Path, PathBuf};

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenario directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "fixs"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "expected the full scenario set, found {}",
        files.len()
    );
    files
}

/// The same scenarios on simulated time, without sockets: the session the engine builds
/// from the same settings, with the echo application. Timers (heartbeats, test requests,
/// logout timeouts) take no real time, so the whole set runs in milliseconds.
#[test]
fn every_session_level_scenario_passes_on_simulated_time_without_sockets() {
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut played = 0;
    for f in scenario_files() {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).expect("readable scenario");
        let scenario = Scenario::parse(&name, &text).expect("parses");
        if scenario.settings.iter().any(|s| s.contains("tls")) {
            // TLS is the transport's business: played over TCP only.
            continue;
        }
        played += 1;
        if let Err(e) = run_simulated(&scenario) {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "{played} scenarios on simulated time in {:?}",
        started.elapsed()
    );
    assert!(played >= 12, "played {played}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_level_scenario_passes_against_the_real_acceptor() {
    let files = scenario_files();
    let mut failures = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(f).expect("readable scenario");
        let result = match Scenario::parse(&name, &text) {
            Ok(s) => run(&s).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => println!("pass {name}"),
            Err(e) => {
                println!("FAIL {name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
