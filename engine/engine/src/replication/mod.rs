//! Journal replication over TCP: the leader serves its record stream to standbys
//! ([`source`]), a standby follows whichever peer leads ([`follower`]). Frames are
//! `fix_store::replication`'s (epoch, CRC, acknowledgements); the standby's journal stays a
//! byte-for-byte copy of the leader's, so a promoted standby has the same sequence
//! numbers and resend store.
//!
//! State both sides share with the rest of the engine lives in [`Replication`]: what each
//! connected standby has acknowledged, the in-sync set ([`in_sync`]; the leader's
//! `replicated` durability waits on it), whether sending is paused, and the follower's
//! view of its leader.

pub mod follower;
mod frames;
pub use fix_cluster::in_sync;
pub mod in_sync_task;
pub mod peer_auth;
pub mod source;
pub mod sql;

use in_sync::{InSyncSet, InSyncView, Record, Step, Stored, Written};

pub(crate) use frames::{send, FrameReader};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The largest frame a standby accepts from its leader (Records carry at most
/// [`CHUNK`] of the stream).
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// The largest frame a leader accepts from a standby (Hello with its epoch history, Ack,
/// Refused): a peer cannot make the leader buffer more than this.
pub(crate) const MAX_STANDBY_FRAME: usize = 1 << 20;
pub(crate) use fix_cluster::CHUNK;
/// How often an idle leader tells its standbys it has nothing more (also a keepalive).
pub(crate) const IDLE_TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// A standby with records outstanding that acknowledges nothing for this long is dropped
/// (hung or cut off), so `replicated` durability does not wait on it forever.
pub(crate) const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

/// The standby id a follower sends in its Hello: its name, and after a NUL its region
/// (a leader that knows no regions sees a name with a NUL in it, and nothing breaks).
pub(crate) fn hello_id(name: &str, region: Option<&str>) -> String {
    match region {
        Some(r) => format!("{name}\0{r}"),
        None => name.to_string(),
    }
}

/// The name and the region (when it gave one) in a follower's Hello id.
pub(crate) fn split_hello_id(hello: &str) -> (&str, Option<&str>) {
    match hello.split_once('\0') {
        Some((name, region)) => (name, Some(region)),
        None => (hello, None),
    }
}

/// One standby as the leader sees it. (Every field has a default, so a reader reads an
/// older engine's answer too.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StandbyView {
    /// The name it gave in its Hello.
    pub name: String,
    /// Its region, when it gave one.
    pub region: Option<String>,
    /// In another region than this leader's (cross-region replication).
    pub remote: bool,
    /// Its address.
    pub peer: String,
    /// Stream position sent to it.
    pub sent: u64,
    /// Stream position it has made durable.
    pub acked: u64,
    /// It has been sent everything durable here at least once: only then does it count
    /// for `replicated` durability (a standby catching up a backlog does not hold the
    /// leader back; until one streams, the leader is alone).
    pub streaming: bool,
}

/// Replication paused by an admin call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Paused {
    /// To every standby.
    pub all: bool,
    /// To these standbys (by the name in their Hello).
    pub standbys: std::collections::BTreeSet<String>,
}

impl Paused {
    /// Whether sending to `standby` is paused.
    pub fn holds(&self, standby: &str) -> bool {
        self.all || self.standbys.contains(standby)
    }
}

/// What a standby knows of its leader.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FollowerView {
    /// The leader it follows now, if connected.
    pub leader: Option<String>,
    /// The leader's epoch.
    pub epoch: u64,
    /// Its own journal end.
    pub position: u64,
    /// It has received everything the leader had durable at least once since it started
    /// (only then may it take over).
    pub caught_up: bool,
    /// The last problem, if any.
    pub last_error: Option<String>,
}

