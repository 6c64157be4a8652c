//! The in-sync set of `replicated` durability, as a state machine with time passed in
//! (no I/O: the engine's `replication::in_sync_task` moves its decisions to the lease store).
//!
//! The rule (Kafka's in-sync replicas, with the lease store as the controller):
//! - **Acknowledgement.** A record counts as durable (the session may act on it and
//!   answer) once every instance in the in-sync set has acknowledged it. The leader is
//!   always a member.
//! - **Election.** The lease store refuses the lease to an instance outside the recorded
//!   set (`fix_lease::LeaseStore::acquire`).
//! - **Shrinking.** A member that keeps a record waiting longer than `standby_wait` is
//!   removed, but only once the smaller set is recorded in the lease store by a write
//!   conditional on this leader's epoch: until that write lands, its acknowledgement is
//!   still required. So a member that was dropped can no longer be elected before the
//!   leader answers anything it lacks. With [`OnStandbyLoss::Halt`] nothing is ever
//!   removed and, with no other member, nothing counts as durable.
//! - **Growing.** A streaming standby close behind is required from one instant on (so
//!   nothing later counts as durable without it); once it has acknowledged everything
//!   that was durable at that instant, whatever this leader answered alone before, it is
//!   recorded. A joiner that stalls is dropped again without a write (it was never
//!   recorded).
//! - **Takeover.** A new leader records the set `{itself}` before anything counts as
//!   durable under its epoch; the others rejoin as they catch up.
//!
//! Together: every acknowledged record is on every instance that may be elected next, so
//! it survives the loss of any one instance while the set has two members or more.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// What the leader does when an in-sync standby stops acknowledging
/// (`[engine.replication] on_standby_loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStandbyLoss {
    /// Record the smaller set and go on (availability; the standby can no longer lead
    /// until it has caught up).
    #[default]
    Shrink,
    /// Keep waiting: nothing counts as durable without a second copy.
    Halt,
}

/// The set as the lease store holds it: members and the version of the write that
/// recorded them (no members: no record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The members.
    pub members: BTreeSet<String>,
    /// The recording write's version.
    pub version: u64,
}

/// A change of the recorded set the leader wants written to the lease store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The epoch it must be written under.
    pub epoch: u64,
    /// The record the store must still hold for the write to apply (`None`: any, for
    /// the takeover record, which only ever narrows the set to this instance).
    pub expected: Option<Stored>,
    /// The new record (this instance included; no members: remove the record). Its
    /// version is unique and growing within the term, so a write that lands late is
    /// refused once anything else was recorded.
    pub new: Stored,
}

/// What the leader asks of the lease store next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this change.
    Record(Record),
    /// Read the stored set back: a write's outcome is unknown (it timed out, failed, or
    /// was refused), and until it is known its members stay required.
    ReadBack {
        /// The epoch this instance leads with.
        epoch: u64,
    },
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The store holds the new set.
    Recorded,
    /// The store refused it (deposed, or the stored set was not the one expected).
    Refused,
    /// No answer (an error or a timeout): it may yet have landed.
    Unknown,
}

/// What one standby has done in this epoch.
#[derive(Debug, Clone, Default)]
struct Standby {
    /// The highest stream position it acknowledged as durable.
    acked: u64,
    /// Open connections from it.
    connections: u32,
    /// It was sent everything durable here at least once over an open connection.
    streaming: bool,
    /// It may join the set (a standby of another region may not under
    /// `cross_region = "async"`: messages do not wait for it).
    joinable: bool,
}

/// The in-sync set as this instance sees it.
#[derive(Debug)]
pub struct InSyncSet {
    me: String,
    policy: OnStandbyLoss,
    wait: Duration,
    /// Whether the set is kept at all (`replicated`); otherwise the leader clears any
    /// recorded set once per epoch and counts nothing against it.
    enforce: bool,
    /// The epoch this instance leads with.
    leading: Option<u64>,
    /// The set recorded in the lease store under this epoch (`None` until the first write
    /// of the epoch landed).
    recorded: Option<BTreeSet<String>>,
    /// The version of the recorded write.
    recorded_version: u64,
    /// The version of the next write.
    next_version: u64,
    /// A write with an unknown outcome may still land on the record now stored: record
    /// it again under a new version first, so that it never can.
    bump: bool,
    /// The standbys whose acknowledgement a record needs (a superset of the recorded
    /// members other than this instance while a change is being written).
    required: BTreeSet<String>,
    standbys: BTreeMap<String, Standby>,
    /// Standbys required but not yet recorded, with the durable position they must
    /// acknowledge before they are.
    joining: BTreeMap<String, u64>,
    /// Standbys dropped for lagging, with the position they lagged behind: they may
    /// start joining again only once they have acknowledged it.
    dropped: BTreeMap<String, u64>,
    /// Durable positions here with when they were seen, oldest first, from the oldest not
    /// yet acknowledged by every required standby.
    durable: VecDeque<(Instant, u64)>,
    /// A change being written.
    writing: Option<Record>,
    /// A change whose outcome is not known: read the store back before anything else.
    unsure: Option<Record>,
    /// After a failed write: not before then.
    retry_at: Option<Instant>,
    /// Counts of changes recorded since start.
    shrinks: u64,
    expands: u64,
}

