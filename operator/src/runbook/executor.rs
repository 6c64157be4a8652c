//! Running a runbook: preconditions, then each step (its preconditions, its action, its
//! postconditions waited on), with progress saved after every step so a killed run
//! resumes, and rollbacks in reverse order when a step fails.
//!
//! Nothing here sleeps for a fixed time to let things settle: a step ends when its
//! postconditions hold (polled every `poll`) or fails at its timeout with the reason the
//! last poll gave.

use super::actions::perform;
use super::checks::evaluate;
use super::report::Report;
use super::spec::{parse_duration, Check, Runbook, Step};
use super::state::{RunState, StepStatus};
use super::system::System;
use super::RunbookError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where progress is kept (resumed from when it exists for the same runbook and
    /// parameters).
    pub state: PathBuf,
    /// Time between polls of a postcondition.
    pub poll: Duration,
}

/// The plan a dry run prints: every step with its checks, action, timeout and rollback.
pub fn plan(runbook: &Runbook, params: &BTreeMap<String, String>) -> String {
    let mut out = format!("runbook {}", runbook.name);
    if !params.is_empty() {
        let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", p.join(", ")));
    }
    out.push('\n');
    if !runbook.description.is_empty() {
        out.push_str(&format!("  {}\n", runbook.description.trim()));
    }
    if !runbook.preconditions.is_empty() {
        out.push_str("before starting, require:\n");
        for c in &runbook.preconditions {
            out.push_str(&format!("  - {}\n", c.describe()));
        }
    }
    for (n, s) in runbook.steps.iter().enumerate() {
        out.push_str(&format!("{}. {}", n + 1, s.id));
        if !s.description.is_empty() {
            out.push_str(&format!(": {}", s.description.trim()));
        }
        out.push('\n');
        for c in &s.preconditions {
            out.push_str(&format!("     require  {}\n", c.describe()));
        }
        if let Some(a) = &s.action {
            out.push_str(&format!("     do       {}\n", a.describe()));
        }
        for c in &s.postconditions {
            out.push_str(&format!(
                "     wait for {} (up to {})\n",
                c.describe(),
                s.timeout
            ));
        }
        if let Some(r) = &s.rollback {
            out.push_str(&format!("     undo     {}\n", r.describe()));
        }
    }
    out
}

/// Checks every one of `checks` once; the first failing one is returned with its reason.
pub async fn first_failing(
    checks: &[Check],
    sys: &System,
    state: &mut RunState,
) -> Option<(String, String)> {
    for c in checks {
        if let Err(why) = evaluate(c, sys, &mut state.facts).await {
            return Some((c.describe(), why));
        }
    }
    None
}

/// Runs `runbook` against `sys`, resuming from `opts.state` if it holds an unfinished run
/// of the same runbook with the same parameters. `log` gets one line per event.
pub async fn run(
    runbook: &Runbook,
    params: &BTreeMap<String, String>,
    sys: &System,
    opts: &RunOptions,
    mut log: impl FnMut(&str),
) -> Result<Report, RunbookError> {
    let mut state = match RunState::load(&opts.state)? {
        Some(s) if s.runbook != runbook.name || &s.parameters != params => {
            return Err(RunbookError::StateMismatch {
                path: opts.state.display().to_string(),
                runbook: s.runbook,
                parameters: s.parameters,
            })
        }
        Some(s) => {
            if s.finished_ms.is_some() {
                log("this run finished earlier; its report follows (remove the state file to run again)");
                return Ok(Report::from_state(&s));
            }
            let done = s
                .steps
                .values()
                .filter(|r| r.status == StepStatus::Done)
                .count();
            log(&format!("resuming: {done} step(s) already done"));
            s
        }
        None => {
            let mut s = RunState::new(&runbook.name, params.clone());
            if let Some((check, why)) = first_failing(&runbook.preconditions, sys, &mut s).await {
                return Err(RunbookError::Refused { check, why });
            }
            s.save(&opts.state)?;
            s
        }
    };
    for (n, step) in runbook.steps.iter().enumerate() {
        if state.is_done(&step.id) {
            log(&format!("{}. {}: already done", n + 1, step.id));
            continue;
        }
        log(&format!(
            "{}. {}: {}",
            n + 1,
            step.id,
            step.description.trim()
        ));
        state.mark(&step.id, StepStatus::Running, None);
        state.save(&opts.state)?;
        let started = Instant::now();
        match run_step(step, sys, &mut state, opts, &mut log).await {
            Ok(()) => {
                state.mark(&step.id, StepStatus::Done, None);
                state.save(&opts.state)?;
                log(&format!("   done in {} ms", started.elapsed().as_millis()));
            }
            Err(why) => {
                state.mark(&step.id, StepStatus::Failed, Some(why.clone()));
                state.save(&opts.state)?;
                log(&format!("   FAILED: {why}"));
                roll_back(runbook, n, sys, &mut state, opts, &mut log).await?;
                return Err(RunbookError::StepFailed {
                    step: step.id.clone(),
                    why,
                });
            }
        }
    }
    state.finished_ms = Some(super::state::now_ms());
    state.save(&opts.state)?;
    Ok(Report::from_state(&state))
}

async fn run_step(
    step: &Step,
    sys: &System,
    state: &mut RunState,
    opts: &RunOptions,
    log: &mut impl FnMut(&str),
) -> Result<(), String> {
    if let Some((check, why)) = first_failing(&step.preconditions, sys, state).await {
        return Err(format!("precondition \"{check}\" does not hold: {why}"));
    }
    if let Some(a) = &step.action {
        log(&format!("   {}", a.describe()));
        perform(a, sys, &mut state.facts).await?;
        state.save(&opts.state).map_err(|e| e.to_string())?;
    }
    let limit = parse_duration(&step.timeout).unwrap_or(Duration::from_secs(60));
    let deadline = Instant::now() + limit;
    let mut last_reason = String::new();
    loop {
        match first_failing(&step.postconditions, sys, state).await {
            None => return Ok(()),
            Some((check, why)) => {
                let reason = format!("\"{check}\": {why}");
                if reason != last_reason {
                    log(&format!("   waiting for {reason}"));
                    last_reason = reason.clone();
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "postcondition {reason} still failing after {}",
                        step.timeout
                    ));
                }
            }
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// Runs the rollbacks of step `failed` and of the done steps before it, last first.
async fn roll_back(
    runbook: &Runbook,
    failed: usize,
    sys: &System,
    state: &mut RunState,
    opts: &RunOptions,
    log: &mut impl FnMut(&str),
) -> Result<(), RunbookError> {
    for step in runbook.steps[..=failed].iter().rev() {
        let Some(undo) = &step.rollback else {
            continue;
        };
        let was = state.steps.get(&step.id).map(|r| r.status);
        if !matches!(was, Some(StepStatus::Done | StepStatus::Failed)) {
            continue;
        }
        log(&format!("   rolling back {}: {}", step.id, undo.describe()));
        match perform(undo, sys, &mut state.facts).await {
            Ok(()) => state.mark(&step.id, StepStatus::RolledBack, None),
            Err(e) => log(&format!("   rollback of {} failed: {e}", step.id)),
        }
        state.save(&opts.state)?;
    }
    Ok(())
}
