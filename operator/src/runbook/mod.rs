//! Runbooks: multi-region rotation and disaster recovery as idempotent, resumable steps.
//!
//! - [`spec`]: the YAML format (steps with preconditions, an action, postconditions, a
//!   timeout and a rollback) and its JSON schema (`runbooks/schema.json`).
//! - [`load`]: reading a file, `{{parameter}}` substitution, checks the schema cannot
//!   make.
//! - [`system`]: what a run acts on — instances by region, the lease store, the routers
//!   between regions — from a `fixctl` configuration file.
//! - [`checks`] and [`actions`]: evaluating conditions and carrying out actions against
//!   the engines' admin APIs, the lease store (the active-region pin of
//!   [`fix_lease::region`]) and the ARC / Global Accelerator routers.
//! - [`executor`]: the run loop (refuses to start on a failing precondition, waits on
//!   postconditions instead of sleeping, saves progress after every step, rolls back in
//!   reverse on failure) and the dry-run plan.
//! - [`state`] and [`report`]: the state file and the RTO / RPO report.

pub mod actions;
pub mod checks;
pub mod executor;
pub mod load;
pub mod report;
pub mod spec;
pub mod state;
pub mod system;

use std::collections::BTreeMap;
use thiserror::Error;

/// A runbook could not be read or run.
#[derive(Debug, Error)]
pub enum RunbookError {
    /// The file cannot be read.
    #[error("cannot read the runbook {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid runbook (format, parameters, durations, ids).
    #[error("{path} is not a valid runbook: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What to fix.
        message: String,
    },
    /// A precondition of the run failed: nothing was done.
    #[error("refusing to start: precondition \"{check}\" does not hold: {why}")]
    Refused {
        /// The check.
        check: String,
        /// Why it failed.
        why: String,
    },
    /// A step failed (its rollbacks, and those of the steps before it, were run).
    #[error("step {step} failed: {why} (fix the cause and run again with the same state file to resume)")]
    StepFailed {
        /// The step.
        step: String,
        /// Why.
        why: String,
    },
    /// The state file belongs to another run.
    #[error("the state file {path} belongs to runbook {runbook} with parameters {parameters:?}: pass another --state, or remove it to start afresh")]
    StateMismatch {
        /// The file.
        path: String,
        /// Its runbook.
        runbook: String,
        /// Its parameters.
        parameters: BTreeMap<String, String>,
    },
    /// The state file cannot be read or written.
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// The shipped runbooks, built in so `fixctl failover --region` works from anywhere.
pub mod shipped {
    /// `runbooks/rotate-region.yaml`.
    pub const ROTATE_REGION: &str = include_str!("../../../runbooks/rotate-region.yaml");
    /// `runbooks/dr-failover.yaml`.
    pub const DR_FAILOVER: &str = include_str!("../../../runbooks/dr-failover.yaml");
    /// `runbooks/failback.yaml`.
    pub const FAILBACK: &str = include_str!("../../../runbooks/failback.yaml");
}

/// What `fixctl failover --region TARGET` runs: the rotation runbook from the region
/// that leads now, or with `force` the DR runbook from the active region (the lease's
/// pin, else the region of the lease's last holder). Returns the runbook's text and its
/// parameters.
pub async fn region_failover(
    sys: &system::System,
    target: &str,
    force: bool,
) -> Result<(&'static str, BTreeMap<String, String>), String> {
    sys.in_region(target)?;
    let source = if force {
        let pinned = fix_lease::region::active_region(sys.lease.as_ref(), &sys.group)
            .await
            .map_err(|e| e.to_string())?;
        match pinned {
            Some(r) => r,
            None => {
                let holder = sys
                    .lease
                    .read(&sys.group)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|s| s.owner)
                    .unwrap_or_default();
                sys.instances
                    .iter()
                    .find(|i| i.name == holder)
                    .map(|i| i.region.clone())
                    .ok_or_else(|| format!("the lease's last holder '{holder}' is none of the configured engines: cannot tell the source region"))?
            }
        }
    } else {
        checks::leader_anywhere(sys)
            .await
            .map(|l| l.instance.region)
            .ok_or("no instance leads: if the leading region is lost, pass --force to run the DR runbook")?
    };
    if source == target {
        return Err(format!("region {target} already leads"));
    }
    let params = BTreeMap::from([
        ("source".to_string(), source),
        ("target".to_string(), target.to_string()),
    ]);
    Ok((
        if force {
            shipped::DR_FAILOVER
        } else {
            shipped::ROTATE_REGION
        },
        params,
    ))
}
