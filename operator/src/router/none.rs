//! No routing: for groups whose clients find the leader themselves (alternate addresses,
//! a standby that does not listen). It only remembers where traffic should go, so the
//! supervisor's bookkeeping and manual failover work the same.

use super::{RouteError, TrafficRouter};
use async_trait::async_trait;
use std::sync::Mutex;

/// Remembers the leader; moves nothing.
#[derive(Debug, Default)]
pub struct NoRouter {
    target: Mutex<Option<String>>,
}

#[async_trait]
impl TrafficRouter for NoRouter {
    async fn route_to(&self, instance: &str) -> Result<(), RouteError> {
        *self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(instance.to_string());
        Ok(())
    }

    async fn drain(&self) -> Result<(), RouteError> {
        *self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }

    async fn current(&self) -> Result<Option<String>, RouteError> {
        Ok(self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    fn name(&self) -> &'static str {
        "none"
    }
}
