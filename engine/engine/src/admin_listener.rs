//! The admin API's listener: every open connection holds a slot of
//! [`crate::pending::ADMIN_LIMITS`], so a flood of idle connections cannot take every file
//! descriptor of the engine (its FIX sessions, journal and replication need them), and a
//! connection that sends nothing for [`IDLE`] is closed, so idle ones cannot keep the
//! slots (and `/readyz` probes out) for ever.

use crate::pending::{Pending, Slot};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections beyond the caps are closed at accept.
pub(crate) struct CappedListener {
    listener: TcpListener,
    slots: Pending,
    idle: Duration,
}

impl CappedListener {
    /// Connections beyond `slots` are closed at accept; those that send nothing for
    /// `idle` are closed too ([`IDLE`] in the engine).
    pub(crate) fn new(listener: TcpListener, slots: Pending, idle: Duration) -> Self {
        Self {
            listener,
            slots,
            idle,
        }
    }
}

/// How long an admin connection may send nothing before it is closed.
pub(crate) const IDLE: Duration = Duration::from_secs(30);

/// An accepted connection and the slot it holds until dropped.
pub(crate) struct CappedStream {
    stream: TcpStream,
    _slot: Slot,
    /// How long it may send nothing.
    idle_for: Duration,
    /// When it is closed unless it sends something first.
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl CappedStream {
    fn new(stream: TcpStream, slot: Slot, idle_for: Duration) -> Self {
        Self {
            stream,
            _slot: slot,
            idle_for,
            idle: Box::pin(tokio::time::sleep(idle_for)),
        }
    }
}

/// The client's address, for handlers (`ConnectInfo<AdminPeer>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdminPeer(pub SocketAddr);

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => match self.slots.admit(peer.ip()) {
                    Ok(slot) => return (CappedStream::new(stream, slot, self.idle), peer),
                    Err(_) => drop(stream),
                },
                Err(e) => {
                    // EMFILE and the like: wait for descriptors to come back.
                    tracing::warn!(error = %e, "admin API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl Connected<IncomingStream<'_, CappedListener>> for AdminPeer {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + self.idle_for;
                    self.idle.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                io::Error::new(io::ErrorKind::TimedOut, "admin connection idle"),
            )),
            other => other,
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection that keeps sending stays open past the idle time; once it stops, it
    /// is closed after the idle time, and its slot is free again.
    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_idle_time() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let counter = prometheus_client::metrics::counter::Counter::default();
        let mut listener =
            CappedListener::new(tcp, Pending::admin(counter), Duration::from_millis(300));
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await;
        let started = tokio::time::Instant::now();
        let mut buf = [0u8; 8];
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(b"x").await.expect("write");
            assert_eq!(server.read(&mut buf).await.expect("data"), 1);
        }
        assert!(
            started.elapsed() > Duration::from_millis(550),
            "kept past the idle time"
        );
        let quiet = tokio::time::Instant::now();
        let err = server.read(&mut buf).await.expect_err("closed when idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = quiet.elapsed();
        assert!(
            waited >= Duration::from_millis(290) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}
