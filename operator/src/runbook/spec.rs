//! The runbook format (YAML), with its JSON schema generated from these types.
//!
//! ```yaml
//! name: rotate-region
//! description: Planned move of the group's lead to another region (RPO 0).
//! parameters:
//!   source: { description: Region that leads now }
//!   target: { description: Region to lead next }
//! preconditions:                       # checked once; the run refuses to start if one fails
//!   - { check: leader-in-region, region: "{{source}}" }
//! steps:
//!   - id: rpo-gate
//!     description: The target has every journal record
//!     postconditions:                  # waited on (polled) until they hold or the timeout
//!       - { check: replication-caught-up, region: "{{target}}", max_lag_bytes: 0 }
//!     timeout: 30s
//!   - id: move-lease
//!     action: { action: move-lease, to: "{{target}}" }
//!     rollback: { action: move-lease, to: "{{source}}" }
//! ```
//!
//! `{{name}}` in any string is replaced by the parameter's value before the file is read
//! as a runbook; an unknown name is an error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A runbook: parameters, preconditions for the whole run, and ordered steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// Its name (the state file records it, so a state file is not reused across runbooks).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Parameters, used as `{{name}}` in strings.
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    /// Checked once before the first step; the run refuses to start if one fails.
    #[serde(default)]
    pub preconditions: Vec<Check>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its value when not given.
    pub default: Option<String>,
}

/// One step: checked, acted, then waited on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique id (the state file keys progress by it).
    pub id: String,
    /// What it does, for the plan and the log.
    #[serde(default)]
    pub description: String,
    /// Checked once before the action; a failing one fails the step.
    #[serde(default)]
    pub preconditions: Vec<Check>,
    /// What it does (none: a step that only waits on its postconditions).
    pub action: Option<Action>,
    /// Waited on after the action until every one holds, up to `timeout`.
    #[serde(default)]
    pub postconditions: Vec<Check>,
    /// How long the postconditions may take, e.g. `30s`, `500ms`, `2m` (default 60s).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Undoes the action when this step or a later one fails (run in reverse order).
    pub rollback: Option<Action>,
}

fn default_timeout() -> String {
    "60s".into()
}

/// A condition on the running system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// Every instance of the region answers its admin API; its standbys follow a leader
    /// and have caught up with it once.
    RegionHealthy {
        /// The region.
        region: String,
    },
    /// No instance of the region answers (the region is lost: the DR runbook's guard).
    RegionDown {
        /// The region.
        region: String,
    },
    /// An instance of the region leads (ready, holding the lease).
    LeaderInRegion {
        /// The region.
        region: String,
    },
    /// The RPO gate: the region's standbys lag the leader by at most `max_lag_bytes` of
    /// journal (0: everything durable on the leader is durable there).
    ReplicationCaughtUp {
        /// The region whose standbys are measured.
        region: String,
        /// The largest lag allowed, in journal bytes.
        #[serde(default)]
        max_lag_bytes: u64,
    },
    /// Every session of the region's leader is logged on.
    SessionsLoggedOn {
        /// The region.
        region: String,
    },
    /// No session of the region is logged on.
    SessionsLoggedOut {
        /// The region.
        region: String,
    },
    /// The region routers (ARC routing controls, GA traffic dials) send traffic to the
    /// region.
    RoutedTo {
        /// The region.
        region: String,
    },
    /// The region's leader continues every session's sequence numbers from those recorded
    /// earlier in the run (none went back: no reset, no lost messages).
    SequenceContinuity {
        /// The region.
        region: String,
    },
    /// The region's leader stores every outbound message recorded earlier in the run,
    /// and so does every reachable instance of the other regions.
    MessageCountsReconciled {
        /// The region.
        region: String,
    },
}

