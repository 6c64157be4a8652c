//! The counterparty: an initiator session (this engine's own runtime, memory store) that
//! sends NewOrderSingle at a fixed rate, reconnects through its alternate addresses, and
//! books every ExecutionReport so loss, duplicates and sequence gaps can be counted.

use fix_codec::MessageRef;
use fix_engine::{AppContext, AppReject, Application, Engine, EngineConfig, EngineHandle};
use fix_session::SessionId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the counterparty saw, in a few bytes per order (a soak books millions).
#[derive(Debug, Default)]
struct BookInner {
    /// Per order sent (ClOrdID `o1`, `o2`, … at index 0, 1, …): the ExecTypes received
    /// ([`exec_type_bit`]) and [`FILLED`].
    orders: Vec<u8>,
    /// Reports for ClOrdIDs this counterparty did not send, by (ClOrdID, ExecType).
    others: HashMap<(String, String), u32>,
    send_errors: u64,
    unflagged_duplicates: u64,
    flagged_duplicates: u64,
    /// Every logon: the session's index (0: `CLIENT`, k: `CLIENT{k+1}`) and when.
    logons: Vec<(usize, Instant)>,
    /// Per session index: inbound sequence numbers received (gap fills count for the
    /// range they cover).
    seqs: HashMap<usize, Ranges>,
}

/// The order is filled (ExecType F or 2, or OrdStatus 2).
const FILLED: u8 = 0x80;

/// The bit of an ExecType in [`BookInner::orders`], for the ones the simulators send.
fn exec_type_bit(exec_type: &[u8]) -> Option<u8> {
    let bit = match exec_type {
        b"0" => 0,
        b"1" => 1,
        b"2" => 2,
        b"F" => 3,
        b"4" => 4,
        b"8" => 5,
        b"5" => 6,
        _ => return None,
    };
    Some(1 << bit)
}

/// The index of one of our ClOrdIDs (`o<n>`, n from 1, written without leading zeros).
fn order_index(cl: &[u8]) -> Option<usize> {
    let digits = cl.strip_prefix(b"o")?;
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    n.checked_sub(1)
}

/// A set of sequence numbers kept as disjoint ranges (start → end, exclusive).
#[derive(Debug, Default)]
struct Ranges(std::collections::BTreeMap<u64, u64>);

impl Ranges {
    fn insert(&mut self, start: u64, end: u64) {
        let (mut start, mut end) = (start, end);
        // Merge with every range that touches [start, end).
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.0.insert(start, end);
    }

    /// The highest number held, if any.
    fn last(&self) -> Option<u64> {
        self.0.values().next_back().map(|e| e - 1)
    }

    /// How many numbers are held.
    fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }
}

/// Counts for a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Orders sent.
    pub sent: u64,
    /// Orders with no fill.
    pub lost: u64,
    /// The same report (order, ExecType) delivered again without PossDupFlag.
    pub unflagged_duplicates: u64,
    /// … delivered again with PossDupFlag=Y (harmless: flagged for the application).
    pub flagged_duplicates: u64,
    /// Inbound sequence numbers never received nor gap-filled.
    pub gaps: u64,
    /// Sends the counterparty's own engine refused.
    pub send_errors: u64,
}

/// The shared book.
#[derive(Debug, Default)]
pub struct Book(Mutex<BookInner>);

impl Book {
    fn lock(&self) -> MutexGuard<'_, BookInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logons completed after `t`, and when the first was.
    pub fn first_logon_after(&self, t: Instant) -> Option<Instant> {
        self.lock().logons.iter().map(|(_, l)| *l).find(|l| *l >= t)
    }

    /// How many logons completed after `t`.
    pub fn logons_after(&self, t: Instant) -> usize {
        self.lock().logons.iter().filter(|(_, l)| *l >= t).count()
    }

    /// When the last of `sessions` sessions had logged on again after `t`, once every
    /// one of them has.
    pub fn all_logged_on_after(&self, t: Instant, sessions: usize) -> Option<Instant> {
        let b = self.lock();
        let mut first: HashMap<usize, Instant> = HashMap::new();
        for (k, l) in b.logons.iter().filter(|(_, l)| *l >= t) {
            first.entry(*k).or_insert(*l);
        }
        (first.len() >= sessions).then(|| first.values().copied().max())?
    }

    /// Orders sent so far without a fill.
    pub fn unanswered(&self) -> usize {
        self.lock()
            .orders
            .iter()
            .filter(|o| **o & FILLED == 0)
            .count()
    }

