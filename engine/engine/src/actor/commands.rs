//! The session task's requests ([`Command`]): a connection handed over by the acceptor,
//! a message to send, logout, sequence numbers, status, stored messages, reset and
//! shutdown. Everything that writes waits for the store as `flush` does.

use super::{now, Command, SessionActor};
use crate::tls::BoxIo;
use fix_session::Outgoing;
use std::net::SocketAddr;

impl SessionActor {
    /// Carries out one request from the engine's handle or the acceptor.
    pub(super) async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach {
                stream,
                peer,
                initial,
            } => {
                if self.conn.is_some() {
                    tracing::warn!(session = %self.span_name(), %peer, "refused a second connection for a session already connected (duplicate identity)");
                    drop(stream);
                } else if self.shutdown.is_some() {
                    drop(stream);
                } else if !self.is_leader() {
                    match self.hold_until() {
                        Some(until) => {
                            tracing::info!(session = %self.span_name(), %peer, "standby: holding a FIX connection unanswered (the leader's stream broke: this instance expects to take over)");
                            // A counterparty that comes again replaces what it left.
                            self.held = Some(super::held::Held {
                                stream,
                                peer,
                                initial,
                                until,
                            });
                        }
                        None => {
                            tracing::info!(session = %self.span_name(), %peer, "standby: refusing a FIX connection (this instance does not hold the lease)");
                            drop(stream);
                        }
                    }
                } else {
                    self.serve(stream, peer, initial).await;
                }
            }
            Command::Send {
                msg_type,
                body,
                reply,
            } => {
                if !self.is_leader() {
                    let _ = reply.send(Err(crate::error::EngineError::NotLeader(self.span_name())));
                    return;
                }
                let r = self.session.send(
                    now(),
                    Outgoing {
                        msg_type: &msg_type,
                        header: b"",
                        body: &body,
                    },
                );
                // Reply only after the message is durable; if the store failed or the
                // term ended first, it may never be, so it is not reported sent (the
                // Kafka bridge then leaves its record on the topic for the next leader).
                let durable = self.flush(Vec::new()).await;
                let r = match r {
                    Ok(_) if !durable && self.stopped => Err(crate::error::EngineError::Send(
                        fix_session::SendError::Stopped,
                    )),
                    Ok(_) if !durable => {
                        Err(crate::error::EngineError::NotLeader(self.span_name()))
                    }
                    r => r.map_err(crate::error::EngineError::from),
                };
                let _ = reply.send(r);
            }
            Command::Logout { text } => self.session.logout(now(), text.as_deref()),
            Command::SetSequence {
                next_sender,
                next_target,
                reply,
            } => {
                let r = self.session.set_sequence_numbers(next_sender, next_target);
                self.flush(Vec::new()).await;
                let _ = reply.send(r);
            }
            Command::Messages {
                from,
                to,
                limit,
                reply,
            } => {
                if !self.leading {
                    let _ = self.session.reload_store();
                }
                let mut out = Vec::new();
                let r = self.session.store().load_outbound(from, to, &mut |seq, m| {
                    if out.len() < limit {
                        out.push((seq, m.to_vec()));
                    }
                });
                let _ = reply.send(r.map(|()| out));
            }
            Command::Reset(reply) => {
                let id = self.span_name();
                let r = if !self.is_leader() {
                    Err(crate::error::EngineError::NotLeader(id))
                } else if self.session.reset(now()) {
                    self.flush(Vec::new()).await;
                    Ok(())
                } else {
                    Err(crate::error::EngineError::LoggedOn(id))
                };
                let _ = reply.send(r);
            }
            Command::Status(reply) => {
                if !self.leading {
                    // A standby's journal moves with replication: show where it is.
                    let _ = self.session.reload_store();
                }
                let _ = reply.send(self.status());
            }
            Command::Shutdown(done) => {
                self.shutdown = Some(done);
                if self.conn.is_some() {
                    self.session.logout(now(), Some("engine shutting down"));
                }
            }
        }
    }

    /// Serves a counterparty's connection while leader: attach it and answer what it
    /// sent. The role may have turned Leader without this task having taken over yet
    /// (a command seen before the role change in the same turn): take over first, so
    /// the Logon is answered with the journal's sequence numbers. Refused if the lease
    /// was lost meanwhile, or a connection is already attached.
    pub(super) async fn serve(&mut self, stream: BoxIo, peer: SocketAddr, initial: Vec<u8>) {
        if self.needs_take_over() {
            self.catch_up_term().await;
        }
        if !self.is_leader() {
            tracing::info!(session = %self.span_name(), %peer, "refusing a FIX connection: the lease was lost");
            return;
        }
        if self.conn.is_some() {
            tracing::warn!(session = %self.span_name(), %peer, "refused a second connection for a session already connected (duplicate identity)");
            return;
        }
        tracing::info!(session = %self.span_name(), %peer, "counterparty connected");
        self.attach(stream, peer, initial);
        let mut deliveries = Vec::new();
        self.process_input(&mut deliveries);
        self.flush(deliveries).await;
    }
}
