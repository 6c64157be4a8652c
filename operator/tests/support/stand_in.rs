//! Engine stand-ins serving `/readyz` from a value the test changes: engines that
//! misbehave as a real one never does (an old leader that keeps claiming to lead).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What a stand-in answers on `/readyz`, changed by the test as it goes.
pub type Readiness = Arc<Mutex<serde_json::Value>>;

/// Serves `/readyz` from `state` on a loopback port; returns its address.
pub async fn stand_in(state: Readiness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/readyz",
        axum::routing::get(move || {
            let v = state.lock().expect("lock").clone();
            async move { axum::Json(v) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A `/readyz` body: `role` (`leader` or `standby`) with `epoch`.
pub fn readiness(role: &str, epoch: u64) -> serde_json::Value {
    serde_json::json!({ "ready": role == "leader", "role": role, "epoch": epoch, "sessions": [] })
}
