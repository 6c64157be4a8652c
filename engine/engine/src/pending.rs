//! Caps on pending connections: accepted, not yet handed to a session (FIX listeners,
//! `[engine.connections]`), not yet authenticated (the replication listener), or open at
//! all (the admin API). On the FIX and admin listeners an IPv6 client counts by its /64,
//! the block one host usually has; on the replication listener by its address (a group's
//! standbys often share one subnet's /64).

use crate::config::ConnectionsSection;
use std::collections::HashMap;
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
    said: Option<Instant>,
}

/// One pending connection's slot, given back when dropped.
pub(crate) struct Slot {
    pending: Pending,
    address: IpAddr,
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_pending` reached.
    Total(usize),
    /// `max_pending_per_address` reached for this address.
    Address(usize),
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

    /// A slot for a connection from `address`, or why there is none.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let address = bucket(address, self.labels.v6_prefix);
        let mut s = lock(&self.state);
        let refusal = if s.total >= self.limits.max_pending {
            Some(Refusal::Total(self.limits.max_pending))
        } else if s.by_address.get(&address).copied().unwrap_or(0)
            >= self.limits.max_pending_per_address
        {
            Some(Refusal::Address(self.limits.max_pending_per_address))
        } else {
            None
        };
        if let Some(r) = refusal {
            let refused = self.refused.inc() + 1;
            // Said at most once a second: a flood must not flood the log too.
            if s.said.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
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
                }
            }
            return Err(r);
        }
        s.total += 1;
        *s.by_address.entry(address).or_default() += 1;
        Ok(Slot {
            pending: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = lock(&self.pending.state);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                s.by_address.remove(&self.address);
            }
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
}
