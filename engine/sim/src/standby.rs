//! A standby's side in the simulation: dialling peers in turn, following the leader's
//! stream, and when it may contend for the lease.

use crate::node::{Following, SILENCE};
use crate::world::World;
use fix_cluster::follower::{FollowState, FollowStep};
use fix_store::replication::Frame;

impl World {
    pub(crate) fn frame_from_leader(&mut self, conn: u64, i: usize, frame: Frame) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(f) = n.following.as_mut().filter(|f| f.conn == conn) else {
            return;
        };
        f.last_heard = now;
        let end = n.journal.end();
        let step = match f.state.handle_frame(frame, end) {
            Ok(step) => step,
            Err(e) => {
                self.note(format!("{}: {e}", self.nodes[i].name));
                return self.ended(i, conn, false);
            }
        };
        match step {
            FollowStep::Append { start, records, .. } => {
                if let Err(e) = n.journal.append_replicated(start, &records) {
                    self.note(format!("{}: {e}", self.nodes[i].name));
                    return self.ended(i, conn, false);
                }
                self.sync(i);
            }
            FollowStep::Current { .. } => {
                n.eligibility.current();
                n.eligible = true;
            }
            FollowStep::Nothing => {}
            FollowStep::Truncate(position) => {
                n.journal.truncate(position);
                let name = n.name.clone();
                self.note(format!("{name} cuts its journal back to {position}"));
                return self.ended(i, conn, true);
            }
            FollowStep::Refuse(refusal) => {
                self.send(conn, i, &refusal);
                return self.ended(i, conn, false);
            }
            FollowStep::NotLeader { epoch, position } => {
                let ours = (n.journal.newest_epoch(), n.journal.end());
                n.eligibility.not_leader((epoch, position), ours);
                return self.ended(i, conn, false);
            }
            FollowStep::Next => return self.ended(i, conn, false),
        }
        let n = &mut self.nodes[i];
        let durable = n.journal.durable();
        if let Some(ack) = n
            .following
            .as_mut()
            .and_then(|f| f.state.handle_durable(durable))
        {
            self.send(conn, i, &ack);
        }
    }

    /// The connection to the followed peer is over; `again`: dial the same peer again.
    pub(crate) fn ended(&mut self, i: usize, conn: u64, again: bool) {
        self.close(conn, i);
        let now = self.now;
        let at = self.local(i);
        let n = &mut self.nodes[i];
        // A leader was streaming and is gone: look at the lease now, as the engine's
        // follower tells its keeper.
        if !again && n.following.as_ref().is_some_and(|f| f.state.streamed()) {
            n.roles.look_now(at);
        }
        n.following = None;
        if again {
            n.connect_due = now;
            return;
        }
        n.attempts += 1;
        if n.attempts.is_multiple_of(n.peers.len()) {
            if let Some(eligible) = n.eligibility.round_over() {
                n.eligible = eligible;
            }
            n.connect_due = now + 100;
        } else {
            n.connect_due = now;
        }
    }

    /// A standby's side: dial the next peer, or give up on a silent one.
    pub(crate) fn follow(&mut self, i: usize) {
        let now = self.now;
        let n = &self.nodes[i];
        if let Some(f) = &n.following {
            if now > f.last_heard + SILENCE {
                let conn = f.conn;
                return self.ended(i, conn, false);
            }
            return;
        }
        if now < n.connect_due {
            return;
        }
        let peer = n.peers[n.attempts % n.peers.len()];
        match self.dial(i, peer) {
            Some(conn) => {
                let n = &mut self.nodes[i];
                let state = FollowState::new(n.journal.newest_epoch());
                let hello = state.hello(n.journal.epochs(), n.journal.end(), n.name.clone());
                n.following = Some(Following {
                    conn,
                    state,
                    last_heard: now,
                });
                self.send(conn, i, &hello);
            }
            None => {
                // Refused or timed out: the next peer, a little later.
                let n = &mut self.nodes[i];
                n.attempts += 1;
                if n.attempts.is_multiple_of(n.peers.len()) {
                    if let Some(eligible) = n.eligibility.round_over() {
                        n.eligible = eligible;
                    }
                }
                n.connect_due = now + 100;
            }
        }
    }
}
