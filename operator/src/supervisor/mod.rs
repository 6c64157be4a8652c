//! The failover supervisor: follows the group's leadership through every engine's
//! `/readyz` and keeps the router pointed at the leader.
//!
//! Each poll reads every instance. When an instance reports itself leader and ready (the
//! newest epoch wins if several do: an older one is stale) and it is not where traffic
//! goes, the supervisor routes there, reads the routing back, and
//! checks the instance it routed away from reports standby or does not answer; if it still
//! claims to lead, the fencing hook (a platform's "stop this task") is called. Each such
//! transition is recorded with its phases, measured from the poll that first saw the old
//! leader gone.

use crate::router::{RouteError, TrafficRouter};
use fix_engine::admin::api::Readiness;
use fix_engine::admin::client::request;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::task::JoinHandle;

mod manual;

/// One engine instance as the supervisor reaches it.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its name (the router's endpoint name).
    pub name: String,
    /// Its admin API.
    pub admin: AdminAddr,
}

/// Where an instance's admin API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    /// A fixed address.
    Socket(SocketAddr),
    /// `HOST:PORT`, looked up at every call (a pod's DNS name follows the pod when it is
    /// recreated with a new address).
    Host(String),
}

impl AdminAddr {
    /// The address to connect to now.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Socket(a) => Ok(*a),
            Self::Host(h) => tokio::net::lookup_host(h.as_str())
                .await?
                .next()
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("{h} has no address"))
                }),
        }
    }
}

impl std::fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(a) => write!(f, "{a}"),
            Self::Host(h) => f.write_str(h),
        }
    }
}

impl std::str::FromStr for AdminAddr {
    type Err = String;

    /// `IP:PORT` (`[IPv6]:PORT`), or `HOST:PORT` with a numeric port.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Self::Socket(a));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Self::Host(s.to_string()))
            }
            _ => Err(format!(
                "admin address {s:?} is not IP:PORT or HOST:PORT (the engine's admin listen address, for example 10.0.1.10:9100 or engine-a.fix.local:9100)"
            )),
        }
    }
}

impl From<SocketAddr> for AdminAddr {
    fn from(a: SocketAddr) -> Self {
        Self::Socket(a)
    }
}

impl From<&fix_drill::node::Node> for Instance {
    fn from(n: &fix_drill::node::Node) -> Self {
        Self {
            name: n.spec.name.clone(),
            admin: n.admin_addr().into(),
        }
    }
}

/// Sends one admin request to `admin` (looked up first).
pub async fn admin_request(
    admin: &AdminAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    limit: Duration,
) -> std::io::Result<(u16, String)> {
    let addr = tokio::time::timeout(limit, admin.resolve())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "address lookup"))??;
    request(addr, method, path, token, limit).await
}

/// Called with an instance that still claims to lead after traffic moved away from it.
pub type FenceHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Asked right before every change the supervisor makes (routing, fencing): whether it
/// may act now. A supervisor that is one of several (each ECS task of `fix-operator
/// ecs`) answers from its own lease, so that a deposed one changes nothing.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// How the supervisor runs.
#[derive(Clone)]
pub struct Options {
    /// Time between polls.
    pub poll: Duration,
    /// Admin bearer token (for step-down).
    pub token: Option<String>,
    /// Called to stop an old leader that does not step down by itself.
    pub fence: Option<FenceHook>,
    /// The group's lease, read each poll: when a new epoch appears is when the lease was
    /// granted (without it, when the new leader first reports ready).
    pub lease: Option<LeaseWatch>,
    /// Whether it may act now (always, without one).
    pub may_act: Option<Gate>,
    /// Start from where the router sends traffic now (read back) instead of from
    /// nowhere: a supervisor taking over from another one then checks, and fences, the
    /// instance traffic went to.
    pub resume_routing: bool,
}

/// The lease store and group the supervisor reads.
#[derive(Clone)]
pub struct LeaseWatch {
    /// The store (`fix_lease::connect`).
    pub store: Arc<dyn fix_lease::LeaseStore>,
    /// The engine group.
    pub group: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(20),
            token: None,
            fence: None,
            lease: None,
            may_act: None,
            resume_routing: false,
        }
    }
}

/// One change of where traffic goes, with its phases in milliseconds after detection.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// When the supervisor first saw the old leader gone (or, at start-up, the leader).
    #[serde(skip)]
    pub detected_at: Instant,
    /// The same moment by the wall clock (for reports and the Kubernetes status).
    #[serde(skip)]
    pub detected_wall: std::time::SystemTime,
    /// Where traffic went before (none at start-up).
    pub from: Option<String>,
    /// The new leader.
    pub to: String,
    /// Its lease epoch.
    pub epoch: u64,
    /// Detection → the lease store showed the new epoch (or, without a lease watch, the new
    /// leader reported ready).
    pub lease_granted_ms: f64,
    /// The lease's owner as the store shows it (with a lease watch).
    pub lease_owner: Option<String>,
    /// Detection → the router was changed and read back.
    pub routed_ms: f64,
    /// Detection → a counterparty was logged on to the new leader.
    pub first_logon_ms: Option<f64>,
    /// The old leader reported standby or was unreachable once traffic moved.
    pub old_leader_fenced: bool,
    /// The fencing hook was called for the old leader.
    pub fence_hook_called: bool,
}

