//! The admin HTTP API (axum): health, readiness, metrics, sessions, and token-protected
//! actions.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs and its journal works; 503 once a write or fsync failed (restart it) |
//! | `GET /readyz` | 200 only on a leader (or without a lease), 503 otherwise; JSON body with role, epoch and every session in both cases |
//! | `GET /metrics` | Prometheus / OpenMetrics text |
//! | `GET /sessions`, `GET /sessions/{begin}/{sender}/{target}` | state and sequence numbers |
//! | `POST /sessions/{begin}/{sender}/{target}/logout` | start a Logout (token) |
//! | `POST /sessions/{begin}/{sender}/{target}/sequence` | `{"next_sender":N,"next_target":N}` (token) |
//! | `GET /sessions/{begin}/{sender}/{target}/messages?from=N&to=M` | stored outbound messages (`|` as separator), at most 1000 |
//! | `POST /sessions/{begin}/{sender}/{target}/reset` | sequence numbers back to 1, stored messages forgotten; only while logged out (token) |
//! | `POST /step-down?pause_ms=N` | release the lease for a manual failover (token) |
//! | `POST /logons/hold`, `POST /logons/release` | refuse new FIX connections (sessions already connected stay), or accept them again; a new term as leader releases (token) |
//! | `GET /replication` | journal positions, standbys with their acknowledged position and lag (per session too), the in-sync set while leading, or the follower's view of its leader |
//! | `POST /replication/pause[?standby=NAME]`, `POST /replication/resume[?standby=NAME]` | stop or resume sending records to one standby or all (token) |
//!
//! Actions need `Authorization: Bearer <engine.admin.token>`; without a configured token
//! they are refused. Reads other than `/healthz` and `/readyz` (which probes and load
//! balancers call) show message bodies and the group's layout: with a token they need it
//! too, and without one they are served to loopback clients only.

use crate::admin_listener::{AdminPeer, CappedListener};
use crate::error::EngineError;
use crate::handle::EngineHandle;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fix_session::SessionId;
use serde::Deserialize;

use std::time::Duration;
use tokio::net::TcpListener;

pub mod api;
mod auth;
pub mod client;

use api::{
    Readiness, ReplicationView, RoleName, SessionState, SessionView, StandbyLag, StoredMessage,
};
use auth::{authorize, guard_reads};

#[derive(Clone)]
struct AdminState {
    handle: EngineHandle,
    token: Option<String>,
}

/// One session with what the metrics need besides what the API shows.
struct SessionRow {
    view: SessionView,
    key: fix_session::SessionId,
    counters: fix_session::SessionCounters,
}

fn replication_view(handle: &EngineHandle, per_session: bool) -> Option<ReplicationView> {
    let r = handle.replication()?;
    let (appended, durable) = handle.journal_positions().unwrap_or_default();
    let leading = matches!(handle.role(), fix_lease::Leadership::Leader { .. });
    let standbys: Vec<StandbyLag> = r
        .standbys()
        .into_iter()
        .map(|s| StandbyLag {
            lag_bytes: durable.saturating_sub(s.acked),
            lag_records: per_session.then(|| handle.records_after(s.acked).into_iter().collect()),
            standby: s,
        })
        .collect();
    let cross_region_lag_bytes = (leading && r.region().is_some()).then(|| {
        standbys
            .iter()
            .filter(|s| s.standby.remote)
            .map(|s| s.lag_bytes)
            .min()
            .unwrap_or(durable)
    });
    Some(ReplicationView {
        appended,
        durable,
        paused: r.paused(),
        cross_region_lag_bytes,
        standbys,
        in_sync: r.in_sync(),
        follower: (!leading).then(|| r.follower()),
    })
}

