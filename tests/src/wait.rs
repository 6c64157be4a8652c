//! Waiting on conditions instead of sleeping a fixed time.

use fix_engine::EngineHandle;
use fix_session::{SessionId, State};
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the session reaches `state` within `limit`.
pub async fn reaches_state(
    handle: &EngineHandle,
    id: &SessionId,
    state: State,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if handle
            .status(id)
            .await
            .map(|s| s.state == state)
            .unwrap_or(false)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
