//! `fix-operator ecs`: the failover supervisor outside Kubernetes, as its own ECS service.
//!
//! Several supervisor tasks run; one acts. They elect it through the engines' lease
//! store, in a group of their own (`[supervisor] election_group`), with the engines'
//! lease rules ([`fix_lease::Keeper`]): the holder acts only while its lease is trusted
//! by its local clock. A routing change starts only with
//! [`crate::supervisor::MIN_TRUST_TO_ACT`] of trust left and is abandoned when the trust
//! ends; a call already sent may still land after that, so the acting supervisor reads
//! the routing back every few seconds and routes again if it drifted. The acting one
//! runs the [`crate::supervisor::Supervisor`] over the engines' `/readyz`: traffic
//! (Global Accelerator or ARC) follows the engines' leader, and an engine that still
//! claims to lead with an older epoch has its ECS task stopped ([`fence::EcsFence`]),
//! after one more look at it and only while this supervisor still acts. A supervisor
//! that takes over from another one starts from where routing points (read back).
//!
//! `GET /healthz` answers while the process runs; `GET /status` is this supervisor as
//! JSON ([`status::Status`]).

pub mod fence;
pub mod status;

use crate::config::FixctlConfig;
use crate::supervisor::{Gate, LeaseWatch, Options, Supervisor};
use fence::EcsFence;
use fix_lease::{Keeper, Leadership, LeaseConfig, RoleState};
use status::Shared;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

/// `fix-operator ecs` cannot start.
#[derive(Debug, Error)]
pub enum EcsSupervisorError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A setting is missing or inconsistent.
    #[error("{path}: {message}")]
    Setting {
        /// The file.
        path: String,
        /// What to fix.
        message: String,
    },
    /// The lease store cannot be reached.
    #[error("{path}: [lease] url: {source}")]
    Lease {
        /// The file.
        path: String,
        /// Why.
        source: fix_lease::LeaseError,
    },
    /// The task contending for the supervisors' lease stopped.
    #[error("the supervisors' lease loop stopped; exiting so that ECS starts another supervisor")]
    LeaseLoopStopped,
}

/// A supervisor of the group in one configuration file, ready to run.
pub struct EcsSupervisor {
    owner: String,
    election: LeaseConfig,
    store: Arc<dyn fix_lease::LeaseStore>,
    options: Options,
    instances: Vec<crate::supervisor::Instance>,
    router: Arc<dyn crate::router::TrafficRouter>,
    fence: EcsFence,
}

impl EcsSupervisor {
    /// Reads `path` (a `fixctl` configuration with `[lease]`, `[[engine]]`, `[router]`,
    /// `[[ecs]]` and an optional `[supervisor]`) for the supervisor named `owner`.
    pub async fn from_file(path: &Path, owner: &str) -> Result<Self, EcsSupervisorError> {
        Self::from_config(FixctlConfig::from_file(path)?, path, owner).await
    }

