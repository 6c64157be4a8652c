//! The leader side: serve the journal's record stream to every standby that connects.
//!
//! A standby says Hello with where its journal ends and its epoch history. The leader
//! checks the two streams agree up to there (else it answers Truncate with the position
//! where they part, and the standby cuts its tail and comes back), then sends durable
//! records (under `replicated-written`: records written to the files) from that
//! position on, tagged with its epoch, and reads the standby's Acks.
//! Only a leader serves; the connection ends the moment this instance stops leading.
//! The decisions are `fix_cluster::source`'s; this module moves the bytes.

use super::{send, FrameReader, Replication, ACK_TIMEOUT, CHUNK, IDLE_TICK};
use crate::tls::BoxIo;
use fix_cluster::source::{
    answer_hello, Counted, HelloAnswer, LeaderJournal, StandbyHello, StandbyStream,
};
use fix_lease::{Leadership, RoleState};
use fix_store::replication::Frame;
use fix_store::Journal;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a serving connection needs.
#[derive(Clone)]
pub struct Source {
    /// The journal.
    pub journal: Journal,
    /// What a standby's acknowledgement counts, and so what is streamed: durable
    /// records, or records written to the files (`replicated-written`).
    pub counted: Counted,
    /// The position streamed up to: durable, or written, as `counted` says.
    pub held: watch::Receiver<u64>,
    /// This instance's role.
    pub role: watch::Receiver<RoleState>,
    /// Shared status.
    pub state: Arc<Replication>,
    /// The group's key: standbys must prove they hold it ([`super::peer_auth`]).
    pub key: Option<super::peer_auth::PeerKey>,
    /// Mutual TLS on the channel (`[engine.replication.tls]`).
    pub(crate) tls: Option<crate::tls::ReplicationTls>,
}

