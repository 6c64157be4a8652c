//! A noisy neighbour beside the measured sessions: one more session (the CompID after
//! theirs) that floods the acceptor with orders as fast as its socket takes them,
//! reading and dropping the answers ([`Noise::Flood`]), or logs on, sends orders and
//! never reads ([`Noise::Stalled`]: its TCP window closes and the acceptor's writes to it
//! stall until the acceptor gives up on it). The measured sessions' latency beside it,
//! against a run without it, shows whether one session can hurt the others.

use crate::load::{comp_id, logon, order, pin};
use fix_codec::MessageBuilder;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the neighbour does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Noise {
    /// Orders as fast as the socket takes them; answers read and dropped.
    Flood,
    /// Orders at 1 000/s, answers never read.
    Stalled,
}

/// A running neighbour; [`Neighbour::stop`] ends it.
pub struct Neighbour {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// Connects session number `index` to `addr`, logs it on and starts the noise, its
/// threads pinned to `core` (the generator's: the noise is the client side's load, not
/// something that takes the engine's core).
pub fn start(
    addr: SocketAddr,
    index: usize,
    noise: Noise,
    core: Option<usize>,
) -> std::io::Result<Neighbour> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let sender = comp_id(index).into_bytes();
    let mut b = MessageBuilder::new();
    stream.write_all(&logon(&mut b, &sender))?;
    // The Logon answer (whatever else comes is dropped below, or never read).
    let mut buf = vec![0u8; 64 * 1024];
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let n = stream.read(&mut buf)?;
    if !buf[..n].windows(5).any(|w| w == b"\x0135=A") {
        return Err(std::io::Error::other(format!(
            "the neighbour session {} got no Logon answer",
            comp_id(index)
        )));
    }
    stream.set_read_timeout(None)?;
    // A write into an acceptor that does not read (its session is busy writing to a
    // neighbour that never reads) waits at most this long before the stop flag is looked at.
    stream.set_write_timeout(Some(Duration::from_millis(200)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    if noise == Noise::Flood {
        let mut reader = stream.try_clone()?;
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            pin(core);
            while !stop.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }));
    }
    let (stop_w, sent_w) = (Arc::clone(&stop), Arc::clone(&sent));
    threads.push(std::thread::spawn(move || {
        pin(core);
        let mut seq = 2u64;
        let mut batch = Vec::new();
        while !stop_w.load(Ordering::Relaxed) {
            batch.clear();
            let per_write = if noise == Noise::Flood { 64 } else { 1 };
            for _ in 0..per_write {
                batch.extend_from_slice(order(&mut b, &sender, seq, 1_000_000_000 + seq, false));
                seq += 1;
            }
            match stream.write_all(&batch) {
                Ok(()) => {
                    sent_w.fetch_add(per_write, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break, // the acceptor dropped it
            }
            if noise == Noise::Stalled {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }));
    Ok(Neighbour {
        stop,
        sent,
        threads,
    })
}

impl Neighbour {
    /// Stops the noise; returns how many orders the neighbour sent.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}
