//! The standby side: follow whichever peer leads, append its records to the local journal
//! verbatim and acknowledge what is durable.
//!
//! The follower runs only while this instance is a standby. It tries the peers in turn;
//! a peer that does not lead answers Refused. Frames from an epoch older than one already
//! seen are refused (an old leader back from a pause). When the leader says Truncate the
//! diverged tail is cut off (kept aside) and the follower says Hello again. The first
//! time it has everything the leader had durable, it becomes eligible to take over.
//! The decisions are `fix_cluster::follower`'s; this module moves the bytes.

use super::{send, FrameReader, Replication};
use fix_cluster::follower::{Eligibility, FollowState, FollowStep};
use fix_lease::{Leadership, RoleState};
use fix_store::Journal;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What the follower needs.
pub struct Follower {
    /// The local journal (fenced while standby).
    pub journal: Journal,
    /// Its durable position.
    pub durable: watch::Receiver<u64>,
    /// Its written position, when acknowledgements say what is written too
    /// (`replicated-written`): records are then written to the files as they arrive.
    pub written: Option<watch::Receiver<u64>>,
    /// A journal sync in flight longer than this is a stalled disk: what is written
    /// then stops counting (its acknowledgements say no more than what is durable), so
    /// the leader drops this standby instead of answering on records it may never sync.
    pub sync_stall: Option<Duration>,
    /// This instance's role.
    pub role: watch::Receiver<RoleState>,
    /// Shared status.
    pub state: Arc<Replication>,
    /// The other instances' replication addresses (`HOST:PORT`, resolved at each attempt).
    pub peers: Vec<String>,
    /// This instance's name (sent in Hello).
    pub name: String,
    /// The group's key: the leader must prove it holds it ([`super::peer_auth`]).
    pub key: Option<super::peer_auth::PeerKey>,
    /// Mutual TLS on the channel (`[engine.replication.tls]`).
    pub(crate) tls: Option<crate::tls::ReplicationTls>,
    /// Told when the stream from a leader breaks (its process died, its host went
    /// silent) and when a leader streams again ([`crate::takeover`]).
    pub(crate) takeover: crate::takeover::TakeoverHint,
}

fn is_standby(role: &watch::Receiver<RoleState>) -> bool {
    matches!(role.borrow().role, Leadership::Standby)
}

/// How one connection to a peer ended.
enum Ended {
    /// The peer does not lead; its journal ends at (newest epoch, position).
    NotLeader(u64, u64),
    /// The peer led and went away (or refused us): try the others.
    Next,
    /// The local journal was cut back: say Hello to the same peer again.
    Again,
}

/// The next change of the written position, when acknowledgements say it (never
/// otherwise).
async fn written_changed(
    written: Option<&mut watch::Receiver<u64>>,
) -> Option<Result<(), watch::error::RecvError>> {
    match written {
        Some(w) => Some(w.changed().await),
        None => std::future::pending().await,
    }
}

/// A leader silent for this long is treated as gone (it sends an empty Records frame
/// every [`super::IDLE_TICK`] when idle).
const SILENCE: Duration = Duration::from_millis(1000);

