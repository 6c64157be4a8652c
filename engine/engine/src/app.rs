//! The application API (the built-in applications, `echo` and `exec`, use it from the `builtin` module).

use fix_codec::{MessageBuilder, MessageRef};
use fix_session::{Now, Outgoing, Session, SessionId};

/// How `from_app` refuses a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReject {
    /// BusinessMessageReject (35=j) with BusinessRejectReason (380) and text.
    Business {
        /// BusinessRejectReason: 3 = unsupported message type, 5 = conditionally required field missing, …
        reason: u32,
        /// Text (58).
        text: String,
    },
    /// Session-level Reject (35=3) with SessionRejectReason (373), RefTagID and text.
    Session {
        /// SessionRejectReason.
        reason: fix_codec::dictionary::SessionRejectReason,
        /// RefTagID.
        ref_tag: Option<u32>,
        /// Text (58).
        text: String,
    },
}

impl AppReject {
    /// A BusinessMessageReject for a message type the application does not handle
    /// (BusinessRejectReason 3, "Unsupported Message Type").
    pub fn unsupported_message_type() -> Self {
        Self::Business {
            reason: 3,
            text: "Unsupported Message Type".into(),
        }
    }
}

/// The leadership term a session serves in. An application that waits (for a broker,
/// a database) stops waiting when the term ends: what it has not finished stays
/// unprocessed in the journal and is handed to the next leader (or to this instance
/// when it starts again). A term also ends when the engine shuts down.
#[derive(Clone, Default)]
pub struct Term {
    role: Option<tokio::sync::watch::Receiver<fix_lease::RoleState>>,
    epoch: Option<u64>,
    stopping: Stopping,
}

/// Set once when the engine starts shutting down: every term ends then, so that an
/// application waiting for something that does not come (a broker that refuses the
/// bridge) lets the shutdown finish, leaving its messages unprocessed in the journal.
#[derive(Clone, Default)]
pub(crate) struct Stopping(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stopping {
    /// Ends every term: the engine is shutting down.
    pub(crate) fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Term {
    /// The term of `role` as it leads now (`None`: no lease, the term lasts until the
    /// engine stops).
    pub(crate) fn current(
        role: Option<&tokio::sync::watch::Receiver<fix_lease::RoleState>>,
        stopping: &Stopping,
    ) -> Self {
        let epoch = role.and_then(|r| match r.borrow().role {
            fix_lease::Leadership::Leader { epoch } => Some(epoch),
            fix_lease::Leadership::Standby => None,
        });
        Self {
            role: role.cloned(),
            epoch,
            stopping: stopping.clone(),
        }
    }

    /// The epoch of this term (`None` without a lease, or when taken while standby).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Whether this instance still leads in the same term (same epoch, lease deadline
    /// not passed) and the engine is not shutting down. Without a lease, true until the
    /// engine shuts down.
    pub fn is_current(&self) -> bool {
        if self.stopping.is_set() {
            return false;
        }
        let Some(role) = &self.role else {
            return true;
        };
        let state = role.borrow();
        matches!(state.role, fix_lease::Leadership::Leader { epoch } if Some(epoch) == self.epoch)
            && state
                .valid_until
                .is_none_or(|t| std::time::Instant::now() < t)
    }
}

/// This instance stopped leading before the application finished: the batch stays
/// unprocessed in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this instance stopped leading before the batch was safe")]
pub struct TermEnded;

/// What a callback can do: send on its session.
pub struct AppContext<'a> {
    pub(crate) session: &'a mut Session,
    pub(crate) now: Now,
    pub(crate) replayed: bool,
    pub(crate) term: Term,
}

impl<'a> AppContext<'a> {
    /// A context for driving an application without the runtime (a test, a simulation):
    /// what it sends goes to `session` at `now`; not a replay; a term that never ends.
    pub fn new(session: &'a mut Session, now: Now) -> Self {
        Self {
            session,
            now,
            replayed: false,
            term: Term::default(),
        }
    }
}

impl AppContext<'_> {
    /// The leadership term this message is handled in.
    pub fn term(&self) -> &Term {
        &self.term
    }

    /// Whether the message was journaled before a restart or a promotion and never
    /// marked processed: the application may have seen it already (treat it as a
    /// possible duplicate).
    pub fn is_replay(&self) -> bool {
        self.replayed
    }

    /// The session's identity.
    pub fn session_id(&self) -> &SessionId {
        self.session.id()
    }

    /// Sends an application message on this session (stored, then sent).
    pub fn send(&mut self, msg_type: &[u8], body: &[u8]) -> Result<u64, fix_session::SendError> {
        self.send_with_header(msg_type, b"", body)
    }

    /// Sends an answer to `request`: its third-party routing reversed as QuickFIX does
    /// (OnBehalfOf* of the request become DeliverTo* and the other way round; empty
    /// values are not carried over).
    pub fn reply(
        &mut self,
        msg_type: &[u8],
        request: MessageRef<'_>,
        body: &[u8],
    ) -> Result<u64, fix_session::SendError> {
        let route = fix_session::route_back(request, &self.session.id().begin_string);
        self.send_with_header(msg_type, &route, body)
    }

    /// Sends with extra header fields (`tag=value SOH`…), e.g. OnBehalfOfCompID.
    pub fn send_with_header(
        &mut self,
        msg_type: &[u8],
        header: &[u8],
        body: &[u8],
    ) -> Result<u64, fix_session::SendError> {
        self.session.send(
            self.now,
            Outgoing {
                msg_type,
                header,
                body,
            },
        )
    }
}

