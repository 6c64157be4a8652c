//! Why a reconciliation failed.

use super::group::GroupError;
use super::resources::BuildError;
use crate::router::RouteError;

/// A FixSession reconciliation failed; the variant names the failed action.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec cannot be turned into objects (it stays so until the spec is fixed).
    #[error("invalid FixSession spec: {0}")]
    InvalidSpec(String),
    /// A ConfigMap key the spec names does not exist.
    #[error("FixSession {fixsession}: spec.{field} names ConfigMap {name} key {key}, which does not exist: create it (kubectl create configmap {name} --from-file={key}=FILE)")]
    ConfigMapNotFound {
        /// The FixSession.
        fixsession: String,
        /// The spec field.
        field: &'static str,
        /// The ConfigMap.
        name: String,
        /// The key.
        key: String,
    },
    /// A Secret key the spec names does not exist.
    #[error("FixSession {fixsession}: spec.{field} names Secret {name} key {key}, which does not exist: create it (kubectl create secret generic {name} --from-literal={key}=VALUE)")]
    SecretNotFound {
        /// The FixSession.
        fixsession: String,
        /// The spec field.
        field: &'static str,
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// A call to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done (`applying StatefulSet fs`).
        action: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The lease store could not be reached or answered with an error.
    #[error("{action}: {source}")]
    Lease {
        /// What was being done.
        action: String,
        /// Why.
        source: fix_lease::LeaseError,
    },
    /// The router failed (draining on delete).
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// Deleting waits for the engine pods to stop before it releases the lease.
    #[error("waiting for {0} engine pod(s) to stop before releasing the lease")]
    PodsStillRunning(usize),
    /// Adding or removing the finalizer failed.
    #[error("updating the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
}

impl ReconcileError {
    /// The `error` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "invalid_spec",
            Self::ConfigMapNotFound { .. } => "configmap_not_found",
            Self::SecretNotFound { .. } => "secret_not_found",
            Self::Kube { source, .. } | Self::Finalizer(source) => match source {
                kube::Error::Api(s) if s.code == 409 => "conflict",
                kube::Error::Api(_) => "api_error",
                _ => "api_unreachable",
            },
            Self::Lease { .. } => "lease_store",
            Self::Route(_) => "routing",
            Self::PodsStillRunning(_) => "waiting_for_pods",
        }
    }

    /// The reason of the event and of the `Ready` condition for a failure the spec's
    /// author must fix (none for transient failures).
    pub fn spec_reason(&self) -> Option<&'static str> {
        match self {
            Self::InvalidSpec(_) => Some("InvalidSpec"),
            Self::ConfigMapNotFound { .. } => Some("ConfigMapNotFound"),
            Self::SecretNotFound { .. } => Some("SecretNotFound"),
            _ => None,
        }
    }

    /// Wraps a Kubernetes API failure with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

impl From<BuildError> for ReconcileError {
    fn from(e: BuildError) -> Self {
        Self::InvalidSpec(e.to_string())
    }
}

impl From<GroupError> for ReconcileError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Routing(_) => Self::InvalidSpec(e.to_string()),
            GroupError::Lease { group, source } => Self::Lease {
                action: format!("connecting to the lease store of group {group}"),
                source,
            },
        }
    }
}
