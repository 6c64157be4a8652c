//! The role loop's decisions as a state machine with time passed in: when to acquire,
//! renew or release, when a freshly acquired lease may be used, and when the holder stops
//! trusting its lease. No I/O and no clock: [`crate::Keeper`] makes the calls it asks for
//! and runs its timers; the simulation (`fix-sim`) drives it on simulated time.
//!
//! The rules:
//! - A held lease is trusted until its last acquire or renew was *sent* + TTL − margin
//!   ([`Holder`]); at that instant the role is Standby, even while a renew is still on its
//!   way (the caller abandons it).
//! - A holder renews every `renew_interval`, or at once when less than that is left.
//! - An acquire that took so long that less than a renew interval is left (or none) is
//!   renewed (up to [`CONFIRM_ATTEMPTS`] times) before anyone is told it leads; if that
//!   fails the lease is released and the instance stays standby.
//! - A step-down releases the lease and keeps the instance from contending for a pause.
//! - Only an eligible instance contends (a standby whose journal has not caught up must
//!   not take over); a held lease is renewed regardless.
//! - A standby looks again when the store says the watch it is in ends (not a renew
//!   interval later), and at once when told the leader looks gone ([`RoleMachine::look_now`]:
//!   its replication stream broke). Looking sooner only reads sooner: the store's watch
//!   rule alone decides when the lease may be taken.

use crate::holder::{Holder, LeaseConfig};
use crate::store::Grant;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many renews confirm a lease acquired too slowly to use at once.
pub const CONFIRM_ATTEMPTS: usize = 3;

/// A call the machine asks the caller to make to the lease store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCall {
    /// Take the lease (sent now).
    Acquire,
    /// Extend this grant (sent now).
    Renew(Grant),
    /// Give this grant up.
    Release(Grant),
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// The store granted (or, for a renew, extended) the lease.
    Granted(Grant),
    /// The store refused: someone else holds it (acquire), or it is no longer ours
    /// (renew).
    Refused,
    /// No answer: an error or a timeout.
    Failed(String),
}

/// What the caller is to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// The epoch while leader, `None` when standby.
    pub leading: Option<u64>,
    /// While leader: until when the lease is trusted.
    pub valid_until: Option<Instant>,
    /// Why.
    pub reason: String,
    /// How long the call that led here took.
    pub took: Option<Duration>,
}

#[derive(Debug, Clone)]
enum InFlight {
    Acquire { sent: Instant },
    Renew { sent: Instant },
    Confirm { sent: Instant, left: usize },
    Release,
}

/// The role loop of one instance.
#[derive(Debug)]
pub struct RoleMachine {
    cfg: LeaseConfig,
    held: Option<Holder>,
    /// A lease acquired too slowly to use yet, to be confirmed by a renew, with the
    /// attempts left.
    confirming: Option<(Holder, usize)>,
    in_flight: Option<InFlight>,
    /// A release to make once nothing is in flight.
    release: Option<Grant>,
    eligible: bool,
    paused_until: Option<Instant>,
    next_at: Option<Instant>,
    /// Told to look now while an acquire was in flight: look again once it is answered
    /// (it may have read the holder's beat before the holder's last write).
    look_again: bool,
    changes: VecDeque<RoleChange>,
}