/// Accepts standby connections forever. Connections that have not authenticated yet
/// (each for at most 5 s) are capped in total and per address
/// ([`crate::pending::REPLICATION_LIMITS`]): a flood must not take every file
/// descriptor, nor keep the group's own standbys out.
/// Refusals are counted in `refused`.
pub async fn serve(
    listener: TcpListener,
    source: Source,
    refused: prometheus_client::metrics::counter::Counter,
) {
    let pending = crate::pending::Pending::replication(refused);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(permit) = pending.admit(peer.ip().to_canonical()) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let s = source.clone();
                tokio::spawn(async move {
                    if let Err(e) = s.stream_to(stream, peer, permit).await {
                        tracing::info!(%peer, error = %e, "replication connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "replication accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn leading_epoch(role: &watch::Receiver<RoleState>) -> Option<u64> {
    let state = role.borrow();
    match state.role {
        Leadership::Leader { epoch }
            if state
                .valid_until
                .is_none_or(|t| std::time::Instant::now() < t) =>
        {
            Some(epoch)
        }
        _ => None,
    }
}

impl Source {
    async fn stream_to(
        mut self,
        tcp: TcpStream,
        peer: SocketAddr,
        handshake: crate::pending::Slot,
    ) -> std::io::Result<()> {
        let mut frames = FrameReader::new(super::MAX_STANDBY_FRAME);
        let tls = self.tls.clone();
        let (hello, stream) = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut stream: BoxIo = match &tls {
                Some(t) => match t.acceptor.accept(tcp).await {
                    Ok(s) => Box::new(s),
                    Err(e) => {
                        if self.state.refusal_due() {
                            tracing::warn!(%peer, error = %e, "refused a replication peer: TLS handshake failed (a certificate not signed by the group's CA, or no TLS)");
                        }
                        return Err(e);
                    }
                },
                None => Box::new(tcp),
            };
            if let Err(e) = super::peer_auth::as_leader(&mut stream, self.key.as_ref()).await {
                // At most once a second: a peer with the wrong key retries ten times a
                // second, and scanners knock too.
                if self.state.refusal_due() {
                    tracing::warn!(%peer, error = %e, "refused a replication peer that did not authenticate");
                }
                return Err(std::io::Error::other(e));
            }
            let hello = frames.next(&mut stream).await?;
            Ok((hello, stream))
        })
        .await
        .map_err(|_| std::io::Error::other("no authenticated Hello within 5 s"))??;
        // Authenticated (or keyless by configuration): no longer a pending handshake.
        drop(handshake);
        let (mut rd, mut wr) = tokio::io::split(stream);
        let Some(Frame::Hello {
            epoch: theirs,
            from_position,
            epochs,
            standby,
        }) = hello
        else {
            return Err(std::io::Error::other("expected Hello"));
        };
        // History and end in one read: a first record of this epoch appended between two
        // reads would be taken for the previous epoch's.
        let (history, end) = self.journal.stream_view();
        let leading = leading_epoch(&self.role);
        let answer = answer_hello(
            LeaderJournal {
                leading,
                epochs: &history,
                end,
            },
            StandbyHello {
                epoch: theirs,
                end: from_position,
                epochs: &epochs,
            },
        );
        let epoch = match answer {
            HelloAnswer::Stream { epoch, .. } => epoch,
            HelloAnswer::Refuse(frame) => {
                if let (Some(_), Frame::Refused { reason, .. }) = (leading, &frame) {
                    tracing::warn!(%peer, %reason, "refusing a standby");
                }
                send(&mut wr, &frame).await?;
                return Ok(());
            }
            HelloAnswer::Truncate { epoch, position } => {
                tracing::warn!(%peer, standby = %super::split_hello_id(&standby).0, from_position, agreed = position, "standby's journal diverged (an old leader's unreplicated tail): asking it to cut back");
                send(&mut wr, &Frame::Truncate { epoch, position }).await?;
                return Ok(());
            }
        };
        let (name, region) = super::split_hello_id(&standby);
        tracing::info!(%peer, standby = %name, region = region.unwrap_or("-"), from_position, epoch, "standby connected; streaming the journal");
        let name = name.to_string();
        let id = self
            .state
            .register(&standby, peer.to_string(), from_position);
        let stream = Arc::new(Mutex::new(StandbyStream::counting(
            self.counted,
            epoch,
            from_position,
            std::time::Instant::now(),
        )));
        let state = Arc::clone(&self.state);
        let acked = Arc::clone(&stream);
        let acks = tokio::spawn(async move {
            loop {
                match frames.next(&mut rd).await {
                    Ok(Some(Frame::Ack {
                        durable_position,
                        written_position,
                        ..
                    })) => {
                        let mut s = super::lock(&acked);
                        s.handle_ack(
                            durable_position,
                            written_position,
                            std::time::Instant::now(),
                        );
                        state.show(id, &s);
                    }
                    Ok(Some(Frame::Refused { reason, .. })) => {
                        tracing::warn!(%peer, %reason, "standby refused the stream");
                        return;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        });
        let result = self.pump(&mut wr, &stream, id, &name, &acks).await;
        acks.abort();
        self.state.unregister(id);
        result
    }

    /// Whole records from `position` on, up to what the stream may carry. The last
    /// chunk written a moment ago is still in the page cache: under `replicated-written`
    /// it is read on this thread (streaming at memory speed); anything older may be on
    /// disk and is read on a blocking thread.
    async fn read(&mut self, position: u64) -> std::io::Result<Vec<u8>> {
        let journal = self.journal.clone();
        let counted = self.counted;
        // Seen from here on: a change before the read is in the chunk, so the wait for
        // more after an empty chunk wakes only for a later one.
        let recent = self.held.borrow_and_update().saturating_sub(position) <= CHUNK as u64;
        let read = move || match counted {
            Counted::Written => journal.read_written_stream(position, CHUNK),
            Counted::Durable => journal.read_stream(position, CHUNK),
        };
        if counted == Counted::Written && recent {
            return read().map_err(std::io::Error::other);
        }
        tokio::task::spawn_blocking(read)
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)
    }

    /// Sends records while the stream may go on.
    async fn pump(
        &mut self,
        wr: &mut (impl tokio::io::AsyncWrite + Unpin),
        stream: &Mutex<StandbyStream>,
        id: u64,
        name: &str,
        acks: &tokio::task::JoinHandle<()>,
    ) -> std::io::Result<()> {
        let mut paused = self.state.paused.subscribe();
        loop {
            if acks.is_finished() || !self.state.registered(id) {
                return Ok(());
            }
            let position = {
                let mut s = super::lock(stream);
                match s.check(
                    std::time::Instant::now(),
                    leading_epoch(&self.role),
                    ACK_TIMEOUT,
                ) {
                    Ok(()) => {}
                    Err(fix_cluster::source::StreamEnd::Deposed) => return Ok(()),
                    Err(stalled) => return Err(std::io::Error::other(stalled.to_string())),
                }
                s.set_paused(paused.borrow_and_update().holds(name));
                s.wants_read()
            };
            let Some(position) = position else {
                tokio::select! {
                    _ = paused.changed() => {}
                    changed = self.role.changed() => if changed.is_err() {
                        return Ok(());
                    },
                }
                continue;
            };
            let chunk = self.read(position).await?;
            // A pause set while the chunk was read holds it back too: the chunk may hold
            // records journaled after the pause was acknowledged.
            if paused.borrow_and_update().holds(name) {
                continue;
            }
            let idle = chunk.is_empty();
            // Counted as sent before the write: the standby may acknowledge it before
            // the write call returns here, and acks are capped at what was sent.
            let frame = {
                let mut s = super::lock(stream);
                let frame = s.poll_transmit(chunk);
                self.state.show(id, &s);
                frame
            };
            send(wr, &frame).await?;
            if idle {
                // Nothing durable beyond `position`: wait for more (the empty frame just
                // sent tells the standby it is current).
                // A closed channel (the engine stopping) ends the stream: it would wake
                // this wait at once, forever.
                tokio::select! {
                    changed = self.held.changed() => if changed.is_err() {
                        return Ok(());
                    },
                    changed = self.role.changed() => if changed.is_err() {
                        return Ok(());
                    },
                    _ = paused.changed() => {}
                    () = tokio::time::sleep(IDLE_TICK) => {}
                }
            }
        }
    }
}
