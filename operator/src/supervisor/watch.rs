//! The supervisor's loop: poll, route to the newest leader, fence stale claimers.

use super::{
    lock, look, FenceRequest, Instance, LeaseWatch, Options, Seen, Shared, Snapshot,
    SupervisorError, Transition, FENCE_RETRY, MIN_TRUST_TO_ACT,
};
use crate::router::{RouteError, TrafficRouter};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A transition whose first counterparty logon is still awaited.
struct Pending {
    index: usize,
    detected: Instant,
    to: String,
}

/// The loop's state between polls.
struct Watch {
    instances: Vec<Instance>,
    router: Arc<dyn TrafficRouter>,
    options: Options,
    shared: Arc<Shared>,
    routed: Option<String>,
    lost_at: Option<Instant>,
    pending: Option<Pending>,
    lease_seen: Option<(u64, String, Instant)>,
    routing_error: Option<String>,
    verified_at: Instant,
    fenced_at: HashMap<String, Instant>,
}

pub(super) async fn watch(
    instances: Vec<Instance>,
    router: Arc<dyn TrafficRouter>,
    options: Options,
    shared: Arc<Shared>,
) {
    let routed = if options.resume_routing {
        resumed_route(&*router).await
    } else {
        None
    };
    let mut w = Watch {
        instances,
        router,
        options,
        shared,
        routed,
        lost_at: None,
        pending: None,
        lease_seen: None,
        routing_error: None,
        verified_at: Instant::now(),
        fenced_at: HashMap::new(),
    };
    loop {
        w.poll().await;
        tokio::time::sleep(w.options.poll).await;
    }
}

impl Watch {
    async fn poll(&mut self) {
        let now = Instant::now();
        if let Some(l) = &self.options.lease {
            read_lease(l, &mut self.lease_seen, now).await;
        }
        self.verify_routing().await;
        let mut seen = Vec::with_capacity(self.instances.len());
        for i in &self.instances {
            seen.push((i.name.clone(), look(&i.admin).await));
        }
        let leaders: Vec<&(String, Seen)> = seen.iter().filter(|(_, s)| s.leader).collect();
        if leaders.len() > 1 {
            tracing::error!(
                count = leaders.len(),
                "more than one instance reports leader; the newest epoch wins"
            );
        }
        // The lease's newest epoch is the truth; an instance claiming an older one is stale.
        let newest = leaders
            .iter()
            .max_by_key(|(_, s)| s.epoch)
            .map(|(n, s)| (n.clone(), s.epoch));
        if self.lost_at.is_none() {
            if let Some(r) = &self.routed {
                let still_leads = leaders.iter().any(|(n, _)| n == r);
                let stale = newest.as_ref().is_some_and(|(n, _)| n != r);
                if !still_leads || stale {
                    self.lost_at = Some(now);
                    tracing::warn!(leader = %r, "the routed leader no longer leads, or leads with an older epoch");
                }
            }
        }
        if let Some((name, epoch)) = &newest {
            if self.routed.as_deref() != Some(name.as_str()) {
                self.route(name, *epoch, &seen, now).await;
            } else {
                self.fence_stale(&seen, name, *epoch, None).await;
            }
        }
        if self.routed.is_some() && newest_is_routed(&self.routed, &seen) {
            self.routing_error = None;
        }
        *lock(&self.shared.snapshot) = Snapshot {
            polled: true,
            instances: seen.clone(),
            routed: self.routed.clone(),
            lease: self.lease_seen.as_ref().map(|(e, o, _)| (*e, o.clone())),
            routing_error: self.routing_error.clone(),
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|p| note_first_logon(p, &seen, &self.shared))
        {
            self.pending = None;
        }
    }

