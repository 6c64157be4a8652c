//! The leader's side of one standby's stream.
//!
//! A standby says Hello with its newest epoch, where its journal ends and its epoch
//! history; [`answer_hello`] decides: refuse (this instance does not lead, or the standby
//! has seen a newer epoch), truncate (the standby holds a tail this leader never had), or
//! stream from the standby's end. While streaming, a [`StandbyStream`] says where the next
//! chunk is read from, turns each chunk into a Records frame, caps acknowledgements at what
//! was sent, and tells when the standby has stalled.

use fix_store::replication::{agreed_prefix, Frame};
use std::time::{Duration, Instant};

/// The leader's journal as a Hello is answered.
#[derive(Debug, Clone, Copy)]
pub struct LeaderJournal<'a> {
    /// The epoch this instance leads with (`None`: it does not lead, or its lease ran out).
    pub leading: Option<u64>,
    /// Its epoch history (each epoch with the stream position it starts at).
    pub epochs: &'a [(u64, u64)],
    /// Where its journal ends.
    pub end: u64,
}

/// What a standby said in its Hello.
#[derive(Debug, Clone, Copy)]
pub struct StandbyHello<'a> {
    /// The newest epoch it has seen.
    pub epoch: u64,
    /// Where its journal ends.
    pub end: u64,
    /// Its epoch history.
    pub epochs: &'a [(u64, u64)],
}

/// How a leader answers a Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloAnswer {
    /// Send this Refused frame and close: not the leader, or a stale one.
    Refuse(Frame),
    /// Send Truncate and close: the standby's
    /// journal holds records past `position`, where the two streams stop agreeing (an old
    /// leader's tail that was never replicated).
    Truncate {
        /// The leader's epoch.
        epoch: u64,
        /// Where the standby must cut its journal back to.
        position: u64,
    },
    /// Stream from `from` (the standby's end) under `epoch`.
    Stream {
        /// The leader's epoch.
        epoch: u64,
        /// The first stream position to send.
        from: u64,
    },
}

/// Answers a standby's Hello.
pub fn answer_hello(leader: LeaderJournal<'_>, hello: StandbyHello<'_>) -> HelloAnswer {
    let newest = leader.epochs.last().map_or(0, |e| e.0);
    let Some(epoch) = leader.leading else {
        return HelloAnswer::Refuse(Frame::Refused {
            epoch: newest,
            position: leader.end,
            reason: "not the leader".into(),
        });
    };
    if hello.epoch > epoch {
        return HelloAnswer::Refuse(Frame::Refused {
            epoch,
            position: leader.end,
            reason: format!(
                "this leader's epoch {epoch} is older than the standby's {}: it is stale and must not lead",
                hello.epoch
            ),
        });
    }
    let agreed = agreed_prefix(leader.epochs, leader.end, hello.epochs, hello.end);
    if agreed < hello.end {
        return HelloAnswer::Truncate {
            epoch,
            position: agreed,
        };
    }
    HelloAnswer::Stream {
        epoch,
        from: hello.end,
    }
}

/// Why a stream ends on the leader's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// This instance no longer leads with the stream's epoch.
    Deposed,
    /// The standby has had records outstanding and acknowledged nothing for the limit.
    Stalled(Duration),
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::Deposed => {
                write!(f, "this instance no longer leads with the stream's epoch")
            }
            StreamEnd::Stalled(limit) => {
                write!(f, "standby acknowledged nothing for {limit:?}; dropping it")
            }
        }
    }
}

/// What a standby's acknowledgement counts for on this leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counted {
    /// What it made durable (`replicated`; the stream carries durable records only).
    #[default]
    Durable,
    /// What it wrote to its journal files, synced or not (`replicated-written`; the
    /// stream carries records as soon as they are written here).
    Written,
}

/// One standby's stream on the leader.
#[derive(Debug, Clone)]
pub struct StandbyStream {
    counted: Counted,
    epoch: u64,
    next: u64,
    acked: u64,
    streaming: bool,
    last_ack: Instant,
    paused: bool,
}

impl StandbyStream {
    /// A stream under `epoch` starting at `from` (the position [`answer_hello`] chose),
    /// whose acknowledgements count what was made durable.
    pub fn new(epoch: u64, from: u64, now: Instant) -> Self {
        Self::counting(Counted::Durable, epoch, from, now)
    }

    /// As [`StandbyStream::new`], counting the acknowledgements as `counted` says.
    pub fn counting(counted: Counted, epoch: u64, from: u64, now: Instant) -> Self {
        Self {
            counted,
            epoch,
            next: from,
            acked: 0,
            streaming: false,
            last_ack: now,
            paused: false,
        }
    }

    /// Stops (true) or resumes (false) sending records.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Where the next chunk of durable records must be read from; `None` while paused.
    pub fn wants_read(&self) -> Option<u64> {
        (!self.paused).then_some(self.next)
    }

