//! A local emulator of the AWS APIs no existing emulator covers, for tests and local
//! runs: Global Accelerator (JSON 1.1 over `POST /`, `X-Amz-Target:
//! GlobalAccelerator_V20180706.<Operation>`). Stateful: what one call creates, the next
//! reads. Errors come back the way the service sends them (HTTP 400, `x-amzn-ErrorType`
//! and a JSON body with `__type` and `Message`), so the real SDK clients parse them into
//! their typed errors. Request signatures are not checked.
//!
//! Fault injection: [`Emulator::throttle_next`] makes the next calls fail with
//! `ThrottlingException`, as AWS does under load.

pub mod global_accelerator;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// An AWS-style error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The error code (`__type`).
    pub code: &'static str,
    /// Its message.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The JSON-protocol error response.
pub fn error_response(e: &ApiError, content_type: &'static str) -> Response {
    let body = serde_json::json!({ "__type": e.code, "Message": e.message });
    (
        StatusCode::BAD_REQUEST,
        [("x-amzn-ErrorType", e.code), ("content-type", content_type)],
        body.to_string(),
    )
        .into_response()
}

/// The operation named by `X-Amz-Target: <prefix>.<Operation>`.
pub fn target<'a>(headers: &'a HeaderMap, prefix: &str) -> Result<&'a str, ApiError> {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(prefix))
        .and_then(|t| t.strip_prefix('.'))
        .ok_or_else(|| {
            ApiError::new(
                "UnknownOperationException",
                "missing or foreign X-Amz-Target",
            )
        })
}

/// State shared by the emulated services.
#[derive(Default)]
pub struct State {
    /// Global Accelerator.
    pub ga: Mutex<global_accelerator::Ga>,
    /// Calls left to fail with `ThrottlingException`.
    throttle: AtomicU32,
}

impl State {
    /// Whether this call is to be throttled (consumes one).
    pub fn throttled(&self) -> bool {
        self.throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A running emulator.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Emulator {
    /// Serves on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let app = axum::Router::new()
            .route("/", axum::routing::post(global_accelerator::handle))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The endpoint URL to give an SDK client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` calls fail with `ThrottlingException`.
    pub fn throttle_next(&self, n: u32) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    /// The shared state (for assertions).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