#[derive(Debug, Deserialize)]
struct SequenceRequest {
    next_sender: Option<u64>,
    next_target: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Option<u64>,
    to: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct StepDownQuery {
    pause_ms: Option<u64>,
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": text.into() }))).into_response()
}

fn engine_error(e: EngineError) -> Response {
    let status = match e {
        EngineError::UnknownSession(_) => StatusCode::NOT_FOUND,
        EngineError::NotLeader(_) | EngineError::LoggedOn(_) => StatusCode::CONFLICT,
        EngineError::Send(fix_session::SendError::Store(fix_session::StoreError::Fenced {
            ..
        })) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// How long one session's task may take to report its status: a task blocked on a
/// counterparty that stopped reading must not hold up `/readyz` for everyone.
const STATUS_TIMEOUT: Duration = Duration::from_millis(250);

/// What the API shows of a session, from its task's status.
fn session_view(id: &SessionId, s: &crate::actor::SessionStatus) -> SessionView {
    SessionView {
        id: id.to_string(),
        state: s.state.into(),
        next_sender_seq: s.next_sender_seq,
        next_target_seq: s.next_target_seq,
        peer: s.peer.map(|p| p.to_string()),
    }
}

async fn rows(handle: &EngineHandle) -> Vec<SessionRow> {
    let mut ids = handle.session_ids();
    ids.sort();
    let asks = ids.into_iter().map(|id| async move {
        let status = tokio::time::timeout(STATUS_TIMEOUT, handle.status(&id)).await;
        match status {
            Ok(Ok(s)) => Some(SessionRow {
                view: session_view(&id, &s),
                counters: s.counters,
                key: id,
            }),
            // Busy (blocked writing to a slow counterparty, say): shown, not waited for.
            Err(_) => Some(SessionRow {
                view: unresponsive(&id),
                counters: fix_session::SessionCounters::default(),
                key: id,
            }),
            Ok(Err(_)) => None,
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn views(handle: &EngineHandle) -> Vec<SessionView> {
    rows(handle).await.into_iter().map(|r| r.view).collect()
}

/// The sessions as `/readyz` shows them: on a leader, as each task left its status at
/// the end of its last turn (readiness never waits for a busy session: a thousand of
/// them taking over at once would delay it by [`STATUS_TIMEOUT`]), `Unresponsive` for
/// one still taking over; on a standby, asked (its journal moves under idle tasks with
/// replication).
async fn readiness_views(handle: &EngineHandle, leading_epoch: Option<u64>) -> Vec<SessionView> {
    let Some(epoch) = leading_epoch else {
        return views(handle).await;
    };
    let mut statuses = handle.published_statuses(epoch);
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    statuses
        .iter()
        .map(|(id, s)| match s {
            Some(s) => session_view(id, s),
            None => unresponsive(id),
        })
        .collect()
}

/// A session whose task did not answer in time.
fn unresponsive(id: &SessionId) -> SessionView {
    SessionView {
        id: id.to_string(),
        state: SessionState::Unresponsive,
        ..SessionView::default()
    }
}

async fn healthz(State(st): State<AdminState>) -> Response {
    match st.handle.journal_failure() {
        None => "ok".into_response(),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("journal failed: {e}; this instance no longer leads nor contends: restart it once its disk is fixed\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(st): State<AdminState>) -> Response {
    let (role, epoch) = match st.handle.role() {
        fix_lease::Leadership::Leader { epoch } => (RoleName::Leader, epoch),
        fix_lease::Leadership::Standby => (RoleName::Standby, 0),
    };
    let holder = st.handle.lease_holder();
    let body = Readiness {
        ready: role == RoleName::Leader,
        role,
        epoch,
        lease: st.handle.role_reason(),
        lease_owner: holder.as_ref().map(|h| h.owner.clone()),
        lease_epoch: holder.as_ref().map(|h| h.epoch),
        lease_expires_in_ms: holder.as_ref().map(|h| h.expires_in_ms),
        lease_in_sync: holder.as_ref().and_then(|h| h.in_sync.clone()),
        in_sync: st.handle.in_sync_member(),
        contends: st.handle.contends(),
        sessions: readiness_views(&st.handle, (role == RoleName::Leader).then_some(epoch)).await,
        replication: replication_view(&st.handle, false),
        logons_held: st.handle.logons_held(),
        journal_failed: st.handle.journal_failure(),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(st): State<AdminState>) -> Response {
    let m = st.handle.metrics();
    for r in rows(&st.handle)
        .await
        .into_iter()
        .filter(|r| r.view.state != SessionState::Unresponsive)
    {
        let label = crate::metrics::SessionLabel::of(&r.key);
        m.session_counts.update(&label, &r.counters);
        m.next_sender_seq
            .get_or_create(&label)
            .set(r.view.next_sender_seq as i64);
        m.next_target_seq
            .get_or_create(&label)
            .set(r.view.next_target_seq as i64);
    }
    match st.handle.role() {
        fix_lease::Leadership::Leader { epoch } => {
            m.leader.set(1);
            m.epoch.set(epoch as i64);
        }
        fix_lease::Leadership::Standby => {
            m.leader.set(0);
        }
    }
    m.leader_terms.set(st.handle.leader_terms() as i64);
    if let Some(r) = replication_view(&st.handle, false) {
        m.replication_standbys.set(r.standbys.len() as i64);
        let lag = match (&r.follower, r.standbys.iter().map(|s| s.lag_bytes).min()) {
            (Some(_), _) => 0,
            (None, Some(l)) => l,
            (None, None) => r.durable,
        };
        m.replication_lag_bytes.set(lag as i64);
        if let Some(remote) = r.cross_region_lag_bytes {
            m.replication_cross_region_lag_bytes.set(remote as i64);
        }
        if let Some(rep) = st.handle.replication() {
            m.replication_degraded_writes
                .set(rep.degraded_writes() as i64);
        }
        let in_sync = r.in_sync.as_ref();
        m.replication_in_sync_members.set(
            in_sync
                .and_then(|v| v.recorded.as_ref())
                .map_or(0, |v| v.len() as i64),
        );
        if let Some(v) = in_sync {
            m.replication_in_sync_shrinks.set(v.shrinks as i64);
            m.replication_in_sync_expands.set(v.expands as i64);
        }
        m.replication_halted
            .set(i64::from(in_sync.is_some_and(|v| v.halted)));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

async fn sessions(State(st): State<AdminState>) -> Json<Vec<SessionView>> {
    Json(views(&st.handle).await)
}

async fn session(
    State(st): State<AdminState>,
    Path((b, s, t)): Path<(String, String, String)>,
) -> Response {
    let id = SessionId::new(&b, &s, &t);
    match st.handle.status(&id).await {
        Ok(s) => Json(session_view(&id, &s)).into_response(),
        Err(e) => engine_error(e),
    }
}

async fn logout(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((b, s, t)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = authorize(&st, &headers) {
        return *r;
    }
    match st
        .handle
        .logout(
            &SessionId::new(&b, &s, &t),
            Some("logout requested by operator".into()),
        )
        .await
    {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => engine_error(e),
    }
}

async fn sequence(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((b, s, t)): Path<(String, String, String)>,
    Json(req): Json<SequenceRequest>,
) -> Response {
    if let Err(r) = authorize(&st, &headers) {
        return *r;
    }
    if req.next_sender == Some(0) || req.next_target == Some(0) {
        return error(StatusCode::BAD_REQUEST, "sequence numbers start at 1");
    }
    match st
        .handle
        .set_sequence_numbers(
            &SessionId::new(&b, &s, &t),
            req.next_sender,
            req.next_target,
        )
        .await
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => engine_error(e),
    }
}

async fn messages(
    State(st): State<AdminState>,
    Path((b, s, t)): Path<(String, String, String)>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let from = q.from.unwrap_or(1).max(1);
    let to = q.to.unwrap_or(u64::MAX);
    if to < from {
        return error(StatusCode::BAD_REQUEST, "`to` is below `from`");
    }
    match st
        .handle
        .stored_messages(&SessionId::new(&b, &s, &t), from, to, 1000)
        .await
    {
        Ok(list) => Json(
            list.into_iter()
                .map(|(seq, m)| StoredMessage {
                    seq,
                    message: fix_codec::human::to_human(&m),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => engine_error(e),
    }
}

async fn reset(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((b, s, t)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = authorize(&st, &headers) {
        return *r;
    }
    match st.handle.reset(&SessionId::new(&b, &s, &t)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => engine_error(e),
    }
}

async fn hold_logons(State(st): State<AdminState>, headers: HeaderMap) -> Response {
    set_logon_hold(&st, &headers, true)
}

async fn release_logons(State(st): State<AdminState>, headers: HeaderMap) -> Response {
    set_logon_hold(&st, &headers, false)
}

fn set_logon_hold(st: &AdminState, headers: &HeaderMap, hold: bool) -> Response {
    if let Err(r) = authorize(st, headers) {
        return *r;
    }
    st.handle.hold_logons(hold);
    StatusCode::OK.into_response()
}

async fn step_down(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<StepDownQuery>,
) -> Response {
    if let Err(r) = authorize(&st, &headers) {
        return *r;
    }
    st.handle
        .step_down(Duration::from_millis(q.pause_ms.unwrap_or(10_000)))
        .await;
    StatusCode::ACCEPTED.into_response()
}

async fn replication(State(st): State<AdminState>) -> Response {
    match replication_view(&st.handle, true) {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "replication is not configured: add an [engine.replication] section",
        ),
    }
}

#[derive(Debug, Deserialize)]
struct PauseQuery {
    standby: Option<String>,
}

async fn set_paused(
    st: AdminState,
    headers: HeaderMap,
    standby: Option<String>,
    paused: bool,
) -> Response {
    if let Err(r) = authorize(&st, &headers) {
        return *r;
    }
    match st.handle.replication() {
        Some(r) => {
            r.set_paused(standby.as_deref(), paused);
            StatusCode::OK.into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "replication is not configured: add an [engine.replication] section",
        ),
    }
}

async fn pause(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<PauseQuery>,
) -> Response {
    set_paused(st, headers, q.standby, true).await
}

async fn resume(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<PauseQuery>,
) -> Response {
    set_paused(st, headers, q.standby, false).await
}

/// The router over an engine handle.
fn router(handle: EngineHandle, token: Option<String>) -> Router {
    let state = AdminState { handle, token };
    let reads = Router::new()
        .route("/metrics", get(metrics))
        .route("/sessions", get(sessions))
        .route("/sessions/{begin}/{sender}/{target}", get(session))
        .route(
            "/sessions/{begin}/{sender}/{target}/messages",
            get(messages),
        )
        .route("/replication", get(replication))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard_reads));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(reads)
        .route("/sessions/{begin}/{sender}/{target}/logout", post(logout))
        .route(
            "/sessions/{begin}/{sender}/{target}/sequence",
            post(sequence),
        )
        .route("/sessions/{begin}/{sender}/{target}/reset", post(reset))
        .route("/step-down", post(step_down))
        .route("/logons/hold", post(hold_logons))
        .route("/logons/release", post(release_logons))
        .route("/replication/pause", post(pause))
        .route("/replication/resume", post(resume))
        .with_state(state)
}

/// Serves the admin API on `listener` until the task is aborted; connections beyond
/// [`crate::pending::ADMIN_LIMITS`] are closed at accept and counted in `refused`.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: EngineHandle,
    token: Option<String>,
    refused: prometheus_client::metrics::counter::Counter,
) {
    let listener = CappedListener::new(
        listener,
        crate::pending::Pending::admin(refused),
        crate::admin_listener::IDLE,
    );
    let app = router(handle, token).into_make_service_with_connect_info::<AdminPeer>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin API stopped");
    }
}
