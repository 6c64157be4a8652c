//! How a contender decides, without reading any wall clock, that a holder has gone: it
//! watches the holder's *beat* (a value every holder write changes) and takes the lease
//! only after seeing the same beat for a whole TTL by its own monotonic clock, with a
//! write conditional on that beat; or at once when the holder released it.
//!
//! Why it is safe: the holder trusts its lease until its last write was *sent* + TTL −
//! margin; a contender starts watching a beat only after reading it, so after that write
//! landed; its TTL of watching therefore ends after the holder stopped trusting. Clocks
//! that step or run ahead, on any machine or on the store, change nothing; only the
//! rate of the monotonic clocks matters (the margin covers their drift).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A beat: any value that each holder write changes.
pub(crate) type Beat = (i64, i64);

/// The beats being watched, per group.
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    /// Per group: the beat, when it was first read, and the wait it was last judged with.
    watched: Mutex<HashMap<String, (Beat, Instant, Duration)>>,
}

/// What a contender may do with what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take the lease with a write conditional on this beat.
    Take(Beat),
    /// Held: wait.
    Wait,
}

impl Watcher {
    /// The verdict on `group`'s lease, read at `now` with `beat` (`released`: the
    /// holder gave it up), after watching for `ttl`.
    pub(crate) fn judge(
        &self,
        group: &str,
        beat: Beat,
        released: bool,
        ttl: Duration,
        now: Instant,
    ) -> Verdict {
        let mut watched = self.lock();
        if released {
            return Verdict::Take(beat);
        }
        match watched.get_mut(group) {
            Some((seen, since, wait)) if *seen == beat => {
                *wait = ttl;
                if now.duration_since(*since) >= ttl {
                    Verdict::Take(beat)
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                watched.insert(group.to_string(), (beat, now, ttl));
                Verdict::Wait
            }
        }
    }

    /// When the watch of `group`'s current beat ends, as last judged: a contender that
    /// looks again then (and not a renew interval later) takes over as soon as the rule
    /// allows. `None` when nothing is watched.
    pub(crate) fn watch_ends(&self, group: &str) -> Option<Instant> {
        self.lock().get(group).map(|&(_, since, wait)| since + wait)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Beat, Instant, Duration)>> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contender_takes_only_after_a_ttl_of_the_same_beat_or_a_release() {
        let w = Watcher::default();
        let ttl = Duration::from_millis(600);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(w.watch_ends("g"), None);
        assert_eq!(w.judge("g", (1, 0), false, ttl, at(0)), Verdict::Wait);
        assert_eq!(w.watch_ends("g"), Some(at(600)));
        assert_eq!(w.judge("g", (1, 0), false, ttl, at(599)), Verdict::Wait);
        // A renew (the beat moved) starts the watch again.
        assert_eq!(w.judge("g", (2, 0), false, ttl, at(599)), Verdict::Wait);
        assert_eq!(w.watch_ends("g"), Some(at(1199)));
        // A longer TTL read with the same beat (the holder's) lengthens the watch.
        assert_eq!(w.judge("g", (2, 0), false, ttl * 2, at(700)), Verdict::Wait);
        assert_eq!(w.watch_ends("g"), Some(at(1799)));
        assert_eq!(w.judge("g", (2, 0), false, ttl, at(700)), Verdict::Wait);
        assert_eq!(w.judge("g", (2, 0), false, ttl, at(1000)), Verdict::Wait);
        assert_eq!(
            w.judge("g", (2, 0), false, ttl, at(1199)),
            Verdict::Take((2, 0))
        );
        // Released: at once, whatever was watched.
        assert_eq!(
            w.judge("h", (7, 0), true, ttl, at(0)),
            Verdict::Take((7, 0))
        );
        // Groups are watched apart.
        assert_eq!(w.judge("h", (8, 0), false, ttl, at(0)), Verdict::Wait);
        assert_eq!(
            w.judge("g", (2, 0), false, ttl, at(1300)),
            Verdict::Take((2, 0))
        );
    }
}
