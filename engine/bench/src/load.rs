//! Initiator sessions sending NewOrderSingle and timing the first ExecutionReport of
//! each (ExecType New), from one thread.
//!
//! Open loop: order `i` is *scheduled* at `start + i / rate` (on session `i % sessions`)
//! and sent then, or as soon as the generator catches up; its round trip is recorded from
//! the scheduled time (corrected for coordinated omission: a stall delays every order
//! behind it, and they all count) and, separately, from the actual send time. Closed
//! loop: each session has one order outstanding and sends the next when it is answered.
//! The first `warmup` orders are not recorded.
//!
//! One thread drives every session through non-blocking sockets: it either spins
//! (`Wait::Spin`, polling with a zero timeout, so a reply is seen the moment it lands) or
//! sleeps in the poll until the next order is due or a reply arrives (`Wait::Block`). On
//! a two-core machine that leaves the other core wholly to the acceptor under test.

use crate::report::histogram;
use fix_codec::{frame, MessageBuilder, Parser, TimePrecision, UtcTimestamp};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How the generator waits for replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Poll without sleeping (one core busy).
    Spin,
    /// Sleep in the poll until a reply arrives or the next order is due within a
    /// millisecond (then spin: epoll's timeout is in milliseconds).
    Block,
}

/// How to load the acceptor.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The acceptor (FIX.4.4, TargetCompID EXEC; we are CLIENT, CLIENT1, CLIENT2, ...).
    pub addr: SocketAddr,
    /// Orders per second over all sessions; `None` for closed loop.
    pub rate: Option<u32>,
    /// Orders recorded.
    pub messages: u64,
    /// Orders sent first and not recorded.
    pub warmup: u64,
    /// Initiator sessions, each on its own connection.
    pub sessions: usize,
    /// Spin or sleep while waiting.
    pub wait: Wait,
    /// Pin the generator's thread to this core.
    pub core: Option<usize>,
    /// Send limit orders (OrdType 2, a price) instead of market orders: the `exec`
    /// simulator answers them with an ExecutionReport New and keeps them resting.
    pub limit: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// From each order's scheduled send time (open loop) or send time (closed loop).
    pub corrected: Histogram<u64>,
    /// From each order's actual send time.
    pub uncorrected: Histogram<u64>,
    /// Orders answered per second over the recorded part.
    pub per_second: f64,
    /// From the first connect until every session's Logon was answered (all sessions
    /// connect and log on at once: a logon storm when there are many).
    pub logons: Duration,
}

/// The SenderCompID of initiator session `k`: `CLIENT`, then `CLIENT1`, `CLIENT2`, ...
pub fn comp_id(k: usize) -> String {
    if k == 0 {
        "CLIENT".to_string()
    } else {
        format!("CLIENT{k}")
    }
}

/// How long the acceptor may stay silent while orders are outstanding.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// The largest message the generator accepts from the acceptor.
const MAX_MESSAGE: usize = 1 << 16;

pub(crate) fn logon(b: &mut MessageBuilder, sender: &[u8]) -> Vec<u8> {
    b.start(b"FIX.4.4", b"A")
        .push_uint(34, 1)
        .push(49, sender)
        .push_timestamp(52, UtcTimestamp::now(), TimePrecision::Millis)
        .push(56, b"EXEC")
        .push(98, b"0")
        .push(108, b"30")
        .push(141, b"Y");
    b.finish().to_vec()
}

fn heartbeat<'a>(b: &'a mut MessageBuilder, sender: &[u8], seq: u64, id: &[u8]) -> &'a [u8] {
    b.start(b"FIX.4.4", b"0")
        .push_uint(34, seq)
        .push(49, sender)
        .push_timestamp(52, UtcTimestamp::now(), TimePrecision::Millis)
        .push(56, b"EXEC")
        .push(112, id);
    b.finish()
}

fn logout<'a>(b: &'a mut MessageBuilder, sender: &[u8], seq: u64) -> &'a [u8] {
    b.start(b"FIX.4.4", b"5")
        .push_uint(34, seq)
        .push(49, sender)
        .push_timestamp(52, UtcTimestamp::now(), TimePrecision::Millis)
        .push(56, b"EXEC");
    b.finish()
}

