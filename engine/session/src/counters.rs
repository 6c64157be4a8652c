//! What a session has counted since it was created: the events operators alert on.

/// Counts of session-level events, monotonic for the life of a [`crate::Session`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Session-level Rejects (35=3) sent.
    pub rejects_sent: u64,
    /// ResendRequests (35=2) sent: gaps seen in the counterparty's numbers.
    pub resend_requests_sent: u64,
    /// SequenceReset-GapFills sent while answering a ResendRequest.
    pub gap_fills_sent: u64,
    /// Connections that ended.
    pub disconnects: u64,
    /// Connections that ended without a completed Logon (refused, timed out, or dropped
    /// by the counterparty before logging on).
    pub logon_failures: u64,
    /// Connections closed because the counterparty answered neither heartbeats nor a
    /// TestRequest.
    pub heartbeat_timeouts: u64,
}
