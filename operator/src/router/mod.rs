//! Where client traffic goes: one engine instance at a time.

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
    /// The routing backend refused or failed.
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

/// Moves client traffic to one instance of the group.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Sends new traffic to `instance` only, and ends established traffic to the others
    /// where the backend can (the proxy closes them; Global Accelerator cannot, which is
    /// why the old leader must be fenced too).
    async fn route_to(&self, instance: &str) -> Result<(), RouteError>;

    /// Where traffic goes now, read back from the backend.
    async fn current(&self) -> Result<Option<String>, RouteError>;

    /// The backend's name, for logs and reports.
    fn name(&self) -> &'static str;
}