    /// Routes traffic to `name` and records the transition.
    async fn route(&mut self, name: &str, epoch: u64, seen: &[(String, Seen)], now: Instant) {
        let detected = self.lost_at.unwrap_or(now);
        if let Err(e) = switch(&*self.router, name, &self.options).await {
            if !matches!(e, SupervisorError::NotActing) {
                tracing::error!(error = %e, to = %name, "routing to the new leader failed; retrying");
            }
            self.routing_error = Some(e.to_string());
            return;
        }
        let from = self.routed.clone();
        let hooked = self.fence_stale(seen, name, epoch, from.as_deref()).await;
        let lease = self.lease_seen.as_ref().filter(|(e, _, _)| *e == epoch);
        let t = Transition {
            detected_at: detected,
            detected_wall: SystemTime::now()
                .checked_sub(detected.elapsed())
                .unwrap_or_else(SystemTime::now),
            from: from.clone(),
            to: name.to_string(),
            epoch,
            lease_granted_ms: ms(lease
                .filter(|(_, _, at)| *at >= detected)
                .map_or(now, |(_, _, at)| *at)
                - detected),
            lease_owner: lease.map(|(_, o, _)| o.clone()),
            routed_ms: ms(detected.elapsed()),
            first_logon_ms: None,
            old_leader_fenced: from
                .as_ref()
                .is_none_or(|old| is_fenced(seen.iter().find(|(n, _)| n == old).map(|(_, s)| s))),
            fence_hook_called: from.as_ref().is_some_and(|old| hooked.contains(old)),
        };
        tracing::info!(from = ?t.from, to = %t.to, epoch = t.epoch, routed_ms = t.routed_ms, "traffic moved to the new leader");
        let mut list = lock(&self.shared.transitions);
        list.push(t);
        self.pending = Some(Pending {
            index: list.len() - 1,
            detected,
            to: name.to_string(),
        });
        self.routed = Some(name.to_string());
        self.lost_at = None;
    }

    /// Every `verify_routing_every`: reads the routing back; if it no longer goes where
    /// this supervisor sent it, forgets where that was, so that the poll routes again.
    async fn verify_routing(&mut self) {
        let (Some(every), Some(routed)) = (self.options.verify_routing_every, &self.routed) else {
            return;
        };
        if self.verified_at.elapsed() < every {
            return;
        }
        self.verified_at = Instant::now();
        match self.router.current().await {
            Ok(current) if current.as_deref() != Some(routed.as_str()) => {
                tracing::warn!(want = %routed, got = ?current, "routing no longer goes where this supervisor sent it; routing again");
                self.routed = current;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the routing back failed"),
        }
    }

    /// Calls the fencing hook for every instance that, looked at again now, still
    /// claims to lead with an older epoch than `leader`'s (at most once per
    /// [`FENCE_RETRY`] each), and for `routed_away` (the instance traffic just left) if
    /// it answers something unreadable: it may still lead. Any other instance answering
    /// something unreadable (a newer version during an upgrade, say) is left alone.
    /// Returns the instances it was called for.
    async fn fence_stale(
        &mut self,
        seen: &[(String, Seen)],
        leader: &str,
        epoch: u64,
        routed_away: Option<&str>,
    ) -> Vec<String> {
        let Some(hook) = self.options.fence.clone() else {
            return Vec::new();
        };
        let mut hooked = Vec::new();
        for (i, (name, s)) in self.instances.iter().zip(seen) {
            let unreadable_old_leader =
                s.unreadable.is_some() && routed_away == Some(name.as_str());
            let stale = name != leader
                && !is_fenced(Some(s))
                && (unreadable_old_leader || (s.leader && s.epoch < epoch));
            if !stale
                || self
                    .fenced_at
                    .get(name)
                    .is_some_and(|t| t.elapsed() < FENCE_RETRY)
            {
                continue;
            }
            // Look again: the poll may predate a planned step-down.
            let observed_wall = SystemTime::now();
            let now = look(&i.admin).await;
            let request = FenceRequest {
                instance: name.clone(),
                admin: i.admin.clone(),
                claimed_epoch: now.epoch,
                new_epoch: epoch,
                observed_wall,
            };
            let still = if unreadable_old_leader {
                request.still_claims(&now)
            } else {
                now.leader && now.epoch < epoch
            };
            if !still || act_deadline(&self.options).is_err() {
                continue;
            }
            tracing::error!(instance = %name, claimed = now.epoch, leader = %leader, epoch, "an old leader still claims to lead after traffic moved: fencing it");
            hook(request);
            self.fenced_at.insert(name.clone(), Instant::now());
            hooked.push(name.clone());
        }
        hooked
    }
}

/// Until when this supervisor may act, with at least [`MIN_TRUST_TO_ACT`] left (`None`:
/// no gate, always).
pub(super) fn act_deadline(options: &Options) -> Result<Option<Instant>, SupervisorError> {
    let Some(gate) = &options.may_act else {
        return Ok(None);
    };
    match gate() {
        Some(until) if until.saturating_duration_since(Instant::now()) >= MIN_TRUST_TO_ACT => {
            Ok(Some(until))
        }
        _ => Err(SupervisorError::NotActing),
    }
}

/// Runs a routing call, abandoned at `deadline` (when this supervisor's trust ends).
async fn bounded<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = Result<T, RouteError>>,
) -> Result<T, SupervisorError> {
    match deadline {
        None => Ok(call.await?),
        Some(d) => tokio::time::timeout_at(d.into(), call)
            .await
            .map_err(|_| SupervisorError::NotActing)?
            .map_err(SupervisorError::from),
    }
}

