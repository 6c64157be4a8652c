//! `fixctl runbook run` and `fixctl failover --region`: load the system, run (or plan)
//! a runbook, print its report.

use crate::Output;
use anyhow::Context;
use fix_operator::config::FixctlConfig;
use fix_operator::runbook::executor::{first_failing, plan, run as execute, RunOptions};
use fix_operator::runbook::spec::Runbook;
use fix_operator::runbook::state::RunState;
use fix_operator::runbook::system::System;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

async fn system(config: Option<&Path>) -> anyhow::Result<System> {
    let path = config.context(
        "runbooks act on a multi-region system: pass --config FILE with a region on every [[engine]], a [lease] section and [[region_router]] sections",
    )?;
    let cfg = FixctlConfig::from_file(path)?;
    Ok(System::from_config(&cfg, path).await?)
}

/// Runs (or with `dry_run` plans) `book`.
pub async fn run(
    book: &Runbook,
    params: &BTreeMap<String, String>,
    config: Option<&Path>,
    state: Option<PathBuf>,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<()> {
    if dry_run {
        print!("{}", plan(book, params));
        // The preconditions as they stand, when the system can be reached.
        if let Some(path) = config {
            let sys = system(Some(path)).await?;
            let mut scratch = RunState::new(&book.name, params.clone());
            match first_failing(&book.preconditions, &sys, &mut scratch).await {
                None => println!("preconditions hold now: the run would start."),
                Some((check, why)) => {
                    println!("precondition \"{check}\" does not hold now: {why}")
                }
            }
        }
        println!("Nothing was changed (--dry-run).");
        return Ok(());
    }
    let sys = system(config).await?;
    let state = state.unwrap_or_else(|| PathBuf::from(format!("{}.state.json", book.name)));
    let opts = RunOptions {
        state: state.clone(),
        poll: Duration::from_millis(100),
    };
    let report = execute(book, params, &sys, &opts, |line| eprintln!("{line}"))
        .await
        .with_context(|| format!("progress is in {}", state.display()))?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => print!("{}", report.human()),
    }
    Ok(())
}

/// `fixctl failover --region TARGET [--force]`.
pub async fn region_failover(
    target: &str,
    force: bool,
    config: Option<&Path>,
    state: Option<PathBuf>,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<()> {
    let sys = system(config).await?;
    let (text, params) = fix_operator::runbook::region_failover(&sys, target, force)
        .await
        .map_err(|e| anyhow::anyhow!("--region {target}: {e}"))?;
    let (book, params) = fix_operator::runbook::load::parse(text, "the built-in runbook", &params)?;
    run(&book, &params, config, state, dry_run, output).await
}
