//! The simulated world: simulated time, an event queue, the network between instances,
//! the lease store, the counterparty, and the faults. One thread; a seed decides every
//! delay and fault, so a run is reproduced exactly by its seed.

use crate::check::Ledger;
use crate::lease::{Beat, LeaseStore};
use crate::node::Node;
use crate::Options;
use fix_store::replication::{decode, encode, Frame};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How long the lease lasts (ms): the engine's default.
pub const TTL: u64 = fix_lease::DEFAULT_TTL.as_millis() as u64;
/// How long before the TTL the holder stops trusting its lease (ms): the engine's default.
pub const MARGIN: u64 = fix_lease::DEFAULT_SAFETY_MARGIN.as_millis() as u64;
/// How often the holder renews (ms): the engine's default.
pub const RENEW_EVERY: u64 = fix_lease::DEFAULT_RENEW_INTERVAL.as_millis() as u64;
/// How long a lease-store call may take before the caller gives up on it (ms).
pub const STORE_TIMEOUT: u64 = 500;
/// How often each instance looks at its timers (ms).
pub const TICK: u64 = 10;

/// What happens at an instant.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// An instance (in one incarnation) looks at its timers.
    Tick(usize, u64),
    /// An fsync completes (or fails).
    Fsync {
        node: usize,
        incarnation: u64,
        upto: u64,
        fails: bool,
    },
    /// A lease-store call reaches the store.
    StoreCall {
        node: usize,
        incarnation: u64,
        id: u64,
        call: StoreCall,
    },
    /// The store's answer reaches the caller.
    StoreAnswer {
        node: usize,
        incarnation: u64,
        id: u64,
        answer: StoreAnswer,
    },
    /// Bytes of one frame reach one end of a connection.
    Deliver {
        conn: u64,
        to: usize,
        bytes: Vec<u8>,
    },
    /// The other end closed the connection.
    Closed { conn: u64, to: usize },
    /// The counterparty sends its next order.
    Order(u64),
    /// An order reaches an instance.
    OrderArrives { node: usize, order: u64 },
    /// A random fault is due.
    Fault,
    /// A paused instance runs again.
    Resume(usize),
    /// A crashed instance is started again.
    Restart(usize),
    /// A partition between two instances ends.
    Heal(usize, usize),
    /// An instance reaches the lease store again.
    StoreHeal(usize),
    /// A stalled disk answers again.
    DiskHeal(usize),
}

/// A call to the lease store.
#[derive(Debug, Clone)]
pub(crate) enum StoreCall {
    /// Take the lease (conditional on a beat watched for a TTL, if any).
    Acquire { watched: Option<Beat> },
    /// Extend it.
    Renew { epoch: u64 },
    /// Give it up.
    Release { epoch: u64 },
    /// Record an in-sync set.
    SetInSync(fix_cluster::in_sync::Record),
    /// Read the in-sync set back.
    ReadBack { epoch: u64 },
}

/// The store's answer.
#[derive(Debug, Clone)]
pub(crate) enum StoreAnswer {
    /// The new epoch, or refused with the beat to watch.
    Acquired(Result<u64, Beat>),
    /// Still held.
    Renewed(bool),
    /// Recorded.
    Written(bool),
    /// The stored set, if the caller still holds the epoch.
    #[allow(clippy::option_option)]
    ReadBack(Option<Option<fix_cluster::in_sync::Stored>>),
}

/// One replication connection: a standby dialled a peer.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// The end that serves (the peer dialled).
    pub server: usize,
    /// The standby that dialled.
    pub client: usize,
    /// Closed by either end, or broken by a partition.
    pub open: bool,
    /// Broken: nothing more gets through either way.
    pub broken: bool,
    /// When the last bytes each way arrive (TCP keeps order).
    last_to_server: u64,
    last_to_client: u64,
}

/// The world.
pub struct World {
    /// Simulated milliseconds.
    pub now: u64,
    base: Instant,
    queue: BTreeMap<(u64, u64), Event>,
    order: u64,
    pub(crate) rng: fastrand::Rng,
    /// The instances.
    pub nodes: Vec<Node>,
    /// The lease store.
    pub store: LeaseStore,
    /// The replication connections.
    pub(crate) conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    pub(crate) partitions: BTreeSet<(usize, usize)>,
    pub(crate) cut_from_store: BTreeSet<usize>,
    /// Instances whose lease-store calls are slow, until when.
    pub(crate) slow_store: BTreeMap<usize, u64>,
    /// What the counterparty was answered, and the invariants' findings.
    pub ledger: Ledger,
    trace: VecDeque<String>,
    pub(crate) opts: Options,
    next_call: u64,
}

