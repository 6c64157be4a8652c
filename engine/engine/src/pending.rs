//! Caps on pending connections: accepted, not yet handed to a session (FIX listeners,
//! `[engine.connections]`), not yet authenticated (the replication listener), or open at
//! all (the admin API). On the FIX and admin listeners an IPv6 client counts by its /64,
//! the block one host usually has; on the replication listener by its address (a group's
//! standbys often share one subnet's /64).

use crate::config::ConnectionsSection;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pending connections of every FIX listener of one engine (or of its replication
/// listener).
#[derive(Clone)]
pub(crate) struct Pending {
    limits: ConnectionsSection,
    refused: prometheus_client::metrics::counter::Counter,
    state: Arc<Mutex<State>>,
    /// What the log calls the connections and where their caps are set.
    labels: &'static Labels,
}

/// Words for the log, and how IPv6 clients are counted.
pub(crate) struct Labels {
    what: &'static str,
    total_setting: &'static str,
    address_setting: &'static str,
    /// Leading bits of an IPv6 address that name one client (64 or 128).
    v6_prefix: u32,
}

const FIX: Labels = Labels {
    what: "FIX connections waiting for their Logon",
    total_setting: "engine.connections.max_pending",
    address_setting: "engine.connections.max_pending_per_address",
    v6_prefix: 64,
};

/// Caps of the replication listener: a group has at most six standbys.
pub(crate) const REPLICATION_LIMITS: ConnectionsSection = ConnectionsSection {
    max_pending: 16,
    max_pending_per_address: 4,
    max_queued: 0,
    max_queued_per_address: 0,
};

const REPLICATION: Labels = Labels {
    what: "replication connections still authenticating",
    total_setting: "a fixed cap of 16",
    address_setting: "a fixed cap of 4 per address",
    v6_prefix: 128,
};

/// Caps of the admin API: every connection counts while open (probes, scrapes, fixctl
/// and dashboards are short or few).
pub(crate) const ADMIN_LIMITS: ConnectionsSection = ConnectionsSection {
    max_pending: 128,
    max_pending_per_address: 32,
    max_queued: 0,
    max_queued_per_address: 0,
};

const ADMIN: Labels = Labels {
    what: "admin API connections open",
    total_setting: "a fixed cap of 128",
    address_setting: "a fixed cap of 32 per address",
    v6_prefix: 64,
};

/// What the per-address cap counts `address` under: itself for IPv4 (an IPv4-mapped IPv6
/// address too), its first `v6_prefix` bits for IPv6.
fn bucket(address: IpAddr, v6_prefix: u32) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - v6_prefix.min(128)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

#[derive(Default)]
struct State {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Connections waiting for a slot, oldest first.
    queue: VecDeque<Waiter>,
    queued_by_address: HashMap<IpAddr, usize>,
    next_waiter: u64,
    said: Option<Instant>,
}

/// A queued connection: the slot is handed to it through `give`.
struct Waiter {
    id: u64,
    address: IpAddr,
    give: tokio::sync::oneshot::Sender<Slot>,
}

impl State {
    fn has_room(&self, address: IpAddr, limits: &ConnectionsSection) -> bool {
        self.total < limits.max_pending
            && self.by_address.get(&address).copied().unwrap_or(0) < limits.max_pending_per_address
    }

    fn take(&mut self, address: IpAddr) {
        self.total += 1;
        *self.by_address.entry(address).or_default() += 1;
    }

    fn give_back(&mut self, address: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&address);
            }
        }
    }

    /// Removes the oldest waiter that a slot can go to now.
    fn next_admissible(&mut self, limits: &ConnectionsSection) -> Option<Waiter> {
        let at = self
            .queue
            .iter()
            .position(|w| self.has_room(w.address, limits))?;
        let w = self.queue.remove(at)?;
        self.unqueue(w.address);
        Some(w)
    }

    fn unqueue(&mut self, address: IpAddr) {
        if let Some(n) = self.queued_by_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.queued_by_address.remove(&address);
            }
        }
    }
}

/// One pending connection's slot, given back when dropped.
pub(crate) struct Slot {
    /// `None` once given back by other means (a waiter that had gone).
    pending: Option<Pending>,
    address: IpAddr,
}