/// Routes to `to` and reads it back, both within this supervisor's trust.
async fn switch(
    router: &dyn TrafficRouter,
    to: &str,
    options: &Options,
) -> Result<(), SupervisorError> {
    let deadline = act_deadline(options)?;
    bounded(deadline, router.route_to(to)).await?;
    let got = bounded(deadline, router.current()).await?;
    if got.as_deref() != Some(to) {
        return Err(SupervisorError::NotConverged {
            router: router.name(),
            want: to.to_string(),
            got,
        });
    }
    Ok(())
}

/// Where the router sends traffic now, read back (retried for a few seconds: the
/// routing API may be throttled or briefly unreachable).
async fn resumed_route(router: &dyn TrafficRouter) -> Option<String> {
    for attempt in 0..10 {
        match router.current().await {
            Ok(current) => {
                tracing::info!(routed = ?current, router = router.name(), "resuming from the routing read back");
                return current;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "reading where traffic goes failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    None
}

/// Whether traffic goes to an instance that reports leader now.
fn newest_is_routed(routed: &Option<String>, seen: &[(String, Seen)]) -> bool {
    seen.iter()
        .any(|(n, s)| s.leader && Some(n) == routed.as_ref())
}

/// Remembers a new lease epoch and when it was first seen.
async fn read_lease(w: &LeaseWatch, seen: &mut Option<(u64, String, Instant)>, now: Instant) {
    let read = tokio::time::timeout(Duration::from_millis(300), w.store.read(&w.group)).await;
    if let Ok(Ok(Some(state))) = read {
        if seen.as_ref().is_none_or(|(e, _, _)| state.epoch > *e) {
            *seen = Some((state.epoch, state.owner, now));
        }
    }
}

/// Records the first counterparty logon on the new leader; true once recorded.
fn note_first_logon(p: &Pending, seen: &[(String, Seen)], shared: &Shared) -> bool {
    if !seen.iter().any(|(n, s)| *n == p.to && s.logged_on) {
        return false;
    }
    if let Some(t) = lock(&shared.transitions).get_mut(p.index) {
        t.first_logon_ms = Some(ms(p.detected.elapsed()));
    }
    true
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether the old leader, as last seen, no longer leads: it is gone, silent, or says
/// it does not lead. One that answers something unreadable may still lead.
fn is_fenced(old: Option<&Seen>) -> bool {
    old.is_none_or(|s| !s.answered || (!s.leader && s.unreadable.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_leader_that_answers_something_unreadable_is_not_taken_for_fenced() {
        let leads = Seen {
            answered: true,
            leader: true,
            ..Seen::default()
        };
        let follows = Seen {
            answered: true,
            ..Seen::default()
        };
        let unreadable = Seen {
            answered: true,
            unreadable: Some("unreadable /readyz answer".into()),
            ..Seen::default()
        };
        assert!(is_fenced(None), "gone");
        assert!(is_fenced(Some(&Seen::default())), "silent");
        assert!(is_fenced(Some(&follows)), "says it follows");
        assert!(!is_fenced(Some(&leads)), "still leads");
        assert!(
            !is_fenced(Some(&unreadable)),
            "an answer nobody can read may come from a leader: the fence hook must run"
        );
    }

    #[test]
    fn a_supervisor_acts_only_with_enough_trust_left() {
        let with = |left: Option<Duration>| Options {
            may_act: Some(Arc::new(move || left.map(|l| Instant::now() + l))),
            ..Options::default()
        };
        assert!(act_deadline(&Options::default()).is_ok_and(|d| d.is_none()));
        assert!(act_deadline(&with(Some(Duration::from_millis(600)))).is_ok_and(|d| d.is_some()));
        assert!(act_deadline(&with(Some(Duration::from_millis(50)))).is_err());
        assert!(act_deadline(&with(None)).is_err());
    }
}