/// The supervisor failed to act.
#[derive(Debug, Error)]
pub enum SupervisorError {
    /// The router refused.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// This supervisor may not act (its gate said no): another one does.
    #[error("this supervisor may not act now (another one holds the supervisors' lease)")]
    NotActing,
    /// The router did not read back what was set.
    #[error("{router} reads back {got:?} after routing to {want}")]
    NotConverged {
        /// The router.
        router: &'static str,
        /// What was set.
        want: String,
        /// What it reports.
        got: Option<String>,
    },
    /// No such instance.
    #[error("no instance named {0}: known instances are {1}")]
    UnknownInstance(String, String),
    /// There is no leader to step down.
    #[error("no instance leads now; nothing to fail over (check `fixctl status`)")]
    NoLeader,
    /// An admin call failed.
    #[error("{instance}: {action} failed: {detail}")]
    Admin {
        /// Which instance.
        instance: String,
        /// What was asked.
        action: &'static str,
        /// Why.
        detail: String,
    },
    /// The takeover did not happen in time.
    #[error("no other instance took over within {0:?}")]
    Timeout(Duration),
    /// No standby may take over, so the leader was not asked to step down.
    #[error("no standby may take over after {waited:?}, so the leader keeps leading: {why} (check `fixctl status`; a standby joins the in-sync set once it has caught up with the leader's journal)")]
    NoCandidate {
        /// How long the supervisor waited for one.
        waited: Duration,
        /// Each candidate and why it may not take over.
        why: String,
    },
}

/// What one poll saw of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// It reports itself leader and ready.
    pub leader: bool,
    /// The epoch it reports.
    pub epoch: u64,
    /// It answered `/readyz`.
    pub answered: bool,
    /// A counterparty is logged on to it.
    pub logged_on: bool,
    /// Under `replicated` durability: it is in the in-sync set recorded in the lease store
    /// (a standby outside it may not take the lease). `None` where no set is kept.
    pub in_sync: Option<bool>,
    /// It contends for the lease (its region is the active one, its journal has not
    /// failed).
    pub contends: bool,
    /// It answered `/readyz` with a body this supervisor cannot read (a version it does
    /// not know, a proxy's error page): why. Such an instance is never routed to nor
    /// asked to take over, and it is not taken for fenced: it may still lead.
    pub unreadable: Option<String>,
}

/// The last poll: every instance as seen, and where traffic goes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Whether a poll has completed yet.
    pub polled: bool,
    /// Each instance by name, in the order given.
    pub instances: Vec<(String, Seen)>,
    /// Where the supervisor routed traffic (read back when it was routed).
    pub routed: Option<String>,
    /// The lease as last read (with a lease watch): epoch and owner.
    pub lease: Option<(u64, String)>,
    /// The last routing failure, cleared once routing succeeds.
    pub routing_error: Option<String>,
}

async fn look(admin: &AdminAddr) -> Seen {
    let Ok((_, body)) =
        admin_request(admin, "GET", "/readyz", None, Duration::from_millis(300)).await
    else {
        return Seen::default();
    };
    let r = match serde_json::from_str::<Readiness>(&body) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("unreadable /readyz answer ({e})");
            tracing::warn!(%admin, error = %e, "an instance answered /readyz with a body this supervisor cannot read: treated as answering but not known to lead or follow (check the engine and operator versions)");
            return Seen {
                answered: true,
                unreadable: Some(why),
                ..Seen::default()
            };
        }
    };
    Seen {
        leader: r.leads(),
        epoch: r.epoch,
        answered: true,
        logged_on: r.logged_on(),
        in_sync: r.in_sync,
        contends: r.contends,
        unreadable: None,
    }
}

struct Shared {
    transitions: Mutex<Vec<Transition>>,
    snapshot: Mutex<Snapshot>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running supervisor.
pub struct Supervisor {
    instances: Vec<Instance>,
    router: Arc<dyn TrafficRouter>,
    options: Options,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Pending {
    index: usize,
    detected: Instant,
    to: String,
}

impl Supervisor {
    /// Starts supervising `instances` through `router`.
    pub fn spawn(
        instances: Vec<Instance>,
        router: Arc<dyn TrafficRouter>,
        options: Options,
    ) -> Self {
        let shared = Arc::new(Shared {
            transitions: Mutex::new(Vec::new()),
            snapshot: Mutex::new(Snapshot::default()),
        });
        let task = tokio::spawn(watch(
            instances.clone(),
            Arc::clone(&router),
            options.clone(),
            Arc::clone(&shared),
        ));
        Self {
            instances,
            router,
            options,
            shared,
            task,
        }
    }

    /// Every transition so far.
    pub fn transitions(&self) -> Vec<Transition> {
        lock(&self.shared.transitions).clone()
    }

