//! A leader's side in the simulation: taking over and stepping down, the in-sync set's
//! writes, the standbys' streams, answering the counterparty and journaling its orders.

use crate::disk::{Entry, Journal, RECORD};
use crate::node::{Leading, Pending, Serving, Unanswered, ACK_TIMEOUT, IDLE_TICK};
use crate::world::{StoreCall, World};
use fix_cluster::in_sync::Step;
use fix_cluster::source::{answer_hello, HelloAnswer, LeaderJournal, StandbyHello, StandbyStream};
use fix_store::replication::Frame;
use std::time::Duration;

impl World {
    pub(crate) fn take_over(&mut self, i: usize, leading: Leading) {
        let now = self.now;
        let at = self.local(i);
        let epoch = leading.epoch;
        self.ledger.failovers += 1;
        let name = self.nodes[i].name.clone();
        self.note(format!(
            "{name} takes the lease with epoch {epoch}, its journal at {}",
            self.nodes[i].journal.end()
        ));
        self.ledger
            .check_takeover(now, &name, epoch, &self.nodes[i].journal);
        if let Some(f) = self.nodes[i].following.take() {
            self.close(f.conn, i);
        }
        let n = &mut self.nodes[i];
        n.leading = Some(leading);
        n.in_sync.lead(epoch);
        n.in_sync.durable(at, n.journal.durable());
    }

    pub(crate) fn step_down(&mut self, i: usize, why: &str) {
        let n = &mut self.nodes[i];
        if n.leading.take().is_none() {
            return;
        }
        n.in_sync.step_down();
        n.unanswered.clear();
        // Each stream ends, as the engine's source tasks do when they see the deposition.
        let serving = std::mem::take(&mut n.serving);
        for (c, s) in serving {
            self.nodes[i].in_sync.disconnected(&s.standby);
            self.close(c, i);
        }
        let name = self.nodes[i].name.clone();
        self.note(format!("{name} steps down: {why}"));
    }

    pub(crate) fn poll_in_sync(&mut self, i: usize) {
        let at = self.local(i);
        let n = &mut self.nodes[i];
        if n.in_sync_call.is_some() {
            return;
        }
        let call = match n.in_sync.poll(at, n.journal.durable()) {
            Some(Step::Record(record)) => StoreCall::SetInSync(record),
            Some(Step::ReadBack { epoch }) => StoreCall::ReadBack { epoch },
            None => return,
        };
        let id = self.call_store(i, call.clone());
        self.nodes[i].in_sync_call = Some(Pending {
            id,
            sent: self.now,
            call,
        });
    }

    /// Sends each standby what it has not been sent.
    pub(crate) fn pump(&mut self, i: usize) {
        let now = self.now;
        let at = self.local(i);
        let leading = self.nodes[i].leading_at(self.local(i));
        let conns: Vec<u64> = self.nodes[i].serving.keys().copied().collect();
        for conn in conns {
            let n = &mut self.nodes[i];
            let Some(s) = n.serving.get_mut(&conn) else {
                continue;
            };
            if let Err(end) = s
                .stream
                .check(at, leading, Duration::from_millis(ACK_TIMEOUT))
            {
                let standby = s.standby.clone();
                n.serving.remove(&conn);
                n.in_sync.disconnected(&standby);
                self.note(format!(
                    "{} ends the stream to {standby}: {end}",
                    self.nodes[i].name
                ));
                self.close(conn, i);
                continue;
            }
            let Some(from) = s.stream.wants_read() else {
                continue;
            };
            let chunk = n.journal.read_stream(from, fix_cluster::CHUNK);
            if chunk.is_empty() && s.last_empty && now < s.last_frame + IDLE_TICK {
                continue;
            }
            s.last_empty = chunk.is_empty();
            s.last_frame = now;
            let frame = s.stream.poll_transmit(chunk);
            let (standby, acked, streaming) =
                (s.standby.clone(), s.stream.acked(), s.stream.streaming());
            n.in_sync.acked(&standby, acked, streaming);
            self.send(conn, i, &frame);
        }
    }

