//! An initiator's connection: connecting to its counterparty (the alternates in turn,
//! backing off once all were tried) and attaching a stream, an initiator's or an
//! acceptor's, to the session.

use super::waits::secure;
use super::{now, read_buffer, Conn, SessionActor};
use crate::tls::BoxIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

impl SessionActor {
    pub(super) async fn connect(&mut self) {
        let targets = &self.plan.connect;
        let addr = targets[self.connect_index % targets.len()];
        let attempt = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let tls = self.plan.tls.clone();
                match secure(tls.as_ref(), stream, addr).await {
                    Ok(io) => {
                        tracing::info!(session = %self.span_name(), %addr, tls = self.plan.tls.is_some(), "connected");
                        self.connect_failures = 0;
                        self.attach(io, addr, Vec::new());
                    }
                    Err(e) => self.connect_failed(addr, &e),
                }
            }
            Ok(Err(e)) => self.connect_failed(addr, &e.to_string()),
            Err(_) => self.connect_failed(addr, "timed out"),
        }
    }

    pub(super) fn connect_failed(&mut self, addr: SocketAddr, why: &str) {
        self.connect_failures += 1;
        self.connect_index += 1;
        let factor = 1u32 << self.connect_failures.min(3).saturating_sub(1);
        // Try the next alternate at once after a failure; back off once all were tried.
        let delay = if !self.connect_index.is_multiple_of(self.plan.connect.len()) {
            Duration::from_millis(100)
        } else {
            self.plan.reconnect_interval * factor
        };
        tracing::warn!(session = %self.span_name(), %addr, error = why, retry_in_ms = delay.as_millis() as u64, "connect failed");
        self.next_connect = Instant::now() + delay;
    }

    pub(super) fn attach(&mut self, stream: BoxIo, peer: SocketAddr, initial: Vec<u8>) {
        let (reader, writer) = tokio::io::split(stream);
        let (buf, filled) = read_buffer::with(initial);
        self.conn = Some(Conn {
            reader,
            writer,
            peer,
            buf,
            filled,
        });
        self.session.handle_connect(now());
    }
}
