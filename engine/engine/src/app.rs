//! The application API and the two built-in applications, `echo` and `exec`.

use fix_codec::{tags, MessageBuilder, MessageRef};
use fix_session::{Now, Outgoing, Session, SessionId};
use std::collections::HashSet;
use std::sync::Mutex;

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

/// The leadership term a session serves in. An application that waits (for a broker,
/// a database) stops waiting when the term ends: what it has not finished stays
/// unprocessed in the journal and is handed to the next leader.
#[derive(Clone, Default)]
pub struct Term {
    role: Option<tokio::sync::watch::Receiver<fix_lease::RoleState>>,
    epoch: Option<u64>,
}

impl Term {
    /// The term of `role` as it leads now (`None`: no lease, the term never ends).
    pub(crate) fn current(
        role: Option<&tokio::sync::watch::Receiver<fix_lease::RoleState>>,
    ) -> Self {
        let epoch = role.and_then(|r| match r.borrow().role {
            fix_lease::Leadership::Leader { epoch } => Some(epoch),
            fix_lease::Leadership::Standby => None,
        });
        Self {
            role: role.cloned(),
            epoch,
        }
    }

    /// The epoch of this term (`None` without a lease, or when taken while standby).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Whether this instance still leads in the same term (same epoch, lease deadline
    /// not passed). Always true without a lease.
    pub fn is_current(&self) -> bool {
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
/// message concerned is durable in the store.
#[allow(clippy::wrong_self_convention)]
pub trait Application: Send + Sync {
    /// The session was created at start-up.
    fn on_create(&self, _id: &SessionId) {}
    /// The Logon exchange completed.
    fn on_logon(&self, _id: &SessionId) {}
    /// The session logged out or lost its connection.
    fn on_logout(&self, _id: &SessionId) {}
    /// An admin message arrived (after the session handled it and it is durable).
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

/// Header fields the session writes itself on every message it sends, and the resend
/// markers it clears: not copied when reflecting a message.
fn written_by_session(tag: u32) -> bool {
    matches!(tag, 8 | 9 | 10 | 34 | 35 | 43 | 49 | 52 | 56 | 122)
}

/// A tag and its value.
type Field<'a> = (u32, &'a [u8]);

/// A reflected message as QuickFIX writes it: `header` gets the inbound header fields the
/// session does not write itself, in tag order; `body` the body fields in tag order, each
/// repeating group (its NumInGroup and entries, as the dictionary of `ctx` knows them) kept
/// whole at the place of its NumInGroup tag.
fn reflect(
    ctx: &AppContext<'_>,
    msg: MessageRef<'_>,
    header: &mut MessageBuilder,
    body: &mut MessageBuilder,
) {
    let dicts = ctx.session.dictionaries();
    let def = dicts.app.as_deref().and_then(|d| d.message(msg.msg_type()));
    let is_header = |tag: u32| dicts.transport.is_header(tag) || dicts.transport.is_trailer(tag);
    let fields: Vec<(u32, &[u8])> = msg.iter().collect();
    let mut head: Vec<(u32, &[u8])> = Vec::new();
    let mut blocks: Vec<(u32, Vec<Field<'_>>)> = Vec::new();
    let mut i = 0;
    while i < fields.len() {
        let (tag, value) = fields[i];
        i += 1;
        if written_by_session(tag) {
            continue;
        }
        if is_header(tag) {
            head.push((tag, value));
            continue;
        }
        let mut block = vec![(tag, value)];
        if let Some(group) = def.and_then(|m| m.body.group(tag)) {
            while i < fields.len() && group.entry.position(fields[i].0).is_some() {
                block.push(fields[i]);
                i += 1;
            }
        }
        blocks.push((tag, block));
    }
    head.sort_by_key(|(t, _)| *t);
    blocks.sort_by_key(|(t, _)| *t);
    header.start_fields();
    for (t, v) in head {
        header.push(t, v);
    }
    body.start_fields();
    for (t, v) in blocks.into_iter().flat_map(|(_, b)| b) {
        body.push(t, v);
    }
}

/// QuickFIX's acceptance-test application: NewOrderSingle and SecurityDefinition are
/// reflected back (header fields kept, not re-routed, fields in QuickFIX's order); a
/// NewOrderSingle with PossResend=Y whose ClOrdID was already seen is not echoed again;
/// anything else gets a BusinessMessageReject (unsupported message type).
#[derive(Default)]
pub struct EchoApp {
    seen: Mutex<HashSet<(SessionId, Vec<u8>)>>,
}

impl Application for EchoApp {
    fn on_logout(&self, id: &SessionId) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(s, _)| s != id);
    }

    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let msg_type = msg.msg_type();
        match msg_type {
            b"D" | b"d" => {
                if msg_type == b"D" {
                    let cl_ord_id = msg.get(tags::CL_ORD_ID).unwrap_or_default().to_vec();
                    let key = (ctx.session_id().clone(), cl_ord_id);
                    let mut seen = self
                        .seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let fresh = seen.insert(key);
                    if !fresh && msg.get_flag(tags::POSS_RESEND) {
                        return Ok(());
                    }
                }
                let (mut header, mut body) = (MessageBuilder::new(), MessageBuilder::new());
                reflect(ctx, msg, &mut header, &mut body);
                ctx.send_with_header(msg_type, header.fields(), body.fields())
                    .map(|_| ())
                    .map_err(|e| AppReject::Business {
                        reason: 0,
                        text: format!("echo failed: {e}"),
                    })
            }
            _ => Err(AppReject::Business {
                reason: 3,
                text: "Unsupported Message Type".into(),
            }),
        }
    }
}

