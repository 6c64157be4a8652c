//! A session's status: asked of its task ([`SessionStatus`]), or left by a leading task
//! at the end of every turn for readers that must not wait ([`PublishedStatus`]).

use super::SessionActor;
use fix_session::State;
use std::net::SocketAddr;
use std::sync::Arc;

/// A snapshot of a session for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// State machine state.
    pub state: State,
    /// Next outbound sequence number.
    pub next_sender_seq: u64,
    /// Next expected inbound sequence number.
    pub next_target_seq: u64,
    /// Peer address while connected.
    pub peer: Option<SocketAddr>,
    /// What the session has counted since the engine started.
    pub counters: fix_session::SessionCounters,
}

/// A leading session's status as of the end of its task's last turn, readable without
/// asking the task (which may be busy: taking over, or blocked on a slow counterparty).
/// `None` until the task has finished a turn as leader, and again once it stops leading
/// or stops.
pub(crate) type PublishedStatus = Arc<std::sync::Mutex<Option<Published>>>;

/// A status as a leading task left it, with the epoch it led in (0 without a lease).
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) epoch: u64,
    pub(crate) status: SessionStatus,
}

impl SessionActor {
    /// Where this task leaves its status (see [`PublishedStatus`]).
    pub(crate) fn published(&self) -> PublishedStatus {
        Arc::clone(&self.published)
    }

    /// The session's status now.
    pub(super) fn status(&self) -> SessionStatus {
        SessionStatus {
            state: self.session.state(),
            next_sender_seq: self.session.next_sender_seq(),
            next_target_seq: self.session.next_target_seq(),
            peer: self.conn.as_ref().map(|c| c.peer),
            counters: self.session.counters(),
        }
    }

    /// Leaves the status where readers find it without asking, while leading (a
    /// standby's journal moves under its idle task with replication: it is asked).
    pub(super) fn publish(&self) {
        let now = self.leading.then(|| Published {
            epoch: self.led_epoch.unwrap_or(0),
            status: self.status(),
        });
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }

    /// Leaves nothing to read: the task has stopped.
    pub(super) fn unpublish(&self) {
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