    /// The frame that carries `records`, read from [`StandbyStream::wants_read`]'s
    /// position (whole durable records; empty when nothing durable lies beyond it). It
    /// counts as sent from now on: the standby may acknowledge it before the write
    /// returns. An empty chunk tells the standby it is current, and from then on it is
    /// streaming.
    pub fn poll_transmit(&mut self, records: Vec<u8>) -> Frame {
        let start_position = self.next;
        if records.is_empty() {
            self.streaming = true;
        }
        self.next += records.len() as u64;
        Frame::Records {
            epoch: self.epoch,
            start_position,
            records,
        }
    }

    /// The standby made everything up to `durable_position` durable and wrote everything
    /// up to `written_position` to its files; what counts is the stream's [`Counted`].
    /// Never more than was sent counts: a peer acknowledging what it was never sent does
    /// not hold it.
    pub fn handle_ack(&mut self, durable_position: u64, written_position: u64, now: Instant) {
        let position = match self.counted {
            Counted::Durable => durable_position,
            Counted::Written => written_position.max(durable_position),
        };
        self.last_ack = now;
        self.acked = self.acked.max(position.min(self.next));
    }

    /// Whether the stream may go on at `now` while this instance leads with `leading`,
    /// given the standby may keep records outstanding without acknowledging for `limit`.
    pub fn check(
        &self,
        now: Instant,
        leading: Option<u64>,
        limit: Duration,
    ) -> Result<(), StreamEnd> {
        if leading != Some(self.epoch) {
            return Err(StreamEnd::Deposed);
        }
        if self.next > self.acked && now.saturating_duration_since(self.last_ack) > limit {
            return Err(StreamEnd::Stalled(limit));
        }
        Ok(())
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The stream position sent so far.
    pub fn sent(&self) -> u64 {
        self.next
    }

    /// The stream position the standby has made durable.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether it has been sent everything durable here at least once.
    pub fn streaming(&self) -> bool {
        self.streaming
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(leading: Option<u64>) -> LeaderJournal<'static> {
        LeaderJournal {
            leading,
            epochs: &[(1, 0), (3, 100)],
            end: 150,
        }
    }

    #[test]
    fn a_hello_is_refused_by_a_non_leader_and_by_a_stale_leader() {
        let hello = StandbyHello {
            epoch: 3,
            end: 120,
            epochs: &[(1, 0), (3, 100)],
        };
        assert!(matches!(
            answer_hello(leader(None), hello),
            HelloAnswer::Refuse(Frame::Refused {
                epoch: 3,
                position: 150,
                ..
            })
        ));
        let newer = StandbyHello { epoch: 4, ..hello };
        assert!(matches!(
            answer_hello(leader(Some(3)), newer),
            HelloAnswer::Refuse(Frame::Refused { epoch: 3, .. })
        ));
        assert_eq!(
            answer_hello(leader(Some(3)), hello),
            HelloAnswer::Stream {
                epoch: 3,
                from: 120
            }
        );
    }

    #[test]
    fn a_standby_with_an_old_leaders_tail_is_told_to_cut_it() {
        // The standby has epoch 2 from 100 on, which this leader never had.
        let hello = StandbyHello {
            epoch: 2,
            end: 130,
            epochs: &[(1, 0), (2, 100)],
        };
        assert_eq!(
            answer_hello(leader(Some(3)), hello),
            HelloAnswer::Truncate {
                epoch: 3,
                position: 100
            }
        );
    }

    #[test]
    fn a_written_stream_counts_what_the_standby_wrote_and_a_durable_one_what_it_synced() {
        let t0 = Instant::now();
        let mut durable = StandbyStream::new(3, 100, t0);
        let mut written = StandbyStream::counting(Counted::Written, 3, 100, t0);
        for s in [&mut durable, &mut written] {
            s.poll_transmit(vec![0; 50]);
            s.handle_ack(110, 140, t0);
        }
        assert_eq!(durable.acked(), 110);
        assert_eq!(written.acked(), 140);
        // An older standby says nothing of what it wrote (written = durable).
        written.handle_ack(150, 150, t0);
        assert_eq!(written.acked(), 150);
    }

    #[test]
    fn acknowledgements_are_capped_at_what_was_sent_and_silence_is_a_stall() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(1);
        let mut s = StandbyStream::new(3, 100, t0);
        assert_eq!(s.wants_read(), Some(100));
        let frame = s.poll_transmit(vec![0; 50]);
        assert!(matches!(
            frame,
            Frame::Records {
                start_position: 100,
                ..
            }
        ));
        s.handle_ack(1_000, 1_000, t0);
        assert_eq!(s.acked(), 150);
        assert!(!s.streaming());
        assert!(s.poll_transmit(Vec::new()).epoch() == 3 && s.streaming());
        assert_eq!(
            s.check(t0 + limit * 2, Some(3), limit),
            Ok(()),
            "nothing outstanding"
        );
        s.poll_transmit(vec![0; 10]);
        assert_eq!(s.check(t0 + limit / 2, Some(3), limit), Ok(()));
        assert_eq!(
            s.check(t0 + limit * 2, Some(3), limit),
            Err(StreamEnd::Stalled(limit))
        );
        assert_eq!(s.check(t0, Some(4), limit), Err(StreamEnd::Deposed));
        s.set_paused(true);
        assert_eq!(s.wants_read(), None);
    }
}
