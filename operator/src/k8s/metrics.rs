//! The operator's Prometheus metrics (served on `/metrics` by the `fix-operator` binary).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The `error` label of a failed reconciliation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// What failed (`ReconcileError::metric_label`).
    pub error: String,
}

/// The `kind` label of a leadership change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabel {
    /// `Elected`, `LeaderLost` or `Manual`.
    pub kind: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciliations run.
    pub reconciliations: Counter,
    /// Reconciliations that failed, by what failed.
    pub failures: Family<ErrorLabel, Counter>,
    /// How long a reconciliation took.
    pub duration: Histogram,
    /// Leadership changes the supervisors routed, by kind.
    pub transitions: Family<TransitionLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fix_operator");
        let reconciliations = Counter::default();
        let failures = Family::<ErrorLabel, Counter>::default();
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 16,
        ));
        let transitions = Family::<TransitionLabel, Counter>::default();
        registry.register(
            "reconciliations",
            "FixSession reconciliations run",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "FixSession reconciliations that failed, by what failed",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a FixSession reconciliation took",
            duration.clone(),
        );
        registry.register(
            "leadership_transitions",
            "Leadership changes routed by the supervisors, by kind",
            transitions.clone(),
        );
        Self {
            registry,
            reconciliations,
            failures,
            duration,
            transitions,
        }
    }
}

impl Metrics {
    /// Counts one reconciliation that took `took` and failed with `error` if it did.
    pub fn observe(&self, took: Duration, error: Option<&str>) {
        self.reconciliations.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(e) = error {
            self.failures
                .get_or_create(&ErrorLabel { error: e.into() })
                .inc();
        }
    }

    /// How many reconciliations failed with `error` so far.
    pub fn failures_of(&self, error: &str) -> u64 {
        self.failures
            .get_or_create(&ErrorLabel {
                error: error.into(),
            })
            .get()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
