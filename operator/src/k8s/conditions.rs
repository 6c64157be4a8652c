//! The FixSession's status conditions, as a pure function of what the supervisor last saw.
//!
//! - `LeaseHeld`: an instance of the group leads with the lease (the lease store's owner,
//!   when the supervisor reads it, is that instance).
//! - `RoutingConverged`: the router sends traffic to that leader (read back) and its last
//!   change did not fail.
//! - `Degraded`: the group runs but with less than it should: an instance does not
//!   answer, more than one claims to lead, or routing failed.
//! - `Ready`: the objects are applied, the lease is held and routing converged.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the same.

use crate::supervisor::Snapshot;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The condition types, in the order they are written.
pub const TYPES: [&str; 4] = ["Ready", "LeaseHeld", "RoutingConverged", "Degraded"];

/// One condition before its timestamps: type, status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `Ready`, `LeaseHeld`, …
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// PascalCase reason.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

fn cond(type_: &'static str, ok: bool, reason: &'static str, message: String) -> Observed {
    Observed {
        type_,
        status: if ok { "True" } else { "False" },
        reason,
        message,
    }
}

/// The conditions of a FixSession whose spec could not be acted on: `Ready` is False
/// with `reason` (`InvalidSpec`, `ConfigMapNotFound`, …) and the rest Unknown.
pub fn blocked(reason: &'static str, message: &str) -> Vec<Observed> {
    let mut out = vec![cond("Ready", false, reason, message.to_string())];
    for t in &TYPES[1..] {
        out.push(Observed {
            type_: t,
            status: "Unknown",
            reason,
            message: "the spec could not be acted on (see Ready)".into(),
        });
    }
    out
}

