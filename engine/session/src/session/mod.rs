//! The [`Session`] state machine.
//!
//! The API reads like quinn-proto's `Connection`:
//! - getters: [`Session::state`], [`Session::next_sender_seq`], …
//! - inputs (`handle_*`): [`Session::handle_connect`], [`Session::handle_message`],
//!   [`Session::handle_timeout`], [`Session::handle_disconnect`], plus the application's
//!   [`Session::send`] and [`Session::logout`].
//! - outputs (`poll_*`): [`Session::poll_transmit`] (bytes for the socket),
//!   [`Session::poll_event`] and [`Session::poll_timeout`].
//!
//! After every input the runtime must: make the store durable, then write
//! `poll_transmit()` to the socket, then deliver the messages the input reported as
//! [`Disposition::Deliver`] and [`SessionEvent::Deliver`] to the application, then handle
//! the remaining events, then re-arm its timer from `poll_timeout()`.

mod inbound;
mod interface;
mod outbound;
mod queue;
mod resend;

pub use interface::{Authenticator, Dictionaries, Now, Outgoing, SendError, SessionHooks, State};
pub use outbound::route_back;

use crate::config::{Role, SessionConfig, SessionId};
use crate::event::{Disposition, LogLevel, SessionEvent};
use crate::store::{SessionStore, StoreError};
use fix_codec::dictionary::Validator;
use fix_codec::message::{split_fields, DataFieldTable};
use fix_codec::{FieldSpan, MessageBuilder, MessageRef, OwnedMessage, UtcTimestamp};
use queue::GapQueue;
pub use queue::MAX_QUEUED_BYTES;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of transmit buffer a session keeps between writes.
const TRANSMIT_KEPT: usize = 1 << 20;

/// One FIX session. See the module documentation for the calling order.
pub struct Session {
    config: SessionConfig,
    store: Box<dyn SessionStore>,
    dicts: Dictionaries,
    validator: Validator,
    data_fields: DataFieldTable,
    spans: Vec<FieldSpan>,
    builder: MessageBuilder,
    transmit: Vec<u8>,
    events: VecDeque<SessionEvent>,
    state: State,
    heartbeat: Duration,
    last_sent: Instant,
    last_received: Instant,
    test_requests_sent: u32,
    deadline: Option<Instant>,
    resend_end: Option<u64>,
    /// A ResendRequest being answered, a window at a time (`resend.rs`).
    resend: Option<resend::ResendProgress>,
    /// Messages with new sequence numbers made while `resend` is under way, sent after it.
    deferred: Vec<u8>,
    highest_seen: u64,
    queue: GapQueue,
    authenticator: Option<Arc<dyn Authenticator>>,
    hooks: Option<Arc<dyn SessionHooks>>,
    /// Scratch field index for handing outgoing messages to the hooks.
    hook_spans: Vec<fix_codec::FieldSpan>,
    /// Start of the schedule period the current connection belongs to.
    period: Option<UtcTimestamp>,
    reset_sent: bool,
    failed: bool,
    counters: crate::SessionCounters,
    /// The current connection completed a Logon.
    logged_on_this_connection: bool,
}

impl Session {
    /// A session over `store`, validating with `dicts`.
    pub fn new(
        config: SessionConfig,
        store: Box<dyn SessionStore>,
        dicts: Dictionaries,
        now: Now,
    ) -> Self {
        let data_fields: DataFieldTable = dicts
            .app
            .as_ref()
            .map(|a| a.data_fields())
            .unwrap_or_default();
        Self {
            heartbeat: config.heartbeat_interval,
            validator: Validator::new(config.validation),
            config,
            store,
            dicts,
            data_fields,
            spans: Vec::with_capacity(64),
            builder: MessageBuilder::new(),
            transmit: Vec::with_capacity(4096),
            events: VecDeque::new(),
            state: State::Disconnected,
            last_sent: now.mono,
            last_received: now.mono,
            test_requests_sent: 0,
            deadline: None,
            resend_end: None,
            resend: None,
            deferred: Vec::new(),
            highest_seen: 0,
            queue: GapQueue::default(),
            authenticator: None,
            hooks: None,
            hook_spans: Vec::new(),
            period: None,
            reset_sent: false,
            failed: false,
            counters: crate::SessionCounters::default(),
            logged_on_this_connection: false,
        }
    }