    /// Like [`EcsSupervisor::from_file`], from TOML in the environment variable `var`
    /// (on ECS, a secret filled from an SSM parameter).
    pub async fn from_env(var: &str, owner: &str) -> Result<Self, EcsSupervisorError> {
        let origin = format!("${var}");
        let text = std::env::var(var)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| EcsSupervisorError::Setting {
                path: origin.clone(),
                message: format!("the environment variable {var} is not set or empty: set it to the supervisor's TOML (on ECS, a secret from the SSM parameter infra/supervisor.yaml names)"),
            })?;
        let cfg = FixctlConfig::from_toml(&text, &origin)?;
        Self::from_config(cfg, Path::new(&origin), owner).await
    }

    async fn from_config(
        cfg: FixctlConfig,
        path: &Path,
        owner: &str,
    ) -> Result<Self, EcsSupervisorError> {
        let bad = |message: String| EcsSupervisorError::Setting {
            path: path.display().to_string(),
            message,
        };
        if cfg.engines.is_empty() {
            return Err(bad("no [[engine]] entries: list the group's engines with their admin addresses (the Cloud Map names of infra/engines.yaml on ECS)".into()));
        }
        let lease = cfg.lease.clone().ok_or_else(|| {
            bad("no [lease] section: the supervisors elect the one that acts through the engines' lease store (url, group)".into())
        })?;
        let section = cfg.supervisor.clone().unwrap_or_default();
        let group = section
            .election_group
            .clone()
            .unwrap_or_else(|| format!("{}-supervisor", lease.group));
        if group == lease.group {
            return Err(bad(format!(
                "[supervisor] election_group = \"{group}\" is the engines' own lease group: give the supervisors a group of their own"
            )));
        }
        let mut election = LeaseConfig::new(&group, owner);
        let ms = Duration::from_millis;
        election.ttl = section.ttl_ms.map_or(election.ttl, ms);
        election.renew_interval = section.renew_ms.map_or(election.renew_interval, ms);
        election.safety_margin = section.margin_ms.map_or(election.safety_margin, ms);
        if election.renew_interval >= election.trust_window() {
            return Err(bad(format!(
                "[supervisor] renew_ms ({} ms) must be below ttl_ms − margin_ms ({} ms), or the lease lapses between renewals",
                election.renew_interval.as_millis(),
                election.trust_window().as_millis()
            )));
        }
        let store =
            fix_lease::connect(&lease.url)
                .await
                .map_err(|source| EcsSupervisorError::Lease {
                    path: path.display().to_string(),
                    source,
                })?;
        let fence = EcsFence::from_config(&cfg).await.map_err(bad)?;
        let router = cfg.router(path).await?;
        let options = Options {
            poll: ms(section.poll_ms.unwrap_or(100).max(10)),
            token: cfg.token(),
            fence: None,
            lease: Some(LeaseWatch {
                store: Arc::clone(&store),
                group: lease.group.clone(),
            }),
            may_act: None,
            resume_routing: true,
            verify_routing_every: Some(VERIFY_ROUTING_EVERY),
        };
        Ok(Self {
            owner: owner.to_string(),
            election,
            store,
            options,
            instances: cfg.instances(),
            router,
            fence,
        })
    }

    /// Runs until the process ends: contends for the supervisors' lease and supervises
    /// while holding it. `GET /healthz` and `GET /status` are served on `listener`.
    /// Returns only if the lease loop stops (an error: the process should exit so that
    /// ECS starts another).
    pub async fn run(self, listener: tokio::net::TcpListener) -> Result<(), EcsSupervisorError> {
        let keeper = Keeper::spawn(Arc::clone(&self.store), self.election.clone());
        let shared = Arc::new(Shared::new(&self.owner, &self.election.group));
        tokio::spawn(status::serve(
            listener,
            Arc::clone(&shared),
            self.fence.clone(),
        ));
        let mut role = keeper.subscribe();
        loop {
            wait_for(&mut role, acting).await?;
            let term = role.borrow().clone();
            tracing::info!(owner = %self.owner, epoch = ?term.role, "this supervisor acts");
            let gate = gate(role.clone());
            let supervisor = Arc::new(Supervisor::spawn(
                self.instances.clone(),
                Arc::clone(&self.router),
                Options {
                    fence: Some(self.fence.hook(Arc::clone(&gate))),
                    may_act: Some(gate),
                    ..self.options.clone()
                },
            ));
            shared.start_term(&term);
            shared.set_supervisor(Some(Arc::clone(&supervisor)));
            let ended = wait_for(&mut role, |s| !acting(s)).await;
            let reason = role.borrow().reason.clone();
            tracing::warn!(owner = %self.owner, %reason, "this supervisor no longer acts");
            shared.end_term(&supervisor);
            shared.set_supervisor(None);
            ended?;
        }
    }

    /// Its owner id in the supervisors' election.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// How often the acting supervisor reads the routing back to repair a change that
/// landed behind its back (a deposed supervisor's late call).
const VERIFY_ROUTING_EVERY: Duration = Duration::from_secs(5);

/// Until when `s` lets this supervisor act: while it holds a lease it still trusts.
fn trusted_until(s: &RoleState) -> Option<Instant> {
    match s.role {
        Leadership::Leader { .. } => s.valid_until.filter(|v| Instant::now() < *v),
        Leadership::Standby => None,
    }
}

fn acting(s: &RoleState) -> bool {
    trusted_until(s).is_some()
}

/// The supervisor's gate: until when the lease is trusted, read at each call.
fn gate(role: watch::Receiver<RoleState>) -> Gate {
    Arc::new(move || trusted_until(&role.borrow()))
}

/// Waits until `cond` holds for the role (checked at least every 50 ms, since trust
/// also ends by the clock alone); an error if the lease loop has stopped.
async fn wait_for(
    role: &mut watch::Receiver<RoleState>,
    cond: impl Fn(&RoleState) -> bool,
) -> Result<(), EcsSupervisorError> {
    loop {
        if cond(&role.borrow_and_update()) {
            return Ok(());
        }
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(50), role.changed()).await {
            return Err(EcsSupervisorError::LeaseLoopStopped);
        }
    }
}

/// The owner id of a supervisor by default: the host name, the process id and a
/// random suffix (two tasks may share a host name and both run as process 1).
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "supervisor".into());
    let mut suffix = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{suffix}", std::process::id())
}
