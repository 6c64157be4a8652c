//! A counterparty that floods the engine with orders as fast as its socket takes them
//! must not hold up the engine's other sessions: on a runtime with one worker thread
//! (the benchmark's and a small pod's setting), a session task yields to the others
//! after a small batch of messages instead of holding the worker for a whole read buffer,
//! turn after turn, until the scheduler's own budget runs out.
//!
//! The measure is a count, not a time: how many answers to the flood's orders the engine
//! sent while one order of the quiet session waited for its own. Before the
//! per-turn budget it was 5 000 to 115 000 (the flooding task ran turn after turn of a
//! whole read buffer until the scheduler's budget ran out); with it, 128 to 256.

use fix_codec::{frame, FrameError};
use fix_e2e::client::message_bytes;
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &std::path::Path) -> EngineConfig {
    let session = |target: &str| {
        format!("[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = '{target}'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nheartbeat_interval = 30\n")
    };
    let toml = format!(
        "[engine]\ndata_dir = '{d}'\napp = 'exec'\nstore = 'memory'\n{}{}",
        session("FLOOD"),
        session("QUIET"),
        d = dir.display()
    );
    EngineConfig::from_toml(&toml, "flood").expect("config")
}

fn logon(me: &str) -> Vec<u8> {
    message_bytes(
        &format!("35=A|34=1|49={me}|52=<TIME>|56=EXEC|98=0|108=30|"),
        "FIX.4.4",
    )
}

fn order(me: &str, seq: u64, id: &str) -> Vec<u8> {
    message_bytes(
        &format!(
            "35=D|34={seq}|49={me}|52=<TIME>|56=EXEC|11={id}|21=1|55=X|54=1|60=<TIME>|40=1|38=10|"
        ),
        "FIX.4.4",
    )
}

/// Reads whole messages from `stream` into `buf` until one satisfies `done`; counts
/// every message read.
fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    count: &AtomicU64,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        loop {
            match frame::check(buf, 1 << 20) {
                Ok(f) => {
                    let m: Vec<u8> = buf.drain(..f.len).collect();
                    count.fetch_add(1, Ordering::Relaxed);
                    if done(&m) {
                        return Ok(());
                    }
                }
                Err(FrameError::Incomplete) => break,
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn contains(m: &[u8], text: &str) -> bool {
    m.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Logs FLOOD on, then sends orders in batches of 64 until `stop`, counting the
/// messages it is sent back in `answered`.
fn flood(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut stream = TcpStream::connect(addr).expect("connect FLOOD");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(&logon("FLOOD")).expect("logon FLOOD");
    let mut buf = Vec::new();
    read_until(&mut stream, &mut buf, &AtomicU64::new(0), |m| {
        contains(m, "\x0135=A\x01")
    })
    .expect("FLOOD's Logon answer");
    let mut reader = stream.try_clone().expect("clone");
    let (stop_r, stop_w) = (Arc::clone(&stop), stop);
    let read = std::thread::spawn(move || {
        while !stop_r.load(Ordering::Relaxed) {
            if read_until(&mut reader, &mut buf, &answered, |_| false).is_err() {
                return;
            }
        }
    });
    let write = std::thread::spawn(move || {
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut seq = 2;
        while !stop_w.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            for _ in 0..64 {
                batch.extend_from_slice(&order("FLOOD", seq, &format!("F{seq}")));
                seq += 1;
            }
            if let Err(e) = stream.write_all(&batch) {
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    return;
                }
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    vec![read, write]
}

#[test]
fn a_flooding_session_leaves_the_worker_to_the_others_between_small_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = runtime
        .block_on(Engine::start(config(dir.path())))
        .expect("engine");
    let port = |target| {
        engine
            .listen_addr(&SessionId::new("FIX.4.4", "EXEC", target))
            .expect("port")
    };
    let (stop, answered) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let threads = flood(port("FLOOD"), Arc::clone(&stop), Arc::clone(&answered));
    // Let the flood fill every buffer on the way.
    std::thread::sleep(Duration::from_millis(500));

    let mut quiet = TcpStream::connect(port("QUIET")).expect("connect QUIET");
    quiet.set_nodelay(true).expect("nodelay");
    quiet
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = Vec::new();
    let ignored = AtomicU64::new(0);
    let before = answered.load(Ordering::Relaxed);
    quiet.write_all(&logon("QUIET")).expect("logon QUIET");
    read_until(&mut quiet, &mut buf, &ignored, |m| {
        contains(m, "\x0135=A\x01")
    })
    .expect("QUIET's Logon answer");
    let mut beside = vec![answered.load(Ordering::Relaxed) - before];
    for seq in 2..42u64 {
        let id = format!("Q{seq}");
        let before = answered.load(Ordering::Relaxed);
        quiet.write_all(&order("QUIET", seq, &id)).expect("order");
        let tag = format!("\x0111={id}\x01");
        read_until(&mut quiet, &mut buf, &ignored, |m| {
            contains(m, "\x0135=8\x01") && contains(m, &tag)
        })
        .expect("QUIET's ExecutionReport");
        beside.push(answered.load(Ordering::Relaxed) - before);
    }
    stop.store(true, Ordering::Relaxed);
    let total = answered.load(Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    runtime.block_on(engine.shutdown());

    let logon_beside = beside[0];
    beside.sort_unstable();
    let median = beside[beside.len() / 2];
    println!(
        "FLOOD answered {total} messages in all; while QUIET waited: logon {logon_beside}, orders median {median}, max {}",
        beside[beside.len() - 1]
    );
    assert!(
        total > 10_000,
        "the flood must keep the engine busy for the measure to mean anything: {total} answers"
    );
    // 64 orders a turn, two ExecutionReports each: a few turns of the flood while QUIET
    // waits. Holding the worker for whole buffers until the scheduler's budget ran out
    // was thousands.
    assert!(
        median <= 1_000,
        "the engine answered a median {median} of FLOOD's messages while one of QUIET's orders waited (all: {beside:?})"
    );
}
