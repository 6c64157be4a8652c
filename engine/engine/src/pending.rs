//! Caps on pending FIX connections (`[engine.connections]`): accepted, not yet handed to
//! a session.

use crate::config::ConnectionsSection;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pending connections of every FIX listener of one engine.
#[derive(Clone)]
pub(crate) struct Pending {
    limits: ConnectionsSection,
    refused: prometheus_client::metrics::counter::Counter,
    state: Arc<Mutex<State>>,
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
        }
    }

    /// A slot for a connection from `address`, or why there is none.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<Slot, Refusal> {
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
                match r {
                    Refusal::Total(n) => {
                        tracing::warn!(%address, max_pending = n, refused_so_far = refused, "too many FIX connections waiting for their Logon: closed a new one (engine.connections.max_pending)")
                    }
                    Refusal::Address(n) => {
                        tracing::warn!(%address, max_pending_per_address = n, refused_so_far = refused, "too many FIX connections from one address waiting for their Logon: closed a new one (engine.connections.max_pending_per_address)")
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
}
