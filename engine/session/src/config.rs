//! Session configuration: identity, role, timers, reset flags, validation switches.

use crate::schedule::Schedule;
use fix_codec::dictionary::ValidationOptions;
use fix_codec::TimePrecision;
use std::fmt;
use std::time::Duration;

/// Who opens the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waits for the counterparty to connect and log on.
    Acceptor,
    /// Connects and sends the Logon.
    Initiator,
}

/// The identity of a session: BeginString and the two CompIDs (from our point of view).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// `FIX.4.2`, `FIX.4.4`, `FIXT.1.1`, …
    pub begin_string: String,
    /// Our CompID (SenderCompID on what we send).
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
}

impl SessionId {
    /// A session id.
    pub fn new(begin_string: &str, sender: &str, target: &str) -> Self {
        Self {
            begin_string: begin_string.to_string(),
            sender_comp_id: sender.to_string(),
            target_comp_id: target.to_string(),
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}",
            self.begin_string, self.sender_comp_id, self.target_comp_id
        )
    }
}

/// Everything that shapes one session's behaviour.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Identity.
    pub id: SessionId,
    /// Acceptor or initiator.
    pub role: Role,
    /// HeartBtInt we ask for (initiator); an acceptor adopts the counterparty's.
    pub heartbeat_interval: Duration,
    /// Time allowed for the Logon answer.
    pub logon_timeout: Duration,
    /// Time allowed for the Logout answer before disconnecting.
    pub logout_timeout: Duration,
    /// Reset sequence numbers on every logon (`ResetOnLogon`).
    pub reset_on_logon: bool,
    /// Reset sequence numbers after a logout (`ResetOnLogout`).
    pub reset_on_logout: bool,
    /// Reset sequence numbers on disconnect (`ResetOnDisconnect`).
    pub reset_on_disconnect: bool,
    /// Refuse messages whose SendingTime is further than `max_latency` from our clock.
    pub check_latency: bool,
    /// Allowed SendingTime difference (`MaxLatency`, default 120 s).
    pub max_latency: Duration,
    /// Check CompIDs of every message (`CheckCompID`).
    pub check_comp_id: bool,
    /// Ask for at most this many messages per ResendRequest (0 = all at once).
    pub resend_request_chunk_size: u64,
    /// Put NextExpectedMsgSeqNum (789) on Logon (FIX 4.4 and FIXT only).
    pub send_next_expected_msg_seq_num: bool,
    /// Validate incoming messages against the dictionaries (`UseDataDictionary`).
    pub validate: bool,
    /// Validation switches.
    pub validation: ValidationOptions,
    /// DefaultApplVerID for FIXT sessions (e.g. `9` for FIX.5.0SP2).
    pub default_appl_ver_id: Option<String>,
    /// Username (553) to send on Logon.
    pub username: Option<String>,
    /// Password (554) to send on Logon.
    pub password: Option<String>,
    /// SendingTime precision.
    pub timestamp_precision: TimePrecision,
    /// When the session may be logged on; `None` means always.
    pub schedule: Option<Schedule>,
    /// Largest message accepted.
    pub max_message_size: usize,
}

impl SessionConfig {
    /// A configuration with QuickFIX-like defaults.
    pub fn new(id: SessionId, role: Role) -> Self {
        // FIX.4.0 and FIX.4.1 timestamps have whole seconds only (as QuickFIX sends them).
        let timestamp_precision = match id.begin_string.as_str() {
            "FIX.4.0" | "FIX.4.1" => TimePrecision::Seconds,
            _ => TimePrecision::Millis,
        };
        Self {
            id,
            role,
            heartbeat_interval: Duration::from_secs(30),
            logon_timeout: Duration::from_secs(10),
            logout_timeout: Duration::from_secs(2),
            reset_on_logon: false,
            reset_on_logout: false,
            reset_on_disconnect: false,
            check_latency: true,
            max_latency: Duration::from_secs(120),
            check_comp_id: true,
            resend_request_chunk_size: 0,
            send_next_expected_msg_seq_num: false,
            validate: true,
            validation: ValidationOptions::default(),
            default_appl_ver_id: None,
            username: None,
            password: None,
            timestamp_precision,
            schedule: None,
            max_message_size: 1 << 20,
        }
    }

    /// Whether this version has Reject fields 371-373 and BusinessMessageReject (4.2+).
    pub fn has_reject_reasons(&self) -> bool {
        !matches!(self.id.begin_string.as_str(), "FIX.4.0" | "FIX.4.1")
    }

    /// Whether this version has NextExpectedMsgSeqNum (4.4 and FIXT).
    pub fn has_next_expected(&self) -> bool {
        matches!(self.id.begin_string.as_str(), "FIX.4.4" | "FIXT.1.1")
    }

    /// EndSeqNo meaning "infinity" when we ask for a resend.
    pub fn infinity_end_seq(&self) -> u64 {
        if matches!(self.id.begin_string.as_str(), "FIX.4.0" | "FIX.4.1") {
            999_999
        } else {
            0
        }
    }
}
