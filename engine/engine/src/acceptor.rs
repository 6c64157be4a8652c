//! Listening sockets: many sessions per port, routed by the CompIDs of the first message.

use crate::actor::Command;
use crate::tls::BoxIo;
use fix_codec::{frame, tags, FrameError, Parser};
use fix_session::SessionId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Sessions served on one listening address.
pub(crate) type Routes = Arc<HashMap<SessionId, mpsc::Sender<Command>>>;

/// Accepts connections until the listener task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Routes,
    logon_timeout: Duration,
    max_size: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let routes = Arc::clone(&routes);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let io: BoxIo = match tls {
                        None => Box::new(stream),
                        Some(acceptor) => {
                            match tokio::time::timeout(logon_timeout, acceptor.accept(stream)).await
                            {
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
                    if let Err(why) = route(io, peer, &routes, logon_timeout, max_size).await {
                        tracing::warn!(%peer, reason = %why, "connection refused");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the first message, finds its session and hands the connection over.
async fn route(
    mut stream: BoxIo,
    peer: SocketAddr,
    routes: &Routes,
    logon_timeout: Duration,
    max_size: usize,
) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let first_len = tokio::time::timeout(logon_timeout, async {
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
