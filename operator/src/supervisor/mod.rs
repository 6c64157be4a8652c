//! The failover supervisor: follows the group's leadership through every engine's
//! `/readyz` and keeps the router pointed at the leader.
//!
//! Each poll reads every instance. When an instance reports itself leader and ready (the
//! newest epoch wins if several do: an older one is stale) and it is not where traffic
//! goes, the supervisor routes there and reads the routing back. Any other instance that
//! still claims to lead with an older epoch, looked at once more, is handed to the
//! fencing hook (a platform's "stop this task"), again every [`FENCE_RETRY`] while the
//! claim lasts. Each transition is recorded with its phases, measured from the poll that
//! first saw the old leader gone. With a [`Gate`], every change is started only with
//! [`MIN_TRUST_TO_ACT`] of trust left and abandoned when the trust ends.

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
mod watch;

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

/// An instance that still claims to lead with an older epoch than the one traffic
/// went to: what the fencing hook is told.
#[derive(Debug, Clone)]
pub struct FenceRequest {
    /// The instance.
    pub instance: String,
    /// Its admin API (to look again right before acting).
    pub admin: AdminAddr,
    /// The epoch it claims (0 when its answer could not be read).
    pub claimed_epoch: u64,
    /// The epoch of the leader traffic goes to.
    pub new_epoch: u64,
    /// When the claim was last seen, by the wall clock: a task or pod started after it
    /// cannot have made it.
    pub observed_wall: std::time::SystemTime,
}

impl FenceRequest {
    /// Whether `now` (a fresh look at the instance) still shows the stale claim: it
    /// reports leader with an older epoch, or answers something unreadable (it may
    /// still lead).
    pub fn still_claims(&self, now: &Seen) -> bool {
        now.answered && (now.unreadable.is_some() || (now.leader && now.epoch < self.new_epoch))
    }
}

/// Called for an instance that still claims to lead after traffic moved away from it
/// (a platform's "stop this task"). Called again for the same instance only after
/// [`FENCE_RETRY`], while the claim lasts.
pub type FenceHook = Arc<dyn Fn(FenceRequest) + Send + Sync>;

/// How long after a fence the same instance may be fenced again if it still claims.
pub const FENCE_RETRY: Duration = Duration::from_secs(10);

/// Asked right before every change the supervisor makes (routing, fencing): until when
/// it may act (`None`: not now). A supervisor that is one of several (each ECS task of
/// `fix-operator ecs`) answers from its own lease, so that a deposed one starts no
/// change, and one in flight is abandoned when its trust ends.
pub type Gate = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

/// A change is started only with at least this much trust left: a routing call takes
/// tens of milliseconds, and one that is abandoned may still land.
pub const MIN_TRUST_TO_ACT: Duration = Duration::from_millis(200);

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
    /// Until when it may act (always, without one).
    pub may_act: Option<Gate>,
    /// Start from where the router sends traffic now (read back) instead of from
    /// nowhere, so that a supervisor taking over from another one does not record a
    /// start-up transition.
    pub resume_routing: bool,
    /// Read the routing back this often and route again if it no longer goes where this
    /// supervisor sent it (another writer, or a change of a deposed supervisor that
    /// landed late). Never, without it.
    pub verify_routing_every: Option<Duration>,
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
            verify_routing_every: None,
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

/// One look at an instance's `/readyz`.
pub(crate) async fn look(admin: &AdminAddr) -> Seen {
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
        let task = tokio::spawn(watch::watch(
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
