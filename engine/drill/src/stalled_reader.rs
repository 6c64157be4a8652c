//! A second counterparty that logs on and then stops reading (`fix-drill run --fault
//! zero-window`): it sends orders as fast as its socket takes them and never reads the
//! execution reports, so its receive window closes and the engine's writes to it block.
//! Only its own session may notice: the lease, `/readyz` and the other sessions go on.

use fix_codec::{MessageBuilder, TimePrecision, UtcTimestamp};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The stalled counterparty's CompID (the drill's engines accept `EXEC`←`SLOW` beside
/// `EXEC`←`CLIENT`, on the same port).
pub const COMP_ID: &str = "SLOW";

/// A logged-on counterparty that reads nothing more.
pub struct StalledReader {
    stream: TcpStream,
    seq: u64,
    builder: MessageBuilder,
}

impl StalledReader {
    /// Connects with a small receive buffer and logs on (HeartBtInt 1, sequence numbers
    /// reset).
    pub async fn log_on(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(4096)?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .map_err(|_| timed_out("connecting"))??;
        let mut me = Self {
            stream,
            seq: 0,
            builder: MessageBuilder::new(),
        };
        // A fresh sequence each time (ResetSeqNumFlag): each cycle's counterparty is new.
        me.send(b"A", &[(98, "0"), (108, "1"), (141, "Y")]).await?;
        // Read until the Logon answer (a standby closes the connection instead).
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !contains(&seen, b"\x0135=A\x01") {
            let mut buf = [0u8; 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, me.stream.read(&mut buf))
                .await
                .map_err(|_| timed_out("waiting for the Logon answer"))??;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "closed before answering the Logon",
                ));
            }
            seen.extend_from_slice(&buf[..n]);
        }
        Ok(me)
    }

    /// Sends orders without reading for `period`, as fast as the socket takes them.
    /// Returns how many were written; stops early once the engine closes the connection
    /// (it drops a counterparty that has not read for two heartbeat intervals).
    pub async fn flood(&mut self, period: Duration) -> u64 {
        let end = Instant::now() + period;
        let mut sent = 0;
        while Instant::now() < end {
            let id = format!("slow-{}", self.seq + 1);
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.send_order(&id)).await {
                Ok(Ok(())) => sent += 1,
                // Closed by the engine, or the engine stopped reading too: wait it out.
                Ok(Err(_)) => {
                    tokio::time::sleep_until(end.into()).await;
                    break;
                }
                Err(_) => break,
            }
        }
        sent
    }

    /// Sends `orders` orders, reading the answers as they come, so that the session's
    /// store fills with reports without its writes ever blocking. Every 200 orders (and
    /// after the last) it reads until an answer to the last order sent has come: the
    /// engine has then read every order (answers come in order), however long its
    /// journal's syncs take on this disk.
    pub async fn trade(&mut self, orders: u64) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        for n in 0..orders {
            let id = format!("slow-trade-{n}");
            self.send_order(&id).await?;
            if n % 200 != 199 && n + 1 != orders {
                continue;
            }
            let marker = format!("\x0111={id}\x01").into_bytes();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let read = tokio::time::timeout(left, self.stream.read(&mut buf))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer to {id} within 30 s"),
                        )
                    })??;
                if read == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "closed while trading",
                    ));
                }
                tail.extend_from_slice(&buf[..read]);
                let found = tail.windows(marker.len()).any(|w| w == marker.as_slice());
                // Keep only what a marker split across two reads needs.
                let keep = tail.len().saturating_sub(marker.len());
                tail.drain(..keep);
                if found {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Asks for every message from `from` on again (ResendRequest, EndSeqNo 0).
    pub async fn request_resend(&mut self, from: u64) -> std::io::Result<()> {
        self.send(b"2", &[(7, &from.to_string()), (16, "0")]).await
    }

    /// This end's address (the engine sees it as the peer).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Reads everything the engine sent, until it closes the connection or `limit`
    /// passes; returns how many bytes came.
    pub async fn read_to_close(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => total += n as u64,
                _ => return total,
            }
        }
    }

    /// A market order to buy 10 X, ClOrdID `id`.
    async fn send_order(&mut self, id: &str) -> std::io::Result<()> {
        let fields = [
            (11, id),
            (21, "1"),
            (55, "X"),
            (54, "1"),
            (40, "1"),
            (38, "10"),
        ];
        self.send(b"D", &fields).await
    }

    async fn send(&mut self, msg_type: &[u8], fields: &[(u32, &str)]) -> std::io::Result<()> {
        self.seq += 1;
        let b = &mut self.builder;
        b.start(b"FIX.4.4", msg_type)
            .push_uint(34, self.seq)
            .push_str(49, COMP_ID)
            .push_timestamp(52, UtcTimestamp::now(), TimePrecision::Millis)
            .push_str(56, "EXEC");
        for (tag, value) in fields {
            b.push_str(*tag, value);
        }
        if msg_type == b"D" {
            b.push_timestamp(60, UtcTimestamp::now(), TimePrecision::Millis);
        }
        let bytes = b.finish().to_vec();
        self.stream.write_all(&bytes).await
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}
