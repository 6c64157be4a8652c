//! [`EngineHandle`]: what other tasks (the admin API, the Kafka bridge, applications)
//! use to send on sessions, ask for their status, and read the role and the journal.

use crate::actor::{Command, SessionStatus};
use crate::error::EngineError;
use fix_session::{SendError, SessionId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Sends to sessions and asks for their status from any task.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) sessions: Arc<HashMap<SessionId, mpsc::Sender<Command>>>,
    pub(crate) published: Arc<HashMap<SessionId, crate::actor::PublishedStatus>>,
    pub(crate) keeper: Option<Arc<fix_lease::Keeper>>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) replication: Option<Arc<crate::replication::Replication>>,
    pub(crate) journal: Option<fix_store::Journal>,
    pub(crate) serving: Option<tokio::sync::watch::Receiver<fix_lease::RoleState>>,
    pub(crate) logons_held: Arc<std::sync::atomic::AtomicBool>,
}

impl EngineHandle {
    /// Refuses (true) or accepts again (false) new FIX connections on every acceptor
    /// port; sessions already connected are not touched. A planned rotation holds logons
    /// before logging sessions out, so no counterparty logs on again to the old leader.
    pub fn hold_logons(&self, hold: bool) {
        self.logons_held
            .store(hold, std::sync::atomic::Ordering::SeqCst);
        tracing::warn!(hold, "new FIX connections held/released by an admin call");
    }

