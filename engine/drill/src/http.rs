//! The engines' admin API, through `fix_engine::admin::client`.

pub use fix_engine::admin::client::request;
use std::net::SocketAddr;
use std::time::Duration;

/// `GET /readyz`, or `None` when the engine does not answer within 500 ms.
pub async fn readiness(admin: SocketAddr) -> Option<fix_engine::admin::api::Readiness> {
    fix_engine::admin::client::readiness(admin, Duration::from_millis(500)).await
}
