//! The types of the session's interface: the time it is given, its states, the
//! callbacks it makes, the dictionaries it validates with, what the application sends
//! and why a send fails.

use crate::config::SessionId;
use crate::store::StoreError;
use fix_codec::dictionary::session_dictionary;
use fix_codec::{Dictionary, MessageBuilder, MessageRef, UtcTimestamp};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The time, as the runtime (or a test) says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timers.
    pub mono: Instant,
    /// Wall-clock time, for SendingTime and schedules.
    pub wall: UtcTimestamp,
}

impl Now {
    /// The real current time.
    pub fn system() -> Self {
        Self {
            mono: Instant::now(),
            wall: UtcTimestamp::now(),
        }
    }

    /// This time plus `d` on both clocks.
    pub fn plus(self, d: Duration) -> Self {
        Self {
            mono: self.mono + d,
            wall: self.wall.add_nanos(d.as_nanos() as i64),
        }
    }
}

/// Where the session is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No connection.
    Disconnected,
    /// Acceptor: connected, waiting for the counterparty's Logon.
    AwaitingLogon,
    /// Initiator: Logon sent, waiting for the answer.
    LogonSent,
    /// Logged on.
    Active,
    /// We sent Logout and wait for the answer.
    LogoutSent,
    /// We asked the runtime to disconnect; input is ignored.
    Closing,
}

/// Checks Username/Password (or anything else) on an incoming Logon.
pub trait Authenticator: Send + Sync {
    /// `Err(text)` refuses the Logon; the text goes into the Logout.
    fn authenticate(&self, id: &SessionId, logon: MessageRef<'_>) -> Result<(), String>;
}

/// The application's say over outgoing messages (QuickFIX's `toAdmin` and `toApp`).
/// Both are called synchronously while the session builds the message.
pub trait SessionHooks: Send + Sync {
    /// Every admin message, before it is finished: fields may be appended (for example
    /// Username and Password on Logon).
    fn to_admin(&self, _id: &SessionId, _msg_type: &[u8], _fields: &mut MessageBuilder) {}

    /// Every application message before it is stored and sent (`resend` false) and
    /// before it is resent (`resend` true). `false` stops it: a new message is refused
    /// with [`SendError::Refused`]; a resend is replaced by a gap fill.
    fn to_app(&self, _id: &SessionId, _msg: MessageRef<'_>, _resend: bool) -> bool {
        true
    }
}

/// The dictionaries a session validates with.
#[derive(Debug, Clone)]
pub struct Dictionaries {
    /// Header, trailer and admin messages.
    pub transport: Arc<Dictionary>,
    /// Application messages; `None` skips application body validation.
    pub app: Option<Arc<Dictionary>>,
}

impl Dictionaries {
    /// The built-in session-level dictionary only.
    pub fn builtin(begin_string: &str) -> Option<Self> {
        session_dictionary(begin_string).map(|d| Self {
            transport: Arc::new(d),
            app: None,
        })
    }
}

/// An application message to send: MsgType plus pre-encoded fields.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// MsgType (35).
    pub msg_type: &'a [u8],
    /// Extra header fields (`tag=value SOH`…), e.g. OnBehalfOfCompID or PossResend.
    pub header: &'a [u8],
    /// Body fields (`tag=value SOH`…).
    pub body: &'a [u8],
}

/// Sending an application message failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The store could not keep the message, so it was not sent.
    #[error("message not sent: {0}")]
    Store(#[from] StoreError),
    /// The session has failed and accepts nothing more.
    #[error("message not sent: the session has stopped after a store failure")]
    Stopped,
    /// The application's `to_app` hook refused it.
    #[error("message not sent: refused by the application (to_app)")]
    Refused,
}
