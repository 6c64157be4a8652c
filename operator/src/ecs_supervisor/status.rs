//! What `fix-operator ecs` serves: `GET /healthz` and `GET /status`.

use super::fence::{EcsFence, FenceRecord};
use crate::supervisor::{Snapshot, Supervisor, Transition};
use axum::routing::get;
use fix_lease::{Leadership, RoleState};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// This supervisor as `GET /status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Its owner id in the supervisors' election.
    pub owner: String,
    /// The supervisors' lease group.
    pub election_group: String,
    /// It holds the supervisors' lease and supervises now.
    pub acting: bool,
    /// The epoch of its current (or last) term.
    pub epoch: Option<u64>,
    /// How many terms it has acted.
    pub terms: u64,
    /// The last poll of the engines in this term (none while it does not act).
    pub snapshot: Option<Snapshot>,
    /// Every routing change it made, over all its terms.
    pub transitions: Vec<Transition>,
    /// Every fence it carried out or tried.
    pub fences: Vec<FenceRecord>,
}

struct State {
    status: Status,
    supervisor: Option<Arc<Supervisor>>,
    earlier: Vec<Transition>,
}

/// The state the run loop writes and the HTTP handlers read.
pub(super) struct Shared(Mutex<State>);

impl Shared {
    pub(super) fn new(owner: &str, group: &str) -> Self {
        Self(Mutex::new(State {
            status: Status {
                owner: owner.to_string(),
                election_group: group.to_string(),
                acting: false,
                epoch: None,
                terms: 0,
                snapshot: None,
                transitions: Vec::new(),
                fences: Vec::new(),
            },
            supervisor: None,
            earlier: Vec::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn start_term(&self, term: &RoleState) {
        let mut s = self.lock();
        s.status.acting = true;
        s.status.terms += 1;
        if let Leadership::Leader { epoch } = term.role {
            s.status.epoch = Some(epoch);
        }
    }

    pub(super) fn set_supervisor(&self, supervisor: Option<Arc<Supervisor>>) {
        self.lock().supervisor = supervisor;
    }

    pub(super) fn end_term(&self, supervisor: &Supervisor) {
        let mut s = self.lock();
        s.status.acting = false;
        s.earlier.extend(supervisor.transitions());
    }

    /// The status now.
    pub(super) fn status(&self, fence: &EcsFence) -> Status {
        let s = self.lock();
        let mut out = s.status.clone();
        out.transitions = s.earlier.clone();
        if let Some(sup) = &s.supervisor {
            out.transitions.extend(sup.transitions());
            out.snapshot = Some(sup.snapshot());
        }
        out.fences = fence.records();
        out
    }
}

/// Serves `/healthz` and `/status` on `listener` until the process ends.
pub(super) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, fence: EcsFence) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/status",
            get(move || {
                let status = shared.status(&fence);
                async move { axum::Json(status) }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the status listener stopped");
    }
}
