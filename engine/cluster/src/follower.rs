//! The standby's side of a stream from its leader, and when a standby may contend for the
//! lease.
//!
//! A [`FollowState`] lives for one connection: it builds the Hello, refuses frames from
//! an epoch older than one already seen (an old leader back from a pause), turns each
//! frame into what the runtime must do ([`FollowStep`]) and says when to acknowledge
//! (what is durable, and what is written to the journal files but not yet synced).
//! [`Eligibility`] spans connections: a standby may take over once it has been current
//! with a leader, or, after trying every peer without finding one, when no peer it
//! reached has a newer journal (so after a full outage the most complete journal leads).

use fix_store::replication::{EpochGate, Frame};

/// What the runtime does with one frame from the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowStep {
    /// Append `records` to the journal at `start` (its end), as received.
    Append {
        /// The leader's epoch.
        epoch: u64,
        /// Where they start in the stream.
        start: u64,
        /// Whole records, verbatim.
        records: Vec<u8>,
    },
    /// The leader has nothing beyond this journal's end: the standby is current.
    Current {
        /// The leader's epoch.
        epoch: u64,
    },
    /// An empty Records frame for another position than this journal's end: nothing to
    /// do (the append that would make it current is still on its way).
    Nothing,
    /// Cut the journal back to `position` (keeping the tail aside), then say Hello again.
    Truncate(u64),
    /// Send this Refused frame and end the connection: a stale leader.
    Refuse(Frame),
    /// The peer refused before it streamed anything: it does not lead; its journal's
    /// newest epoch and end, for [`Eligibility`].
    NotLeader {
        /// Its newest epoch.
        epoch: u64,
        /// Its journal end.
        position: u64,
    },
    /// The peer led and stopped streaming to us: try the others.
    Next,
}