/// Replication status shared by the engine's tasks.
pub struct Replication {
    standbys: Mutex<HashMap<u64, StandbyView>>,
    /// Since when no standby has been connected (`None` while one is).
    alone_since: Mutex<Option<std::time::Instant>>,
    /// Waits for durability that went on without a standby (`replicated` degraded).
    degraded: std::sync::atomic::AtomicU64,
    /// The stretch without a standby already announced in the log.
    announced: Mutex<Option<std::time::Instant>>,
    next_id: Mutex<u64>,
    acked: watch::Sender<u64>,
    paused: watch::Sender<Paused>,
    follower: Mutex<FollowerView>,
    eligible: watch::Sender<bool>,
    /// This instance's region, and whether writes wait for a standby of another region.
    region: Mutex<(Option<String>, bool)>,
    /// The best position acknowledged by a streaming standby of another region.
    remote_acked: watch::Sender<u64>,
    /// The in-sync set (leader side).
    in_sync: Mutex<InSyncSet>,
    /// What the in-sync set lets count as durable; changes wake waiting writers.
    committed: watch::Sender<u64>,
    /// Since when no standby of another region streams (`None` while one does).
    remote_alone_since: Mutex<Option<std::time::Instant>>,
    /// When a refused replication peer was last logged.
    refusal_said: Mutex<Option<std::time::Instant>>,
    /// When a standby's stalled journal sync was last logged.
    stall_said: Mutex<Option<std::time::Instant>>,
}

