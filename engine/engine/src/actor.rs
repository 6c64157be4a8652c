//! One task per session: owns the [`Session`], its connection and its message log.
//!
//! Every loop turn: take one input (command, socket bytes, timer), then [`SessionActor::flush`]:
//! wait for the store to be durable, write what the session produced, deliver in-sequence
//! application messages, handle events — and repeat while that produced more.
//!
//! A turn frames at most [`input::MESSAGES_PER_TURN`] messages, and a task that has
//! handled that many since it last let the others run yields before its next turn: a
//! session that floods the engine shares the worker with the other sessions one small
//! batch at a time instead of holding it for a whole read buffer, turn after turn.

use crate::app::Application;
use crate::config::SessionPlan;
use crate::msglog::MessageLog;
use crate::storage::Storage;
use crate::tls::BoxIo;
use fix_codec::OwnedMessage;
use fix_lease::{Leadership, RoleState};
use fix_session::{LogLevel, Now, Role, Session, SessionEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

mod commands;
mod connect;
mod deliver;
mod held;
mod input;
mod read_buffer;
mod status;
mod waits;
mod write_guard;

use held::Held;
pub(crate) use status::PublishedStatus;
pub use status::SessionStatus;
use waits::{read_some, role_change, spin_on, DURABLE_SPIN};
use write_guard::{deposed, leading_epoch, write_stall_limit, Written};

/// Stored messages with their sequence numbers.
pub(crate) type StoredMessages = Vec<(u64, Vec<u8>)>;

/// Requests to a session task.
pub(crate) enum Command {
    Attach {
        stream: BoxIo,
        peer: SocketAddr,
        initial: Vec<u8>,
    },
    Send {
        msg_type: Vec<u8>,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<u64, crate::error::EngineError>>,
    },
    Logout {
        text: Option<String>,
    },
    SetSequence {
        next_sender: Option<u64>,
        next_target: Option<u64>,
        reply: oneshot::Sender<Result<(), fix_session::StoreError>>,
    },
    Status(oneshot::Sender<SessionStatus>),
    /// Stored outbound messages in `from..=to` (at most `limit`).
    Messages {
        from: u64,
        to: u64,
        limit: usize,
        reply: oneshot::Sender<Result<StoredMessages, fix_session::StoreError>>,
    },
    /// Reset both sequence numbers to 1 (refused while logged on or on a standby).
    Reset(oneshot::Sender<Result<(), crate::error::EngineError>>),
    Shutdown(oneshot::Sender<()>),
}

struct Conn {
    reader: ReadHalf<BoxIo>,
    writer: WriteHalf<BoxIo>,
    peer: SocketAddr,
    buf: Vec<u8>,
    filled: usize,
}

enum Delivery {
    /// An application message in the read buffer (offset, length).
    Frame(usize, usize),
    /// An admin message in the read buffer, for `from_admin`.
    Admin(usize, usize),
    /// An application message released from the gap queue.
    Owned(OwnedMessage),
    /// An application message journaled before a restart or promotion and never marked
    /// processed: the application may have seen it already.
    Replayed(OwnedMessage),
}

pub(crate) struct SessionActor {
    pub(crate) session: Session,
    pub(crate) plan: SessionPlan,
    pub(crate) storage: Storage,
    pub(crate) app: Arc<dyn Application>,
    pub(crate) log: MessageLog,
    pub(crate) rx: mpsc::Receiver<Command>,
    conn: Option<Conn>,
    next_connect: Instant,
    connect_failures: u32,
    connect_index: usize,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: bool,
    consumed: usize,
    /// The last turn stopped at its message budget with complete messages still in the
    /// read buffer: the next turn frames those before reading more.
    input_pending: bool,
    /// Messages framed since this task last yielded to the others.
    since_yield: usize,
    events: Vec<SessionEvent>,
    spans: Vec<fix_codec::FieldSpan>,
    data_fields: fix_codec::message::DataFieldTable,
    /// The lease role; `None` when no lease is configured (always serving).
    role: Option<watch::Receiver<RoleState>>,
    /// Whether this actor has taken over as leader (reloaded the store) in this term.
    leading: bool,
    /// The epoch it took over in (`None` without a lease).
    led_epoch: Option<u64>,
    metrics: Arc<crate::metrics::Metrics>,
    label: crate::metrics::SessionLabel,
    /// `[engine.runtime] busy_poll`: spin on the socket instead of sleeping in epoll.
    pub(crate) busy_poll: bool,
    /// `[engine] delivery`: whether the application sees inbound messages before their
    /// group commit (`early`) or after it (`durable`).
    pub(crate) delivery: crate::config::Delivery,
    /// This session's `messages_in` and `messages_out` counters (looked up once).
    counted_in: prometheus_client::metrics::counter::Counter,
    counted_out: prometheus_client::metrics::counter::Counter,
    /// While standby: whether this instance expects to take over (a counterparty's
    /// connection is then held unanswered until it does, or the expectation is over).
    takeover: Option<crate::takeover::TakeoverHint>,
    /// A counterparty's connection held unanswered while standby ([`Held`]).
    held: Option<Held>,
    /// Set when the engine shuts down: the application's terms end.
    stopping: crate::app::Stopping,
    /// Where this task leaves its status at the end of every turn while leading.
    published: PublishedStatus,
}

fn now() -> Now {
    Now::system()
}

impl SessionActor {
    pub(crate) fn new(
        session: Session,
        plan: SessionPlan,
        storage: Storage,
        app: Arc<dyn Application>,
        log: MessageLog,
        rx: mpsc::Receiver<Command>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let data_fields = session.data_fields().clone();
        let label = crate::metrics::SessionLabel::of(session.id());
        let counted_in = metrics.messages_in.get_or_create(&label).clone();
        let counted_out = metrics.messages_out.get_or_create(&label).clone();
        let published = PublishedStatus::default();
        Self {
            session,
            plan,
            storage,
            app,
            log,
            rx,
            conn: None,
            next_connect: Instant::now(),
            connect_failures: 0,
            connect_index: 0,
            shutdown: None,
            stopped: false,
            consumed: 0,
            input_pending: false,
            since_yield: 0,
            events: Vec::new(),
            spans: Vec::new(),
            data_fields,
            role: None,
            leading: false,
            led_epoch: None,
            metrics,
            label,
            busy_poll: false,
            delivery: crate::config::Delivery::Durable,
            counted_in,
            counted_out,
            takeover: None,
            held: None,
            stopping: crate::app::Stopping::default(),
            published,
        }
    }

    /// Ends the application's terms when `stopping` is set (the engine shuts down).
    pub(crate) fn with_stopping(mut self, stopping: crate::app::Stopping) -> Self {
        self.stopping = stopping;
        self
    }

    /// Follows the lease: serve only while leader.
    pub(crate) fn with_role(mut self, role: watch::Receiver<RoleState>) -> Self {
        self.role = Some(role);
        self
    }

    /// Leader, and the lease's local deadline has not passed. The deadline is checked
    /// here too, not only by the lease task: a process resumed after a pause (SIGSTOP, a
    /// VM freeze) may run this before the lease task has noticed.
    fn is_leader(&self) -> bool {
        self.role.as_ref().is_none_or(|r| {
            let state = r.borrow();
            matches!(state.role, Leadership::Leader { .. })
                && state
                    .valid_until
                    .is_none_or(|t| std::time::Instant::now() < t)
        })
    }

    /// This instance leads in a term this task has not taken over in: it has not yet
    /// seen the role change, or was busy while the lease was lost and taken again (the
    /// role's watch keeps only the latest value).
    pub(super) fn needs_take_over(&self) -> bool {
        self.is_leader() && (!self.leading || self.led_epoch != leading_epoch(self.role.as_ref()))
    }

    /// Takes over in the current term. A task still leading in an earlier one drops
    /// that term's connection without another byte first: its sequence numbers are the
    /// old term's, and another instance may have led in between.
    pub(super) async fn catch_up_term(&mut self) {
        if self.leading {
            tracing::warn!(session = %self.span_name(), "the lease was lost and taken again while this session was busy: closing the old term's connection and reloading from the journal");
            self.fence();
            self.leading = false;
        }
        self.take_over().await;
    }

    /// Lost the lease: close the connection without sending another byte.
    fn fence(&mut self) {
        if self.conn.is_some() {
            tracing::warn!(session = %self.span_name(), "lease lost: closing the FIX connection without sending (fenced)");
        }
        self.session.clear_transmit();
        self.close();
    }

    fn span_name(&self) -> String {
        self.session.id().to_string()
    }

    pub(crate) async fn run(mut self) {
        self.app.on_create(self.session.id());
        self.leading = self.is_leader();
        if self.leading {
            self.led_epoch = leading_epoch(self.role.as_ref());
            self.replay_unprocessed().await;
        }
        self.publish();
        while !self.stopped {
            let mut deliveries = Vec::new();
            if self.since_yield >= input::MESSAGES_PER_TURN {
                self.since_yield = 0;
                tokio::task::yield_now().await;
            }
            if self.input_pending {
                if !self.is_leader() {
                    // The term ended while this task yielded: the rest is not read.
                    self.fence();
                    self.leading = false;
                } else if self.needs_take_over() {
                    self.catch_up_term().await;
                } else {
                    self.process_input(&mut deliveries);
                }
                self.end_turn(deliveries).await;
                continue;
            }
            let wake = self.next_wake();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        if self.needs_take_over() {
                            self.catch_up_term().await;
                        }
                        self.on_command(cmd).await
                    }
                    None => self.stopped = true,
                },
                r = read_some(&mut self.conn, self.busy_poll) => {
                    if self.needs_take_over() {
                        // Read on the old term's connection, which is now closed.
                        self.catch_up_term().await;
                    } else {
                        self.on_read(r, &mut deliveries);
                    }
                }
                () = role_change(&mut self.role) => {
                    if !self.is_leader() {
                        self.fence();
                        self.leading = false;
                    } else if self.needs_take_over() {
                        self.catch_up_term().await;
                        if let Some(h) = self.held.take() {
                            tracing::info!(session = %self.span_name(), peer = %h.peer, "leading: answering the FIX connection held while standby");
                            self.serve(h.stream, h.peer, h.initial).await;
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    if self.needs_take_over() {
                        self.catch_up_term().await;
                    }
                    self.on_tick().await
                }
            }
            self.end_turn(deliveries).await;
        }
        self.log.flush();
        self.unpublish();
        if let Some(done) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    /// Flushes what the turn produced and publishes the status.
    async fn end_turn(&mut self, deliveries: Vec<Delivery>) {
        self.flush(deliveries).await;
        self.publish();
        if self.shutdown.is_some() && self.conn.is_none() {
            self.stopped = true;
        }
    }

    /// This instance became leader: take the sequence numbers the journal holds now
    /// (replicated from the old leader) and hand the application what the old leader
    /// journaled but never processed.
    async fn take_over(&mut self) {
        self.leading = true;
        self.led_epoch = leading_epoch(self.role.as_ref());
        match self.session.reload_store() {
            Ok(()) => tracing::info!(
                session = %self.span_name(),
                next_sender = self.session.next_sender_seq(),
                next_target = self.session.next_target_seq(),
                "leading: sequence numbers continue from the journal"
            ),
            Err(e) => {
                tracing::error!(session = %self.span_name(), error = %e, "cannot reload the session from the journal");
            }
        }
        self.replay_unprocessed().await;
    }

    /// Hands the application what was journaled on receipt but never processed because
    /// the engine stopped in between (crash, kill -9).
    async fn replay_unprocessed(&mut self) {
        match self.session.unprocessed_inbound() {
            Ok(msgs) if msgs.is_empty() => {}
            Ok(msgs) => {
                tracing::warn!(session = %self.span_name(), count = msgs.len(), "replaying inbound messages the application had not processed before the restart");
                self.flush(msgs.into_iter().map(Delivery::Replayed).collect())
                    .await;
            }
            Err(e) => {
                tracing::error!(session = %self.span_name(), error = %e, "cannot read unprocessed inbound messages")
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let cap = Instant::now() + Duration::from_secs(1);
        let mut wake = self.session.poll_timeout().map_or(cap, |t| t.min(cap));
        if self.wants_connection() {
            wake = wake.min(self.next_connect);
        }
        if let Some(h) = &self.held {
            wake = wake.min(h.until);
        }
        wake
    }

    fn wants_connection(&self) -> bool {
        self.plan.config.role == Role::Initiator
            && self.is_leader()
            && self.conn.is_none()
            && self.shutdown.is_none()
            && self.session.is_session_time(fix_codec::UtcTimestamp::now())
    }

    async fn on_tick(&mut self) {
        self.expire_held();
        if !self.leading {
            // Standby: nothing to time out, and nothing may be written.
            return;
        }
        self.session.handle_timeout(now());
        if let Some(conn) = &mut self.conn {
            read_buffer::shrink_if_empty(conn);
        }
        if self.wants_connection() && Instant::now() >= self.next_connect {
            self.connect().await;
        }
    }

    /// Makes the store durable, writes, delivers, handles events; repeats while that
    /// produced more work. With `delivery = "early"` the deliveries come first, so that
    /// one commit covers the inbound messages and everything they caused; nothing is
    /// written to the counterparty before that commit either way. Returns whether what
    /// was appended before the call is durable: false when the store failed or this
    /// instance stopped leading before the first wait for it succeeded (such a message
    /// may be lost, or may still have been stored; it was not written to the socket).
    async fn flush(&mut self, mut deliveries: Vec<Delivery>) -> bool {
        let early = self.delivery == crate::config::Delivery::Early;
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Deliver(m) => deliveries.push(Delivery::Owned(m)),
                other => self.events.push(other),
            }
        }
        // Deliveries point into the read buffer: hold it here so that a connection closed
        // during the flush (write failure, Logout) cannot take durable, undelivered
        // messages with it.
        let buf = self
            .conn
            .as_mut()
            .map(|c| std::mem::take(&mut c.buf))
            .unwrap_or_default();
        let mut covered = false;
        loop {
            if !self.is_leader() {
                // Fenced or silent: no writes, no sends, no application processing.
                deliveries.clear();
                self.fence();
                break;
            }
            if early {
                self.deliver_all(&mut deliveries, &buf);
            }
            let durable = if self.busy_poll {
                spin_on(self.storage.wait_durable(), DURABLE_SPIN).await
            } else {
                self.storage.wait_durable().await
            };
            if let Err(e) = durable {
                if e == crate::storage::NotDurable::Fenced {
                    deliveries.clear();
                    self.fence();
                    break;
                }
                tracing::error!(session = %self.span_name(), error = %e, "store is not durable: nothing more is sent; disconnecting");
                self.session.clear_transmit();
                deliveries.clear();
                self.close();
                self.stopped = true;
                return covered;
            }
            // Everything appended before this call is durable from the first wait on.
            covered = true;
            if !self.is_leader() {
                // Durable, but the term ended: what follows is not sent.
                deliveries.clear();
                self.fence();
                break;
            }
            if let Some(bytes) = self.session.poll_transmit() {
                self.log.record('>', bytes);
                self.counted_out
                    .inc_by(crate::metrics::count_messages(bytes));
                let limit = write_stall_limit(self.plan.config.heartbeat_interval);
                let mut role = self.role.clone();
                let epoch = leading_epoch(role.as_ref());
                let outcome = match &mut self.conn {
                    // The term first, at every wake-up: a task that wakes after its lease
                    // ran out (a frozen process, a window that opened late) must not hand
                    // the socket one more byte.
                    Some(c) => tokio::select! {
                        biased;
                        () = deposed(role.as_mut(), epoch) => Written::Deposed,
                        written = tokio::time::timeout(limit, c.writer.write_all(bytes)) => match written {
                            Ok(Ok(())) => Written::Done,
                            Ok(Err(_)) => Written::Failed,
                            Err(_) => Written::Stalled,
                        },
                    },
                    None => Written::Done,
                };
                self.session.clear_transmit();
                match outcome {
                    Written::Done => {}
                    Written::Failed => {
                        tracing::warn!(session = %self.span_name(), "write failed; closing the connection");
                        self.close();
                    }
                    Written::Stalled => {
                        tracing::warn!(session = %self.span_name(), ?limit, "the counterparty read nothing while a write waited; closing the connection");
                        self.close();
                    }
                    Written::Deposed => {
                        deliveries.clear();
                        self.fence();
                        break;
                    }
                }
            }
            if !early {
                self.deliver_all(&mut deliveries, &buf);
            }
            for ev in std::mem::take(&mut self.events) {
                self.on_event(ev);
            }
            while let Some(ev) = self.session.poll_event() {
                match ev {
                    SessionEvent::Deliver(m) => deliveries.push(Delivery::Owned(m)),
                    other => self.events.push(other),
                }
            }
            if self.session.poll_transmit().is_none()
                && deliveries.is_empty()
                && self.events.is_empty()
            {
                break;
            }
        }
        if let Some(c) = &mut self.conn {
            c.buf = buf;
        }
        // The last batch's processed mark (and anything else appended since the last
        // wait) is committed now, not whenever another write asks: fewer replays after
        // a crash or a takeover.
        self.storage.request_commit();
        self.compact();
        self.log.flush();
        covered
    }

    fn on_event(&mut self, ev: SessionEvent) {
        let id = self.span_name();
        match ev {
            SessionEvent::LoggedOn => {
                self.metrics.logged_on.get_or_create(&self.label).set(1);
                tracing::info!(session = %id, next_sender = self.session.next_sender_seq(), next_target = self.session.next_target_seq(), "logged on");
                self.app.on_logon(self.session.id());
            }
            SessionEvent::LoggedOut => {
                self.metrics.logged_on.get_or_create(&self.label).set(0);
                tracing::info!(session = %id, "logged out");
                self.app.on_logout(self.session.id());
            }
            SessionEvent::Disconnect { reason } => {
                tracing::info!(session = %id, %reason, "disconnecting");
                self.close();
            }
            SessionEvent::Log { level, text } => match level {
                LogLevel::Info => tracing::info!(session = %id, "{text}"),
                LogLevel::Warn => tracing::warn!(session = %id, "{text}"),
                LogLevel::Error => tracing::error!(session = %id, "{text}"),
            },
            SessionEvent::SequenceReset => {
                tracing::info!(session = %id, "sequence numbers reset to 1")
            }
            SessionEvent::StoreFailed(e) => {
                tracing::error!(session = %id, error = %e, "store failed; session stopped")
            }
            SessionEvent::Deliver(_) => {}
        }
    }

    fn close(&mut self) {
        if self.conn.take().is_some() {
            self.consumed = 0;
            self.input_pending = false;
            self.session.handle_disconnect(now());
            while let Some(ev) = self.session.poll_event() {
                if !matches!(ev, SessionEvent::Disconnect { .. }) {
                    self.events.push(ev);
                }
            }
            if self.plan.config.role == Role::Initiator {
                // Move on to the next alternate address (a failed-over counterparty is
                // found there); once all were tried, wait the reconnect interval.
                self.connect_index += 1;
                let round_done = self.connect_index.is_multiple_of(self.plan.connect.len());
                self.next_connect = Instant::now()
                    + if round_done {
                        self.plan.reconnect_interval
                    } else {
                        Duration::from_millis(100)
                    };
            }
        }
    }
}