/// What `/readyz`, `/replication` and the metrics show.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct InSyncView {
    /// The set recorded in the lease store under this leader's epoch.
    pub recorded: Option<Vec<String>>,
    /// The standbys whose acknowledgement every record needs now.
    pub required: Vec<String>,
    /// `shrink` or `halt`.
    pub on_standby_loss: OnStandbyLoss,
    /// Milliseconds the oldest record not yet acknowledged by every required standby has
    /// waited (0 when none waits).
    pub oldest_wait_ms: u64,
    /// Halted: records wait longer than `standby_wait` and the policy keeps waiting.
    pub halted: bool,
    /// Members removed since start.
    pub shrinks: u64,
    /// Members added since start.
    pub expands: u64,
}

impl InSyncSet {
    /// The set of instance `me`; `enforce` is false where durability does not wait for
    /// standbys (the leader then only clears a set left by an earlier configuration).
    pub fn new(me: &str, policy: OnStandbyLoss, wait: Duration, enforce: bool) -> Self {
        Self {
            me: me.to_string(),
            policy,
            wait,
            enforce,
            leading: None,
            recorded: None,
            recorded_version: 0,
            next_version: 0,
            bump: false,
            required: BTreeSet::new(),
            standbys: BTreeMap::new(),
            joining: BTreeMap::new(),
            dropped: BTreeMap::new(),
            durable: VecDeque::new(),
            writing: None,
            unsure: None,
            retry_at: None,
            shrinks: 0,
            expands: 0,
        }
    }

    /// This instance leads with `epoch` (a new term: everything starts over but the open
    /// connections, which the term's standbys may already have made).
    pub fn lead(&mut self, epoch: u64) {
        if self.leading == Some(epoch) {
            return;
        }
        self.end_term();
        self.leading = Some(epoch);
        // Unique across terms too: epochs only grow.
        self.next_version = epoch << 24;
    }

    /// This instance no longer leads.
    pub fn step_down(&mut self) {
        self.end_term();
    }

    fn end_term(&mut self) {
        self.leading = None;
        self.recorded = None;
        self.bump = false;
        self.required.clear();
        self.joining.clear();
        self.dropped.clear();
        // A standby connected now already serves the new term (the source registers a
        // connection only under the epoch it leads with, and ends it when that changes):
        // what it acknowledged stands, even if it arrived before this call.
        for s in self.standbys.values_mut().filter(|s| s.connections == 0) {
            s.acked = 0;
            s.streaming = false;
        }
        self.durable.clear();
        self.writing = None;
        self.unsure = None;
        self.retry_at = None;
    }

    /// Whether the set is kept (`replicated` durability).
    pub fn enforced(&self) -> bool {
        self.enforce
    }

    /// The epoch this instance leads with.
    pub fn leading(&self) -> Option<u64> {
        self.leading
    }

    /// A standby named `name` connected with its journal ending at `from`. What it
    /// acknowledged before counts only up to there (a rebuilt disk holds less), and
    /// `from` itself counts for nothing: it is where the journal ends, not what is
    /// durable (a standby whose disk stalls reconnects with records it has not synced).
    /// `joinable` unless messages must not wait for it (another region's standby under
    /// `cross_region = "async"`).
    pub fn connected(&mut self, name: &str, joinable: bool, from: u64) {
        let s = self.standbys.entry(name.to_string()).or_default();
        s.connections += 1;
        s.joinable = joinable;
        s.acked = s.acked.min(from);
    }

    /// A connection from `name` ended.
    pub fn disconnected(&mut self, name: &str) {
        if let Some(s) = self.standbys.get_mut(name) {
            s.connections = s.connections.saturating_sub(1);
            if s.connections == 0 {
                s.streaming = false;
            }
        }
    }

    /// `name` acknowledged `position` as durable; `streaming` once it has been sent
    /// everything durable here.
    pub fn acked(&mut self, name: &str, position: u64, streaming: bool) {
        let s = self.standbys.entry(name.to_string()).or_default();
        s.acked = s.acked.max(position);
        s.streaming |= streaming && s.connections > 0;
        self.prune();
    }

    /// The journal here is durable up to `position` at `now`.
    pub fn durable(&mut self, now: Instant, position: u64) {
        if self.durable.back().is_none_or(|&(_, p)| p < position) {
            self.durable.push_back((now, position));
        }
        self.prune();
    }