    /// Installs the application's outbound hooks.
    pub fn set_hooks(&mut self, hooks: Arc<dyn SessionHooks>) {
        self.hooks = Some(hooks);
    }

    /// Installs a Logon authenticator (acceptor side).
    pub fn set_authenticator(&mut self, auth: Arc<dyn Authenticator>) {
        self.authenticator = Some(auth);
    }

    // ---- getters ----

    /// The session's identity.
    pub fn id(&self) -> &SessionId {
        &self.config.id
    }

    /// The dictionaries the session validates with.
    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dicts
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What this session has counted since it was created.
    pub fn counters(&self) -> crate::SessionCounters {
        self.counters
    }

    /// Whether the Logon exchange has completed and the session is not closing.
    pub fn is_logged_on(&self) -> bool {
        matches!(self.state, State::Active | State::LogoutSent)
    }

    /// Next outbound sequence number.
    pub fn next_sender_seq(&self) -> u64 {
        self.store.next_sender_seq()
    }

    /// Next expected inbound sequence number.
    pub fn next_target_seq(&self) -> u64 {
        self.store.next_target_seq()
    }

    /// Which length fields announce data fields (from the dictionaries), for re-reading
    /// messages exactly as the session read them.
    pub fn data_fields(&self) -> &DataFieldTable {
        &self.data_fields
    }