/// Something a step does. Every action is idempotent: run twice (after a resume), it
/// changes nothing the second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Records every session's sequence numbers as seen on the region's instances (the
    /// leader, or the most advanced standby), for the continuity and count checks.
    RecordSessions {
        /// The region.
        region: String,
    },
    /// Holds new logons on the region's leader (`POST /logons/hold`: no counterparty logs
    /// on to it again), records the sequence numbers, then sends Logout on every session
    /// it has logged on. Starts the recovery clock (RTO).
    LogoutSessions {
        /// The region.
        region: String,
    },
    /// Accepts logons again on every instance of the region (undoes a logout-sessions).
    ReleaseLogons {
        /// The region.
        region: String,
    },
    /// Makes `to` the group's active region in the lease store (an epoch bump on the pin),
    /// then asks the leader elsewhere, if one answers, to step down so that an instance
    /// of `to` takes the lease with a new epoch. Starts the recovery clock if no earlier
    /// step did.
    MoveLease {
        /// The region to lead.
        to: String,
        /// How long a stepped-down leader stays out of the contest (default 30s).
        #[serde(default = "default_pause")]
        pause: String,
    },
    /// Fences a region before another may lead (disaster recovery): routes ARC to `to`
    /// (the region's routing control Off), then scales the region's ECS engine services
    /// to zero and stops their tasks (`[[ecs]]`). Parts not configured are skipped. When
    /// the region's ECS API does not answer (timeout, no connection, server errors), the
    /// step fails unless `unreachable` is `proceed`: then the lease alone keeps the
    /// region out (a strongly consistent lease cannot be renewed from a region cut off
    /// from the majority). An ECS answer that refuses (permissions, names) always fails.
    FenceRegion {
        /// The region to fence.
        region: String,
        /// The region to route to instead.
        to: String,
        /// `fail` (default) or `proceed` when the region's ECS API does not answer.
        #[serde(default)]
        unreachable: Unreachable,
    },
    /// Turns the region's Route 53 ARC routing control On and the others Off (skipped
    /// when no ARC `[[region_router]]` is configured).
    SetArcRouting {
        /// The region to route to.
        region: String,
    },
    /// Sets the region's Global Accelerator endpoint group to traffic dial 100 and the
    /// others to 0 (skipped when no Global Accelerator `[[region_router]]` is configured).
    SetTrafficDials {
        /// The region to route to.
        region: String,
    },
}

/// What `fence-region` does when the region's ECS API does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unreachable {
    /// The step fails (and the run with it).
    #[default]
    Fail,
    /// The step goes on, saying so: the lease keeps the region's engines out.
    Proceed,
}

fn default_pause() -> String {
    "30s".into()
}

impl Check {
    /// One line for the plan and the log.
    pub fn describe(&self) -> String {
        match self {
            Self::RegionHealthy { region } => format!("region {region} is healthy"),
            Self::RegionDown { region } => format!("no instance of region {region} answers"),
            Self::LeaderInRegion { region } => format!("an instance of region {region} leads"),
            Self::ReplicationCaughtUp {
                region,
                max_lag_bytes,
            } => format!("the standbys of region {region} lag by at most {max_lag_bytes} byte(s)"),
            Self::SessionsLoggedOn { region } => {
                format!("every session is logged on in region {region}")
            }
            Self::SessionsLoggedOut { region } => {
                format!("no session is logged on in region {region}")
            }
            Self::RoutedTo { region } => format!("traffic is routed to region {region}"),
            Self::SequenceContinuity { region } => {
                format!("region {region} continues the recorded sequence numbers")
            }
            Self::MessageCountsReconciled { region } => {
                format!("region {region} stores every recorded outbound message")
            }
        }
    }
}

impl Action {
    /// One line for the plan and the log.
    pub fn describe(&self) -> String {
        match self {
            Self::RecordSessions { region } => {
                format!("record the sessions' sequence numbers in region {region}")
            }
            Self::LogoutSessions { region } => {
                format!("hold new logons and log every session out in region {region}")
            }
            Self::ReleaseLogons { region } => {
                format!("accept logons again in region {region}")
            }
            Self::MoveLease { to, pause } => format!(
                "make {to} the active region (lease pin), step the leader elsewhere down (out for {pause})"
            ),
            Self::FenceRegion {
                region,
                to,
                unreachable,
            } => format!(
                "fence region {region}: ARC routes to {to}, its ECS engine services scaled to 0 and their tasks stopped{}",
                match unreachable {
                    Unreachable::Fail => "",
                    Unreachable::Proceed => " (if its ECS API answers)",
                }
            ),
            Self::SetArcRouting { region } => {
                format!("ARC: routing control of {region} On, the others Off")
            }
            Self::SetTrafficDials { region } => {
                format!("Global Accelerator: traffic dial of {region} 100, the others 0")
            }
        }
    }
}

/// `30s`, `500ms`, `2m`: a duration, or `None` when it is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

/// The runbook's JSON schema (published as `runbooks/schema.json`).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Runbook)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10"), None);
    }
}