/// A small exchange simulator: NewOrderSingle → ExecutionReport New then Fill;
/// OrderCancelRequest → Canceled, or OrderCancelReject for an unknown or filled order.
#[derive(Default)]
pub struct ExecApp {
    state: Mutex<ExecState>,
}

/// OrderID, Symbol, Side, OrderQty of an order resting in the simulator.
type OpenOrder = (u64, Vec<u8>, Vec<u8>, Vec<u8>);

#[derive(Default)]
struct ExecState {
    /// Reused for every report.
    builder: MessageBuilder,
    next_id: u64,
    /// Orders still open: (session, ClOrdID) → (OrderID, Symbol, Side, Qty).
    open: std::collections::HashMap<(SessionId, Vec<u8>), OpenOrder>,
}

impl ExecApp {
    #[allow(clippy::too_many_arguments)]
    fn report(
        b: &mut MessageBuilder,
        ctx: &mut AppContext<'_>,
        request: MessageRef<'_>,
        fix44: bool,
        order_id: u64,
        exec_id: u64,
        cl_ord_id: &[u8],
        status: &[u8],
        symbol: &[u8],
        side: &[u8],
        qty: &[u8],
        filled: bool,
        price: &[u8],
    ) -> Result<(), AppReject> {
        b.start_fields()
            .push_uint(37, order_id)
            .push(11, cl_ord_id)
            .push_uint(17, exec_id);
        if !fix44 {
            b.push(20, b"0");
        }
        // ExecType Fill (2) became Trade (F) in FIX 4.3; FIX.4.0 has neither ExecType nor
        // LeavesQty, and FIX.4.0/4.1 require LastShares and LastPx on every report.
        let begin = ctx.session_id().begin_string.as_str();
        let fix40 = begin == "FIX.4.0";
        let last_always = matches!(begin, "FIX.4.0" | "FIX.4.1");
        let exec_type: &[u8] = if filled && fix44 { b"F" } else { status };
        if !fix40 {
            b.push(150, exec_type);
        }
        b.push(39, status)
            .push(55, symbol)
            .push(54, side)
            .push(38, qty);
        if filled {
            b.push(32, qty).push(31, price);
        } else if last_always {
            b.push(32, b"0").push(31, b"0");
        }
        if !fix40 {
            let leaves: &[u8] = if filled || status == b"4" { b"0" } else { qty };
            b.push(151, leaves);
        }
        if filled {
            b.push(14, qty).push(6, price);
        } else {
            b.push(14, b"0").push(6, b"0");
        }
        ctx.reply(b"8", request, b.fields())
            .map(|_| ())
            .map_err(|e| AppReject::Business {
                reason: 0,
                text: format!("execution report not sent: {e}"),
            })
    }
}

