//! A counterparty's connection held by a standby that expects to take over
//! ([`crate::takeover`]): kept unanswered, served the moment this instance leads, dropped
//! once the expectation is over.

use super::SessionActor;
use crate::tls::BoxIo;
use std::net::SocketAddr;
use std::time::Instant;

/// A connection a standby keeps, neither read nor written, while it expects to take
/// over: attached the moment this instance leads; dropped (at the next timer) once the
/// expectation is over: at `until`, or when a leader streams to this standby again.
pub(super) struct Held {
    pub(super) stream: BoxIo,
    pub(super) peer: SocketAddr,
    pub(super) initial: Vec<u8>,
    pub(super) until: Instant,
}

impl SessionActor {
    /// While standby and expecting to take over (`hint`), hold a counterparty's
    /// connection instead of refusing it.
    pub(crate) fn with_takeover(mut self, hint: crate::takeover::TakeoverHint) -> Self {
        self.takeover = Some(hint);
        self
    }

    /// Until when a connection coming now may be held, if this standby expects to take
    /// over.
    pub(super) fn hold_until(&self) -> Option<Instant> {
        self.takeover.as_ref().and_then(|h| h.expected_until())
    }

    /// Drops a held connection once no takeover is expected any more (its time is up,
    /// or a leader streams to this standby again).
    pub(super) fn expire_held(&mut self) {
        if self.is_leader() {
            // Leading, and about to take over and answer it (the hint was cleared as the
            // role changed).
            return;
        }
        let expected = self.hold_until().is_some();
        if let Some(h) = self
            .held
            .take_if(|h| Instant::now() >= h.until || !expected)
        {
            tracing::info!(session = %self.span_name(), peer = %h.peer, "standby: refusing the held FIX connection (no takeover here)");
        }
    }
}