    /// [`InSyncSet::committed`] for a record appended under `epoch`: 0 unless this set
    /// follows that very term (the task may lag behind a lose-and-regain of the lease).
    pub fn committed_for(&self, epoch: Option<u64>) -> u64 {
        if epoch.is_none() || self.leading != epoch {
            return 0;
        }
        self.committed()
    }

    /// The highest stream position every required member has acknowledged: records up to
    /// there (and durable here) may be acted on. 0 while nothing may be.
    pub fn committed(&self) -> u64 {
        if self.leading.is_none() {
            return 0;
        }
        if !self.enforce {
            return u64::MAX;
        }
        if self.recorded.is_none() {
            return 0;
        }
        let others = self
            .required
            .iter()
            .map(|n| self.standbys.get(n).map_or(0, |s| s.acked))
            .min();
        match (others, self.policy) {
            (Some(p), _) => p,
            (None, OnStandbyLoss::Shrink) => u64::MAX,
            (None, OnStandbyLoss::Halt) => 0,
        }
    }

    /// Whether the set recorded in the lease store names another instance than this
    /// one: only a recorded member may be elected, so only then does a record that every
    /// required member holds survive the loss of this instance's machine. A standby that
    /// is joining is required but not recorded: under `replicated-written` the leader
    /// then still syncs before it answers.
    pub fn recorded_with_others(&self) -> bool {
        self.recorded
            .as_ref()
            .is_some_and(|r| r.iter().any(|m| *m != self.me))
    }

    fn prune(&mut self) {
        let committed = self.committed();
        while self.durable.front().is_some_and(|&(_, p)| p <= committed) {
            self.durable.pop_front();
        }
    }

    /// How long the oldest record not acknowledged by every required member has waited.
    fn oldest_wait(&self, now: Instant) -> Duration {
        self.durable
            .front()
            .map_or(Duration::ZERO, |&(t, _)| now.saturating_duration_since(t))
    }

    /// What to ask of the lease store next, if anything. `durable_now` is the journal's
    /// durable position read at this instant (what this leader may already have answered
    /// alone).
    pub fn poll(&mut self, now: Instant, durable_now: u64) -> Option<Step> {
        let epoch = self.leading?;
        if self.writing.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        if self.unsure.is_some() {
            return Some(Step::ReadBack { epoch });
        }
        let stored = |members: &BTreeSet<String>, version| Stored {
            members: members.clone(),
            version,
        };
        let (expected, members) = if !self.enforce {
            // Clear whatever an earlier configuration recorded, once per term.
            (None, self.recorded.is_none().then(BTreeSet::new)?)
        } else if let Some(recorded) = self.recorded.clone() {
            let members = if self.bump {
                recorded.clone()
            } else {
                self.shrink(now, &recorded).or_else(|| {
                    self.start_joining(now, durable_now, &recorded);
                    self.joined(&recorded)
                })?
            };
            (Some(stored(&recorded, self.recorded_version)), members)
        } else {
            (None, BTreeSet::from([self.me.clone()]))
        };
        let record = Record {
            epoch,
            expected,
            new: stored(&members, self.next_version),
        };
        self.next_version += 1;
        self.writing = Some(record.clone());
        Some(Step::Record(record))
    }

    /// Members that kept the oldest waiting record past `standby_wait`: joiners are
    /// dropped at once (never recorded); recorded ones are removed by the returned set.
    /// With `halt` only joiners are dropped.
    fn shrink(&mut self, now: Instant, recorded: &BTreeSet<String>) -> Option<BTreeSet<String>> {
        if self.oldest_wait(now) < self.wait {
            return None;
        }
        let &(_, oldest) = self.durable.front()?;
        let laggards: BTreeSet<String> = self
            .required
            .iter()
            .filter(|n| self.standbys.get(*n).map_or(0, |s| s.acked) < oldest)
            .cloned()
            .collect();
        for name in &laggards {
            self.dropped.insert(name.clone(), oldest);
            if self.joining.remove(name).is_some() {
                self.required.remove(name);
            }
        }
        self.prune();
        if self.policy == OnStandbyLoss::Halt {
            return None;
        }
        let kept: BTreeSet<String> = recorded
            .iter()
            .filter(|m| !laggards.contains(*m))
            .cloned()
            .collect();
        (kept.len() < recorded.len()).then_some(kept)
    }

