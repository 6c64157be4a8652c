//! One engine instance in the simulation: its journal, its role, and the failover core
//! (`fix-cluster`'s in-sync set, standby streams and follower) driven as the engine's
//! tokio tasks drive it, with the simulation's time and network.

use crate::disk::{Entry, Journal};
use crate::world::{Event, StoreAnswer, StoreCall, World, MARGIN, RENEW_EVERY, STORE_TIMEOUT, TTL};
use fix_cluster::follower::{Eligibility, FollowState};
use fix_cluster::in_sync::{InSyncSet, OnStandbyLoss, Written};
use fix_cluster::source::StandbyStream;
use fix_lease::role::{CallResult, LeaseCall, RoleMachine};
use fix_lease::{Grant, LeaseConfig};
use fix_store::replication::Frame;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A standby that keeps records outstanding without acknowledging this long is dropped
/// (ms), as the engine's `ACK_TIMEOUT`.
pub(crate) const ACK_TIMEOUT: u64 = 1000;
/// A leader silent this long is taken for gone (ms), as the follower's `SILENCE`.
pub(crate) const SILENCE: u64 = 1000;
/// An idle leader sends an empty Records frame this often (ms).
pub(crate) const IDLE_TICK: u64 = 200;
/// `standby_wait_ms` (the engine's default).
pub(crate) const STANDBY_WAIT: u64 = 1000;

/// The role the instance acts on, as `fix-lease`'s keeper publishes it: leader with an
/// epoch, trusted until a deadline (checked again before every answer, as the engine
/// checks it before every write to a socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leading {
    /// The epoch.
    pub epoch: u64,
    /// Trusted until then.
    pub valid_until: std::time::Instant,
}

/// A lease-store call waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: u64,
    pub(crate) sent: u64,
    pub(crate) call: StoreCall,
}

/// A standby's stream served by this instance.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    pub(crate) standby: String,
    pub(crate) stream: StandbyStream,
    pub(crate) last_frame: u64,
    pub(crate) last_empty: bool,
}

/// The connection to the leader this standby follows.
#[derive(Debug, Clone)]
pub(crate) struct Following {
    pub(crate) conn: u64,
    pub(crate) state: FollowState,
    pub(crate) last_heard: u64,
}

/// An answer waiting until its record counts as durable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unanswered {
    pub(crate) position: u64,
    pub(crate) entry: Entry,
}

/// One instance.
#[derive(Debug)]
pub struct Node {
    /// Its name (the lease owner and the standby id).
    pub name: String,
    pub(crate) peers: Vec<usize>,
    /// Running (not crashed).
    pub up: bool,
    /// Bumped by every crash and restart: events of an older incarnation are void.
    pub incarnation: u64,
    /// Its monotonic clock's rate against real time.
    pub clock_rate: f64,
    /// The lease's beat it has watched, since when by its own clock (ms).
    pub(crate) watching: Option<(crate::lease::Beat, u64)>,
    /// Paused (SIGSTOP) until then (ms).
    pub paused_until: u64,
    /// The journal.
    pub journal: Journal,
    /// The disk does not answer fsyncs.
    pub disk_stalled: bool,
    pub(crate) fsync_busy: bool,
    /// The role loop (`fix-lease`'s, time passed in).
    pub(crate) roles: RoleMachine,
    /// The role it acts on, as published (`None`: standby).
    pub leading: Option<Leading>,
    pub(crate) lease_call: Option<Pending>,
    pub(crate) in_sync_call: Option<Pending>,
    pub(crate) in_sync: InSyncSet,
    pub(crate) serving: BTreeMap<u64, Serving>,
    pub(crate) following: Option<Following>,
    pub(crate) eligibility: Eligibility,
    /// It may contend for the lease.
    pub eligible: bool,
    pub(crate) attempts: usize,
    pub(crate) connect_due: u64,
    pub(crate) unanswered: VecDeque<Unanswered>,
}

impl Node {
    /// Instance `index` of `count`, freshly started.
    pub fn new(index: usize, count: usize, policy: OnStandbyLoss) -> Self {
        let name = format!("e{index}");
        Node {
            in_sync: InSyncSet::new(&name, policy, Duration::from_millis(STANDBY_WAIT), true),
            name,
            peers: (0..count).filter(|&p| p != index).collect(),
            up: true,
            incarnation: 0,
            clock_rate: 1.0,
            watching: None,
            paused_until: 0,
            journal: Journal::default(),
            disk_stalled: false,
            fsync_busy: false,
            roles: RoleMachine::new(lease_config(&format!("e{index}")), false),
            leading: None,
            lease_call: None,
            in_sync_call: None,
            serving: BTreeMap::new(),
            following: None,
            eligibility: Eligibility::default(),
            eligible: false,
            attempts: 0,
            connect_due: 0,
            unanswered: VecDeque::new(),
        }
    }

