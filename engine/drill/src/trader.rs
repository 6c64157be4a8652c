//! The counterparty: an initiator session (this engine's own runtime, memory store) that
//! sends NewOrderSingle at a fixed rate, reconnects through its alternate addresses, and
//! books every ExecutionReport so loss, duplicates and sequence gaps can be counted.

use fix_codec::MessageRef;
use fix_engine::{AppContext, AppReject, Application, Engine, EngineConfig, EngineHandle};
use fix_session::SessionId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the counterparty saw.
#[derive(Debug, Default)]
struct BookInner {
    sent: Vec<String>,
    send_errors: u64,
    filled: HashSet<String>,
    reports: HashMap<(String, String), u32>,
    unflagged_duplicates: u64,
    flagged_duplicates: u64,
    logons: Vec<Instant>,
    /// Inbound sequence numbers received (gap fills count for the range they cover).
    seqs: BTreeSet<u64>,
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
        self.lock().logons.iter().copied().find(|l| *l >= t)
    }

    /// Orders sent so far without a fill.
    pub fn unanswered(&self) -> usize {
        let b = self.lock();
        b.sent.iter().filter(|c| !b.filled.contains(*c)).count()
    }

    /// The ClOrdIDs of the orders sent so far without a fill.
    pub fn unanswered_orders(&self) -> Vec<String> {
        let b = self.lock();
        b.sent
            .iter()
            .filter(|c| !b.filled.contains(*c))
            .cloned()
            .collect()
    }

    /// The counts now.
    pub fn tally(&self) -> Tally {
        let b = self.lock();
        let max = b.seqs.last().copied().unwrap_or(0);
        Tally {
            sent: b.sent.len() as u64,
            lost: b.sent.iter().filter(|c| !b.filled.contains(*c)).count() as u64,
            unflagged_duplicates: b.unflagged_duplicates,
            flagged_duplicates: b.flagged_duplicates,
            gaps: max - b.seqs.len() as u64,
            send_errors: b.send_errors,
        }
    }

    fn seen_seq(&self, msg: &MessageRef<'_>) {
        let Ok(Some(seq)) = msg.get_u64(34) else {
            return;
        };
        let mut b = self.lock();
        let gap_fill_to = (msg.msg_type() == b"4")
            .then(|| msg.get_u64(36).ok().flatten())
            .flatten();
        match gap_fill_to {
            Some(new_seq) if new_seq > seq => b.seqs.extend(seq..new_seq),
            _ => {
                b.seqs.insert(seq);
            }
        }
    }
}

struct Recorder(Arc<Book>);

fn text(v: Option<&[u8]>) -> String {
    String::from_utf8_lossy(v.unwrap_or_default()).into_owned()
}

impl Application for Recorder {
    fn on_logon(&self, _id: &SessionId) {
        self.0.lock().logons.push(Instant::now());
    }

    fn from_admin(&self, _id: &SessionId, msg: MessageRef<'_>) {
        self.0.seen_seq(&msg);
    }

    fn from_app(&self, _ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        self.0.seen_seq(&msg);
        if msg.msg_type() != b"8" {
            return Ok(());
        }
        let cl = text(msg.get(11));
        let exec_type = text(msg.get(150));
        let poss_dup = msg.get_flag(43);
        let mut b = self.0.lock();
        let n = b
            .reports
            .entry((cl.clone(), exec_type.clone()))
            .or_default();
        *n += 1;
        if *n > 1 {
            if poss_dup {
                b.flagged_duplicates += 1;
            } else {
                b.unflagged_duplicates += 1;
            }
        }
        if exec_type == "F" || exec_type == "2" || text(msg.get(39)) == "2" {
            b.filled.insert(cl);
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
}

fn session() -> SessionId {
    SessionId::new("FIX.4.4", "CLIENT", "EXEC")
}

impl Trader {
    /// Connects to the first of `alternates` that accepts, and sends `rate` orders per
    /// second until [`Trader::stop_orders`].
    pub async fn start(
        alternates: &[SocketAddr],
        rate: u32,
    ) -> Result<Self, fix_engine::EngineError> {
        let connect: Vec<String> = alternates.iter().map(|a| format!("'{a}'")).collect();
        let toml = format!(
            "[engine]\nstore = 'memory'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'CLIENT'\ntarget_comp_id = 'EXEC'\nrole = 'initiator'\nconnect = [{}]\nreconnect_interval_ms = 100\nheartbeat_interval = 1\n",
            connect.join(", ")
        );
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
        })
    }

    /// The book.
    pub fn book(&self) -> Arc<Book> {
        Arc::clone(&self.book)
    }

    /// Whether the session is logged on now.
    pub async fn logged_on(&self) -> bool {
        self.handle
            .status(&session())
            .await
            .is_ok_and(|s| s.state == fix_session::State::Active)
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

async fn pump(
    handle: EngineHandle,
    book: Arc<Book>,
    rate: u32,
    mut stopped: watch::Receiver<bool>,
    mut held: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let id = session();
    let mut n = 0u64;
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
        }
        n += 1;
        let cl = format!("o{n}");
        let mut now = [0u8; 32];
        let len =
            fix_codec::UtcTimestamp::now().format_into(&mut now, fix_codec::TimePrecision::Millis);
        let body = format!(
            "11={cl}\x0121=1\x0155=DRILL\x0154=1\x0160={}\x0140=1\x0138=100\x01",
            String::from_utf8_lossy(&now[..len])
        );
        book.lock().sent.push(cl);
        if handle.send(&id, b"D", body.as_bytes()).await.is_err() {
            book.lock().send_errors += 1;
        }
    }
}