    /// Requires the acknowledgement of a streaming standby close behind from now on.
    fn start_joining(&mut self, now: Instant, durable_now: u64, recorded: &BTreeSet<String>) {
        let close = durable_now.saturating_sub(crate::CHUNK as u64);
        let joiner = self.standbys.iter().find_map(|(name, s)| {
            (s.connections > 0
                && s.joinable
                && s.streaming
                && s.acked >= close
                && self
                    .dropped
                    .get(name)
                    .is_none_or(|&lagged| s.acked >= lagged)
                && !recorded.contains(name)
                && !self.required.contains(name)
                && *name != self.me)
                .then(|| name.clone())
        });
        if let Some(name) = joiner {
            self.required.insert(name.clone());
            self.joining.insert(name, durable_now);
            // What it lacks waits from now on (and counts towards dropping it again).
            self.durable(now, durable_now);
        }
    }

    /// A joiner that now holds everything durable when it started joining: the set to
    /// record with it.
    fn joined(&self, recorded: &BTreeSet<String>) -> Option<BTreeSet<String>> {
        let name = self.joining.iter().find_map(|(name, &target)| {
            (self.standbys.get(name).map_or(0, |s| s.acked) >= target).then(|| name.clone())
        })?;
        let mut members = recorded.clone();
        members.insert(name);
        Some(members)
    }

    /// The write of `record` ended.
    pub fn written(&mut self, record: &Record, outcome: Written, now: Instant) {
        if self.writing.as_ref() != Some(record) {
            return;
        }
        self.writing = None;
        if self.leading != Some(record.epoch) {
            return;
        }
        match outcome {
            Written::Recorded => self.now_recorded(&record.new),
            Written::Refused | Written::Unknown => {
                // It may have landed (or land later): its members stay required until
                // the store is read back.
                self.required.extend(
                    record
                        .new
                        .members
                        .iter()
                        .filter(|m| **m != self.me)
                        .cloned(),
                );
                self.unsure = Some(record.clone());
                let pause = match outcome {
                    Written::Unknown => Duration::from_millis(100),
                    _ => Duration::from_millis(20),
                };
                self.retry_at = Some(now + pause);
            }
        }
    }

    /// The store read back after an unsure write: `Ok(Some(record))` the row is still
    /// this term's and holds `record` (`None`: no record); `Ok(None)` the row is not this
    /// term's (deposed: the role change ends the term); `Err(())` the read failed
    /// (retried).
    #[allow(clippy::option_option)]
    pub fn read_back(
        &mut self,
        epoch: u64,
        stored: Result<Option<Option<Stored>>, ()>,
        now: Instant,
    ) {
        if self.leading != Some(epoch) || self.unsure.is_none() {
            return;
        }
        let stored = match stored {
            Err(()) => {
                self.retry_at = Some(now + Duration::from_millis(100));
                return;
            }
            Ok(None) => {
                self.retry_at = Some(now + self.wait);
                return;
            }
            Ok(Some(stored)) => stored.unwrap_or_default(),
        };
        let Some(unsure) = self.unsure.take() else {
            return;
        };
        if stored.members.is_empty() && self.enforce {
            // This term's record is not there (a takeover record that did not land):
            // nothing counts as durable until it is written again.
            self.recorded = None;
            return;
        }
        if !stored.members.is_empty() && stored.version == unsure.new.version {
            self.now_recorded(&stored);
            return;
        }
        // Not landed. If the store still holds what it expected it may land later:
        // keep its members required and record the stored set again first.
        let may_land = unsure.expected.as_ref() == Some(&stored);
        if stored.members.contains(&self.me) || !self.enforce {
            let keep = self.required.clone();
            self.now_recorded(&stored);
            if may_land {
                self.required.extend(keep);
                self.bump = true;
            }
        } else {
            self.recorded = None;
        }
    }

    /// The store holds `record`: its members (and the joiners) are required from now on.
    fn now_recorded(&mut self, record: &Stored) {
        let members = &record.members;
        if let Some(old) = &self.recorded {
            self.shrinks += old.difference(members).count() as u64;
            self.expands += members.difference(old).count() as u64;
        }
        // Joiners not recorded yet stay required.
        self.joining.retain(|n, _| !members.contains(n));
        self.required = members
            .iter()
            .filter(|m| **m != self.me)
            .chain(self.joining.keys())
            .cloned()
            .collect();
        self.recorded = Some(members.clone());
        self.recorded_version = record.version;
        self.bump = false;
        self.prune();
    }

    /// The view for status endpoints.
    pub fn view(&self, now: Instant) -> InSyncView {
        let oldest = self.oldest_wait(now);
        InSyncView {
            recorded: self.recorded.as_ref().map(|r| r.iter().cloned().collect()),
            required: self.required.iter().cloned().collect(),
            on_standby_loss: self.policy,
            oldest_wait_ms: oldest.as_millis() as u64,
            halted: self.enforce
                && self.leading.is_some()
                && self.policy == OnStandbyLoss::Halt
                && oldest >= self.wait,
            shrinks: self.shrinks,
            expands: self.expands,
        }
    }
}

#[cfg(test)]
mod tests;
