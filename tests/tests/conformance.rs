//! Every scenario of `tests/conformance/`, for every FIX version it names, played against
//! QuickFIX and then against fix-engine: fix-engine must answer exactly as QuickFIX did.
//! Three groups of versions run side by side (one QuickFIX process each). `FIX_CONFORMANCE_ONLY=name-part` runs only the scenarios whose
//! file name contains it.

use fix_e2e::conformance::{case_files, run_version, Case, Reference, Version, VERSIONS};
use std::path::PathBuf;

/// Runs every case for some versions; returns the number of runs and the failures.
async fn run_all(
    versions: Vec<Version>,
    cases: Vec<Case>,
    dictionaries: PathBuf,
) -> (usize, Vec<String>) {
    let mut reference = match Reference::spawn() {
        Ok(r) => r,
        Err(e) => return (1, vec![e]),
    };
    let (mut runs, mut failures) = (0, Vec::new());
    let mut plan: Vec<(Version, usize)> = Vec::new();
    for v in &versions {
        plan.extend(
            (0..cases.len())
                .filter(|i| cases[*i].versions.contains(*v))
                .map(|i| (*v, i)),
        );
    }
    for (version, i) in plan {
        let case = &cases[i];
        runs += 1;
        match run_version(case, version, &mut reference, &dictionaries).await {
            Ok(()) => println!("pass {} FIX {}", case.name, version.0),
            Err(e) => {
                println!("FAIL {} FIX {}: {e}", case.name, version.0);
                failures.push(format!("{} (FIX {}): {e}", case.name, version.0));
            }
        }
    }
    (runs, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_engine_answers_every_session_scenario_as_quickfix_does_in_every_version() {
    let dictionaries = fix_e2e::interop::dictionary_dir();
    let only = std::env::var("FIX_CONFORMANCE_ONLY").unwrap_or_default();
    let files = case_files();
    assert!(
        files.len() >= 40,
        "expected the conformance scenarios, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut cases = Vec::new();
    for f in files.iter().filter(|f| f.to_string_lossy().contains(&only)) {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(f).expect("readable scenario");
        match Case::parse(&name, &text) {
            Ok(c) => cases.push(c),
            Err(e) => failures.push(e),
        }
    }
    // Three groups of versions side by side: most of a run is waiting for answers and
    // silences, and more at once would make the machine's stalls part of the answers.
    let tasks: Vec<_> = VERSIONS
        .chunks(3)
        .map(|vs| tokio::spawn(run_all(vs.to_vec(), cases.clone(), dictionaries.clone())))
        .collect();
    let mut runs = 0;
    for t in tasks {
        let (n, f) = t.await.expect("version task");
        runs += n;
        failures.extend(f);
    }
    assert!(runs > 0, "no scenario matched FIX_CONFORMANCE_ONLY={only}");
    println!(
        "{} of {runs} scenario runs answered as QuickFIX does",
        runs - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} scenario runs differ from QuickFIX:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
