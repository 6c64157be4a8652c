//! One initiator session sending NewOrderSingle and timing the first ExecutionReport of
//! each (ExecType New).
//!
//! Open loop: order `i` is *scheduled* at `start + i / rate` and sent then (or as soon as
//! the sender catches up); its round trip is recorded from the scheduled time (corrected
//! for coordinated omission: a stall delays every order behind it, and they all count)
//! and, separately, from the actual send time. Closed loop: the next order goes when the
//! previous one is answered. The first `warmup` orders are not recorded.

use crate::report::histogram;
use fix_codec::{frame, MessageBuilder, Parser, TimePrecision, UtcTimestamp};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to load the acceptor.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The acceptor (FIX.4.4, TargetCompID EXEC; we are CLIENT).
    pub addr: SocketAddr,
    /// Orders per second; `None` for closed loop.
    pub rate: Option<u32>,
    /// Orders recorded.
    pub messages: u64,
    /// Orders sent first and not recorded.
    pub warmup: u64,
    /// Pin the generator's writer and reader threads to these cores (first, second).
    pub cores: Vec<usize>,
}

fn pin(cores: &[usize], which: usize) {
    if let Some(&id) = cores.get(which % cores.len().max(1)) {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
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
}

fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

fn logon(b: &mut MessageBuilder) -> Vec<u8> {
    b.start(b"FIX.4.4", b"A")
        .push_uint(34, 1)
        .push(49, b"CLIENT")
        .push_timestamp(52, UtcTimestamp::now(), TimePrecision::Millis)
        .push(56, b"EXEC")
        .push(98, b"0")
        .push(108, b"30")
        .push(141, b"Y");
    b.finish().to_vec()
}

fn order(b: &mut MessageBuilder, seq: u64, id: u64) -> &[u8] {
    let now = UtcTimestamp::now();
    b.start(b"FIX.4.4", b"D")
        .push_uint(34, seq)
        .push(49, b"CLIENT")
        .push_timestamp(52, now, TimePrecision::Millis)
        .push(56, b"EXEC")
        .push_uint(11, id)
        .push(1, b"ACC-7")
        .push(21, b"1")
        .push(55, b"MSFT")
        .push(54, b"1")
        .push_timestamp(60, now, TimePrecision::Millis)
        .push_uint(38, 100)
        .push(40, b"1");
    b.finish()
}

/// Reads frames and calls `on` with each message's MsgType, ClOrdID and ExecType.
fn read_loop(
    mut stream: TcpStream,
    mut on: impl FnMut(&[u8], Option<u64>, Option<&[u8]>) -> bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0usize;
    let mut parser = Parser::default();
    loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut at = 0;
        while let Ok(f) = frame::check(&buf[at..filled], 1 << 20) {
            let Ok(msg) = parser.parse(&buf[at..at + f.len]) else {
                return Err(std::io::Error::other(
                    "unparseable message from the acceptor",
                ));
            };
            let id = msg.get_u64(11).ok().flatten();
            if !on(msg.msg_type(), id, msg.get(150)) {
                return Ok(());
            }
            at += f.len;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
}

/// Runs the load and returns its histograms.
pub fn run(opts: &LoadOptions) -> std::io::Result<LoadResult> {
    let mut stream = TcpStream::connect(opts.addr)?;
    stream.set_nodelay(true)?;
    let mut builder = MessageBuilder::new();
    stream.write_all(&logon(&mut builder))?;
    let total = opts.warmup + opts.messages;
    let origin = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let answered = Arc::new(AtomicU64::new(0));
    let logged_on = Arc::new(AtomicU64::new(0));
    let interval = opts.rate.map(|r| 1_000_000_000 / u64::from(r.max(1)));
    let start_ns = Arc::new(AtomicU64::new(0));
    let reader = {
        let stream = stream.try_clone()?;
        let (sent, answered, logged_on, start_ns) = (
            Arc::clone(&sent),
            Arc::clone(&answered),
            Arc::clone(&logged_on),
            Arc::clone(&start_ns),
        );
        let warmup = opts.warmup;
        std::thread::Builder::new()
            .name("bench-reader".into())
            .spawn(move || {
                let mut corrected = histogram();
                let mut uncorrected = histogram();
                let mut first_recorded_send = None;
                let mut last_recv = 0;
                let result = read_loop(stream, |msg_type, id, exec_type| {
                    match (msg_type, id, exec_type) {
                        (b"A", _, _) => logged_on.store(1, Ordering::SeqCst),
                        (b"8", Some(i), Some(b"0")) if i < total => {
                            let recv = now_ns(origin);
                            let actual = sent[i as usize].load(Ordering::Acquire);
                            let scheduled = match interval {
                                Some(iv) => start_ns.load(Ordering::Acquire) + i * iv,
                                None => actual,
                            };
                            if i >= warmup {
                                first_recorded_send.get_or_insert(scheduled.min(actual));
                                let _ = corrected.record(recv.saturating_sub(scheduled).max(1));
                                let _ = uncorrected.record(recv.saturating_sub(actual).max(1));
                                last_recv = recv;
                            }
                            return answered.fetch_add(1, Ordering::SeqCst) + 1 < total;
                        }
                        _ => {}
                    }
                    true
                });
                let span = last_recv
                    .saturating_sub(first_recorded_send.unwrap_or(0))
                    .max(1);
                (result, corrected, uncorrected, span)
            })?
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged_on.load(Ordering::SeqCst) == 0 {
        if Instant::now() > deadline {
            return Err(std::io::Error::other("no Logon answer within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    pin(&opts.cores, 0);
    let start = now_ns(origin);
    start_ns.store(start, Ordering::Release);
    for i in 0..total {
        match interval {
            Some(iv) => {
                let due = start + i * iv;
                loop {
                    let now = now_ns(origin);
                    if now >= due {
                        break;
                    }
                    if due - now > 200_000 {
                        std::thread::sleep(Duration::from_nanos(due - now - 100_000));
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
            None => {
                while answered.load(Ordering::SeqCst) < i {
                    std::hint::spin_loop();
                }
            }
        }
        let bytes = order(&mut builder, i + 2, i);
        sent[i as usize].store(now_ns(origin), Ordering::Release);
        stream.write_all(bytes)?;
    }
    let (result, corrected, uncorrected, span) = reader
        .join()
        .map_err(|_| std::io::Error::other("reader thread panicked"))?;
    result?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(LoadResult {
        per_second: corrected.len() as f64 / (span as f64 / 1e9),
        corrected,
        uncorrected,
    })
}

/// Wire sizes of the benchmark's NewOrderSingle and of the `exec` simulator's
/// ExecutionReport (New) answering it, for the TCP floor.
pub fn sizes() -> (usize, usize) {
    let mut b = MessageBuilder::new();
    let order_len = order(&mut b, 1_000, 1_000).len();
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
