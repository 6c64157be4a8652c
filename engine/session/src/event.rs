//! What the session tells the runtime, besides bytes to send.

use fix_codec::OwnedMessage;

/// An output of the session other than bytes to transmit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The Logon exchange completed.
    LoggedOn,
    /// The session logged out (handshake done or connection lost while logged on).
    LoggedOut,
    /// Close the connection after writing any pending bytes.
    Disconnect {
        /// Why.
        reason: String,
    },
    /// An application message that had been queued behind a gap is now in sequence and
    /// must be handed to the application (after the store is durable).
    Deliver(OwnedMessage),
    /// A noteworthy thing happened (reject sent, message ignored, …).
    Log {
        /// Severity.
        level: LogLevel,
        /// What happened.
        text: String,
    },
    /// Sequence numbers were reset to 1.
    SequenceReset,
    /// The store failed; the session has stopped and will disconnect.
    StoreFailed(String),
}

/// Severity of a [`SessionEvent::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine.
    Info,
    /// Something the counterparty did wrong.
    Warn,
    /// Something we could not do.
    Error,
}

/// What the runtime should do with the message it just passed to `handle_message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Disposition {
    /// An application message in sequence: hand it to the application once durable.
    Deliver,
    /// An admin message the session accepted and acted on; the runtime shows it to the
    /// application (`from_admin`) once durable.
    Admin,
    /// Handled by the session (rejected, queued, ignored, or nothing to show).
    Consumed,
}