/// Whether something last logged at `said` should be logged again now (at most once a
/// second); notes the time when it should.
fn due(said: &Mutex<Option<std::time::Instant>>) -> bool {
    let mut said = lock(said);
    let due = said.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
    if due {
        *said = Some(std::time::Instant::now());
    }
    due
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Replication {
    /// Whether a refused replication peer should be logged now (at most once a second).
    pub(crate) fn refusal_due(&self) -> bool {
        due(&self.refusal_said)
    }

    /// Whether a standby's stalled journal sync should be logged now (at most once a
    /// second).
    pub(crate) fn stall_due(&self) -> bool {
        due(&self.stall_said)
    }

    /// Fresh state; `eligible` says whether this instance may contend for the lease yet.
    pub fn new(eligible: bool, in_sync: InSyncSet) -> Arc<Self> {
        Arc::new(Self {
            standbys: Mutex::new(HashMap::new()),
            alone_since: Mutex::new(Some(std::time::Instant::now())),
            degraded: std::sync::atomic::AtomicU64::new(0),
            announced: Mutex::new(None),
            next_id: Mutex::new(0),
            acked: watch::channel(0).0,
            paused: watch::channel(Paused::default()).0,
            follower: Mutex::new(FollowerView::default()),
            eligible: watch::channel(eligible).0,
            region: Mutex::new((None, false)),
            remote_acked: watch::channel(0).0,
            remote_alone_since: Mutex::new(Some(std::time::Instant::now())),
            refusal_said: Mutex::new(None),
            stall_said: Mutex::new(None),
            in_sync: Mutex::new(in_sync),
            committed: watch::channel(0).0,
        })
    }

    /// Whether the recorded in-sync set names another instance than this one
    /// ([`InSyncSet::recorded_with_others`]).
    pub fn recorded_with_others(&self) -> bool {
        lock(&self.in_sync).recorded_with_others()
    }

    /// The highest stream position the in-sync set lets count as durable for a record
    /// appended under `epoch` (0 unless the set follows that term and its takeover record
    /// landed).
    pub fn committed(&self, epoch: Option<u64>) -> u64 {
        lock(&self.in_sync).committed_for(epoch)
    }

    /// Wakes on every change of [`Replication::committed`].
    pub fn committed_changes(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Changes the in-sync set and wakes writers if what counts as durable moved.
    fn with_in_sync<T>(&self, f: impl FnOnce(&mut InSyncSet) -> T) -> T {
        let (out, committed) = {
            let mut set = lock(&self.in_sync);
            let out = f(&mut set);
            (out, set.committed())
        };
        // Only a wake-up for waiting writers: they read `committed` under the lock.
        self.committed.send_if_modified(|v| {
            let changed = *v != committed;
            *v = committed;
            changed
        });
        out
    }

    /// This instance leads with `epoch` (`None`: it does not lead).
    pub(crate) fn in_sync_term(&self, epoch: Option<u64>) {
        self.with_in_sync(|s| match epoch {
            Some(e) => s.lead(e),
            None => s.step_down(),
        });
    }

    /// The journal here is durable up to `position`.
    pub(crate) fn note_durable(&self, now: std::time::Instant, position: u64) {
        self.with_in_sync(|s| s.durable(now, position));
    }

    /// What to ask of the lease store next; `durable_now` is read under the set's lock
    /// (see [`InSyncSet::poll`]).
    pub(crate) fn poll_in_sync(
        &self,
        now: std::time::Instant,
        durable_now: impl FnOnce() -> u64,
    ) -> Option<Step> {
        self.with_in_sync(|s| s.poll(now, durable_now()))
    }

    /// The lease store's answer to a change.
    pub(crate) fn in_sync_written(
        &self,
        record: &Record,
        outcome: Written,
        now: std::time::Instant,
    ) {
        self.with_in_sync(|s| s.written(record, outcome, now));
    }

    /// The set read back from the lease store (see [`InSyncSet::read_back`]).
    #[allow(clippy::option_option)]
    pub(crate) fn in_sync_read_back(
        &self,
        epoch: u64,
        stored: Result<Option<Option<Stored>>, ()>,
        now: std::time::Instant,
    ) {
        self.with_in_sync(|s| s.read_back(epoch, stored, now));
    }

    /// Whether messages wait for an in-sync set (`replicated` durability).
    pub fn in_sync_enforced(&self) -> bool {
        lock(&self.in_sync).enforced()
    }

    /// The in-sync set while leading.
    pub fn in_sync(&self) -> Option<InSyncView> {
        let set = lock(&self.in_sync);
        set.leading().map(|_| set.view(std::time::Instant::now()))
    }

    /// Sets this instance's region and whether writes wait for another region's standby.
    pub fn set_region(&self, region: Option<String>, sync: bool) {
        *lock(&self.region) = (region, sync);
    }

    /// This instance's region.
    pub fn region(&self) -> Option<String> {
        lock(&self.region).0.clone()
    }

    /// Whether writes wait for a standby of another region (`cross_region = "sync"`).
    pub fn cross_region_sync(&self) -> bool {
        lock(&self.region).1
    }

    /// The highest stream position durable on a standby of another region.
    pub fn remote_acked(&self) -> watch::Receiver<u64> {
        self.remote_acked.subscribe()
    }

    /// How long no standby of another region has streamed (`None` while one does).
    pub fn remote_alone_for(&self) -> Option<std::time::Duration> {
        lock(&self.remote_alone_since).map(|t| t.elapsed())
    }

    /// The highest stream position durable on at least one standby.
    pub fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }

    /// Whether this instance may contend for the lease (see [`FollowerView::caught_up`]).
    pub fn eligible(&self) -> watch::Receiver<bool> {
        self.eligible.subscribe()
    }

    pub(crate) fn set_eligible(&self, yes: bool) {
        self.eligible.send_if_modified(|v| {
            let changed = *v != yes;
            *v = yes;
            changed
        });
    }

    /// Stops (true) or resumes (false) sending records to the standby named `standby`,
    /// or to all of them (`None`; resuming all also resumes each one paused by name).
    pub fn set_paused(&self, standby: Option<&str>, paused: bool) {
        self.paused.send_modify(|p| match standby {
            None => {
                p.all = paused;
                if !paused {
                    p.standbys.clear();
                }
            }
            Some(name) if paused => {
                p.standbys.insert(name.to_string());
            }
            Some(name) => {
                p.standbys.remove(name);
            }
        });
        tracing::warn!(
            paused,
            standby = standby.unwrap_or("all"),
            "replication paused/resumed by an admin call"
        );
    }

    /// What is paused.
    pub fn paused(&self) -> Paused {
        self.paused.borrow().clone()
    }

    /// The connected standbys.
    pub fn standbys(&self) -> Vec<StandbyView> {
        let mut v: Vec<StandbyView> = lock(&self.standbys).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// What this instance knows of its leader while standby.
    pub fn follower(&self) -> FollowerView {
        lock(&self.follower).clone()
    }

    pub(crate) fn update_follower(&self, f: impl FnOnce(&mut FollowerView)) {
        f(&mut lock(&self.follower));
    }

    fn register(&self, hello: &str, peer: String, from: u64) -> u64 {
        let (name, region) = split_hello_id(hello);
        let mine = self.region();
        let remote = matches!((region, &mine), (Some(a), Some(b)) if a != b);
        let (name, region) = (name.to_string(), region.map(str::to_string));
        let mut n = lock(&self.next_id);
        *n += 1;
        let view = StandbyView {
            name,
            region,
            remote,
            peer,
            sent: from,
            acked: 0,
            streaming: false,
        };
        let joinable = !view.remote || self.cross_region_sync();
        // An older connection from the same standby is dead (it follows one leader over
        // one connection): it is dropped here, so that its late frames cannot raise what
        // counts as acknowledged above what the new Hello says the standby holds.
        let stale: Vec<u64> = lock(&self.standbys)
            .iter()
            .filter(|(_, v)| v.name == view.name)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            lock(&self.standbys).remove(&id);
            self.with_in_sync(|s| s.disconnected(&view.name));
        }
        self.with_in_sync(|s| s.connected(&view.name, joinable, from));
        lock(&self.standbys).insert(*n, view);
        self.publish_acked();
        *n
    }

    /// Whether stream `id` is still the standby's current one.
    fn registered(&self, id: u64) -> bool {
        lock(&self.standbys).contains_key(&id)
    }

    fn unregister(&self, id: u64) {
        if let Some(v) = lock(&self.standbys).remove(&id) {
            self.with_in_sync(|s| s.disconnected(&v.name));
        }
        self.publish_acked();
    }

    /// How long no standby has been connected (`None` while one is).
    pub fn alone_for(&self) -> Option<std::time::Duration> {
        lock(&self.alone_since).map(|t| t.elapsed())
    }

    /// Counts a write that went on without a standby (and says so the first time in a
    /// stretch without one).
    pub(crate) fn note_degraded_write(&self) {
        self.degraded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let since = *lock(&self.alone_since);
        let mut announced = lock(&self.announced);
        if since.is_some() && *announced != since {
            *announced = since;
            tracing::warn!(
                "the in-sync set is this leader alone: messages are acknowledged with one copy until a standby catches up and joins"
            );
        }
    }

    /// Writes that went on without a standby since start.
    pub fn degraded_writes(&self) -> u64 {
        self.degraded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shows what standby `id`'s stream has sent and had acknowledged.
    fn show(&self, id: u64, stream: &fix_cluster::source::StandbyStream) {
        self.update(id, |v| {
            v.sent = stream.sent();
            v.acked = stream.acked();
            v.streaming = stream.streaming();
        });
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut StandbyView)) {
        let seen = lock(&self.standbys).get_mut(&id).map(|v| {
            f(v);
            (v.name.clone(), v.acked, v.streaming)
        });
        if let Some((name, acked, streaming)) = seen {
            self.with_in_sync(|s| s.acked(&name, acked, streaming));
        }
        self.publish_acked();
    }

    /// Publishes the best position acknowledged by a streaming standby, and whether the
    /// leader is alone (no streaming standby) since when.
    fn publish_acked(&self) {
        let remote_best = {
            let standbys = lock(&self.standbys);
            standbys
                .values()
                .filter(|v| v.streaming && v.remote)
                .map(|v| v.acked)
                .max()
        };
        {
            let mut alone = lock(&self.remote_alone_since);
            match (remote_best.is_some(), *alone) {
                (true, _) => *alone = None,
                (false, None) => *alone = Some(std::time::Instant::now()),
                (false, Some(_)) => {}
            }
        }
        if let Some(best) = remote_best {
            self.remote_acked.send_if_modified(|v| {
                let changed = *v != best;
                *v = best;
                changed
            });
        }
        let (streaming, best) = {
            let standbys = lock(&self.standbys);
            let streaming: Vec<u64> = standbys
                .values()
                .filter(|v| v.streaming)
                .map(|v| v.acked)
                .collect();
            (
                !streaming.is_empty(),
                streaming.into_iter().max().unwrap_or(0),
            )
        };
        {
            let mut alone = lock(&self.alone_since);
            match (streaming, *alone) {
                (true, _) => *alone = None,
                (false, None) => *alone = Some(std::time::Instant::now()),
                (false, Some(_)) => {}
            }
        }
        self.acked.send_if_modified(|v| {
            let changed = *v != best;
            *v = best;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use in_sync::OnStandbyLoss;

    /// A standby that reconnects (its old connection half-open, say) replaces its old
    /// stream: the old one's late acknowledgements count for nothing.
    #[test]
    fn a_reconnecting_standby_replaces_its_old_stream() {
        let set = InSyncSet::new(
            "a",
            OnStandbyLoss::Shrink,
            std::time::Duration::from_secs(1),
            true,
        );
        let r = Replication::new(true, set);
        let old = r.register("b", "127.0.0.1:1".into(), 500);
        r.update(old, |v| v.acked = 500);
        let new = r.register("b", "127.0.0.1:2".into(), 100);
        assert!(!r.registered(old) && r.registered(new));
        r.update(old, |v| v.acked = 900);
        let standbys = r.standbys();
        assert_eq!(standbys.len(), 1);
        assert_eq!(
            (standbys[0].peer.as_str(), standbys[0].acked),
            ("127.0.0.1:2", 0)
        );
    }
}
