//! The FixSession's status: written from the supervisor's last poll, and the supervisor's
//! new transitions published as events (`LeaderElected`, `FailoverCompleted`,
//! `OldLeaderFenced`, `RoutingFailed`).

use super::conditions::{self, Observed};
use super::controller::{key_of, Context};
use super::crd::{
    FailoverPhase, FailoverRecord, FixSession, FixSessionStatus, ManualFailoverStatus,
};
use super::error::ReconcileError;
use super::metrics::TransitionLabel;
use crate::supervisor::{Snapshot, Transition};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

/// What a running group adds to the status.
pub struct Running<'a> {
    /// The supervisor's last poll.
    pub snapshot: &'a Snapshot,
    /// The newest failover (one with an old leader), if the supervisor saw one.
    pub last_failover: Option<FailoverRecord>,
    /// A manual failover carried out in this reconciliation.
    pub manual: Option<ManualFailoverStatus>,
}

/// RFC 3339 text of a wall-clock time.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    Timestamp::try_from(t).map_or_else(|_| String::new(), |t| t.to_string())
}

/// The leader the snapshot shows (the newest epoch among those reporting leader).
pub fn leader_of(snapshot: &Snapshot) -> Option<(&str, u64)> {
    snapshot
        .instances
        .iter()
        .filter(|(_, s)| s.leader)
        .max_by_key(|(_, s)| s.epoch)
        .map(|(n, s)| (n.as_str(), s.epoch))
}

/// Why a transition happened: `Elected` (no leader before), `Manual` (a manual failover
/// brought this epoch) or `LeaderLost`.
pub fn reason_of(t: &Transition, manual_epoch: Option<u64>) -> &'static str {
    if t.from.is_none() {
        "Elected"
    } else if manual_epoch == Some(t.epoch) {
        "Manual"
    } else {
        "LeaderLost"
    }
}

/// A transition as the status records it, its phases in milliseconds after detection.
pub fn record(t: &Transition, reason: &str) -> FailoverRecord {
    let at = |ms: f64| ms.max(0.0).round() as u64;
    let mut phases = vec![
        FailoverPhase {
            name: "Detected".into(),
            at_ms: 0,
        },
        FailoverPhase {
            name: "LeaseGranted".into(),
            at_ms: at(t.lease_granted_ms),
        },
        FailoverPhase {
            name: "Routed".into(),
            at_ms: at(t.routed_ms),
        },
    ];
    if t.from.is_some() && (t.old_leader_fenced || t.fence_hook_called) {
        phases.push(FailoverPhase {
            name: "OldLeaderFenced".into(),
            at_ms: at(t.routed_ms),
        });
    }
    if let Some(ms) = t.first_logon_ms {
        phases.push(FailoverPhase {
            name: "FirstLogon".into(),
            at_ms: at(ms),
        });
    }
    phases.sort_by_key(|p| p.at_ms);
    FailoverRecord {
        from: t.from.clone(),
        to: t.to.clone(),
        detected_at: rfc3339(t.detected_wall),
        reason: reason.into(),
        phases,
    }
}

/// Publishes events for the transitions not yet reported and a new routing failure;
/// returns the newest failover's record.
pub async fn publish_transitions(fs: &FixSession, ctx: &Context) -> Option<FailoverRecord> {
    let (fresh, all, manual_epoch, routing_error) = {
        let mut groups = ctx.groups().await;
        let g = groups.get_mut(&key_of(fs))?;
        let all = g.supervisor.transitions();
        let fresh: Vec<Transition> = all.get(g.reported..).unwrap_or_default().to_vec();
        g.reported = all.len();
        let err = g.supervisor.snapshot().routing_error;
        let new_err = (err != g.reported_routing_error)
            .then(|| err.clone())
            .flatten();
        g.reported_routing_error = err;
        (fresh, all, g.manual_epoch, new_err)
    };
    for t in &fresh {
        let reason = reason_of(t, manual_epoch);
        ctx.metrics
            .transitions
            .get_or_create(&TransitionLabel {
                kind: reason.into(),
            })
            .inc();
        let (event, note) = match &t.from {
            None => (
                "LeaderElected",
                format!(
                    "{} leads at epoch {}; traffic routed to it",
                    t.to, t.epoch
                ),
            ),
            Some(from) => (
                "FailoverCompleted",
                format!(
                    "{from} → {} at epoch {} ({reason}): lease granted {:.0} ms and traffic routed {:.0} ms after the old leader was lost",
                    t.to, t.epoch, t.lease_granted_ms, t.routed_ms
                ),
            ),
        };
        ctx.event(fs, EventType::Normal, event, note).await;
        if t.fence_hook_called {
            let from = t.from.as_deref().unwrap_or("?");
            ctx.event(
                fs,
                EventType::Warning,
                "OldLeaderFenced",
                format!(
                    "{from} still claimed to lead after traffic moved to {}: its pod was deleted",
                    t.to
                ),
            )
            .await;
        }
    }
    if let Some(e) = routing_error {
        ctx.event(fs, EventType::Warning, "RoutingFailed", e).await;
    }
    all.iter()
        .rev()
        .find(|t| t.from.is_some())
        .map(|t| record(t, reason_of(t, manual_epoch)))
}

/// Writes the status: `observed` conditions (transition times kept), and with a running
/// group its leader, epoch, last failover and manual failover result.
pub async fn write(
    ctx: &Context,
    fs: &FixSession,
    observed: Vec<Observed>,
    running: Option<Running<'_>>,
) -> Result<(), ReconcileError> {
    let previous = fs.status.clone().unwrap_or_default();
    let generation = fs.metadata.generation;
    let mut status = FixSessionStatus {
        conditions: conditions::merge(&previous.conditions, observed, generation, Timestamp::now()),
        observed_generation: generation,
        ..previous
    };
    let mut clear = Vec::new();
    if let Some(r) = running {
        match leader_of(r.snapshot) {
            Some((l, e)) => {
                status.leader = Some(l.to_string());
                status.epoch = Some(e);
            }
            None => {
                status.leader = None;
                status.epoch = None;
                clear = vec!["leader", "epoch"];
            }
        }
        if r.last_failover.is_some() {
            status.last_failover = r.last_failover;
        }
        if r.manual.is_some() {
            status.manual_failover = r.manual;
        }
    }
    let mut body = serde_json::to_value(&status)
        .map_err(|e| ReconcileError::InvalidSpec(format!("encoding the status: {e}")))?;
    for key in clear {
        body[key] = serde_json::Value::Null;
    }
    let api: Api<FixSession> =
        Api::namespaced(ctx.client.clone(), &fs.namespace().unwrap_or_default());
    api.patch_status(
        &fs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": body })),
    )
    .await
    .map_err(ReconcileError::kube(format!(
        "writing the status of FixSession {}",
        fs.name_any()
    )))?;
    Ok(())
}