    /// What the last poll saw.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.snapshot).clone()
    }

    /// The instances supervised.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn TrafficRouter> {
        &self.router
    }
}

async fn watch(
    instances: Vec<Instance>,
    router: Arc<dyn TrafficRouter>,
    options: Options,
    shared: Arc<Shared>,
) {
    let mut routed: Option<String> = None;
    if options.resume_routing {
        routed = resumed_route(&*router).await;
    }
    let mut lost_at: Option<Instant> = None;
    let mut pending: Option<Pending> = None;
    let mut lease_seen: Option<(u64, String, Instant)> = None;
    let mut routing_error: Option<String> = None;
    loop {
        let now = Instant::now();
        if let Some(w) = &options.lease {
            read_lease(w, &mut lease_seen, now).await;
        }
        let mut seen = Vec::with_capacity(instances.len());
        for i in &instances {
            seen.push((i.name.clone(), look(&i.admin).await));
        }
        let leaders: Vec<&(String, Seen)> = seen.iter().filter(|(_, s)| s.leader).collect();
        if let Some(r) = &routed {
            if !leaders.iter().any(|(n, _)| n == r) && lost_at.is_none() {
                lost_at = Some(now);
                tracing::warn!(leader = %r, "the routed leader no longer leads");
            }
        }
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
        let stale_claimed_routed = routed.as_ref().is_some_and(|r| {
            newest.as_ref().is_some_and(|(n, _)| n != r) && leaders.iter().any(|(n, _)| n == r)
        });
        if stale_claimed_routed && lost_at.is_none() {
            lost_at = Some(now);
        }
        if let Some((name, epoch)) = newest {
            if routed.as_deref() != Some(name.as_str()) {
                let detected = lost_at.unwrap_or(now);
                match switch(&*router, &name, &routed, &seen, &options).await {
                    Ok((fenced, hooked)) => {
                        let t = Transition {
                            detected_at: detected,
                            detected_wall: std::time::SystemTime::now()
                                .checked_sub(detected.elapsed())
                                .unwrap_or_else(std::time::SystemTime::now),
                            from: routed.clone(),
                            to: name.clone(),
                            epoch,
                            lease_granted_ms: ms(lease_seen
                                .as_ref()
                                .filter(|(e, _, at)| *e == epoch && *at >= detected)
                                .map_or(now, |(_, _, at)| *at)
                                - detected),
                            lease_owner: lease_seen
                                .as_ref()
                                .filter(|(e, _, _)| *e == epoch)
                                .map(|(_, o, _)| o.clone()),
                            routed_ms: ms(detected.elapsed()),
                            first_logon_ms: None,
                            old_leader_fenced: fenced,
                            fence_hook_called: hooked,
                        };
                        tracing::info!(from = ?t.from, to = %t.to, epoch = t.epoch, routed_ms = t.routed_ms, "traffic moved to the new leader");
                        let mut list = lock(&shared.transitions);
                        list.push(t);
                        pending = Some(Pending {
                            index: list.len() - 1,
                            detected,
                            to: name.clone(),
                        });
                        routed = Some(name.clone());
                        lost_at = None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, to = %name, "routing to the new leader failed; retrying");
                        routing_error = Some(e.to_string());
                    }
                }
            }
        }
        if routed.is_some() && newest_is_routed(&routed, &seen) {
            routing_error = None;
        }
        *lock(&shared.snapshot) = Snapshot {
            polled: true,
            instances: seen.clone(),
            routed: routed.clone(),
            lease: lease_seen.as_ref().map(|(e, o, _)| (*e, o.clone())),
            routing_error: routing_error.clone(),
        };
        if pending
            .as_ref()
            .is_some_and(|p| note_first_logon(p, &seen, &shared))
        {
            pending = None;
        }
        tokio::time::sleep(options.poll).await;
    }
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

/// Routes to `to`, reads it back, and checks the old leader. Returns (fenced, hook called).
async fn switch(
    router: &dyn TrafficRouter,
    to: &str,
    from: &Option<String>,
    seen: &[(String, Seen)],
    options: &Options,
) -> Result<(bool, bool), SupervisorError> {
    let may_act = || options.may_act.as_ref().is_none_or(|g| g());
    if !may_act() {
        return Err(SupervisorError::NotActing);
    }
    router.route_to(to).await?;
    let got = router.current().await?;
    if got.as_deref() != Some(to) {
        return Err(SupervisorError::NotConverged {
            router: router.name(),
            want: to.to_string(),
            got,
        });
    }
    let Some(old) = from else {
        return Ok((true, false));
    };
    let fenced = is_fenced(seen.iter().find(|(n, _)| n == old).map(|(_, s)| s));
    let mut hooked = false;
    if !fenced {
        tracing::error!(instance = %old, "the old leader still claims to lead after traffic moved");
        if let Some(hook) = options.fence.as_ref().filter(|_| may_act()) {
            hook(old);
            hooked = true;
        }
    }
    Ok((fenced, hooked))
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
}
