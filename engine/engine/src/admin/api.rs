//! The admin API's bodies as types, shared by the engine (which serves them) and its
//! clients (the supervisor, `fixctl`, the rollout and the runbooks), so a field is read
//! by name and type, never out of untyped JSON or a `Debug` string. Every field has a
//! default, so a client reads an older engine's answer too.

use crate::replication::in_sync::InSyncView;
use crate::replication::{FollowerView, Paused, StandbyView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The role an instance reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// It leads (or runs without a lease).
    Leader,
    /// It follows.
    #[default]
    Standby,
    /// A role this reader does not know (a newer engine): never taken for leading.
    #[serde(other)]
    Unknown,
}

/// Where a session is, as the API shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    /// No connection.
    #[default]
    Disconnected,
    /// Acceptor: connected, waiting for the counterparty's Logon.
    AwaitingLogon,
    /// Initiator: Logon sent, waiting for the answer.
    LogonSent,
    /// Logged on.
    Active,
    /// Logout sent, waiting for the answer.
    LogoutSent,
    /// Disconnecting.
    Closing,
    /// Its task did not report in time (blocked writing to a slow counterparty, say),
    /// or, in `/readyz` on a leader, is still taking over.
    Unresponsive,
    /// A state this reader does not know (a newer engine).
    #[serde(other)]
    Unknown,
}

impl From<fix_session::State> for SessionState {
    fn from(s: fix_session::State) -> Self {
        use fix_session::State;
        match s {
            State::Disconnected => Self::Disconnected,
            State::AwaitingLogon => Self::AwaitingLogon,
            State::LogonSent => Self::LogonSent,
            State::Active => Self::Active,
            State::LogoutSent => Self::LogoutSent,
            State::Closing => Self::Closing,
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// One session (`GET /sessions`, and in `/readyz`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionView {
    /// `BEGIN:SENDER->TARGET`.
    pub id: String,
    /// Where it is.
    pub state: SessionState,
    /// The next MsgSeqNum it sends.
    pub next_sender_seq: u64,
    /// The next MsgSeqNum it expects.
    pub next_target_seq: u64,
    /// The counterparty's address while connected.
    pub peer: Option<String>,
}

/// `GET /readyz`: 200 with this body on a leader, 503 with it otherwise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Readiness {
    /// It leads and serves.
    pub ready: bool,
    /// Its role.
    pub role: RoleName,
    /// The epoch it leads with (0 while standby).
    pub epoch: u64,
    /// Why the role last changed.
    pub lease: String,
    /// The lease's holder as last seen.
    pub lease_owner: Option<String>,
    /// The holder's epoch as last seen.
    pub lease_epoch: Option<u64>,
    /// Milliseconds until the lease expires, as last read.
    pub lease_expires_in_ms: Option<i64>,
    /// The in-sync set recorded in the lease store, as this standby last read it (the
    /// leader shows its own under `replication.in_sync`).
    pub lease_in_sync: Option<Vec<String>>,
    /// Under `replicated`: this instance is in that set (always while leading; false
    /// until a standby has read it there). A standby outside it may not take the lease:
    /// it has not caught up since the leader went on without it. `null` under other
    /// durability modes and outside the active region.
    pub in_sync: Option<bool>,
    /// It contends for the lease (a lease configured, its region active, its journal
    /// healthy): a standby that does not cannot take over.
    pub contends: bool,
    /// Every session.
    pub sessions: Vec<SessionView>,
    /// Replication, when configured.
    pub replication: Option<ReplicationView>,
    /// New FIX connections are refused (`POST /logons/hold`).
    pub logons_held: bool,
    /// Why the journal stopped, if it did (this instance then never leads again).
    pub journal_failed: Option<String>,
}

impl Readiness {
    /// It reports itself leader and ready.
    pub fn leads(&self) -> bool {
        self.ready && self.role == RoleName::Leader
    }

    /// A counterparty is logged on to one of its sessions.
    pub fn logged_on(&self) -> bool {
        self.sessions
            .iter()
            .any(|s| s.state == SessionState::Active)
    }

    /// The in-sync set it shows: its own while leading, else the one it read.
    pub fn recorded_in_sync(&self) -> Option<&[String]> {
        self.replication
            .as_ref()
            .and_then(|r| r.in_sync.as_ref())
            .and_then(|s| s.recorded.as_deref())
            .or(self.lease_in_sync.as_deref())
    }
}

/// One standby with its lag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StandbyLag {
    /// The standby.
    #[serde(flatten)]
    pub standby: StandbyView,
    /// Journal bytes durable here and not acknowledged by it.
    #[serde(default)]
    pub lag_bytes: u64,
    /// Records per session it has not acknowledged (on `/replication` only: it reads
    /// the unacknowledged part of the journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_records: Option<BTreeMap<String, u64>>,
}

/// `GET /replication`, and `replication` in `/readyz`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationView {
    /// Where the journal ends.
    pub appended: u64,
    /// How much of it is durable.
    pub durable: u64,
    /// What an admin call paused.
    pub paused: Paused,
    /// The connected standbys (while leading).
    pub standbys: Vec<StandbyLag>,
    /// While leading a multi-region group: how far the most advanced standby of another
    /// region is behind (all of the journal while none is connected).
    pub cross_region_lag_bytes: Option<u64>,
    /// While leading: the in-sync set (recorded, required now, policy, waits).
    pub in_sync: Option<InSyncView>,
    /// While standby: what it knows of its leader.
    pub follower: Option<FollowerView>,
}

/// One stored outbound message (`GET /sessions/{id}/messages`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Its MsgSeqNum.
    pub seq: u64,
    /// The message, `|` as separator.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An older engine's answer (no `remote` nor `streaming` on its standbys, no
    /// `contends`) and a newer one's (a role and a state this reader does not know) both
    /// read; neither unknown counts as leading or logged on.
    #[test]
    fn answers_of_older_and_newer_engines_read() {
        let old = r#"{"ready":true,"role":"leader","epoch":3,"sessions":[{"id":"s","state":"Active"}],
            "replication":{"appended":10,"durable":10,"standbys":[{"name":"b","peer":"x","sent":10,"acked":10,"lag_bytes":0}]}}"#;
        let r: Readiness = serde_json::from_str(old).expect("an older answer reads");
        assert!(r.leads() && r.logged_on());
        assert_eq!(r.replication.map(|x| x.standbys[0].standby.acked), Some(10));
        let newer =
            r#"{"ready":true,"role":"observer","sessions":[{"id":"s","state":"Quiescing"}]}"#;
        let r: Readiness = serde_json::from_str(newer).expect("a newer answer reads");
        assert_eq!(r.role, RoleName::Unknown);
        assert!(!r.leads() && !r.logged_on());
    }
}
