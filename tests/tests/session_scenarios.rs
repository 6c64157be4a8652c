//! Runs every scenario in `tests/scenarios/` against a real acceptor over TCP: fix-engine's
//! own behaviours (credentials, NextExpectedMsgSeqNum, chunked resends, timers, TLS). The
//! specification's session test cases, checked against QuickFIX for every version, are in
//! `tests/conformance/` (see `tests/conformance.rs`).

use fix_e2e::scenario::{run, Scenario};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_level_scenario_passes_against_the_real_acceptor() {
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