/// A frame a leader never sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {0} frame from the leader")]
pub struct UnexpectedFrame(&'static str);

/// One connection's state on the standby.
#[derive(Debug, Clone)]
pub struct FollowState {
    gate: EpochGate,
    acked: u64,
    written: u64,
    streamed: bool,
}

impl FollowState {
    /// A connection from a journal whose newest epoch is `newest_epoch`.
    pub fn new(newest_epoch: u64) -> Self {
        Self {
            gate: EpochGate::new(newest_epoch),
            acked: 0,
            written: 0,
            streamed: false,
        }
    }

    /// The Hello that opens the connection: `epochs` and `end` describe the journal,
    /// `standby` names this instance (see the engine's hello id).
    pub fn hello(&self, epochs: Vec<(u64, u64)>, end: u64, standby: String) -> Frame {
        Frame::Hello {
            epoch: self.gate.newest(),
            from_position: end,
            epochs,
            standby,
        }
    }

    /// Whether the leader has streamed anything on this connection.
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// The newest epoch seen.
    pub fn newest_epoch(&self) -> u64 {
        self.gate.newest()
    }

    /// What to do with `frame`, given the journal ends at `journal_end`.
    pub fn handle_frame(
        &mut self,
        frame: Frame,
        journal_end: u64,
    ) -> Result<FollowStep, UnexpectedFrame> {
        if let Err(refusal) = self.gate.admit(frame.epoch(), journal_end) {
            if !matches!(frame, Frame::Refused { .. }) {
                return Ok(FollowStep::Refuse(refusal));
            }
        }
        Ok(match frame {
            Frame::Records {
                epoch,
                start_position,
                records,
            } => {
                self.streamed = true;
                if !records.is_empty() {
                    FollowStep::Append {
                        epoch,
                        start: start_position,
                        records,
                    }
                } else if start_position == journal_end {
                    FollowStep::Current { epoch }
                } else {
                    FollowStep::Nothing
                }
            }
            Frame::Truncate { position, .. } => FollowStep::Truncate(position),
            Frame::Refused {
                epoch, position, ..
            } => {
                if self.streamed {
                    FollowStep::Next
                } else {
                    FollowStep::NotLeader { epoch, position }
                }
            }
            Frame::Hello { .. } => return Err(UnexpectedFrame("Hello")),
            Frame::Ack { .. } => return Err(UnexpectedFrame("Ack")),
        })
    }

    /// The journal is durable up to `durable`: the Ack to send, if it says more than the
    /// last one (what is durable is written too).
    pub fn handle_durable(&mut self, durable: u64) -> Option<Frame> {
        self.handle_stored(durable, durable)
    }

    /// The journal is durable up to `durable` and written to its files up to `written`:
    /// the Ack to send, if it says more than the last one.
    pub fn handle_stored(&mut self, durable: u64, written: u64) -> Option<Frame> {
        let written = written.max(durable);
        (durable > self.acked || written > self.written).then(|| {
            self.acked = self.acked.max(durable);
            self.written = self.written.max(written);
            Frame::Ack {
                epoch: self.gate.newest(),
                durable_position: self.acked,
                written_position: self.written,
            }
        })
    }
}

/// Whether a standby may contend for the lease, across connections.
#[derive(Debug, Clone, Default)]
pub struct Eligibility {
    caught_up: bool,
    newer_peer: bool,
}

impl Eligibility {
    /// It has been current with a leader: from now on it may contend.
    pub fn current(&mut self) {
        self.caught_up = true;
    }

    /// Whether it has been current with a leader since it started.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// A peer that does not lead has a journal whose newest epoch and end are `theirs`;
    /// this instance's are `ours`.
    pub fn not_leader(&mut self, theirs: (u64, u64), ours: (u64, u64)) {
        if theirs > ours {
            self.newer_peer = true;
        }
    }

    /// Every peer was tried once: whether it may contend now (`None`: unchanged, it has
    /// been current with a leader). It may when no peer it reached had a newer journal.
    pub fn round_over(&mut self) -> Option<bool> {
        let newer = std::mem::take(&mut self.newer_peer);
        (!self.caught_up).then_some(!newer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_an_older_epoch_are_refused_and_records_become_appends() {
        let mut f = FollowState::new(3);
        let old = Frame::Records {
            epoch: 2,
            start_position: 0,
            records: vec![1],
        };
        assert!(matches!(
            f.handle_frame(old, 10),
            Ok(FollowStep::Refuse(Frame::Refused {
                epoch: 3,
                position: 10,
                ..
            }))
        ));
        let new = Frame::Records {
            epoch: 4,
            start_position: 10,
            records: vec![1, 2],
        };
        assert_eq!(
            f.handle_frame(new, 10),
            Ok(FollowStep::Append {
                epoch: 4,
                start: 10,
                records: vec![1, 2]
            })
        );
        assert_eq!(f.newest_epoch(), 4);
        let current = Frame::Records {
            epoch: 4,
            start_position: 12,
            records: Vec::new(),
        };
        assert_eq!(
            f.handle_frame(current, 12),
            Ok(FollowStep::Current { epoch: 4 })
        );
        let refused = Frame::Refused {
            epoch: 5,
            position: 12,
            reason: String::new(),
        };
        assert_eq!(f.handle_frame(refused, 12), Ok(FollowStep::Next));
    }

    #[test]
    fn acks_only_say_more_and_a_refusal_before_streaming_is_not_leader() {
        let mut f = FollowState::new(1);
        assert!(f.handle_durable(0).is_none());
        assert!(matches!(
            f.handle_durable(5),
            Some(Frame::Ack {
                durable_position: 5,
                ..
            })
        ));
        assert!(f.handle_durable(5).is_none());
        assert_eq!(
            f.handle_stored(5, 9),
            Some(Frame::Ack {
                epoch: 1,
                durable_position: 5,
                written_position: 9
            }),
            "written further than durable"
        );
        assert!(f.handle_stored(5, 9).is_none());
        assert!(f.handle_stored(9, 9).is_some(), "and now durable too");
        let refused = Frame::Refused {
            epoch: 2,
            position: 9,
            reason: "not the leader".into(),
        };
        assert_eq!(
            f.handle_frame(refused, 5),
            Ok(FollowStep::NotLeader {
                epoch: 2,
                position: 9
            })
        );
    }

    #[test]
    fn without_a_leader_the_most_complete_journal_may_contend() {
        let mut e = Eligibility::default();
        e.not_leader((2, 100), (2, 50));
        assert_eq!(e.round_over(), Some(false));
        e.not_leader((2, 10), (2, 50));
        assert_eq!(e.round_over(), Some(true));
        e.current();
        assert_eq!(e.round_over(), None);
    }
}