pub(crate) fn order<'a>(
    b: &'a mut MessageBuilder,
    sender: &[u8],
    seq: u64,
    id: u64,
    limit: bool,
) -> &'a [u8] {
    let now = UtcTimestamp::now();
    b.start(b"FIX.4.4", b"D")
        .push_uint(34, seq)
        .push(49, sender)
        .push_timestamp(52, now, TimePrecision::Millis)
        .push(56, b"EXEC")
        .push_uint(11, id)
        .push(1, b"ACC-7")
        .push(21, b"1")
        .push(55, b"MSFT")
        .push(54, b"1")
        .push_timestamp(60, now, TimePrecision::Millis)
        .push_uint(38, 100);
    if limit {
        b.push(40, b"2").push(44, b"101.25");
    } else {
        b.push(40, b"1");
    }
    b.finish()
}

/// One initiator session's connection.
struct Conn {
    stream: TcpStream,
    sender: Vec<u8>,
    next_seq: u64,
    logged_on: bool,
    /// The acceptor answered our Logout, or closed the connection, after the run.
    done: bool,
    /// Bytes not yet accepted by the socket.
    out: Vec<u8>,
    input: Vec<u8>,
    filled: usize,
}

impl Conn {
    fn queue(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.out.is_empty() {
            match self.stream.write(bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => self.out.extend_from_slice(&bytes[n..]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.out.extend_from_slice(bytes),
                Err(e) => return Err(e),
            }
            Ok(())
        } else {
            self.out.extend_from_slice(bytes);
            self.flush()
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What the acceptor said, as far as the generator cares.
enum Reply {
    LoggedOn,
    /// The ExecutionReport (New) for this order.
    Accepted(u64),
    TestRequest(Vec<u8>),
    /// A Logout, with its text.
    LoggedOut(String),
    Other,
}

fn classify(msg: &fix_codec::MessageRef<'_>) -> std::io::Result<Reply> {
    Ok(match msg.msg_type() {
        b"A" => Reply::LoggedOn,
        b"8" if msg.get(150) == Some(b"0") => match msg.get_u64(11).ok().flatten() {
            Some(id) => Reply::Accepted(id),
            None => Reply::Other,
        },
        b"1" => Reply::TestRequest(msg.get(112).unwrap_or_default().to_vec()),
        b"5" => {
            Reply::LoggedOut(String::from_utf8_lossy(msg.get(58).unwrap_or_default()).into_owned())
        }
        t @ (b"3" | b"j") => {
            let text = String::from_utf8_lossy(msg.get(58).unwrap_or_default()).into_owned();
            let what = match t {
                b"3" => "rejected a message",
                _ => "rejected an order (BusinessMessageReject)",
            };
            return Err(std::io::Error::other(format!(
                "the acceptor {what}: {text:?}"
            )));
        }
        _ => Reply::Other,
    })
}

/// The generator's state over one run.
struct Run<'a> {
    opts: &'a LoadOptions,
    conns: Vec<Conn>,
    builder: MessageBuilder,
    parser: Parser,
    origin: Instant,
    total: u64,
    interval: Option<u64>,
    start: u64,
    /// Actual send time of each order (ns since `origin`).
    sent: Vec<u64>,
    next: u64,
    answered: u64,
    /// Closed loop: sessions with no order outstanding.
    idle: VecDeque<usize>,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    first_recorded: Option<u64>,
    last_recv: u64,
    /// Every order is answered and the sessions are logging out.
    closing: bool,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn send_order(&mut self, i: u64, k: usize) -> std::io::Result<()> {
        let conn = &mut self.conns[k];
        let bytes = order(
            &mut self.builder,
            &conn.sender,
            conn.next_seq,
            i,
            self.opts.limit,
        );
        conn.next_seq += 1;
        self.sent[i as usize] = self.origin.elapsed().as_nanos() as u64;
        conn.queue(bytes)
    }

    /// Sends every order that is due (open loop) or has a free session (closed loop).
    fn send_due(&mut self) -> std::io::Result<()> {
        let n = self.conns.len() as u64;
        match self.interval {
            Some(iv) => {
                let now = self.now();
                while self.next < self.total && self.start + self.next * iv <= now {
                    let i = self.next;
                    self.send_order(i, (i % n) as usize)?;
                    self.next += 1;
                }
            }
            None => {
                while self.next < self.total {
                    let Some(k) = self.idle.pop_front() else {
                        break;
                    };
                    let i = self.next;
                    self.send_order(i, k)?;
                    self.next += 1;
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, i: u64, k: usize) {
        if i >= self.total || self.sent[i as usize] == 0 {
            return;
        }
        let recv = self.now();
        let actual = self.sent[i as usize];
        let scheduled = self.interval.map_or(actual, |iv| self.start + i * iv);
        if i >= self.opts.warmup {
            self.first_recorded.get_or_insert(scheduled.min(actual));
            let _ = self.corrected.record(recv.saturating_sub(scheduled).max(1));
            let _ = self.uncorrected.record(recv.saturating_sub(actual).max(1));
            self.last_recv = recv;
        }
        self.sent[i as usize] = 0;
        self.answered += 1;
        if self.interval.is_none() {
            self.idle.push_back(k);
        }
    }

    /// Reads what session `k` has and handles every complete message.
    fn read(&mut self, k: usize) -> std::io::Result<()> {
        loop {
            let conn = &mut self.conns[k];
            if conn.filled == conn.input.len() {
                conn.input.resize(conn.input.len() * 2, 0);
            }
            let filled = conn.filled;
            match conn.stream.read(&mut conn.input[filled..]) {
                Ok(0) if self.closing => {
                    conn.done = true;
                    return Ok(());
                }
                Ok(0) => {
                    return Err(std::io::Error::other(format!(
                        "the acceptor closed session {}",
                        String::from_utf8_lossy(&conn.sender)
                    )))
                }
                Ok(n) => conn.filled += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.handle_input(k)?;
        }
    }

    fn handle_input(&mut self, k: usize) -> std::io::Result<()> {
        let mut at = 0;
        let input = std::mem::take(&mut self.conns[k].input);
        let filled = self.conns[k].filled;
        let mut result = Ok(());
        while let Ok(f) = frame::check(&input[at..filled], MAX_MESSAGE) {
            let reply = match self.parser.parse(&input[at..at + f.len]) {
                Ok(msg) => classify(&msg),
                Err(e) => Err(std::io::Error::other(format!(
                    "unparseable message from the acceptor: {e}"
                ))),
            };
            at += f.len;
            match reply {
                Ok(Reply::LoggedOn) => self.conns[k].logged_on = true,
                Ok(Reply::Accepted(i)) => self.record(i, k),
                Ok(Reply::TestRequest(id)) => {
                    let conn = &mut self.conns[k];
                    let bytes = heartbeat(&mut self.builder, &conn.sender, conn.next_seq, &id);
                    conn.next_seq += 1;
                    if let Err(e) = conn.queue(bytes) {
                        result = Err(e);
                        break;
                    }
                }
                Ok(Reply::LoggedOut(_)) if self.closing => self.conns[k].done = true,
                Ok(Reply::LoggedOut(text)) => {
                    result = Err(std::io::Error::other(format!(
                        "the acceptor logged out: {text:?}"
                    )));
                    break;
                }
                Ok(Reply::Other) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let conn = &mut self.conns[k];
        conn.input = input;
        conn.input.copy_within(at..filled, 0);
        conn.filled = filled - at;
        result
    }

    /// How long the poll may sleep. epoll counts in milliseconds, so a sleep ends up to a
    /// millisecond late: with an order due sooner than that the generator spins.
    fn timeout(&self) -> Option<Duration> {
        if self.opts.wait == Wait::Spin || self.conns.iter().any(|c| !c.out.is_empty()) {
            return Some(Duration::ZERO);
        }
        match self.interval {
            Some(iv) if self.next < self.total => {
                let due = self.start + self.next * iv;
                let wait = due.saturating_sub(self.now());
                Some(Duration::from_nanos(wait.saturating_sub(1_000_000)))
            }
            _ => Some(Duration::from_millis(100)),
        }
    }
}

/// Pins the calling thread to `core` (no-op for `None`).
pub(crate) fn pin(core: Option<usize>) {
    if let Some(id) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Connects and logs every session on.
fn connect(opts: &LoadOptions, poll: &Poll) -> std::io::Result<Vec<Conn>> {
    let mut builder = MessageBuilder::new();
    let mut conns = Vec::with_capacity(opts.sessions);
    for k in 0..opts.sessions.max(1) {
        let std_stream = std::net::TcpStream::connect(opts.addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(
            &mut stream,
            Token(k),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let sender = comp_id(k).into_bytes();
        let mut conn = Conn {
            stream,
            next_seq: 2,
            logged_on: false,
            done: false,
            out: Vec::new(),
            input: vec![0; 1 << 16],
            filled: 0,
            sender,
        };
        let bytes = logon(&mut builder, &conn.sender);
        conn.queue(&bytes)?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Runs the load and returns its histograms.
pub fn run(opts: &LoadOptions) -> std::io::Result<LoadResult> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let total = opts.warmup + opts.messages;
    let connecting = Instant::now();
    let conns = connect(opts, &poll)?;
    let sessions = conns.len();
    let mut run = Run {
        opts,
        conns,
        builder: MessageBuilder::new(),
        parser: Parser::default(),
        origin: Instant::now(),
        total,
        interval: opts.rate.map(|r| 1_000_000_000 / u64::from(r.max(1))),
        start: 0,
        sent: vec![0; total as usize],
        next: 0,
        answered: 0,
        idle: (0..sessions).collect(),
        corrected: histogram(),
        uncorrected: histogram(),
        first_recorded: None,
        last_recv: 0,
        closing: false,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run.conns.iter().all(|c| c.logged_on) {
        if Instant::now() > deadline {
            let waiting = run.conns.iter().filter(|c| !c.logged_on).count();
            return Err(std::io::Error::other(format!(
                "{waiting} of {sessions} sessions got no Logon answer within 10 s (does the acceptor know CompIDs CLIENT..{}?)",
                comp_id(sessions - 1)
            )));
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for k in 0..sessions {
            run.conns[k].flush()?;
            run.read(k)?;
        }
    }
    let logons = connecting.elapsed();
    pin(opts.core);
    run.start = run.now();
    let mut last_progress = (Instant::now(), 0);
    while run.answered < total {
        run.send_due()?;
        poll.poll(&mut events, run.timeout())?;
        for ev in &events {
            let k = ev.token().0;
            if ev.is_writable() {
                run.conns[k].flush()?;
            }
            if ev.is_readable() {
                run.read(k)?;
            }
        }
        for c in run.conns.iter_mut().filter(|c| !c.out.is_empty()) {
            c.flush()?;
        }
        if run.answered != last_progress.1 {
            last_progress = (Instant::now(), run.answered);
        } else if last_progress.0.elapsed() > SILENCE_LIMIT {
            return Err(std::io::Error::other(format!(
                "the acceptor answered {} of {total} orders and then nothing for {} s",
                run.answered,
                SILENCE_LIMIT.as_secs()
            )));
        }
    }
    run.log_out(&mut poll, &mut events)?;
    let span = run
        .last_recv
        .saturating_sub(run.first_recorded.unwrap_or(0))
        .max(1);
    Ok(LoadResult {
        per_second: run.corrected.len() as f64 / (span as f64 / 1e9),
        corrected: run.corrected,
        uncorrected: run.uncorrected,
        logons,
    })
}

/// How long the sessions may take to log out after the run.
const LOGOUT_LIMIT: Duration = Duration::from_secs(2);

impl Run<'_> {
    /// Logs every session out and waits (up to two seconds) for each acceptor's Logout
    /// or for it to close the connection, so that the next run's Logon does not find the
    /// acceptor still holding this run's session. Silence is no error: the figures are
    /// complete.
    fn log_out(&mut self, poll: &mut Poll, events: &mut Events) -> std::io::Result<()> {
        self.closing = true;
        // A connection that fails now has nothing left to tell: it counts as closed.
        for conn in &mut self.conns {
            let bytes = logout(&mut self.builder, &conn.sender, conn.next_seq);
            conn.next_seq += 1;
            conn.done = conn.queue(bytes).is_err();
        }
        let deadline = Instant::now() + LOGOUT_LIMIT;
        while !self.conns.iter().all(|c| c.done) && Instant::now() < deadline {
            poll.poll(events, Some(Duration::from_millis(10)))?;
            for k in 0..self.conns.len() {
                if !self.conns[k].done && self.conns[k].flush().and_then(|()| self.read(k)).is_err()
                {
                    self.conns[k].done = true;
                }
            }
        }
        Ok(())
    }
}

/// Wire sizes of the benchmark's NewOrderSingle and of the `exec` simulator's
/// ExecutionReport (New) answering it, for the TCP floor.
pub fn sizes() -> (usize, usize) {
    let mut b = MessageBuilder::new();
    let order_len = order(&mut b, b"CLIENT", 1_000, 1_000, false).len();
    let now = UtcTimestamp::now();
    b.start(b"FIX.4.4", b"8")
        .push_uint(34, 1_000)
        .push(49, b"EXEC")
        .push_timestamp(52, now, TimePrecision::Millis)
        .push(56, b"CLIENT")
        .push(37, b"1001")
        .push(17, b"1002")
        .push_uint(11, 1_000)
        .push(150, b"0")
        .push(39, b"0")
        .push(55, b"MSFT")
        .push(54, b"1")
        .push_uint(38, 100)
        .push_uint(151, 100)
        .push_uint(14, 0)
        .push(6, b"0")
        .push(32, b"0")
        .push(31, b"0");
    (order_len, b.finish().len())
}
