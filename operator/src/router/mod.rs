//! Where client traffic goes: one engine instance at a time, or none (drained).

pub mod arc;
pub mod global_accelerator;
pub mod local_proxy;
pub mod none;

use async_trait::async_trait;
use thiserror::Error;

/// A routing change failed.
#[derive(Debug, Error)]
pub enum RouteError {
    /// The instance is not one the router knows.
    #[error("no endpoint named {0}: known endpoints are {1}")]
    UnknownEndpoint(String, String),
    /// The backend answered and refused the change (a safety rule, for example): retrying
    /// the same change will not help.
    #[error("{backend} refused to route to {to}: {detail}")]
    Refused {
        /// Which router.
        backend: &'static str,
        /// The intended instance (`(none)` when draining).
        to: String,
        /// What refused it and what to do.
        detail: String,
    },
    /// The routing backend failed (unreachable, throttled, an unexpected answer).
    #[error("{backend} could not route to {to}: {detail}")]
    Backend {
        /// Which router.
        backend: &'static str,
        /// The intended instance.
        to: String,
        /// What went wrong.
        detail: String,
    },
}

/// The names in `names` that `map` has no entry for (a router's configuration must name
/// every instance).
pub fn missing_names<'a, V>(
    names: &[&'a str],
    map: &std::collections::BTreeMap<String, V>,
) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|n| !map.contains_key(*n))
        .collect()
}

/// Moves client traffic to one instance of the group.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Sends new traffic to `instance` only, and ends established traffic to the others
    /// where the backend can (the proxy closes them; Global Accelerator cannot, which is
    /// why the old leader must be fenced too).
    async fn route_to(&self, instance: &str) -> Result<(), RouteError>;

    /// Sends traffic to no instance of the group (the group is being deleted): new
    /// connections find nothing behind the route instead of a stopping engine.
    async fn drain(&self) -> Result<(), RouteError>;

    /// Where traffic goes now, read back from the backend.
    async fn current(&self) -> Result<Option<String>, RouteError>;

    /// The backend's name, for logs and reports.
    fn name(&self) -> &'static str;
}