/// Callbacks from the engine. The names are the ones QuickFIX users know. All are called on the session's own task, after the
/// message concerned is durable in the store — except `from_app` and `from_admin` with
/// `[engine] delivery = "early"`: called once the message is journaled, before the group
/// commit that then covers it and everything the call caused (nothing is sent before
/// it). A crash or a lost lease before that commit can take the message back: it comes
/// again as a resend (PossDupFlag=Y) or as a replay ([`AppContext::is_replay`]).
#[allow(clippy::wrong_self_convention)]
pub trait Application: Send + Sync {
    /// The session was created at start-up.
    fn on_create(&self, _id: &SessionId) {}
    /// The Logon exchange completed.
    fn on_logon(&self, _id: &SessionId) {}
    /// The session logged out or lost its connection.
    fn on_logout(&self, _id: &SessionId) {}
    /// An admin message arrived (after the session handled it and, with the default
    /// delivery, after it is durable).
    fn from_admin(&self, _id: &SessionId, _msg: MessageRef<'_>) {}
    /// An admin message is about to be sent: fields may be appended to it (for example
    /// Username/Password on Logon).
    fn to_admin(&self, _id: &SessionId, _msg_type: &[u8], _fields: &mut MessageBuilder) {}
    /// An application message is about to be stored and sent (`resend` false) or resent
    /// (`resend` true). `false` stops it: a new message is refused, a resend becomes part
    /// of a gap fill (for example, to not resend stale orders).
    fn to_app(&self, _id: &SessionId, _msg: MessageRef<'_>, _resend: bool) -> bool {
        true
    }
    /// An application message arrived, in sequence. `Err` rejects it.
    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject>;
    /// Called after a batch of application messages went through `from_app` and before
    /// they are marked processed in the journal. An application that hands messages on
    /// elsewhere waits here until they are safe there (the Kafka bridge waits for the
    /// broker's acknowledgements); if the engine stops first, the batch is handed to the
    /// application again at the next start or promotion. `Err(TermEnded)` when `term`
    /// ended while waiting: the batch is not marked processed.
    fn before_processed(&self, _id: &SessionId, _term: &Term) -> Result<(), TermEnded> {
        Ok(())
    }
}

/// Lets an [`Application`] see outgoing messages through the session's hooks.
pub(crate) struct AppHooks(pub(crate) std::sync::Arc<dyn Application>);

impl fix_session::SessionHooks for AppHooks {
    fn to_admin(&self, id: &SessionId, msg_type: &[u8], fields: &mut MessageBuilder) {
        self.0.to_admin(id, msg_type, fields);
    }

    fn to_app(&self, id: &SessionId, msg: MessageRef<'_>, resend: bool) -> bool {
        self.0.to_app(id, msg, resend)
    }
}

/// A role as the keeper publishes it, its local deadline `valid_for` from now (tests).
#[cfg(test)]
pub(crate) fn test_role_state(
    role: fix_lease::Leadership,
    valid_for: std::time::Duration,
) -> fix_lease::RoleState {
    fix_lease::RoleState {
        role,
        valid_until: Some(std::time::Instant::now() + valid_for),
        reason: String::new(),
        terms: 1,
        last_call: None,
        holder: None,
        in_active_region: true,
    }
}

#[cfg(test)]
mod term_tests {
    use super::{test_role_state as state, Stopping, Term};
    use fix_lease::Leadership;
    use std::time::Duration;

    #[test]
    fn a_term_ends_with_its_epoch_its_lease_deadline_or_the_lead() {
        let running = Stopping::default();
        assert!(
            Term::current(None, &running).is_current(),
            "no lease: lasts while the engine runs"
        );
        let (tx, rx) = tokio::sync::watch::channel(state(
            Leadership::Leader { epoch: 3 },
            Duration::from_secs(60),
        ));
        let term = Term::current(Some(&rx), &running);
        assert!(term.is_current());
        tx.send_replace(state(
            Leadership::Leader { epoch: 4 },
            Duration::from_secs(60),
        ));
        assert!(!term.is_current(), "a later epoch is another term");
        let (_tx, rx) =
            tokio::sync::watch::channel(state(Leadership::Leader { epoch: 5 }, Duration::ZERO));
        assert!(
            !Term::current(Some(&rx), &running).is_current(),
            "the deadline passed"
        );
        let (_tx, rx) = tokio::sync::watch::channel(state(Leadership::Standby, Duration::ZERO));
        assert!(
            !Term::current(Some(&rx), &running).is_current(),
            "a standby has no term"
        );
    }

    #[test]
    fn every_term_ends_when_the_engine_stops() {
        let stopping = Stopping::default();
        let unleased = Term::current(None, &stopping);
        let (_tx, rx) = tokio::sync::watch::channel(state(
            Leadership::Leader { epoch: 3 },
            Duration::from_secs(60),
        ));
        let leased = Term::current(Some(&rx), &stopping);
        assert!(unleased.is_current() && leased.is_current());
        stopping.stop();
        assert!(!unleased.is_current(), "without a lease");
        assert!(!leased.is_current(), "with one");
    }
}
