//! The floor: a plain TCP echo on loopback with the benchmark's message sizes (a
//! NewOrderSingle out, an ExecutionReport back), closed loop, both ends busy-polling
//! non-blocking sockets (no wake-up latency). No FIX engine can beat it.

use crate::report::histogram;
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// `read_exact` on a non-blocking socket, spinning instead of sleeping.
fn spin_read_exact(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Round trips of `request` bytes out and `reply` bytes back; returns their histogram
/// and the round trips per second.
pub fn run(
    request: usize,
    reply: usize,
    warmup: u64,
    messages: u64,
) -> std::io::Result<(Histogram<u64>, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::Builder::new()
        .name("floor-echo".into())
        .spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let _ = s.set_nodelay(true);
            let _ = s.set_nonblocking(true);
            let mut inb = vec![0u8; request];
            let out = vec![b'x'; reply];
            while spin_read_exact(&mut s, &mut inb).is_ok() {
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        })?;
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_nonblocking(true)?;
    let out = vec![b'o'; request];
    let mut inb = vec![0u8; reply];
    let mut h = histogram();
    let mut began = None;
    for i in 0..warmup + messages {
        if i == warmup {
            began = Some(Instant::now());
        }
        let t = Instant::now();
        c.write_all(&out)?;
        spin_read_exact(&mut c, &mut inb)?;
        if i >= warmup {
            let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
        }
    }
    let secs = began.map_or(1.0, |b| b.elapsed().as_secs_f64());
    drop(c);
    let _ = server.join();
    Ok((h, messages as f64 / secs))
}