    pub(crate) fn leading_at(&self, now: std::time::Instant) -> Option<u64> {
        self.leading
            .filter(|l| now < l.valid_until)
            .map(|l| l.epoch)
    }
}

/// The lease settings of every instance: the engine's defaults.
fn lease_config(name: &str) -> LeaseConfig {
    let mut cfg = LeaseConfig::new("group", name);
    cfg.ttl = Duration::from_millis(TTL);
    cfg.renew_interval = Duration::from_millis(RENEW_EVERY);
    cfg.safety_margin = Duration::from_millis(MARGIN);
    cfg
}

impl World {
    /// The instance's timers.
    pub(crate) fn tick(&mut self, i: usize) {
        let at = self.local(i);
        let n = &mut self.nodes[i];
        n.roles.set_eligible(n.eligible);
        n.roles.tick(at);
        self.apply_role_changes(i);
        self.store_timeouts(i);
        self.call_lease_store(i);
        if self.nodes[i].leading_at(at).is_some() {
            self.poll_in_sync(i);
            self.pump(i);
            self.answer(i);
        } else {
            self.follow(i);
        }
        self.sync(i);
    }

    /// Makes the call the role loop asks for, if any.
    fn call_lease_store(&mut self, i: usize) {
        let at = self.local(i);
        let n = &mut self.nodes[i];
        if n.lease_call.is_some() {
            return;
        }
        let call = match n.roles.poll_call(at) {
            Some(LeaseCall::Acquire) => {
                let local = self.local_ms(i);
                let watched = self.nodes[i]
                    .watching
                    .filter(|(_, since)| local.saturating_sub(*since) >= TTL)
                    .map(|(beat, _)| beat);
                StoreCall::Acquire { watched }
            }
            Some(LeaseCall::Renew(g)) => StoreCall::Renew { epoch: g.epoch },
            Some(LeaseCall::Release(g)) => StoreCall::Release { epoch: g.epoch },
            None => return self.apply_role_changes(i),
        };
        let id = self.call_store(i, call.clone());
        self.nodes[i].lease_call = Some(Pending {
            id,
            sent: self.now,
            call,
        });
        self.apply_role_changes(i);
    }

    /// Acts on what the role loop published: take over, stay leader, step down.
    fn apply_role_changes(&mut self, i: usize) {
        while let Some(change) = self.nodes[i].roles.poll_change() {
            match (change.leading, change.valid_until) {
                (Some(epoch), Some(valid_until)) => {
                    let leading = Leading { epoch, valid_until };
                    match self.nodes[i].leading {
                        Some(l) if l.epoch == epoch => self.nodes[i].leading = Some(leading),
                        _ => self.take_over(i, leading),
                    }
                }
                _ => self.step_down(i, &change.reason),
            }
        }
    }

    fn store_timeouts(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if n.lease_call
            .take_if(|p| now > p.sent + STORE_TIMEOUT)
            .is_some()
        {
            let at = self.local(i);
            let n = &mut self.nodes[i];
            n.roles
                .handle_result(at, CallResult::Failed("no answer".into()), None);
            self.apply_role_changes(i);
        }
        let n = &mut self.nodes[i];
        if let Some(p) = n.in_sync_call.take_if(|p| now > p.sent + STORE_TIMEOUT) {
            let at = self.local(i);
            let n = &mut self.nodes[i];
            match p.call {
                StoreCall::SetInSync(record) => n.in_sync.written(&record, Written::Unknown, at),
                StoreCall::ReadBack { epoch } => n.in_sync.read_back(epoch, Err(()), at),
                _ => {}
            }
        }
    }

