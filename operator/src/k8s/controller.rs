//! The FixSession controller: [`reconcile`] through a finalizer into [`super::apply`]
//! (objects, supervision, status) or [`super::cleanup`] (routing drained, lease
//! released), an [`error_policy`] with exponential backoff, and [`run`] wiring both into
//! a kube-runtime `Controller` that also watches the objects it owns.

use super::crd::FixSession;
use super::error::ReconcileError;
use super::group::{Addressing, Group};
use super::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The finalizer the operator puts on every FixSession.
pub const FINALIZER: &str = "fix.fixengine.dev/cleanup";
/// The field manager of the operator's server-side applies.
pub const MANAGER: &str = "fix-operator";

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the supervisors reach the pods' admin APIs.
    pub addressing: Addressing,
    /// Time between the supervisors' polls of `/readyz`.
    pub poll: Duration,
    /// Time between status refreshes of a running FixSession.
    pub status_refresh: Duration,
    /// How long a manual failover may take before it is reported failed.
    pub failover_limit: Duration,
    /// First retry delay after a failure (doubled per consecutive failure).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addressing: Addressing::PodDns,
            poll: Duration::from_millis(100),
            status_refresh: Duration::from_secs(2),
            failover_limit: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// What every reconciliation shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes events.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// How the controller behaves.
    pub settings: Settings,
    groups: tokio::sync::Mutex<HashMap<String, Group>>,
    failures: Mutex<HashMap<String, u32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `namespace/name`, the key of a FixSession's group and backoff.
pub fn key_of(fs: &FixSession) -> String {
    format!("{}/{}", fs.namespace().unwrap_or_default(), fs.name_any())
}

impl Context {
    /// A context over `client`, publishing events as `fix-operator`.
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            groups: tokio::sync::Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The running groups (by `namespace/name`).
    pub async fn groups(&self) -> tokio::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().await
    }

    /// Publishes an event about `fs` (a failure to publish is logged, not fatal).
    pub async fn event(&self, fs: &FixSession, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &fs.object_ref(&())).await {
            tracing::warn!(fixsession = %key_of(fs), reason, error = %e, "publishing an event failed");
        }
    }

    /// Consecutive failures of `key`'s reconciliation so far.
    pub fn failures(&self, key: &str) -> u32 {
        lock(&self.failures).get(key).copied().unwrap_or(0)
    }
}

/// Reconciles one FixSession: adds the finalizer first, then applies (or, once deleted,
/// cleans up and removes the finalizer).
pub async fn reconcile(fs: Arc<FixSession>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let key = key_of(&fs);
    let ns = fs.namespace().unwrap_or_default();
    let api: Api<FixSession> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, fs, |event| async {
        match event {
            FinalizerEvent::Apply(fs) => super::apply::apply(&fs, &ctx).await,
            FinalizerEvent::Cleanup(fs) => super::cleanup::cleanup(&fs, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => {
            ReconcileError::Finalizer(e)
        }
        FinalizerError::UnnamedObject | FinalizerError::InvalidFinalizer => {
            ReconcileError::InvalidSpec("the FixSession has no name".into())
        }
    });
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::metric_label),
    );
    if result.is_ok() {
        lock(&ctx.failures).remove(&key);
    }
    result
}

/// After a failure: retry after `backoff_base · 2^(n-1)` for the n-th consecutive
/// failure, at most `backoff_max`; waiting for pods to stop retries at the base delay.
pub fn error_policy(fs: Arc<FixSession>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = key_of(&fs);
    let n = {
        let mut f = lock(&ctx.failures);
        let n = f.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let delay = if matches!(error, ReconcileError::PodsStillRunning(_)) {
        ctx.settings.backoff_base
    } else {
        backoff(ctx.settings.backoff_base, ctx.settings.backoff_max, n)
    };
    tracing::warn!(fixsession = %key, error = %error, attempt = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// `base · 2^(n-1)`, at most `max`.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

/// Runs the controller until the process is stopped: every FixSession in the cluster
/// (or in `namespace`), and the objects it owns.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let client = ctx.client.clone();
    let (fixsessions, sets, maps, services, budgets) = match namespace {
        Some(ns) => (
            Api::<FixSession>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=fix-operator");
    Controller::new(fixsessions, watcher::Config::default())
        .owns(sets, owned.clone())
        .owns(maps, owned.clone())
        .owns(services, owned.clone())
        .owns(budgets, owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::debug!(fixsession = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile round ended with an error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(Duration::from_secs(1), Duration::from_secs(300), n);
        assert_eq!(b(1), Duration::from_secs(1));
        assert_eq!(b(2), Duration::from_secs(2));
        assert_eq!(b(5), Duration::from_secs(16));
        assert_eq!(b(9), Duration::from_secs(256));
        assert_eq!(b(10), Duration::from_secs(300));
        assert_eq!(b(u32::MAX), Duration::from_secs(300));
    }
}
