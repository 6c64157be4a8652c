//! Listening sockets: many sessions per port, routed by the CompIDs of the first message.

use crate::actor::Command;
use crate::pending::Admission;
use crate::tls::BoxIo;
use fix_codec::{frame, tags, FrameError, Parser};
use fix_lease::{Leadership, RoleState};
use fix_session::SessionId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Sessions served on one listening address.
pub(crate) type Routes = Arc<HashMap<SessionId, mpsc::Sender<Command>>>;

/// How one listening address treats its connections.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) routes: Routes,
    pub(crate) logon_timeout: Duration,
    pub(crate) max_size: usize,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// While set, new connections are closed at once (logons held by an admin call).
    pub(crate) held: Arc<std::sync::atomic::AtomicBool>,
    /// Caps on connections not yet handed to their session (shared by every listener).
    pub(crate) pending: crate::pending::Pending,
}

impl Endpoint {
    fn handle(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::info!(%peer, "logons are held (rotation in progress): connection closed");
            return;
        }
        // Over the caps it queues; beyond the queue's caps it is closed at once (the
        // refusal is logged by `admit_or_queue`). The logon timeout counts from here,
        // the wait in the queue included.
        let deadline = tokio::time::Instant::now() + self.logon_timeout;
        let Ok(admission) = self.pending.admit_or_queue(peer.ip()) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _slot = match admission {
                Admission::Now(slot) => slot,
                Admission::Queued(ticket) => match ticket.wait(deadline).await {
                    // Logons held (a rotation) while it waited: as if it came now.
                    Ok(_) if this.held.load(std::sync::atomic::Ordering::SeqCst) => {
                        tracing::info!(%peer, "logons are held (rotation in progress): queued connection closed");
                        return;
                    }
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let _ = stream.set_nodelay(true);
            let io: BoxIo = match this.tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(why) = route(io, peer, &this.routes, deadline, this.max_size).await {
                tracing::warn!(%peer, reason = %why, "connection refused");
            }
        });
    }
}

/// Accepts connections until the listener task is aborted.
pub(crate) async fn serve(listener: TcpListener, endpoint: Endpoint) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => endpoint.handle(stream, peer),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn leading(role: &watch::Receiver<RoleState>) -> bool {
    matches!(role.borrow().role, Leadership::Leader { .. })
}

/// Listens at `addr` only while this instance leads (a standby that does not listen:
/// counterparties and load-balancer health checks see the port closed). `first` is the
/// socket bound at start-up (it fixed the port), closed at once while standby.
pub(crate) async fn serve_while_leading(
    first: TcpListener,
    addr: SocketAddr,
    mut role: watch::Receiver<RoleState>,
    endpoint: Endpoint,
) {
    let mut listener = Some(first);
    loop {
        if !leading(&role) {
            if listener.take().is_some() {
                tracing::info!(%addr, "standby: FIX port closed");
            }
            if role.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(l) = &listener else {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(%addr, "leading: FIX port open");
                    listener = Some(l);
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot reopen the FIX port; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((stream, peer)) => endpoint.handle(stream, peer),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = role.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads the first message, finds its session and hands the connection over.
async fn route(
    mut stream: BoxIo,
    peer: SocketAddr,
    routes: &Routes,
    deadline: tokio::time::Instant,
    max_size: usize,
) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let first_len = tokio::time::timeout_at(deadline, async {
        loop {
            match frame::check(&buf[..filled], max_size.min(64 * 1024)) {
                Ok(f) => return Ok(f.len),
                Err(FrameError::Incomplete) => {}
                Err(e) => return Err(format!("first message unreadable: {e}")),
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match stream.read(&mut buf[filled..]).await {
                Ok(0) => return Err("closed before sending a Logon".to_string()),
                Ok(n) => filled += n,
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    })
    .await
    .map_err(|_| "no Logon within the logon timeout".to_string())??;
    let mut parser = Parser::default();
    let msg = parser
        .parse(&buf[..first_len])
        .map_err(|e| format!("first message unreadable: {e}"))?;
    let field = |tag| String::from_utf8_lossy(msg.get(tag).unwrap_or_default()).into_owned();
    let id = SessionId::new(
        &field(tags::BEGIN_STRING),
        &field(tags::TARGET_COMP_ID),
        &field(tags::SENDER_COMP_ID),
    );
    let Some(tx) = routes.get(&id) else {
        return Err(format!("no session configured for {id} (BeginString, SenderCompID 49 and TargetCompID 56 of its first message)"));
    };
    buf.truncate(filled);
    tx.send(Command::Attach {
        stream,
        peer,
        initial: buf,
    })
    .await
    .map_err(|_| format!("session {id} has stopped"))
}
