//! `fixctl deploy`: CloudFormation change sets and the engines' SSM configuration.

use crate::Output;
use std::time::Duration;

/// `fixctl deploy`.
pub(crate) async fn deploy(
    file: &std::path::Path,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<()> {
    let plan = fix_operator::deploy::plan::DeployPlan::from_file(file)?;
    let bar = indicatif::ProgressBar::new_spinner();
    if matches!(output, Output::Json) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let report =
        fix_operator::deploy::run(&plan, dry_run, &|m: &str| bar.set_message(m.to_string())).await;
    bar.finish_and_clear();
    let report = report?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => {
            for s in &report.stacks {
                println!(
                    "stack {} ({}), change set {}: {:?}",
                    s.stack, s.region, s.change_set, s.outcome
                );
                for c in &s.changes {
                    let replace = c
                        .replacement
                        .as_deref()
                        .map_or(String::new(), |r| format!(" (replacement: {r})"));
                    println!(
                        "  {:<8} {:<32} {}{replace}",
                        c.action, c.logical_id, c.resource_type
                    );
                }
            }
            for p in &report.parameters {
                println!(
                    "SSM {p}{}",
                    if dry_run {
                        " (would be written)"
                    } else {
                        " written"
                    }
                );
            }
            if let Some(r) = &report.rollout {
                print_rollout(r, dry_run);
            }
            if dry_run {
                println!("Nothing was changed (--dry-run).");
            }
        }
    }
    Ok(())
}

/// The rolling upgrade's phases (or, in a dry run, the plan).
pub(crate) fn print_rollout(r: &fix_operator::deploy::rollout::RolloutReport, dry_run: bool) {
    println!(
        "rolling upgrade {} -> {}{}: leader {} before, {} after",
        r.from_image,
        r.to_image,
        if dry_run { " (plan)" } else { "" },
        r.leader_before,
        r.leader_after
    );
    for (i, p) in r.phases.iter().enumerate() {
        let params: Vec<String> = p
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={}", if v.is_empty() { "\"\"" } else { v }))
            .collect();
        let took = if dry_run {
            String::new()
        } else {
            format!(" in {} ms", p.ms)
        };
        println!(
            "  {}. {:<18} {:<12} leader {}{took}  {}",
            i + 1,
            p.kind,
            p.engine,
            p.leader,
            params.join(" ")
        );
    }
}
