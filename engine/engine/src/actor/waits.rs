//! What the session task waits on besides its command channel and timers: bytes from
//! the connection (blocking or busy-polled), a change of lease role, the TLS handshake
//! of a fresh initiator connection, and (busy-polling) the store's commit.

use super::Conn;
use crate::tls::BoxIo;
use fix_lease::RoleState;
use std::future::Future;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Wraps a fresh initiator connection in TLS when the session asks for it.
pub(super) async fn secure(
    tls: Option<&crate::config::TlsSection>,
    stream: TcpStream,
    addr: SocketAddr,
) -> Result<BoxIo, String> {
    let Some(tls) = tls else {
        return Ok(Box::new(stream));
    };
    let config = crate::tls::client_config(tls).map_err(|e| e.to_string())?;
    let name = crate::tls::server_name(tls, addr).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream));
    match handshake.await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

/// Resolves when the lease role changes (never without a lease).
pub(super) async fn role_change(role: &mut Option<watch::Receiver<RoleState>>) {
    match role {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Reads what the connection has. With `busy_poll` the read is tried once and, when
/// nothing is there, the thread yields the core and the task is polled again at once
/// (the worker checks the sockets with a zero timeout between tries instead of
/// sleeping), so the caller's `select!` spins over every branch until something happens.
pub(super) async fn read_some(conn: &mut Option<Conn>, busy_poll: bool) -> std::io::Result<usize> {
    match conn {
        Some(c) => {
            let filled = c.filled;
            if filled == c.buf.len() {
                // Buffer full of an unfinished message larger than allowed: treat as EOF.
                return Err(std::io::Error::other("read buffer full"));
            }
            if !busy_poll {
                return c.reader.read(&mut c.buf[filled..]).await;
            }
            loop {
                let mut rb = tokio::io::ReadBuf::new(&mut c.buf[filled..]);
                let tried = std::future::poll_fn(|cx| {
                    match tokio::io::AsyncRead::poll_read(
                        std::pin::Pin::new(&mut c.reader),
                        cx,
                        &mut rb,
                    ) {
                        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
                        std::task::Poll::Pending => std::task::Poll::Ready(None),
                    }
                })
                .await;
                if let Some(r) = tried {
                    return r.map(|()| rb.filled().len());
                }
                yield_core().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// How long a busy-polling session spins on its store's commit before it sleeps until
/// woken: a group commit's fdatasync (about 150 µs here) or a standby's acknowledgement
/// fits well within it.
pub(super) const DURABLE_SPIN: Duration = Duration::from_millis(2);

/// Awaits `wait` without letting the worker sleep for up to `spin`: while it is pending
/// the task yields and is polled again at once, as a busy-polled read does, so that the
/// commit's wake-up (the journal's sync thread, a standby's Ack on a socket) is seen
/// without the worker being woken from epoll. After `spin` it waits as usual.
pub(super) async fn spin_on<F: Future>(wait: F, spin: Duration) -> F::Output {
    let mut wait = std::pin::pin!(wait);
    let started = Instant::now();
    loop {
        let tried = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = tried {
            return out;
        }
        if started.elapsed() >= spin {
            return wait.await;
        }
        yield_core().await;
    }
}

/// One turn of a spin: other threads on this core (the journal's sync thread, another
/// runtime's worker) get it at once rather than after the scheduler's slice, then the
/// other tasks of this runtime run.
async fn yield_core() {
    std::thread::yield_now();
    tokio::task::yield_now().await;
}
