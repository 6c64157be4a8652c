//! A local emulator of the AWS APIs no existing emulator covers, for tests and local
//! runs: Global Accelerator (JSON 1.1 over `POST /`, `X-Amz-Target:
//! GlobalAccelerator_V20180706.<Operation>`), and Route 53 ARC — its cluster data plane
//! (JSON 1.0, `ToggleCustomerAPI.<Operation>`) and its control-config API (REST-JSON on
//! `/cluster`, `/controlpanel`, `/routingcontrol`, `/safetyrule`). Stateful: what one call creates, the next
//! reads. Errors come back the way the service sends them (HTTP 400, `x-amzn-ErrorType`
//! and a JSON body with `__type` and `Message`), so the real SDK clients parse them into
//! their typed errors. Request signatures are not checked.
//!
//! Fault injection: [`Emulator::throttle_next`] makes the next calls fail with
//! `ThrottlingException`, as AWS does under load.

pub mod arc;
pub mod global_accelerator;
pub mod provision;

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

/// `POST /`: the JSON protocols, by `X-Amz-Target`.
async fn json_call(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if arc::is_cluster_call(&headers) {
        arc::handle_cluster(&state, &headers, &body)
    } else {
        global_accelerator::handle(axum::extract::State(state), headers, body).await
    }
}

/// State shared by the emulated services.
#[derive(Default)]
pub struct State {
    /// Global Accelerator.
    pub ga: Mutex<global_accelerator::Ga>,
    /// Route 53 ARC.
    pub arc: Mutex<arc::ArcService>,
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
        Self::start_with_dead_endpoints(&[]).await
    }

    /// Like [`Emulator::start`]; ARC clusters list the `dead` endpoints (URL, region)
    /// first and this emulator last, so clients must try them in turn.
    pub async fn start_with_dead_endpoints(dead: &[(&str, &str)]) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        {
            let mut arc = state
                .arc
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            arc.endpoints = dead
                .iter()
                .map(|(u, r)| (u.to_string(), r.to_string()))
                .chain([(format!("http://{addr}"), "us-west-2".to_string())])
                .collect();
        }
        let app = axum::Router::new()
            .route("/", axum::routing::post(json_call))
            .route("/cluster", axum::routing::post(arc::create_cluster))
            .route("/cluster/{arn}", axum::routing::get(arc::describe_cluster))
            .route(
                "/controlpanel",
                axum::routing::post(arc::create_control_panel),
            )
            .route(
                "/routingcontrol",
                axum::routing::post(arc::create_routing_control),
            )
            .route("/safetyrule", axum::routing::post(arc::create_safety_rule))
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