    /// The heartbeat interval in force.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat
    }

    /// Whether `now` is within the session schedule (always true without one).
    pub fn is_session_time(&self, now: UtcTimestamp) -> bool {
        self.config
            .schedule
            .as_ref()
            .is_none_or(|s| s.is_session_time(now))
    }

    /// The store (for the runtime's inspection and sync).
    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    // ---- outputs ----

    /// Bytes to write to the socket, all at once; call [`Session::clear_transmit`] after
    /// writing them.
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        (!self.transmit.is_empty()).then_some(&self.transmit[..])
    }

    /// Forgets the bytes returned by `poll_transmit` (they were written).
    pub fn clear_transmit(&mut self) {
        self.transmit.clear();
        // A burst (a long resend) does not keep its buffer for the session's life.
        if self.transmit.capacity() > TRANSMIT_KEPT {
            self.transmit.shrink_to(TRANSMIT_KEPT);
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.state_timeout();
        match self.resend {
            // The next window of a resend is due at once.
            Some(p) => Some(timer.map_or(p.due(), |t| t.min(p.due()))),
            None => timer,
        }
    }

    fn state_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingLogon | State::LogonSent | State::LogoutSent => self.deadline,
            State::Active if !self.heartbeat.is_zero() => {
                let send_by = self.last_sent + self.heartbeat;
                let recv_by = self.last_received + self.receive_allowance();
                Some(send_by.min(recv_by))
            }
            _ => None,
        }
    }

    fn receive_allowance(&self) -> Duration {
        // A TestRequest after 1.2 intervals of silence, a disconnect after 2.4.
        self.heartbeat.mul_f64(1.2) * (self.test_requests_sent + 1)
    }

    // ---- inputs ----

    /// A connection was established (either side).
    pub fn handle_connect(&mut self, now: Now) {
        self.logged_on_this_connection = false;
        self.reset_runtime_state(now);
        self.check_daily_reset(now);
        self.period = self
            .config
            .schedule
            .as_ref()
            .and_then(|s| s.period_start(now.wall));
        if !self.is_session_time(now.wall) {
            self.state = State::Closing;
            self.disconnect("connection outside the session schedule");
            return;
        }
        self.deadline = Some(now.mono + self.config.logon_timeout);
        match self.config.role {
            Role::Acceptor => self.state = State::AwaitingLogon,
            Role::Initiator => {
                if self.config.reset_on_logon {
                    self.reset_store(now);
                }
                self.state = State::LogonSent;
                self.send_logon(now, self.config.reset_on_logon, None);
            }
        }
    }

    /// One complete, checksum-verified frame arrived. See [`Disposition`].
    pub fn handle_message(&mut self, now: Now, bytes: &[u8]) -> Disposition {
        if matches!(self.state, State::Disconnected | State::Closing) || self.failed {
            return Disposition::Consumed;
        }
        self.last_received = now.mono;
        self.test_requests_sent = 0;
        let mut spans = std::mem::take(&mut self.spans);
        let disposition = match split_fields(bytes, &self.data_fields, &mut spans) {
            Ok(()) => self.process(now, MessageRef::new(bytes, &spans), false),
            Err(e) => {
                self.log(LogLevel::Warn, format!("ignored garbled message: {e}"));
                Disposition::Consumed
            }
        };
        self.spans = spans;
        self.drain_queue(now);
        disposition
    }

    /// A frame could not be read (bad checksum, garbled, too large). The bytes were
    /// skipped; the session only records it.
    pub fn handle_bad_frame(&mut self, now: Now, problem: &fix_codec::FrameError) {
        self.last_received = now.mono;
        self.log(
            LogLevel::Warn,
            format!("ignored unreadable input: {problem}"),
        );
    }

    /// Time passed; fire whichever timers are due.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.failed {
            return;
        }
        self.resend_step(now);
        if self.state == State::Active && self.period_over(now) {
            self.initiate_logout(now, Some("Session end time reached"));
            return;
        }
        match self.state {
            State::AwaitingLogon | State::LogonSent if self.deadline_passed(now) => {
                self.state = State::Closing;
                self.disconnect("timed out waiting for Logon");
            }
            State::LogoutSent if self.deadline_passed(now) => {
                self.log(LogLevel::Warn, "timed out waiting for Logout answer".into());
                self.finish_logout(now, "Logout answer not received in time");
            }
            State::Active if !self.heartbeat.is_zero() => self.heartbeat_timers(now),
            _ => {}
        }
    }

    /// Whether the schedule's session period this connection started in has ended
    /// (outside session time, or a new period has begun as in a 24-hour session).
    fn period_over(&self, now: Now) -> bool {
        match &self.config.schedule {
            None => false,
            Some(s) => s.period_start(now.wall) != self.period,
        }
    }

    fn deadline_passed(&self, now: Now) -> bool {
        self.deadline.is_some_and(|d| now.mono >= d)
    }

    fn heartbeat_timers(&mut self, now: Now) {
        if now.mono >= self.last_received + self.receive_allowance() {
            if self.test_requests_sent == 0 {
                self.test_requests_sent = 1;
                // QuickFIX's TestReqID is always TEST.
                self.send_admin(now, b"1", |b| {
                    b.push_str(fix_codec::tags::TEST_REQ_ID, "TEST");
                });
            } else {
                self.log(LogLevel::Warn, "no data received after TestRequest".into());
                self.state = State::Closing;
                self.counters.heartbeat_timeouts += 1;
                self.disconnect("timed out waiting for heartbeat");
                return;
            }
        }
        if now.mono >= self.last_sent + self.heartbeat {
            self.send_admin(now, b"0", |_| {});
        }
    }

    /// The connection closed (by us or the peer).
    pub fn handle_disconnect(&mut self, now: Now) {
        if self.state != State::Disconnected {
            self.counters.disconnects += 1;
            if !self.logged_on_this_connection {
                self.counters.logon_failures += 1;
            }
        }
        self.logged_on_this_connection = false;
        if self.is_logged_on() {
            self.events.push_back(SessionEvent::LoggedOut);
        }
        if self.config.reset_on_disconnect && self.state != State::Disconnected {
            self.reset_store(now);
        }
        self.state = State::Disconnected;
        self.queue.clear();
        // Nothing more is sent on this connection; deferred application messages are
        // stored, and the next logon's resend brings them.
        self.resend = None;
        self.deferred.clear();
        self.resend_end = None;
        self.deadline = None;
    }

    /// Starts a Logout handshake.
    pub fn logout(&mut self, now: Now, text: Option<&str>) {
        if self.is_logged_on() {
            self.initiate_logout(now, text);
        } else if self.state != State::Disconnected {
            self.state = State::Closing;
            self.disconnect(text.unwrap_or("logout requested before logon"));
        }
    }

    /// Resets both sequence numbers to 1 and forgets stored messages (admin action or
    /// daily reset). Only allowed while not logged on.
    pub fn reset(&mut self, now: Now) -> bool {
        if self.is_logged_on() {
            return false;
        }
        self.reset_store(now);
        true
    }

    /// Starts an application batch: the replies the application sends until
    /// [`Session::commit_app_batch`] are committed together with the mark that the
    /// delivered messages were processed (exactly-once processing across crashes).
    pub fn begin_app_batch(&mut self) {
        self.store.begin_batch();
    }

    /// Commits the batch: inbound messages up to `processed` count as processed.
    pub fn commit_app_batch(&mut self, processed: u64) {
        let r = self.store.commit_batch(processed);
        self.store_ok(r);
    }

    /// Reloads sequence numbers from the store after another writer changed it (this
    /// instance was a standby and becomes leader). Only while not connected.
    pub fn reload_store(&mut self) -> Result<(), StoreError> {
        self.store.refresh()
    }

    /// Inbound application messages recorded but never processed by the application
    /// (a crash came in between), in order, for replay at start-up.
    pub fn unprocessed_inbound(&self) -> Result<Vec<OwnedMessage>, StoreError> {
        let mut out = Vec::new();
        let mut failed = None;
        self.store
            .load_unprocessed_inbound(
                &mut |_, bytes| match OwnedMessage::parse(bytes.to_vec()) {
                    Ok(m) => out.push(m),
                    Err(e) => failed = Some(e.to_string()),
                },
            )?;
        match failed {
            Some(detail) => Err(StoreError::Io {
                action: "re-reading an unprocessed inbound message",
                detail,
            }),
            None => Ok(out),
        }
    }

    /// Sets the sequence numbers by hand (admin action).
    pub fn set_sequence_numbers(
        &mut self,
        next_sender: Option<u64>,
        next_target: Option<u64>,
    ) -> Result<(), StoreError> {
        if let Some(s) = next_sender {
            self.store.set_next_sender_seq(s)?;
        }
        if let Some(t) = next_target {
            self.store.set_next_target_seq(t)?;
        }
        Ok(())
    }

    // ---- internals shared by inbound and outbound ----

    fn reset_runtime_state(&mut self, now: Now) {
        self.last_sent = now.mono;
        self.last_received = now.mono;
        self.test_requests_sent = 0;
        self.queue.clear();
        self.resend_end = None;
        self.highest_seen = 0;
        self.reset_sent = false;
        self.transmit.clear();
        self.resend = None;
        self.deferred.clear();
        self.heartbeat = self.config.heartbeat_interval;
    }

    fn check_daily_reset(&mut self, now: Now) {
        let due = match &self.config.schedule {
            Some(s) => s
                .period_start(now.wall)
                .is_some_and(|start| self.store.creation_time() < start),
            None => false,
        };
        if due {
            self.log(
                LogLevel::Info,
                "new session period: sequence numbers reset".into(),
            );
            self.reset_store(now);
        }
    }

    fn reset_store(&mut self, now: Now) {
        let r = self.store.reset(now.wall);
        if self.store_ok(r) {
            self.events.push_back(SessionEvent::SequenceReset);
        }
    }

    /// Records a store failure: the session stops and disconnects.
    fn store_ok(&mut self, r: Result<(), StoreError>) -> bool {
        match r {
            Ok(()) => true,
            Err(e @ StoreError::Fenced { .. }) => {
                // Not the leader (any more): send nothing, drop the connection, but stay
                // usable for when this instance leads again.
                self.transmit.clear();
                self.resend = None;
                self.deferred.clear();
                self.events.push_back(SessionEvent::Log {
                    level: LogLevel::Warn,
                    text: e.to_string(),
                });
                self.state = State::Closing;
                self.events.push_back(SessionEvent::Disconnect {
                    reason: e.to_string(),
                });
                false
            }
            Err(e) => {
                self.failed = true;
                self.transmit.clear();
                self.resend = None;
                self.deferred.clear();
                self.events
                    .push_back(SessionEvent::StoreFailed(e.to_string()));
                self.state = State::Closing;
                self.events.push_back(SessionEvent::Disconnect {
                    reason: format!("store failure: {e}"),
                });
                false
            }
        }
    }

    fn log(&mut self, level: LogLevel, text: String) {
        self.events.push_back(SessionEvent::Log { level, text });
    }

    fn disconnect(&mut self, reason: &str) {
        self.events.push_back(SessionEvent::Disconnect {
            reason: reason.to_string(),
        });
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.config.id)
            .field("state", &self.state)
            .field("next_sender", &self.store.next_sender_seq())
            .field("next_target", &self.store.next_target_seq())
            .finish()
    }
}