impl World {
    /// A group of `opts.instances` instances, nothing running yet.
    pub fn new(seed: u64, opts: Options) -> Self {
        let mut w = World {
            now: 0,
            base: Instant::now(),
            queue: BTreeMap::new(),
            order: 0,
            rng: fastrand::Rng::with_seed(seed),
            nodes: Vec::new(),
            store: LeaseStore::new(opts.lease_checks_in_sync),
            conns: BTreeMap::new(),
            next_conn: 0,
            partitions: BTreeSet::new(),
            cut_from_store: BTreeSet::new(),
            slow_store: BTreeMap::new(),
            ledger: Ledger::default(),
            trace: VecDeque::new(),
            opts,
            next_call: 0,
        };
        for i in 0..w.opts.instances {
            let mut node = Node::new(i, w.opts.instances, w.opts.on_standby_loss);
            let d = w.opts.clock_drift;
            node.clock_rate = 1.0 + (w.rng.f64() * 2.0 - 1.0) * d;
            w.nodes.push(node);
            let first = w.rng.u64(0..TICK);
            w.at(first, Event::Tick(i, 0));
        }
        w.at(100, Event::Order(1));
        if w.opts.faults {
            let first = w.rng.u64(500..1500);
            w.at(first, Event::Fault);
        }
        w
    }