    /// Whether new FIX connections are being refused.
    pub fn logons_held(&self) -> bool {
        self.logons_held.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn tx(&self, id: &SessionId) -> Result<&mpsc::Sender<Command>, EngineError> {
        self.sessions
            .get(id)
            .ok_or_else(|| EngineError::UnknownSession(id.to_string()))
    }

    /// Sends `command(reply)` to the session's task and waits for the reply.
    async fn ask<T>(
        &self,
        id: &SessionId,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx(id)?
            .send(command(reply))
            .await
            .map_err(|_| EngineError::Stopped(id.to_string()))?;
        rx.await.map_err(|_| EngineError::Stopped(id.to_string()))
    }

    /// Sends an application message; resolves once it is durable (and written if logged
    /// on). An error when it may not be durable: the store failed
    /// ([`fix_session::SendError::Stopped`]) or this instance stopped leading first
    /// ([`EngineError::NotLeader`]). It was then not written to the counterparty, but it
    /// may still have been stored (and be resent after a failover), so a caller that
    /// sends it again through the next leader should look at the stored messages first,
    /// as the Kafka bridge does.
    pub async fn send(
        &self,
        id: &SessionId,
        msg_type: &[u8],
        body: &[u8],
    ) -> Result<u64, EngineError> {
        self.ask(id, |reply| Command::Send {
            msg_type: msg_type.to_vec(),
            body: body.to_vec(),
            reply,
        })
        .await?
    }

    /// Current state and sequence numbers.
    pub async fn status(&self, id: &SessionId) -> Result<SessionStatus, EngineError> {
        self.ask(id, Command::Status).await
    }

    /// Sets the next outbound and/or expected inbound sequence number (admin action).
    pub async fn set_sequence_numbers(
        &self,
        id: &SessionId,
        next_sender: Option<u64>,
        next_target: Option<u64>,
    ) -> Result<(), EngineError> {
        self.ask(id, |reply| Command::SetSequence {
            next_sender,
            next_target,
            reply,
        })
        .await?
        .map_err(|e| EngineError::Send(SendError::Store(e)))
    }

    /// Stored outbound messages of a session with `from <= seq <= to` (at most `limit`),
    /// as the journal holds them (also on a standby, from the replicated journal).
    pub async fn stored_messages(
        &self,
        id: &SessionId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, EngineError> {
        self.ask(id, |reply| Command::Messages {
            from,
            to,
            limit,
            reply,
        })
        .await?
        .map_err(|e| EngineError::Send(SendError::Store(e)))
    }

    /// Resets both sequence numbers to 1 and forgets stored messages (admin action;
    /// refused while logged on or on a standby).
    pub async fn reset(&self, id: &SessionId) -> Result<(), EngineError> {
        self.ask(id, Command::Reset).await?
    }

    /// The role the sessions follow: `Leader` only once the journal is open for the
    /// lease's epoch (after the SQL drain with `sql` durability), so a leader reported here
    /// accepts logons; `Leader` with epoch 0 when no lease is configured.
    pub fn role(&self) -> fix_lease::Leadership {
        self.serving
            .as_ref()
            .map_or(fix_lease::Leadership::Leader { epoch: 0 }, |r| {
                let state = r.borrow();
                // A lease no longer trusted by the local clock is not reported as held,
                // even before the keeper has run to say so (a process resumed after a
                // freeze answers /readyz before its keeper's timer fires).
                match state.valid_until {
                    Some(until) if std::time::Instant::now() >= until => {
                        fix_lease::Leadership::Standby
                    }
                    _ => state.role,
                }
            })
    }

    /// Role changes as [`EngineHandle::role`] reports them (`None` without a lease).
    pub fn role_changes(&self) -> Option<tokio::sync::watch::Receiver<fix_lease::RoleState>> {
        self.serving.clone()
    }

    /// Every session's status as its task left it at the end of its last turn as
    /// leader in `epoch` (0 without a lease), without waiting for a busy task: `None`
    /// for a session whose task has not finished a turn as leader in that term (still
    /// taking over, or busy since an earlier term) or that does not lead.
    /// [`EngineHandle::status`] asks the task.
    pub fn published_statuses(&self, epoch: u64) -> Vec<(SessionId, Option<SessionStatus>)> {
        self.published
            .iter()
            .map(|(id, s)| {
                let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let current = s.as_ref().filter(|p| p.epoch == epoch);
                (id.clone(), current.map(|p| p.status.clone()))
            })
            .collect()
    }

    /// The sessions of this engine.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.sessions.keys().cloned().collect()
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Why the lease role last changed ("no lease" without one).
    pub fn role_reason(&self) -> String {
        self.serving.as_ref().map_or_else(
            || "no lease configured".into(),
            |r| r.borrow().reason.clone(),
        )
    }

    /// Who holds the lease as last seen (`None` without a lease or before the first look).
    pub fn lease_holder(&self) -> Option<fix_lease::LeaseHolder> {
        self.keeper
            .as_ref()
            .and_then(|k| k.subscribe().borrow().holder.clone())
    }

    /// Whether this instance is in the in-sync set recorded in the lease store, under
    /// `replicated` durability (`None` otherwise): always while leading; as last read
    /// while standby (false until read: not confirmed). `None` too outside the active
    /// region, where it does not contend.
    pub fn in_sync_member(&self) -> Option<bool> {
        if !self
            .replication
            .as_ref()
            .is_some_and(|r| r.in_sync_enforced())
        {
            return None;
        }
        let k = self.keeper.as_ref()?;
        if matches!(k.role(), fix_lease::Leadership::Leader { .. }) {
            return Some(true);
        }
        let state = k.subscribe();
        let state = state.borrow();
        if !state.in_active_region {
            // Outside the active region it does not contend, in sync or not.
            return None;
        }
        let members = state.holder.as_ref().and_then(|h| h.in_sync.as_ref());
        Some(members.is_some_and(|m| m.iter().any(|m| m == k.owner())))
    }

    /// Whether this instance contends for the lease: it has one, its region is the active
    /// one, and its journal has not failed (a standby that does not contend cannot take
    /// over).
    pub fn contends(&self) -> bool {
        self.journal_failure().is_none()
            && self
                .keeper
                .as_ref()
                .is_some_and(|k| k.subscribe().borrow().in_active_region)
    }

    /// How many times this instance became leader (1 without a lease).
    pub fn leader_terms(&self) -> u64 {
        self.keeper
            .as_ref()
            .map_or(1, |k| k.subscribe().borrow().terms)
    }

    /// Gives the lease up and does not contend again for `pause` (a manual failover to a
    /// standby). Sessions are closed at once, without sending.
    pub async fn step_down(&self, pause: std::time::Duration) {
        if let Some(k) = &self.keeper {
            k.step_down(pause).await;
        }
    }

    /// Replication state, when configured.
    pub fn replication(&self) -> Option<Arc<crate::replication::Replication>> {
        self.replication.clone()
    }

    /// Why the journal stopped (a failed write or fsync), if it did.
    pub fn journal_failure(&self) -> Option<String> {
        self.journal.as_ref().and_then(fix_store::Journal::failure)
    }

    /// The journal's appended and durable stream positions.
    pub fn journal_positions(&self) -> Option<(u64, u64)> {
        self.journal.as_ref().map(|j| (j.appended(), j.durable()))
    }

    /// Records per session after stream position `from` (a standby's lag).
    pub fn records_after(&self, from: u64) -> Vec<(String, u64)> {
        self.journal
            .as_ref()
            .and_then(|j| j.records_after(from).ok())
            .unwrap_or_default()
    }

    /// Starts a Logout.
    pub async fn logout(&self, id: &SessionId, text: Option<String>) -> Result<(), EngineError> {
        self.tx(id)?
            .send(Command::Logout { text })
            .await
            .map_err(|_| EngineError::Stopped(id.to_string()))
    }
}
