//! Manual failover on Kubernetes. Asking: set the annotations
//! `fix.fixengine.dev/failover` (`any`, or the pod that should lead) and
//! `fix.fixengine.dev/failover-id` (new per request) on the FixSession — by hand or with
//! `fixctl failover --fixsession NAME` ([`request`]). Carrying out: the reconciliation
//! that sees an id it has not reported yet asks the leader to step down through the
//! supervisor ([`carry_out`]) and reports the result in `status.manualFailover` under
//! that id, with `ManualFailoverRequested` and `ManualFailoverCompleted` or
//! `ManualFailoverFailed` events. Each id is carried out once.

use super::controller::{key_of, Context};
use super::crd::{FixSession, ManualFailoverStatus, FAILOVER_ANNOTATION, FAILOVER_ID_ANNOTATION};
use super::status::rfc3339;
use crate::supervisor::Supervisor;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Client, ResourceExt};
use std::time::{Duration, Instant, SystemTime};

/// How long the old leader stays out of the lease contest after stepping down: three
/// lease TTLs, at least 3 s and at most 30 s (long enough for a standby to win, short
/// enough that the old leader is soon a standby again and can be failed back to).
pub fn step_down_pause(ttl_ms: u64) -> Duration {
    Duration::from_millis(ttl_ms.saturating_mul(3))
        .clamp(Duration::from_secs(3), Duration::from_secs(30))
}

/// The manual failover the annotations ask for and the status has not reported:
/// `(id, target)`.
pub fn pending(fs: &FixSession) -> Option<(String, String)> {
    let a = fs.annotations();
    let target = a.get(FAILOVER_ANNOTATION)?.trim().to_string();
    let id = a
        .get(FAILOVER_ID_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| target.clone());
    let done = fs
        .status
        .as_ref()
        .and_then(|s| s.manual_failover.as_ref())
        .is_some_and(|m| m.id == id);
    (!done).then_some((id, target))
}

/// Carries out a pending manual failover, if there is one; returns its result.
pub async fn carry_out(
    fs: &FixSession,
    ctx: &Context,
    supervisor: &Supervisor,
) -> Option<ManualFailoverStatus> {
    let (id, target) = pending(fs)?;
    ctx.event(
        fs,
        EventType::Normal,
        "ManualFailoverRequested",
        format!("request {id}: fail over to {target}"),
    )
    .await;
    let to = (target != "any").then_some(target.as_str());
    let result = supervisor
        .failover(
            to,
            step_down_pause(fs.spec.lease.ttl_ms),
            ctx.settings.failover_limit,
        )
        .await;
    let (outcome, message) = match &result {
        Ok(t) => {
            if let Some(g) = ctx.groups().await.get_mut(&key_of(fs)) {
                g.manual_epoch = Some(t.epoch);
            }
            (
                "Succeeded",
                format!(
                    "{} → {} at epoch {}: traffic routed {:.0} ms after the step-down",
                    t.from.as_deref().unwrap_or("-"),
                    t.to,
                    t.epoch,
                    t.routed_ms
                ),
            )
        }
        Err(e) => ("Failed", e.to_string()),
    };
    let (type_, reason) = if result.is_ok() {
        (EventType::Normal, "ManualFailoverCompleted")
    } else {
        (EventType::Warning, "ManualFailoverFailed")
    };
    ctx.event(fs, type_, reason, format!("request {id}: {message}"))
        .await;
    Some(ManualFailoverStatus {
        id,
        target,
        outcome: outcome.into(),
        message,
        finished_at: rfc3339(SystemTime::now()),
    })
}

/// A manual failover request through the API did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Reading or annotating the FixSession failed.
    #[error("{action} FixSession {namespace}/{name}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// The FixSession.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The operator did not report the request in time.
    #[error("the operator did not report failover request {id} within {limit:?}: is fix-operator running? (kubectl -n {namespace} describe fixsession {name})")]
    Timeout {
        /// The request.
        id: String,
        /// How long we waited.
        limit: Duration,
        /// The namespace.
        namespace: String,
        /// The FixSession.
        name: String,
    },
    /// The operator carried it out and it failed.
    #[error("failover request {id} failed: {message}")]
    Failed {
        /// The request.
        id: String,
        /// Why.
        message: String,
    },
}

/// Asks the operator for a manual failover of FixSession `name` to `target` (`any` or a
/// pod name) and waits until it reports the result.
pub async fn request(
    client: Client,
    namespace: &str,
    name: &str,
    target: &str,
    limit: Duration,
) -> Result<ManualFailoverStatus, RequestError> {
    let api: Api<FixSession> = Api::namespaced(client, namespace);
    let err = |action| {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        move |source| RequestError::Api {
            action,
            namespace,
            name,
            source,
        }
    };
    let id = format!(
        "fixctl-{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let patch = serde_json::json!({
        "metadata": { "annotations": {
            FAILOVER_ANNOTATION: target,
            FAILOVER_ID_ANNOTATION: id,
        }}
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(err("annotating"))?;
    let deadline = Instant::now() + limit;
    loop {
        let fs = api.get(name).await.map_err(err("reading"))?;
        if let Some(m) = fs.status.and_then(|s| s.manual_failover) {
            if m.id == id {
                return if m.outcome == "Succeeded" {
                    Ok(m)
                } else {
                    Err(RequestError::Failed {
                        id,
                        message: m.message,
                    })
                };
            }
        }
        if Instant::now() > deadline {
            return Err(RequestError::Timeout {
                id,
                limit,
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