    /// The instant `ms` of simulated time stands for (the core's timers take `Instant`s).
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Instance `i`'s monotonic clock now, in ms (its rate may differ from real time's).
    pub(crate) fn local_ms(&self, i: usize) -> u64 {
        (self.now as f64 * self.nodes[i].clock_rate) as u64
    }

    /// Instance `i`'s monotonic clock now, as the core's timers take it.
    pub(crate) fn local(&self, i: usize) -> Instant {
        self.instant(self.local_ms(i))
    }

    /// Schedules `event` `delay` ms from now.
    pub(crate) fn at(&mut self, delay: u64, event: Event) {
        self.order += 1;
        self.queue.insert((self.now + delay, self.order), event);
    }

    /// Notes a line in the trace (the last few hundred are kept and printed on a
    /// violation).
    pub fn note(&mut self, line: String) {
        if self.trace.len() == 400 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} ms  {line}", self.now));
    }

    /// The trace so far.
    pub fn trace(&self) -> Vec<String> {
        self.trace.iter().cloned().collect()
    }

    /// Runs until `until` ms or the first violation.
    pub fn run(&mut self, until: u64) {
        while let Some(((t, _), event)) = self.queue.pop_first() {
            if t > until {
                break;
            }
            self.now = t;
            self.handle(event);
            if !self.ledger.violations.is_empty() {
                break;
            }
        }
    }

    /// The node an event concerns, if it is paused: the event waits until it runs again.
    fn deferred(&mut self, node: usize, event: &Event) -> bool {
        let until = self.nodes[node].paused_until;
        if until > self.now {
            let delay = until - self.now;
            self.at(delay, event.clone());
            return true;
        }
        false
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(i, incarnation) => {
                if self.deferred(i, &event) {
                    return;
                }
                if self.nodes[i].up && self.nodes[i].incarnation == incarnation {
                    self.tick(i);
                    self.at(TICK, Event::Tick(i, incarnation));
                }
            }
            Event::Fsync {
                node,
                incarnation,
                upto,
                fails,
            } => {
                if self.deferred(node, &event) {
                    return;
                }
                if self.nodes[node].incarnation == incarnation {
                    self.fsync_done(node, upto, fails);
                }
            }
            Event::StoreCall {
                node,
                incarnation,
                id,
                ref call,
            } => {
                let answer = self.store_call(node, call);
                let delay = self.net_delay();
                self.at(
                    delay,
                    Event::StoreAnswer {
                        node,
                        incarnation,
                        id,
                        answer,
                    },
                );
            }
            Event::StoreAnswer {
                node,
                incarnation,
                id,
                ref answer,
            } => {
                if self.deferred(node, &event) {
                    return;
                }
                if self.nodes[node].incarnation == incarnation
                    && !self.cut_from_store.contains(&node)
                {
                    self.store_answered(node, id, answer.clone());
                }
            }
            Event::Deliver {
                conn,
                to,
                ref bytes,
            } => {
                if self.deferred(to, &event) {
                    return;
                }
                let live = self.conns.get(&conn).is_some_and(|c| c.open && !c.broken);
                if live && self.nodes[to].up {
                    match decode(bytes, 64 << 20) {
                        Ok((frame, _)) => self.on_frame(conn, to, frame),
                        Err(e) => self.note(format!("conn {conn}: undecodable frame: {e}")),
                    }
                }
            }
            Event::Closed { conn, to } => {
                if self.deferred(to, &event) {
                    return;
                }
                if self.nodes[to].up {
                    self.on_closed(conn, to);
                }
            }
            Event::Order(k) => {
                self.send_order(k);
                let every = self.opts.order_every_ms;
                self.at(every, Event::Order(k + 1));
            }
            Event::OrderArrives { node, order } => {
                if self.deferred(node, &event) {
                    return;
                }
                if self.nodes[node].up {
                    self.order_arrives(node, order);
                }
            }
            Event::Fault => {
                self.inject_fault();
                let next = self.rng.u64(300..2000);
                self.at(next, Event::Fault);
            }
            Event::Resume(i) => self.note(format!("{} resumes", self.nodes[i].name)),
            Event::Restart(i) => self.restart(i),
            Event::Heal(a, b) => {
                self.partitions.remove(&(a, b));
                self.note(format!(
                    "partition {}|{} heals",
                    self.nodes[a].name, self.nodes[b].name
                ));
            }
            Event::StoreHeal(i) => {
                self.cut_from_store.remove(&i);
                self.note(format!(
                    "{} reaches the lease store again",
                    self.nodes[i].name
                ));
            }
            Event::DiskHeal(i) => {
                self.nodes[i].disk_stalled = false;
                self.note(format!("{}'s disk answers again", self.nodes[i].name));
            }
        }
    }

    /// A network delay (ms): mostly under a millisecond, sometimes a few.
    pub(crate) fn net_delay(&mut self) -> u64 {
        match self.rng.u8(0..100) {
            0..=79 => 0,
            80..=97 => 1,
            _ => self.rng.u64(2..20),
        }
    }

    /// Calls the lease store from `node` (the answer comes as [`Event::StoreAnswer`]);
    /// returns the call's id. A call from an instance cut off from the store is lost.
    pub(crate) fn call_store(&mut self, node: usize, call: StoreCall) -> u64 {
        self.next_call += 1;
        let id = self.next_call;
        if !self.cut_from_store.contains(&node) {
            let slow = self
                .slow_store
                .get(&node)
                .is_some_and(|&until| self.now < until);
            let delay = if slow {
                self.rng.u64(0..2 * TTL)
            } else {
                self.net_delay()
            };
            let incarnation = self.nodes[node].incarnation;
            self.at(
                delay,
                Event::StoreCall {
                    node,
                    incarnation,
                    id,
                    call,
                },
            );
        }
        id
    }

    fn store_call(&mut self, node: usize, call: &StoreCall) -> StoreAnswer {
        let name = self.nodes[node].name.clone();
        match call {
            StoreCall::Acquire { watched } => {
                StoreAnswer::Acquired(self.store.acquire(&name, *watched))
            }
            StoreCall::Renew { epoch } => StoreAnswer::Renewed(self.store.renew(&name, *epoch)),
            StoreCall::SetInSync(r) => StoreAnswer::Written(self.store.set_in_sync(
                &name,
                r.epoch,
                r.expected.as_ref(),
                &r.new,
            )),
            StoreCall::Release { epoch } => {
                self.store.release(&name, *epoch);
                StoreAnswer::Renewed(false)
            }
            StoreCall::ReadBack { epoch } => {
                StoreAnswer::ReadBack(self.store.read_in_sync(&name, *epoch))
            }
        }
    }

    /// Opens a connection from standby `client` to `server`; `None` when the server is
    /// down or cut off (the caller sees a failed connect).
    pub(crate) fn dial(&mut self, client: usize, server: usize) -> Option<u64> {
        if !self.nodes[server].up || self.partitioned(client, server) {
            return None;
        }
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.insert(
            id,
            Conn {
                server,
                client,
                open: true,
                broken: false,
                last_to_server: self.now,
                last_to_client: self.now,
            },
        );
        Some(id)
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partitions.contains(&(a.min(b), a.max(b)))
    }

    /// Sends `frame` from `from` over `conn` (in order with what went before).
    pub(crate) fn send(&mut self, conn: u64, from: usize, frame: &Frame) {
        let delay = self.net_delay();
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.open || c.broken {
            return;
        }
        let (to, last) = if from == c.server {
            (c.client, &mut c.last_to_client)
        } else {
            (c.server, &mut c.last_to_server)
        };
        let arrive = (now + delay).max(*last);
        *last = arrive;
        let mut bytes = Vec::new();
        encode(frame, &mut bytes);
        self.order += 1;
        self.queue
            .insert((arrive, self.order), Event::Deliver { conn, to, bytes });
    }

    /// Closes `conn` from `from`'s side; the other end learns it after the bytes already
    /// on their way.
    pub(crate) fn close(&mut self, conn: u64, from: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.open {
            return;
        }
        c.open = false;
        if c.broken {
            return;
        }
        let (to, last) = if from == c.server {
            (c.client, c.last_to_client)
        } else {
            (c.server, c.last_to_server)
        };
        self.order += 1;
        self.queue.insert(
            (last.max(self.now) + 1, self.order),
            Event::Closed { conn, to },
        );
    }

    fn send_order(&mut self, k: u64) {
        // Routing sends the counterparty to the instance the lease store names.
        let Some(holder) = self.store.holder.clone() else {
            return;
        };
        let Some(node) = self.nodes.iter().position(|n| n.name == holder) else {
            return;
        };
        let delay = self.net_delay();
        self.at(delay, Event::OrderArrives { node, order: k });
    }
}