    /// The other instances that could act as leaders now: running, not paused, and
    /// trusting a lease by their own clocks.
    fn acting_leaders(&self, i: usize) -> Vec<(String, u64)> {
        (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].up && self.nodes[j].paused_until <= self.now)
            .filter_map(|j| {
                let n = &self.nodes[j];
                n.leading_at(self.local(j)).map(|e| (n.name.clone(), e))
            })
            .collect()
    }

    /// Answers the counterparty for every record that counts as durable.
    pub(crate) fn answer(&mut self, i: usize) {
        let now = self.now;
        let Some(epoch) = self.nodes[i].leading_at(self.local(i)) else {
            return;
        };
        // Durable here and acknowledged by every required member (the set's `committed`
        // speaks only of the others).
        let n = &self.nodes[i];
        let committed = n
            .in_sync
            .committed_for(Some(epoch))
            .min(n.journal.durable());
        while let Some(u) = self.nodes[i].unanswered.front().copied() {
            if u.position + RECORD as u64 > committed {
                break;
            }
            self.nodes[i].unanswered.pop_front();
            let name = self.nodes[i].name.clone();
            let others = self.acting_leaders(i);
            self.ledger.check_single_leader(now, &name, epoch, &others);
            let members: Vec<&Journal> = self
                .store
                .in_sync
                .iter()
                .flat_map(|s| s.members.iter())
                .filter_map(|m| self.nodes.iter().find(|n| &n.name == m))
                .map(|n| &n.journal)
                .collect();
            let leader = &self.nodes[i].journal;
            self.ledger.answer(
                now,
                &name,
                epoch,
                u.position,
                u.entry,
                &self.store,
                leader,
                &members,
            );
        }
    }

    /// An order reaches instance `i`.
    pub(crate) fn order_arrives(&mut self, i: usize, order: u64) {
        let now = self.now;
        let Some(epoch) = self.nodes[i].leading_at(self.local(i)) else {
            return;
        };
        let name = self.nodes[i].name.clone();
        let others = self.acting_leaders(i);
        self.ledger.check_single_leader(now, &name, epoch, &others);
        let n = &mut self.nodes[i];
        let entry = Entry {
            epoch,
            seq: n.journal.next_seq(),
            order,
        };
        let position = n.journal.end();
        n.journal.append(entry);
        n.unanswered.push_back(Unanswered { position, entry });
        self.sync(i);
    }

    pub(crate) fn frame_from_standby(
        &mut self,
        conn: u64,
        i: usize,
        standby: String,
        frame: Frame,
    ) {
        let now = self.now;
        let at = self.local(i);
        match frame {
            Frame::Hello {
                epoch,
                from_position,
                epochs,
                ..
            } => {
                let n = &self.nodes[i];
                let history = n.journal.epochs();
                let answer = answer_hello(
                    LeaderJournal {
                        leading: n.leading_at(self.local(i)),
                        epochs: &history,
                        end: n.journal.end(),
                    },
                    StandbyHello {
                        epoch,
                        end: from_position,
                        epochs: &epochs,
                    },
                );
                match answer {
                    HelloAnswer::Refuse(refusal) => {
                        self.send(conn, i, &refusal);
                        self.close(conn, i);
                    }
                    HelloAnswer::Truncate { epoch, position } => {
                        self.send(conn, i, &Frame::Truncate { epoch, position });
                        self.close(conn, i);
                    }
                    HelloAnswer::Stream { epoch, from } => {
                        let n = &mut self.nodes[i];
                        n.in_sync.connected(&standby, true, from);
                        n.serving.insert(
                            conn,
                            Serving {
                                standby,
                                stream: StandbyStream::new(epoch, from, at),
                                last_frame: now,
                                last_empty: false,
                            },
                        );
                        self.pump(i);
                    }
                }
            }
            Frame::Ack {
                durable_position,
                written_position,
                ..
            } => {
                let n = &mut self.nodes[i];
                if let Some(s) = n.serving.get_mut(&conn) {
                    s.stream.handle_ack(durable_position, written_position, at);
                    let (acked, streaming) = (s.stream.acked(), s.stream.streaming());
                    n.in_sync.acked(&standby, acked, streaming);
                    self.answer(i);
                }
            }
            Frame::Refused { .. } => self.drop_stream(conn, i),
            Frame::Records { .. } | Frame::Truncate { .. } => {}
        }
    }

    pub(crate) fn drop_stream(&mut self, conn: u64, i: usize) {
        if let Some(s) = self.nodes[i].serving.remove(&conn) {
            self.nodes[i].in_sync.disconnected(&s.standby);
        }
        self.close(conn, i);
    }
}