/// The conditions from the supervisor's last poll of `expected` instances.
pub fn observe(snapshot: &Snapshot, expected: usize) -> Vec<Observed> {
    if !snapshot.polled {
        return TYPES
            .iter()
            .map(|t| Observed {
                type_: t,
                status: "Unknown",
                reason: "NotPolledYet",
                message: "the supervisor has not polled the instances yet".into(),
            })
            .collect();
    }
    let leaders: Vec<&(String, crate::supervisor::Seen)> = snapshot
        .instances
        .iter()
        .filter(|(_, s)| s.leader)
        .collect();
    let leader = leaders.iter().max_by_key(|(_, s)| s.epoch).map(|(n, _)| n);
    let lease = match (leader, &snapshot.lease) {
        (None, _) => cond(
            "LeaseHeld",
            false,
            "NoLeader",
            "no instance reports itself leader and ready".into(),
        ),
        (Some(l), Some((epoch, owner))) if owner != l => cond(
            "LeaseHeld",
            false,
            "LeaseOwnerMismatch",
            format!("{l} reports leader but the lease store shows {owner:?} at epoch {epoch}"),
        ),
        (Some(l), _) => cond("LeaseHeld", true, "LeaderElected", format!("{l} leads")),
    };
    let routing = match (&snapshot.routing_error, leader) {
        (Some(e), _) => cond("RoutingConverged", false, "RoutingFailed", e.clone()),
        (None, Some(l)) if snapshot.routed.as_ref() == Some(l) => cond(
            "RoutingConverged",
            true,
            "Converged",
            format!("traffic goes to {l}"),
        ),
        (None, _) => cond(
            "RoutingConverged",
            false,
            "NotRouted",
            format!(
                "traffic goes to {}",
                snapshot.routed.as_deref().unwrap_or("no instance")
            ),
        ),
    };
    let silent: Vec<&str> = snapshot
        .instances
        .iter()
        .filter(|(_, s)| !s.answered)
        .map(|(n, _)| n.as_str())
        .collect();
    let unreadable: Vec<&str> = snapshot
        .instances
        .iter()
        .filter(|(_, s)| s.unreadable.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let mut problems = Vec::new();
    if !silent.is_empty() {
        problems.push(format!("not answering /readyz: {}", silent.join(", ")));
    }
    if !unreadable.is_empty() {
        problems.push(format!(
            "answering /readyz with a body the operator cannot read (engine and operator versions differ?): {}",
            unreadable.join(", ")
        ));
    }
    if snapshot.instances.len() < expected {
        problems.push(format!(
            "{} of {expected} instances supervised",
            snapshot.instances.len()
        ));
    }
    if leaders.len() > 1 {
        problems.push(format!("{} instances claim to lead", leaders.len()));
    }
    if let Some(e) = &snapshot.routing_error {
        problems.push(format!("routing failed: {e}"));
    }
    let degraded = if problems.is_empty() {
        Observed {
            type_: "Degraded",
            status: "False",
            reason: "AllInstancesHealthy",
            message: format!("{expected} instances answer"),
        }
    } else {
        Observed {
            type_: "Degraded",
            status: "True",
            reason: if silent.is_empty() {
                "Unhealthy"
            } else {
                "InstanceUnreachable"
            },
            message: problems.join("; "),
        }
    };
    let ready_ok = lease.status == "True" && routing.status == "True";
    let ready = if ready_ok {
        cond(
            "Ready",
            true,
            "LeaderServing",
            format!("{} leads and receives traffic", leader.map_or("", |l| l)),
        )
    } else {
        let why = if lease.status != "True" {
            &lease
        } else {
            &routing
        };
        cond("Ready", false, why.reason, why.message.clone())
    };
    vec![ready, lease, routing, degraded]
}

/// The conditions to write: `observed`, with each `lastTransitionTime` kept from
/// `previous` when the status did not change, and `generation` as observed.
pub fn merge(
    previous: &[Condition],
    observed: Vec<Observed>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    observed
        .into_iter()
        .map(|o| {
            let since = previous
                .iter()
                .find(|p| p.type_ == o.type_ && p.status == o.status)
                .map_or(Time(now), |p| p.last_transition_time.clone());
            Condition {
                type_: o.type_.to_string(),
                status: o.status.to_string(),
                reason: o.reason.to_string(),
                message: o.message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::Seen;

    fn seen(leader: bool, answered: bool, epoch: u64) -> Seen {
        Seen {
            leader,
            epoch,
            answered,
            ..Seen::default()
        }
    }

    fn status_of<'a>(c: &'a [Observed], t: &str) -> (&'a str, &'a str) {
        let c = c.iter().find(|c| c.type_ == t).expect("condition present");
        (c.status, c.reason)
    }

    #[test]
    fn a_routed_leader_with_a_healthy_standby_is_ready() {
        let s = Snapshot {
            polled: true,
            instances: vec![
                ("fs-0".into(), seen(true, true, 3)),
                ("fs-1".into(), seen(false, true, 3)),
            ],
            routed: Some("fs-0".into()),
            lease: Some((3, "fs-0".into())),
            routing_error: None,
        };
        let c = observe(&s, 2);
        assert_eq!(status_of(&c, "Ready"), ("True", "LeaderServing"));
        assert_eq!(status_of(&c, "LeaseHeld"), ("True", "LeaderElected"));
        assert_eq!(status_of(&c, "RoutingConverged"), ("True", "Converged"));
        assert_eq!(status_of(&c, "Degraded"), ("False", "AllInstancesHealthy"));
    }

    #[test]
    fn a_lost_standby_degrades_and_a_routing_failure_unreadies() {
        let s = Snapshot {
            polled: true,
            instances: vec![
                ("fs-0".into(), seen(false, false, 0)),
                ("fs-1".into(), seen(true, true, 4)),
            ],
            routed: Some("fs-0".into()),
            lease: Some((4, "fs-1".into())),
            routing_error: Some("global-accelerator could not route to fs-1: throttled".into()),
        };
        let c = observe(&s, 2);
        assert_eq!(status_of(&c, "Ready"), ("False", "RoutingFailed"));
        assert_eq!(status_of(&c, "LeaseHeld"), ("True", "LeaderElected"));
        assert_eq!(status_of(&c, "Degraded"), ("True", "InstanceUnreachable"));
        let d = c.iter().find(|c| c.type_ == "Degraded").expect("degraded");
        assert!(
            d.message.contains("fs-0") && d.message.contains("throttled"),
            "{}",
            d.message
        );
    }

    #[test]
    fn no_leader_and_not_polled_are_reported_as_such() {
        let c = observe(&Snapshot::default(), 2);
        assert!(c.iter().all(|c| c.status == "Unknown"));
        let s = Snapshot {
            polled: true,
            instances: vec![("fs-0".into(), seen(false, true, 0))],
            ..Snapshot::default()
        };
        let c = observe(&s, 1);
        assert_eq!(status_of(&c, "Ready"), ("False", "NoLeader"));
        let c = blocked("InvalidSpec", "spec.config needs one source");
        assert_eq!(status_of(&c, "Ready"), ("False", "InvalidSpec"));
        assert_eq!(status_of(&c, "Degraded"), ("Unknown", "InvalidSpec"));
    }

    #[test]
    fn transition_times_are_kept_while_the_status_holds() {
        let then = Timestamp::from_second(1_700_000_000).expect("time");
        let now = Timestamp::from_second(1_700_000_100).expect("time");
        let first = merge(&[], blocked("InvalidSpec", "x"), Some(1), then);
        let again = merge(&first, blocked("ConfigMapNotFound", "y"), Some(2), now);
        assert_eq!(again[0].last_transition_time, Time(then), "still False");
        assert_eq!(again[0].reason, "ConfigMapNotFound");
        assert_eq!(again[0].observed_generation, Some(2));
        let s = Snapshot {
            polled: true,
            instances: vec![("fs-0".into(), seen(true, true, 1))],
            routed: Some("fs-0".into()),
            ..Snapshot::default()
        };
        let ready = merge(&again, observe(&s, 1), Some(2), now);
        assert_eq!(ready[0].status, "True");
        assert_eq!(ready[0].last_transition_time, Time(now), "changed");
    }
}