    /// The store answered call `id`.
    pub(crate) fn store_answered(&mut self, i: usize, id: u64, answer: StoreAnswer) {
        let at = self.local(i);
        if self.nodes[i]
            .lease_call
            .as_ref()
            .is_some_and(|p| p.id == id)
        {
            let Some(call) = self.nodes[i].lease_call.take() else {
                return;
            };
            let grant = |epoch| Grant {
                group: "group".into(),
                owner: self.nodes[i].name.clone(),
                epoch,
                expires_at_ms: 0,
            };
            let mut retry_in = None;
            let result = match (answer, &call.call) {
                (StoreAnswer::Acquired(Ok(epoch)), _) => CallResult::Granted(grant(epoch)),
                (StoreAnswer::Acquired(Err(beat)), _) => {
                    // Watching starts once the beat is read, by this instance's clock.
                    let local = self.local_ms(i);
                    let n = &mut self.nodes[i];
                    if n.watching.is_none_or(|(seen, _)| seen != beat) {
                        n.watching = Some((beat, local));
                    }
                    // Look again when the watch ends, as the engine's keeper does.
                    retry_in = n.watching.map(|(_, since)| {
                        Duration::from_millis((since + TTL).saturating_sub(local) + 1)
                    });
                    CallResult::Refused
                }
                (StoreAnswer::Renewed(true), StoreCall::Renew { epoch }) => {
                    CallResult::Granted(grant(*epoch))
                }
                _ => CallResult::Refused,
            };
            self.nodes[i].roles.handle_result(at, result, retry_in);
            self.apply_role_changes(i);
            self.call_lease_store(i);
        } else if self.nodes[i]
            .in_sync_call
            .as_ref()
            .is_some_and(|p| p.id == id)
        {
            let Some(call) = self.nodes[i].in_sync_call.take() else {
                return;
            };
            let n = &mut self.nodes[i];
            match (call.call, answer) {
                (StoreCall::SetInSync(record), StoreAnswer::Written(ok)) => {
                    let outcome = if ok {
                        Written::Recorded
                    } else {
                        Written::Refused
                    };
                    n.in_sync.written(&record, outcome, at);
                    let members = record
                        .new
                        .members
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(",");
                    self.note(format!(
                        "{} records the in-sync set {{{members}}}: {outcome:?}",
                        self.nodes[i].name
                    ));
                }
                (StoreCall::ReadBack { epoch }, StoreAnswer::ReadBack(stored)) => {
                    n.in_sync.read_back(epoch, Ok(stored), at);
                }
                _ => {}
            }
            self.answer(i);
        }
    }

    /// Starts an fsync when there is something to sync and the disk answers.
    pub(crate) fn sync(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.fsync_busy || n.disk_stalled || n.journal.end() <= n.journal.durable() {
            return;
        }
        let upto = n.journal.end();
        let incarnation = n.incarnation;
        let latency = self.rng.u64(0..3);
        let fails = self.opts.faults && self.rng.u32(0..20_000) == 0;
        self.nodes[i].fsync_busy = true;
        self.at(
            latency,
            Event::Fsync {
                node: i,
                incarnation,
                upto,
                fails,
            },
        );
    }

    /// An fsync completed.
    pub(crate) fn fsync_done(&mut self, i: usize, upto: u64, fails: bool) {
        self.nodes[i].fsync_busy = false;
        if fails {
            // The engine's journal fails closed: the process stops and is restarted.
            let name = self.nodes[i].name.clone();
            self.note(format!("{name}'s fsync fails: it stops and is restarted"));
            self.crash(i);
            let back = self.rng.u64(200..2000);
            self.at(back, Event::Restart(i));
            return;
        }
        let at = self.local(i);
        let n = &mut self.nodes[i];
        n.journal.synced(upto);
        let durable = n.journal.durable();
        if n.leading_at(at).is_some() {
            n.in_sync.durable(at, durable);
            self.pump(i);
            self.answer(i);
        } else if let Some(f) = n.following.as_mut() {
            if let Some(ack) = f.state.handle_durable(durable) {
                let conn = f.conn;
                self.send(conn, i, &ack);
            }
        }
        self.sync(i);
    }

    /// A frame arrived on `conn` at instance `to`.
    pub(crate) fn on_frame(&mut self, conn: u64, to: usize, frame: Frame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.server == to {
            let standby = self.nodes[c.client].name.clone();
            self.frame_from_standby(conn, to, standby, frame);
        } else {
            self.frame_from_leader(conn, to, frame);
        }
    }

    /// The other end closed `conn`.
    pub(crate) fn on_closed(&mut self, conn: u64, i: usize) {
        if self.nodes[i].serving.contains_key(&conn) {
            self.drop_stream(conn, i);
        } else if self.nodes[i]
            .following
            .as_ref()
            .is_some_and(|f| f.conn == conn)
        {
            self.ended(i, conn, false);
        }
    }
}