/// What [`Pending::admit_or_queue`] gives: a slot, or a place in the queue.
pub(crate) enum Admission {
    /// A slot, now.
    Now(Slot),
    /// A place in the queue: [`Ticket::wait`] for the slot.
    Queued(Ticket),
}

/// A queued connection's place: the slot arrives through `slot`.
pub(crate) struct Ticket {
    pending: Pending,
    id: u64,
    address: IpAddr,
    slot: tokio::sync::oneshot::Receiver<Slot>,
}

impl Ticket {
    /// The slot, once the connections queued before it had theirs and the caps allow;
    /// [`Refusal::Waited`] when none came before `deadline`.
    pub(crate) async fn wait(self, deadline: tokio::time::Instant) -> Result<Slot, Refusal> {
        let Ticket {
            pending,
            id,
            address,
            slot,
        } = self;
        if let Ok(Ok(slot)) = tokio::time::timeout_at(deadline, slot).await {
            return Ok(slot);
        }
        // Timed out: leave the queue. A slot handed over meanwhile fails to arrive (the
        // receiver is gone) and goes to the next waiter.
        let mut s = lock(&pending.state);
        if let Some(at) = s.queue.iter().position(|w| w.id == id) {
            s.queue.remove(at);
            s.unqueue(address);
        }
        pending.refuse(s, address, Refusal::Waited);
        Err(Refusal::Waited)
    }
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_pending` reached.
    Total(usize),
    /// `max_pending_per_address` reached for this address.
    Address(usize),
    /// Over the caps, and the queue is full (`max_queued`, or `max_queued_per_address`
    /// for this address).
    QueueFull(usize),
    /// Queued, and no slot came before the deadline.
    Waited,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pending {
    /// Caps from `limits`; refusals are counted in `refused`.
    pub(crate) fn new(
        limits: ConnectionsSection,
        refused: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            limits,
            refused,
            state: Arc::default(),
            labels: &FIX,
        }
    }

    /// The replication listener's caps ([`REPLICATION_LIMITS`]).
    pub(crate) fn replication(refused: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            labels: &REPLICATION,
            ..Self::new(REPLICATION_LIMITS, refused)
        }
    }

    /// The admin API's caps ([`ADMIN_LIMITS`]).
    pub(crate) fn admin(refused: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            labels: &ADMIN,
            ..Self::new(ADMIN_LIMITS, refused)
        }
    }

    /// A slot for a connection from `address`, or why there is none (never waits).
    pub(crate) fn admit(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let address = bucket(address, self.labels.v6_prefix);
        let mut s = lock(&self.state);
        if s.has_room(address, &self.limits) {
            s.take(address);
            return Ok(self.slot(address));
        }
        let r = if s.total >= self.limits.max_pending {
            Refusal::Total(self.limits.max_pending)
        } else {
            Refusal::Address(self.limits.max_pending_per_address)
        };
        self.refuse(s, address, r);
        Err(r)
    }

    /// A slot for a connection from `address` at once while the caps allow, else a
    /// place in the queue (first come, first served, skipping addresses still at their
    /// cap). Refused at once when the queue is full.
    pub(crate) fn admit_or_queue(&self, address: IpAddr) -> Result<Admission, Refusal> {
        let address = bucket(address, self.labels.v6_prefix);
        let mut s = lock(&self.state);
        if s.has_room(address, &self.limits) {
            s.take(address);
            return Ok(Admission::Now(self.slot(address)));
        }
        let queued = s.queued_by_address.get(&address).copied().unwrap_or(0);
        let full = if s.queue.len() >= self.limits.max_queued {
            Some(self.limits.max_queued)
        } else if queued >= self.limits.max_queued_per_address {
            Some(self.limits.max_queued_per_address)
        } else {
            None
        };
        if let Some(n) = full {
            self.refuse(s, address, Refusal::QueueFull(n));
            return Err(Refusal::QueueFull(n));
        }
        let (give, slot) = tokio::sync::oneshot::channel();
        let id = s.next_waiter;
        s.next_waiter += 1;
        s.queue.push_back(Waiter { id, address, give });
        *s.queued_by_address.entry(address).or_default() += 1;
        Ok(Admission::Queued(Ticket {
            pending: self.clone(),
            id,
            address,
            slot,
        }))
    }

    fn slot(&self, address: IpAddr) -> Slot {
        Slot {
            pending: Some(self.clone()),
            address,
        }
    }

    /// Counts a refusal and says so (at most once a second: a flood must not flood the
    /// log too).
    fn refuse(&self, mut s: std::sync::MutexGuard<'_, State>, address: IpAddr, r: Refusal) {
        let refused = self.refused.inc() + 1;
        if s.said.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        s.said = Some(Instant::now());
        drop(s);
        let l = self.labels;
        match r {
            Refusal::Total(n) => {
                tracing::warn!(%address, max_pending = n, refused_so_far = refused, "too many {}: closed a new one ({})", l.what, l.total_setting)
            }
            Refusal::Address(n) => {
                tracing::warn!(%address, max_pending_per_address = n, refused_so_far = refused, "too many {} from one address: closed a new one ({})", l.what, l.address_setting)
            }
            Refusal::QueueFull(n) => {
                tracing::warn!(%address, queue_cap = n, refused_so_far = refused, "too many connections queued for a slot: closed a new one (engine.connections.max_queued, max_queued_per_address)")
            }
            Refusal::Waited => {
                tracing::warn!(%address, refused_so_far = refused, "a queued connection got no slot within the logon timeout: closed")
            }
        }
    }

    /// Gives `address`'s slot back, handing it (and any slot a departed waiter could not
    /// take) to the oldest waiter that can have it.
    fn release(&self, mut address: IpAddr) {
        loop {
            let next = {
                let mut s = lock(&self.state);
                s.give_back(address);
                let Some(w) = s.next_admissible(&self.limits) else {
                    return;
                };
                s.take(w.address);
                w
            };
            // Handed over outside the lock: a waiter that has gone returns the slot,
            // which is given back here instead of by its own drop.
            match next.give.send(self.slot(next.address)) {
                Ok(()) => return,
                Err(mut slot) => {
                    address = slot.address;
                    slot.pending = None;
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.release(self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn slots_are_capped_per_address_and_in_total_and_given_back() {
        let refused = prometheus_client::metrics::counter::Counter::default();
        let p = Pending::new(
            ConnectionsSection {
                max_pending: 3,
                max_pending_per_address: 2,
                ..ConnectionsSection::default()
            },
            refused.clone(),
        );
        let a1 = p.admit(ip("10.0.0.1")).expect("first");
        let _a2 = p.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(p.admit(ip("10.0.0.1")).err(), Some(Refusal::Address(2)));
        let _b1 = p.admit(ip("10.0.0.2")).expect("another address");
        assert_eq!(p.admit(ip("10.0.0.3")).err(), Some(Refusal::Total(3)));
        drop(a1);
        assert!(
            p.admit(ip("10.0.0.3")).is_ok(),
            "a slot given back is free again"
        );
        assert_eq!(refused.get(), 2);
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let p = Pending::new(
            ConnectionsSection {
                max_pending: 10,
                max_pending_per_address: 2,
                ..ConnectionsSection::default()
            },
            prometheus_client::metrics::counter::Counter::default(),
        );
        let _a = p.admit(ip("2001:db8:1:2::1")).expect("first");
        let _b = p
            .admit(ip("2001:db8:1:2:ffff::9"))
            .expect("second, same /64");
        assert_eq!(
            p.admit(ip("2001:db8:1:2:abcd::1")).err(),
            Some(Refusal::Address(2)),
            "a third address of the same /64"
        );
        assert!(p.admit(ip("2001:db8:1:3::1")).is_ok(), "the next /64");
        let _c = p.admit(ip("10.0.0.7")).expect("v4");
        let _d = p.admit(ip("::ffff:10.0.0.7")).expect("mapped v4");
        assert_eq!(
            p.admit(ip("10.0.0.7")).err(),
            Some(Refusal::Address(2)),
            "mapped and plain v4 are one address"
        );
        // The replication listener counts each address: standbys share a subnet's /64.
        let r = Pending::replication(prometheus_client::metrics::counter::Counter::default());
        let held: Vec<_> = (1..=6)
            .map(|n| {
                r.admit(ip(&format!("2001:db8:1:2::{n}")))
                    .expect("a standby each")
            })
            .collect();
        assert_eq!(held.len(), 6);
    }

    fn queueing(
        max_pending: usize,
        per_address: usize,
        queued: usize,
        queued_per: usize,
    ) -> Pending {
        Pending::new(
            ConnectionsSection {
                max_pending,
                max_pending_per_address: per_address,
                max_queued: queued,
                max_queued_per_address: queued_per,
            },
            prometheus_client::metrics::counter::Counter::default(),
        )
    }

    fn now_slot(a: Result<Admission, Refusal>) -> Slot {
        match a {
            Ok(Admission::Now(s)) => s,
            _ => panic!("expected a slot at once"),
        }
    }

    fn ticket(a: Result<Admission, Refusal>) -> Ticket {
        match a {
            Ok(Admission::Queued(t)) => t,
            _ => panic!("expected a place in the queue"),
        }
    }

    fn later() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn over_the_caps_connections_queue_and_get_slots_in_order() {
        let p = queueing(10, 1, 10, 10);
        let first = now_slot(p.admit_or_queue(ip("10.0.0.1")));
        let second = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let third = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let other = now_slot(p.admit_or_queue(ip("10.0.0.2")));
        drop(first);
        let second = second
            .wait(later())
            .await
            .expect("the oldest waiter's turn");
        drop(second);
        let _third = third.wait(later()).await.expect("then the next");
        drop(other);
    }

    #[tokio::test]
    async fn a_waiter_whose_address_is_at_its_cap_does_not_block_the_others() {
        // Two slots in all, one per address: a.1 and b.1 hold them, a.2 and c.1 queue.
        let p = queueing(2, 1, 10, 10);
        let a1 = now_slot(p.admit_or_queue(ip("10.0.0.1")));
        let b1 = now_slot(p.admit_or_queue(ip("10.0.0.2")));
        let a2 = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let c1 = ticket(p.admit_or_queue(ip("10.0.0.3")));
        // b's slot frees: a.2 is older but its address still holds a slot; c.1 gets it.
        drop(b1);
        let c1 = c1.wait(later()).await.expect("c gets the slot b gave back");
        drop(a1);
        let _a2 = a2.wait(later()).await.expect("a's own slot goes to a.2");
        drop(c1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_counts_it() {
        let refused = prometheus_client::metrics::counter::Counter::default();
        let p = Pending::new(
            ConnectionsSection {
                max_pending: 1,
                max_pending_per_address: 1,
                max_queued: 3,
                max_queued_per_address: 2,
            },
            refused.clone(),
        );
        let _held = now_slot(p.admit_or_queue(ip("10.0.0.1")));
        let _q1 = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let _q2 = ticket(p.admit_or_queue(ip("10.0.0.1")));
        assert_eq!(
            p.admit_or_queue(ip("10.0.0.1")).err(),
            Some(Refusal::QueueFull(2)),
            "one address holds at most max_queued_per_address places"
        );
        let _q3 = ticket(p.admit_or_queue(ip("10.0.0.2")));
        assert_eq!(
            p.admit_or_queue(ip("10.0.0.3")).err(),
            Some(Refusal::QueueFull(3)),
            "max_queued in all"
        );
        assert_eq!(refused.get(), 2);
        // Without a queue, nothing waits.
        let none = queueing(1, 1, 0, 0);
        let _h = now_slot(none.admit_or_queue(ip("10.0.0.1")));
        assert!(none.admit_or_queue(ip("10.0.0.1")).is_err());
    }

    #[tokio::test]
    async fn a_waiter_that_times_out_leaves_and_its_turn_goes_to_the_next() {
        let p = queueing(1, 1, 10, 10);
        let held = now_slot(p.admit_or_queue(ip("10.0.0.1")));
        let gone = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let next = ticket(p.admit_or_queue(ip("10.0.0.1")));
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert_eq!(gone.wait(soon).await.err(), Some(Refusal::Waited));
        // A place dropped without waiting (the connection's task ended) also passes on.
        let dropped = ticket(p.admit_or_queue(ip("10.0.0.1")));
        drop(held);
        let slot = next.wait(later()).await.expect("the next waiter");
        drop(dropped);
        drop(slot);
        assert_eq!(lock(&p.state).total, 0, "every slot given back");
        assert!(lock(&p.state).queue.is_empty());
    }
}