impl RoleMachine {
    /// A standby that contends while `eligible`.
    pub fn new(cfg: LeaseConfig, eligible: bool) -> Self {
        Self {
            cfg,
            held: None,
            confirming: None,
            in_flight: None,
            release: None,
            eligible,
            paused_until: None,
            next_at: None,
            look_again: false,
            changes: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Whether this instance may contend (a held lease is renewed regardless).
    pub fn set_eligible(&mut self, eligible: bool) {
        self.eligible = eligible;
    }

    /// The held lease, while leader.
    pub fn held(&self) -> Option<&Holder> {
        self.held.as_ref()
    }

    /// The epoch this instance may act on at `now`: only while the lease is trusted.
    pub fn leading(&self, now: Instant) -> Option<u64> {
        self.held
            .as_ref()
            .filter(|h| h.is_valid(now))
            .map(|h| h.grant.epoch)
    }

    /// The next role change to publish.
    pub fn poll_change(&mut self) -> Option<RoleChange> {
        self.changes.pop_front()
    }

    /// When the machine next has something to do (a call, or the deadline), if it is
    /// not waiting for an answer only. A standby that may not contend (not eligible)
    /// has nothing to do until that changes; a paused one, until its pause ends.
    pub fn next_wake(&self) -> Option<Instant> {
        let deadline = self.held.as_ref().map(|h| h.valid_until);
        let calls = self.held.is_some()
            || self.confirming.is_some()
            || self.release.is_some()
            || self.eligible;
        let call = if self.in_flight.is_some() || !calls {
            None
        } else {
            self.next_at
                .map(|t| self.paused_until.map_or(t, |p| t.max(p)))
        };
        match (deadline, call) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passes: a lease past its deadline is no longer trusted (a renew still on its
    /// way is abandoned: its answer will be ignored).
    pub fn tick(&mut self, now: Instant) {
        if self.held.as_ref().is_some_and(|h| !h.is_valid(now)) {
            let reason = if matches!(self.in_flight, Some(InFlight::Renew { .. })) {
                "local deadline passed while renewing (lease store unresponsive)"
            } else {
                "local deadline passed before the renew"
            };
            self.demote(reason.into(), None);
            if matches!(self.in_flight, Some(InFlight::Renew { .. })) {
                self.in_flight = None;
            }
            // Contend again an interval later, not at once (as a refused renew does).
            self.next_at = Some(now + self.cfg.renew_interval);
        }
    }

    fn demote(&mut self, reason: String, took: Option<Duration>) {
        self.held = None;
        self.changes.push_back(RoleChange {
            leading: None,
            valid_until: None,
            reason,
            took,
        });
    }

    fn lead(&mut self, h: Holder, reason: String, took: Option<Duration>, now: Instant) {
        self.next_at = Some(next_renew(&h, self.cfg.renew_interval, now));
        self.changes.push_back(RoleChange {
            leading: Some(h.grant.epoch),
            valid_until: Some(h.valid_until),
            reason,
            took,
        });
        self.held = Some(h);
    }

    /// The call to make now, if any; it counts as sent at `now`.
    pub fn poll_call(&mut self, now: Instant) -> Option<LeaseCall> {
        self.tick(now);
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(grant) = self.release.take() {
            self.in_flight = Some(InFlight::Release);
            return Some(LeaseCall::Release(grant));
        }
        if let Some((h, left)) = &self.confirming {
            let call = LeaseCall::Renew(h.grant.clone());
            self.in_flight = Some(InFlight::Confirm {
                sent: now,
                left: *left,
            });
            return Some(call);
        }
        if self.next_at.is_some_and(|t| now < t) {
            return None;
        }
        if let Some(h) = &self.held {
            self.in_flight = Some(InFlight::Renew { sent: now });
            return Some(LeaseCall::Renew(h.grant.clone()));
        }
        let paused = self.paused_until.is_some_and(|t| now < t);
        if self.eligible && !paused {
            self.in_flight = Some(InFlight::Acquire { sent: now });
            return Some(LeaseCall::Acquire);
        }
        None
    }

    /// The store answered the call last asked for, at `now`. `retry_in` after a refused
    /// acquire: when to look again (the caller may know the holder's expiry).
    pub fn handle_result(&mut self, now: Instant, result: CallResult, retry_in: Option<Duration>) {
        let Some(call) = self.in_flight.take() else {
            return;
        };
        let interval = self.cfg.renew_interval;
        match (call, result) {
            (InFlight::Release, _) => {}
            (InFlight::Acquire { sent }, CallResult::Granted(grant)) => {
                let h = self.holder(grant, sent);
                self.confirm(h, CONFIRM_ATTEMPTS, now, now - sent);
            }
            (InFlight::Acquire { .. }, CallResult::Refused) => {
                let wait = retry_in.unwrap_or(interval).min(interval);
                self.next_at = Some(if std::mem::take(&mut self.look_again) {
                    now
                } else {
                    now + wait
                });
            }
            (InFlight::Acquire { .. }, CallResult::Failed(_)) => {
                self.look_again = false;
                self.next_at = Some(now + interval);
            }
            (InFlight::Confirm { sent, left }, CallResult::Granted(grant)) => {
                let h = self.holder(grant, sent);
                self.confirm(h, left, now, now - sent);
            }
            (InFlight::Confirm { .. }, CallResult::Refused) => {
                self.confirming = None;
                self.not_used(
                    "the lease was taken over while confirming a slow acquire".into(),
                    now,
                );
            }
            (InFlight::Confirm { .. }, CallResult::Failed(e)) => {
                if let Some((h, _)) = self.confirming.take() {
                    self.release = Some(h.grant);
                }
                self.not_used(
                    format!(
                        "acquired the lease too slowly to trust, and confirming it failed: {e}"
                    ),
                    now,
                );
            }
            (InFlight::Renew { sent }, CallResult::Granted(grant)) => {
                if self.held.is_some() {
                    let h = self.holder(grant, sent);
                    self.lead(h, "renewed".into(), Some(now - sent), now);
                }
            }
            (InFlight::Renew { .. }, CallResult::Refused) => {
                if self.held.is_some() {
                    self.demote("the lease was taken over (renew refused)".into(), None);
                }
                self.next_at = Some(now + interval);
            }
            (InFlight::Renew { .. }, CallResult::Failed(e)) => match &self.held {
                Some(h) if h.is_valid(now) => {
                    self.next_at = Some(next_renew(h, interval, now));
                }
                Some(_) => self.demote(
                    format!("could not renew before the local deadline: {e}"),
                    None,
                ),
                None => {}
            },
        }
    }

    fn holder(&self, grant: Grant, sent: Instant) -> Holder {
        Holder {
            grant,
            valid_until: sent + self.cfg.trust_window(),
        }
    }

    /// Uses `h` if enough of its trust window is left, else renews it first (while
    /// attempts are `left`), else gives it back.
    fn confirm(&mut self, h: Holder, left: usize, now: Instant, took: Duration) {
        let roomy = h.valid_until.saturating_duration_since(now) > self.cfg.renew_interval;
        if !roomy && left > 0 {
            // A conditional renew is safe whatever the local clock says: it fails if
            // anyone took the lease meanwhile. So even a lease whose window has passed
            // (an acquire retried through a store outage) is confirmed, not dropped.
            self.confirming = Some((h, left - 1));
            return;
        }
        self.confirming = None;
        // Enough window left; or renewed as often as allowed and still short of a renew
        // interval but valid: used all the same (it is renewed at once), the store being
        // merely slow.
        if roomy || h.is_valid(now) {
            let epoch = h.grant.epoch;
            self.lead(
                h,
                format!("acquired the lease with epoch {epoch}"),
                Some(took),
                now,
            );
            return;
        }
        self.release = Some(h.grant);
        self.not_used(
            format!(
                "the lease store answers slower than the trust window ({:?}) allows",
                self.cfg.trust_window()
            ),
            now,
        );
    }

    fn not_used(&mut self, reason: String, now: Instant) {
        self.next_at = Some(now + self.cfg.renew_interval);
        self.changes.push_back(RoleChange {
            leading: None,
            valid_until: None,
            reason,
            took: None,
        });
    }

    /// The leader looks gone (a standby's replication stream from it broke, or its
    /// address refused): contend at once instead of at the next interval, so that the
    /// watch of its last beat starts as early as possible. Only the reading comes sooner;
    /// the store still takes the lease only after that beat stood unchanged for a TTL.
    /// Ignored while this instance holds, confirms or has stepped down.
    pub fn look_now(&mut self, now: Instant) {
        let paused = self.paused_until.is_some_and(|t| now < t);
        if self.held.is_some() || self.confirming.is_some() || paused {
            return;
        }
        match self.in_flight {
            Some(InFlight::Acquire { .. }) => self.look_again = true,
            Some(_) => {}
            None => self.next_at = Some(self.next_at.map_or(now, |t| t.min(now))),
        }
    }

    /// Gives the lease up (the release is the next call) and does not contend again for
    /// `pause`.
    pub fn step_down(&mut self, now: Instant, pause: Duration) {
        if let Some(h) = self.held.take() {
            self.changes.push_back(RoleChange {
                leading: None,
                valid_until: None,
                reason: "stepping down on request".into(),
                took: None,
            });
            self.release = Some(h.grant);
            if matches!(self.in_flight, Some(InFlight::Renew { .. })) {
                self.in_flight = None;
            }
        }
        self.paused_until = Some(now + pause);
        self.next_at = None;
    }
}

/// When to renew `h` next: a renew interval from now, or at once when less than that is
/// left of its trust window (an acquire or renew that took long leaves little of it;
/// waiting the full interval would let the deadline pass with the lease still good in the
/// store).
pub fn next_renew(h: &Holder, renew_interval: Duration, now: Instant) -> Instant {
    if h.valid_until.saturating_duration_since(now) <= renew_interval {
        now
    } else {
        (now + renew_interval).min(h.valid_until)
    }
}

#[cfg(test)]
mod tests;