    /// The ClOrdIDs of the orders sent so far without a fill.
    pub fn unanswered_orders(&self) -> Vec<String> {
        self.lock()
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| **o & FILLED == 0)
            .map(|(i, _)| format!("o{}", i + 1))
            .collect()
    }

    /// The counts now.
    pub fn tally(&self) -> Tally {
        let b = self.lock();
        Tally {
            sent: b.orders.len() as u64,
            lost: b.orders.iter().filter(|o| **o & FILLED == 0).count() as u64,
            unflagged_duplicates: b.unflagged_duplicates,
            flagged_duplicates: b.flagged_duplicates,
            gaps: b
                .seqs
                .values()
                .map(|r| r.last().unwrap_or(0) - r.len())
                .sum(),
            send_errors: b.send_errors,
        }
    }

    fn seen_seq(&self, id: &SessionId, msg: &MessageRef<'_>) {
        let Ok(Some(seq)) = msg.get_u64(34) else {
            return;
        };
        let mut b = self.lock();
        let gap_fill_to = (msg.msg_type() == b"4")
            .then(|| msg.get_u64(36).ok().flatten())
            .flatten();
        let seqs = b.seqs.entry(session_index(id)).or_default();
        match gap_fill_to {
            Some(new_seq) if new_seq > seq => seqs.insert(seq, new_seq),
            _ => seqs.insert(seq, seq + 1),
        }
    }
}

struct Recorder(Arc<Book>);

fn text(v: Option<&[u8]>) -> String {
    String::from_utf8_lossy(v.unwrap_or_default()).into_owned()
}

impl Application for Recorder {
    fn on_logon(&self, id: &SessionId) {
        self.0
            .lock()
            .logons
            .push((session_index(id), Instant::now()));
    }

    fn from_admin(&self, id: &SessionId, msg: MessageRef<'_>) {
        self.0.seen_seq(id, &msg);
    }

    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        self.0.seen_seq(ctx.session_id(), &msg);
        if msg.msg_type() != b"8" {
            return Ok(());
        }
        let cl = msg.get(11).unwrap_or_default();
        let exec_type = msg.get(150).unwrap_or_default();
        let filled = exec_type == b"F" || exec_type == b"2" || msg.get(39) == Some(b"2");
        let poss_dup = msg.get_flag(43);
        let mut b = self.0.lock();
        let ours = order_index(cl).filter(|i| *i < b.orders.len());
        if let (Some(i), true) = (ours, filled) {
            b.orders[i] |= FILLED;
        }
        let again = match (ours, exec_type_bit(exec_type)) {
            (Some(i), Some(bit)) => {
                let o = &mut b.orders[i];
                let again = *o & bit != 0;
                *o |= bit;
                again
            }
            _ => {
                let n = b
                    .others
                    .entry((text(Some(cl)), text(Some(exec_type))))
                    .or_default();
                *n += 1;
                *n > 1
            }
        };
        if again {
            if poss_dup {
                b.flagged_duplicates += 1;
            } else {
                b.unflagged_duplicates += 1;
            }
        }
        Ok(())
    }
}

/// A running counterparty.
pub struct Trader {
    engine: Option<Engine>,
    handle: EngineHandle,
    book: Arc<Book>,
    stop: watch::Sender<bool>,
    hold: watch::Sender<bool>,
    pump: Option<JoinHandle<()>>,
    sessions: usize,
}

/// The counterparty's CompID of session `k` (0: `CLIENT`, then `CLIENT2`, …).
fn comp_id(k: usize) -> String {
    match k {
        0 => "CLIENT".into(),
        k => format!("CLIENT{}", k + 1),
    }
}

/// Session `k` (see [`comp_id`]).
fn session(k: usize) -> SessionId {
    SessionId::new("FIX.4.4", &comp_id(k), "EXEC")
}

/// The index of one of our sessions, from its id.
fn session_index(id: &SessionId) -> usize {
    id.sender_comp_id
        .strip_prefix("CLIENT")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(0, |n| n.saturating_sub(1))
}

impl Trader {
    /// Connects to the first of `alternates` that accepts, and sends `rate` orders per
    /// second until [`Trader::stop_orders`].
    pub async fn start(
        alternates: &[SocketAddr],
        rate: u32,
    ) -> Result<Self, fix_engine::EngineError> {
        Self::start_sessions(alternates, rate, 1).await
    }

    /// As [`Trader::start`] with `sessions` sessions (`CLIENT`, `CLIENT2`, …), the
    /// orders going to each in turn.
    pub async fn start_sessions(
        alternates: &[SocketAddr],
        rate: u32,
        sessions: usize,
    ) -> Result<Self, fix_engine::EngineError> {
        Self::start_with(alternates, rate, sessions, Duration::from_millis(100)).await
    }

    /// As [`Trader::start_sessions`], waiting `reconnect` between rounds of its
    /// alternate addresses (it tries the next one 100 ms after a failure, and waits
    /// `reconnect` once it has tried them all).
    pub async fn start_with(
        alternates: &[SocketAddr],
        rate: u32,
        sessions: usize,
        reconnect: Duration,
    ) -> Result<Self, fix_engine::EngineError> {
        let sessions = sessions.max(1);
        let connect: Vec<String> = alternates.iter().map(|a| format!("'{a}'")).collect();
        let mut toml = String::from("[engine]\nstore = 'memory'\n");
        for k in 0..sessions {
            toml.push_str(&format!(
                "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = '{}'\ntarget_comp_id = 'EXEC'\nrole = 'initiator'\nconnect = [{}]\nreconnect_interval_ms = {}\nheartbeat_interval = 1\n",
                comp_id(k),
                connect.join(", "),
                reconnect.as_millis()
            ));
        }
        let config = EngineConfig::from_toml(&toml, "trader")?;
        let book = Arc::new(Book::default());
        let engine = Engine::start_with(config, Arc::new(Recorder(Arc::clone(&book)))).await?;
        let handle = engine.handle();
        let (stop, stopped) = watch::channel(false);
        let (hold, held) = watch::channel(false);
        let pump = tokio::spawn(pump(
            handle.clone(),
            Arc::clone(&book),
            rate.max(1),
            sessions,
            stopped,
            held,
        ));
        Ok(Self {
            engine: Some(engine),
            handle,
            book,
            stop,
            hold,
            pump: Some(pump),
            sessions,
        })
    }