impl Application for ExecApp {
    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let fix44 = !matches!(
            ctx.session_id().begin_string.as_str(),
            "FIX.4.0" | "FIX.4.1" | "FIX.4.2"
        );
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = &mut *guard;
        let b = &mut st.builder;
        match msg.msg_type() {
            b"D" => {
                let cl = msg.get(11).unwrap_or_default();
                let symbol = msg.get(55).unwrap_or_default();
                let side = msg.get(54).unwrap_or_default();
                let qty = msg.get(38).unwrap_or(b"0");
                let price = msg.get(44).unwrap_or(b"0");
                st.next_id += 1;
                let order_id = st.next_id;
                st.next_id += 2;
                let base = st.next_id;
                let immediate = msg.get(40) != Some(b"2");
                Self::report(
                    b,
                    ctx,
                    msg,
                    fix44,
                    order_id,
                    base - 1,
                    cl,
                    b"0",
                    symbol,
                    side,
                    qty,
                    false,
                    b"0",
                )?;
                if immediate {
                    Self::report(
                        b, ctx, msg, fix44, order_id, base, cl, b"2", symbol, side, qty, true,
                        price,
                    )?;
                } else {
                    st.open.insert(
                        (ctx.session_id().clone(), cl.to_vec()),
                        (order_id, symbol.to_vec(), side.to_vec(), qty.to_vec()),
                    );
                }
                Ok(())
            }
            b"F" => {
                let orig = msg.get(41).unwrap_or_default().to_vec();
                let cl = msg.get(11).unwrap_or_default().to_vec();
                match st.open.remove(&(ctx.session_id().clone(), orig.clone())) {
                    Some((order_id, symbol, side, qty)) => {
                        st.next_id += 1;
                        let exec_id = st.next_id;
                        Self::report(
                            b, ctx, msg, fix44, order_id, exec_id, &cl, b"4", &symbol, &side, &qty,
                            false, b"0",
                        )
                    }
                    None => {
                        b.start_fields()
                            .push(37, b"NONE")
                            .push(11, &cl)
                            .push(41, &orig)
                            .push(39, b"8")
                            .push(434, b"1")
                            .push(102, b"1")
                            .push_str(58, "Unknown order");
                        ctx.reply(b"9", msg, b.fields()).map(|_| ()).map_err(|e| {
                            AppReject::Business {
                                reason: 0,
                                text: format!("cancel reject not sent: {e}"),
                            }
                        })
                    }
                }
            }
            _ => Err(AppReject::Business {
                reason: 3,
                text: "Unsupported Message Type".into(),
            }),
        }
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
    use super::{test_role_state as state, Term};
    use fix_lease::Leadership;
    use std::time::Duration;

    #[test]
    fn a_term_ends_with_its_epoch_its_lease_deadline_or_the_lead() {
        assert!(Term::current(None).is_current(), "no lease: never ends");
        let (tx, rx) = tokio::sync::watch::channel(state(
            Leadership::Leader { epoch: 3 },
            Duration::from_secs(60),
        ));
        let term = Term::current(Some(&rx));
        assert!(term.is_current());
        tx.send_replace(state(
            Leadership::Leader { epoch: 4 },
            Duration::from_secs(60),
        ));
        assert!(!term.is_current(), "a later epoch is another term");
        let (_tx, rx) =
            tokio::sync::watch::channel(state(Leadership::Leader { epoch: 5 }, Duration::ZERO));
        assert!(
            !Term::current(Some(&rx)).is_current(),
            "the deadline passed"
        );
        let (_tx, rx) = tokio::sync::watch::channel(state(Leadership::Standby, Duration::ZERO));
        assert!(
            !Term::current(Some(&rx)).is_current(),
            "a standby has no term"
        );
    }
}
