//! Every scenario of `tests/conformance/`, for every FIX version it names, played against
//! QuickFIX and then against fix-engine: fix-engine must answer exactly as QuickFIX did.
//! `FIX_CONFORMANCE_ONLY=name-part` runs only the scenarios whose file name contains it.

use fix_e2e::conformance::{case_files, run_version, Case, Reference, VERSIONS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_engine_answers_every_session_scenario_as_quickfix_does_in_every_version() {
    let dictionaries = fix_e2e::interop::dictionary_dir();
    let only = std::env::var("FIX_CONFORMANCE_ONLY").unwrap_or_default();
    let files = case_files();
    assert!(files.len() >= 10, "expected the conformance scenarios, found {}", files.len());
    let mut reference = Reference::spawn().expect("QuickFIX reference");
    let (mut runs, mut failures) = (0, Vec::new());
    for f in files.iter().filter(|f| f.to_string_lossy().contains(&only)) {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(f).expect("readable scenario");
        let case = match Case::parse(&name, &text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for v in VERSIONS.iter().filter(|v| case.versions.contains(**v)) {
            runs += 1;
            match run_version(&case, *v, &mut reference, &dictionaries).await {
                Ok(()) => println!("pass {name} FIX {}", v.0),
                Err(e) => {
                    println!("FAIL {name} FIX {}: {e}", v.0);
                    failures.push(format!("{name} (FIX {}): {e}", v.0));
                }
            }
        }
    }
    assert!(runs > 0, "no scenario matched FIX_CONFORMANCE_ONLY={only}");
    assert!(
        failures.is_empty(),
        "{} of {runs} scenario runs differ from QuickFIX:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