    /// The book.
    pub fn book(&self) -> Arc<Book> {
        Arc::clone(&self.book)
    }

    /// How many sessions it opens.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Whether every session is logged on now.
    pub async fn logged_on(&self) -> bool {
        for k in 0..self.sessions {
            let active = self
                .handle
                .status(&session(k))
                .await
                .is_ok_and(|s| s.state == fix_session::State::Active);
            if !active {
                return false;
            }
        }
        true
    }

    /// Waits up to `limit` until the session is logged on; false when it is not by then.
    pub async fn wait_logged_on(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.logged_on().await {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Holds new orders back (true) or lets them flow again (false).
    pub fn hold_orders(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Stops sending new orders (what was sent is still answered).
    pub async fn stop_orders(&mut self) {
        self.stop.send_replace(true);
        if let Some(p) = self.pump.take() {
            let _ = p.await;
        }
    }

    /// Waits up to `limit` for every order to be filled; returns the counts.
    pub async fn settle(&mut self, limit: Duration) -> Tally {
        self.stop_orders().await;
        let deadline = Instant::now() + limit;
        while self.book.unanswered() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.book.tally()
    }

    /// Logs out and stops.
    pub async fn shutdown(mut self) {
        self.stop_orders().await;
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
    }
}

/// Sends `rate` orders a second: on each tick (every millisecond at most, the timer's
/// resolution), as many as the time since the last tick is worth.
async fn pump(
    handle: EngineHandle,
    book: Arc<Book>,
    rate: u32,
    sessions: usize,
    mut stopped: watch::Receiver<bool>,
    mut held: watch::Receiver<bool>,
) {
    let ids: Vec<SessionId> = (0..sessions).map(session).collect();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate)).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let mut last = Instant::now();
    let mut credit = 0.0f64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        if *held.borrow() {
            tokio::select! {
                _ = held.wait_for(|h| !*h) => {}
                _ = stopped.changed() => return,
            }
            last = Instant::now();
            credit = 1.0;
        }
        let now = Instant::now();
        // At most a second's worth at once (after a stall of this process).
        credit = (credit + now.duration_since(last).as_secs_f64() * f64::from(rate))
            .min(f64::from(rate));
        last = now;
        while credit >= 1.0 {
            credit -= 1.0;
            n += 1;
            let id = &ids[(n as usize - 1) % ids.len()];
            send_order(&handle, &book, id, n).await;
        }
    }
}

/// Sends order `o<n>` and books it.
async fn send_order(handle: &EngineHandle, book: &Book, id: &SessionId, n: u64) {
    let cl = format!("o{n}");
    let mut now = [0u8; 32];
    let len =
        fix_codec::UtcTimestamp::now().format_into(&mut now, fix_codec::TimePrecision::Millis);
    let body = format!(
        "11={cl}\x0121=1\x0155=DRILL\x0154=1\x0160={}\x0140=1\x0138=100\x01",
        String::from_utf8_lossy(&now[..len])
    );
    book.lock().orders.push(0);
    if handle.send(id, b"D", body.as_bytes()).await.is_err() {
        book.lock().send_errors += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_what_touches_and_count_what_they_hold() {
        let mut r = Ranges::default();
        r.insert(1, 2);
        r.insert(3, 4);
        assert_eq!((r.last(), r.len()), (Some(3), 2));
        r.insert(2, 3);
        assert_eq!(r.0.len(), 1, "{:?}", r.0);
        r.insert(10, 20);
        r.insert(5, 12);
        assert_eq!(r.0.iter().collect::<Vec<_>>(), vec![(&1, &4), (&5, &20)]);
        assert_eq!((r.last(), r.len()), (Some(19), 18));
        r.insert(7, 8);
        assert_eq!(r.len(), 18, "inside a range: nothing new");
    }

    #[test]
    fn our_order_ids_and_the_exec_types_the_simulators_send() {
        assert_eq!(order_index(b"o1"), Some(0));
        assert_eq!(order_index(b"o120"), Some(119));
        assert_eq!(order_index(b"o0"), None);
        assert_eq!(order_index(b"o01"), None);
        assert_eq!(order_index(b"o+1"), None);
        assert_eq!(order_index(b"x1"), None);
        assert_eq!(exec_type_bit(b"F"), Some(8));
        assert_eq!(exec_type_bit(b"Z"), None);
    }
}