impl Follower {
    /// Follows the leader whenever this instance is a standby; runs forever.
    ///
    /// Eligibility to take over: once it has caught up with a leader; or, after trying
    /// every peer without finding a leader, when no reachable peer has a newer journal
    /// (newest epoch, then length) — so after a full outage the instance with the most
    /// complete journal leads.
    pub async fn run(mut self) {
        if self.peers.is_empty() {
            self.state.set_eligible(true);
            return;
        }
        let mut at = 0usize;
        let mut eligibility = Eligibility::default();
        let mut said = std::collections::HashMap::<String, String>::new();
        loop {
            while !is_standby(&self.role) {
                self.takeover.clear();
                self.state.update_follower(|f| f.leader = None);
                if self.role.changed().await.is_err() {
                    return;
                }
            }
            let peer = self.peers[at % self.peers.len()].clone();
            let mut streamed = false;
            let ended = self.follow(&peer, &mut eligibility, &mut streamed).await;
            let eligible = *self.state.eligible().borrow();
            if streamed && eligible && is_standby(&self.role) && !matches!(ended, Ok(Ended::Again))
            {
                // A leader was streaming to us and is gone, and we may take over: look at
                // the lease now, and hold the counterparties that come meanwhile.
                tracing::info!(%peer, "the leader's stream broke: looking at the lease now");
                self.takeover.leader_gone();
            }
            match ended {
                Ok(Ended::Again) => continue,
                Ok(Ended::NotLeader(epoch, position)) => {
                    let ours = (
                        self.journal.epoch_history().last().map_or(0, |e| e.0),
                        self.journal.appended(),
                    );
                    eligibility.not_leader((epoch, position), ours);
                }
                Ok(Ended::Next) => {
                    said.remove(&peer);
                }
                Err(e) => {
                    let error = e.to_string();
                    // Said once per peer and change: a peer with the wrong key is tried
                    // ten times a second.
                    if said.get(&peer) != Some(&error) {
                        tracing::warn!(%peer, error = %e, "replication from peer failed");
                        said.insert(peer.clone(), error);
                    } else {
                        tracing::debug!(%peer, error = %e, "replication from peer failed");
                    }
                    self.state
                        .update_follower(|f| f.last_error = Some(format!("{peer}: {e}")));
                }
            }
            self.state.update_follower(|f| f.leader = None);
            at += 1;
            if at.is_multiple_of(self.peers.len()) {
                if let Some(eligible) = eligibility.round_over() {
                    self.state.set_eligible(eligible);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Follows `peer` until the connection ends; `streamed` says whether it was
    /// streaming records to us (it led).
    async fn follow(
        &mut self,
        peer: &str,
        eligibility: &mut Eligibility,
        streamed: &mut bool,
    ) -> std::io::Result<Ended> {
        let tcp = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(peer))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        let _ = tcp.set_nodelay(true);
        let mut stream: crate::tls::BoxIo = match &self.tls {
            Some(t) => {
                let name = t.name_for(peer).map_err(std::io::Error::other)?;
                let tls = tokio::time::timeout(SILENCE, t.connector.connect(name, tcp))
                    .await
                    .map_err(|_| std::io::Error::other("no TLS handshake from the peer"))?
                    .map_err(|e| {
                        std::io::Error::other(format!("TLS handshake with the leader failed: {e}"))
                    })?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        tokio::time::timeout(
            SILENCE,
            super::peer_auth::as_standby(&mut stream, self.key.as_ref()),
        )
        .await
        .map_err(|_| std::io::Error::other("no replication handshake from the peer"))?
        .map_err(std::io::Error::other)?;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let history = self.journal.epoch_history();
        let mut follow = FollowState::new(history.last().map_or(0, |e| e.0));
        let hello = follow.hello(
            history,
            self.journal.appended(),
            super::hello_id(&self.name, self.state.region().as_deref()),
        );
        send(&mut wr, &hello).await?;
        let mut frames = FrameReader::new(super::MAX_FRAME);
        loop {
            tokio::select! {
                frame = tokio::time::timeout(SILENCE, frames.next(&mut rd)) => {
                    let Ok(frame) = frame else {
                        tracing::warn!(%peer, "the leader has been silent for {SILENCE:?}; dropping the connection");
                        return Ok(Ended::Next);
                    };
                    let Some(frame) = frame? else { return Ok(Ended::Next) };
                    let first = !follow.streamed();
                    let step = follow
                        .handle_frame(frame, self.journal.appended())
                        .map_err(std::io::Error::other)?;
                    *streamed |= follow.streamed();
                    if first && follow.streamed() {
                        tracing::info!(%peer, epoch = follow.newest_epoch(), from = self.journal.appended(), "following the leader");
                    }
                    match step {
                        FollowStep::Append { epoch, start, records } => {
                            let position = if self.written.is_some() {
                                self.journal.append_replicated_written(start, &records)
                            } else {
                                self.journal.append_replicated(start, &records)
                            }
                            .map_err(std::io::Error::other)?;
                            self.show_leader(peer, epoch, position, false);
                        }
                        FollowStep::Current { epoch } => {
                            eligibility.current();
                            self.show_leader(peer, epoch, self.journal.appended(), true);
                            self.state.set_eligible(true);
                        }
                        FollowStep::Nothing => {
                            let epoch = follow.newest_epoch();
                            self.show_leader(peer, epoch, self.journal.appended(), false);
                        }
                        FollowStep::Truncate(position) => {
                            let journal = self.journal.clone();
                            let cut = tokio::task::spawn_blocking(move || journal.truncate(position))
                                .await
                                .map_err(std::io::Error::other)?
                                .map_err(std::io::Error::other)?;
                            tracing::warn!(%peer, position, cut_bytes = cut, "cut the journal back to where it agrees with the leader");
                            return Ok(Ended::Again);
                        }
                        FollowStep::Refuse(refusal) => {
                            tracing::warn!(%peer, "refusing frames from a stale leader");
                            send(&mut wr, &refusal).await?;
                            return Ok(Ended::Next);
                        }
                        FollowStep::NotLeader { epoch, position } => {
                            return Ok(Ended::NotLeader(epoch, position));
                        }
                        FollowStep::Next => {
                            tracing::debug!(%peer, "the leader stopped streaming to us");
                            return Ok(Ended::Next);
                        }
                    }
                    if let Some(ack) = self.ack(&mut follow) {
                        send(&mut wr, &ack).await?;
                    }
                }
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return Ok(Ended::Next);
                    }
                    if let Some(ack) = self.ack(&mut follow) {
                        send(&mut wr, &ack).await?;
                    }
                }
                Some(changed) = written_changed(self.written.as_mut()) => {
                    if changed.is_err() {
                        return Ok(Ended::Next);
                    }
                    if let Some(ack) = self.ack(&mut follow) {
                        send(&mut wr, &ack).await?;
                    }
                }
                _ = self.role.changed() => {
                    if !is_standby(&self.role) {
                        return Ok(Ended::Next);
                    }
                }
            }
        }
    }

    /// The Ack to send for what is durable and written now, if it says more.
    fn ack(&mut self, follow: &mut FollowState) -> Option<fix_store::replication::Frame> {
        let durable = *self.durable.borrow_and_update();
        let written = self
            .written
            .as_mut()
            .map_or(durable, |w| *w.borrow_and_update());
        let stalled = self
            .sync_stall
            .zip(self.journal.sync_in_flight())
            .is_some_and(|(limit, took)| took > limit);
        if stalled && self.state.stall_due() {
            tracing::warn!(
                durable,
                written,
                "journal sync stalled past sync_stall_ms: acknowledging only what is durable"
            );
        }
        follow.handle_stored(durable, if stalled { durable } else { written })
    }

    /// Shows the leader this standby follows and where its journal is.
    fn show_leader(&self, peer: &str, epoch: u64, position: u64, current: bool) {
        self.takeover.clear();
        self.state.update_follower(|f| {
            f.leader = Some(peer.to_string());
            f.epoch = epoch;
            f.position = position;
            f.last_error = None;
            if current {
                f.caught_up = true;
            }
        });
    }
}
