//! Local mode: a whole group on one machine — a leader and a standby as processes, the
//! lease in SQLite, the journal replicated between them, the local proxy in front and the
//! supervisor moving it — and a drill that kills the leader under load and reports the
//! failover phase by phase.

use crate::emulator::{provision, Emulator};
use crate::router::arc::ArcRouter;
use crate::router::global_accelerator::{GlobalAcceleratorRouter, Layout};
use crate::router::local_proxy::LocalProxy;
use crate::router::TrafficRouter;
use crate::supervisor::{Instance, LeaseWatch, Options, Supervisor, Transition};
use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, ClusterError, GroupOptions};
use fix_drill::node::TOKEN;
use fix_drill::trader::{Tally, Trader};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Local mode failed.
#[derive(Debug, Error)]
pub enum LocalError {
    /// The engines could not start or misbehaved.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The proxy could not listen.
    #[error("the local proxy cannot listen on {addr}: {source} (is another engine or fixctl using the port? pass --listen)")]
    Proxy {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The routing backend could not be set up.
    #[error("setting up routing: {0}")]
    Routing(String),
    /// The counterparty could not start.
    #[error("starting the counterparty: {0}")]
    Counterparty(String),
    /// Something did not happen in time.
    #[error("{0} did not happen within {1:?}")]
    Timeout(String, Duration),
}

/// How to run the local group.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The fixctl binary (engines run as `fixctl engine --config FILE`).
    pub exe: PathBuf,
    /// Where engines keep journals, configs and logs.
    pub dir: PathBuf,
    /// Where counterparties connect (the proxy).
    pub listen: SocketAddr,
    /// `local` or `replicated`.
    pub durability: String,
    /// Which router moves the traffic.
    pub router: RouterKind,
}

/// The router of a local group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// The local TCP proxy (counterparties connect to it).
    Proxy,
    /// Global Accelerator endpoint weights, on the local emulator (counterparties use
    /// the engines' addresses as alternates; a standby keeps its port closed).
    GlobalAccelerator,
    /// Route 53 ARC routing controls with a safety rule, on the local emulator.
    Arc,
}

/// A running local group.
pub struct LocalGroup {
    /// The engines.
    pub cluster: Cluster,
    /// The router the supervisor moves.
    pub router: Arc<dyn TrafficRouter>,
    /// Where counterparties connect, in order of preference.
    pub entry: Vec<SocketAddr>,
    /// The supervisor.
    pub supervisor: Supervisor,
    /// The AWS API emulator behind the router, when it is one of the AWS ones.
    pub emulator: Option<Emulator>,
}

const LIMIT: Duration = Duration::from_secs(20);

impl LocalGroup {
    /// Starts the engines, the proxy and the supervisor; returns once traffic is routed
    /// to a leader.
    pub async fn start(opts: &LocalOptions) -> Result<Self, LocalError> {
        let group = GroupOptions {
            exe: opts.exe.clone(),
            backend: Backend::Sqlite,
            durability: opts.durability.clone(),
            lease_ms: fix_drill::cluster::default_lease_ms(),
            instances: 2,
            names: Vec::new(),
            regions: Vec::new(),
            active_region: None,
            cross_region_sync: false,
            kafka: None,
            netns: false,
            stalled_reader: false,
            sessions: 1,
        };
        let cluster = Cluster::start(&group, &Servers::from_env(), &opts.dir).await?;
        let (router, entry, emulator) = router_for(opts, &cluster).await?;
        let instances = cluster.nodes.iter().map(Instance::from).collect();
        let lease = fix_lease::connect(&cluster.lease.url)
            .await
            .map_err(|e| LocalError::Routing(format!("reading the lease: {e}")))?;
        let supervisor = Supervisor::spawn(
            instances,
            Arc::clone(&router),
            Options {
                token: Some(TOKEN.into()),
                lease: Some(LeaseWatch {
                    store: lease,
                    group: "drill".into(),
                }),
                ..Options::default()
            },
        );
        let group = Self {
            cluster,
            router,
            entry,
            supervisor,
            emulator,
        };
        group.wait_transitions(1).await?;
        Ok(group)
    }

    /// Waits until `n` transitions were recorded; returns the last.
    pub async fn wait_transitions(&self, n: usize) -> Result<Transition, LocalError> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(t) = self.supervisor.transitions().get(n - 1) {
                return Ok(t.clone());
            }
            if Instant::now() > deadline {
                return Err(LocalError::Timeout(
                    format!(
                        "routing to a leader (transition {n}){}",
                        self.cluster.logs()
                    ),
                    LIMIT,
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Index of the instance traffic goes to.
    pub async fn routed(&self) -> Option<usize> {
        let name = self.router.current().await.ok().flatten()?;
        self.cluster.nodes.iter().position(|n| n.spec.name == name)
    }

    /// Starts again every engine whose process has exited (killed, crashed), as
    /// Kubernetes or ECS would; returns their names. A frozen (SIGSTOP) engine still
    /// runs and is left alone.
    pub fn restart_exited(&mut self) -> Vec<String> {
        let mut restarted = Vec::new();
        for n in &mut self.cluster.nodes {
            if !n.running() && n.start().is_ok() {
                restarted.push(n.spec.name.clone());
            }
        }
        restarted
    }

    /// Stops every engine (sessions logged out) and the proxy.
    pub fn stop(mut self) {
        for n in &mut self.cluster.nodes {
            n.terminate(Duration::from_secs(5));
        }
    }
}

/// One kill-and-takeover, phase by phase (milliseconds after the kill).
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    /// Which instance was killed.
    pub killed: String,
    /// Which took over.
    pub new_leader: String,
    /// Its epoch.
    pub epoch: u64,
    /// The supervisor saw the leader gone.
    pub detected_ms: f64,
    /// The standby reported leader (lease granted, journal open).
    pub lease_granted_ms: f64,
    /// The proxy pointed at it.
    pub routed_ms: f64,
    /// The counterparty was logged on again.
    pub first_logon_ms: f64,
}

/// A local drill's result.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The router that moved the traffic.
    pub router: &'static str,
    /// Each cycle.
    pub cycles: Vec<Cycle>,
    /// Orders sent.
    pub sent: u64,
    /// Orders answered (filled).
    pub answered: u64,
    /// The counterparty's counts.
    #[serde(flatten)]
    pub tally: TallyView,
}

/// [`Tally`] for the report.
#[derive(Debug, Clone, Serialize)]
pub struct TallyView {
    /// Orders without a fill.
    pub lost: u64,
    /// Reports repeated without PossDupFlag.
    pub unflagged_duplicates: u64,
    /// Reports repeated with PossDupFlag (harmless).
    pub flagged_duplicates: u64,
    /// Sequence numbers never received nor gap-filled.
    pub gaps: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `cycles` kill-and-takeover cycles with a counterparty sending `rate` orders a
/// second through the proxy; `progress(done, line)` hears about each cycle.
pub async fn drill(
    opts: &LocalOptions,
    cycles: u32,
    rate: u32,
    mut progress: impl FnMut(u32, &str),
) -> Result<DrillReport, LocalError> {
    let mut group = LocalGroup::start(opts).await?;
    let mut trader = Trader::start(&group.entry, rate)
        .await
        .map_err(|e| LocalError::Counterparty(e.to_string()))?;
    let mut out = Vec::new();
    for cycle in 1..=cycles {
        let leader = group
            .routed()
            .await
            .ok_or_else(|| LocalError::Timeout("a routed leader".into(), LIMIT))?;
        for i in (0..group.cluster.nodes.len()).filter(|i| *i != leader) {
            group.cluster.wait_caught_up(i, LIMIT).await?;
        }
        if !trader.wait_logged_on(LIMIT).await {
            return Err(LocalError::Timeout(
                "the counterparty logging on".into(),
                LIMIT,
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = group.supervisor.transitions().len();
        let killed_at = Instant::now();
        group.cluster.nodes[leader].kill9();
        let t = group.wait_transitions(before + 1).await?;
        let book = trader.book();
        let deadline = Instant::now() + LIMIT;
        let logon = loop {
            if let Some(l) = book.first_logon_after(killed_at) {
                break l;
            }
            if Instant::now() > deadline {
                return Err(LocalError::Timeout(
                    "the counterparty logging on again".into(),
                    LIMIT,
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let detected = t.detected_at.saturating_duration_since(killed_at);
        let c = Cycle {
            killed: group.cluster.nodes[leader].spec.name.clone(),
            new_leader: t.to.clone(),
            epoch: t.epoch,
            detected_ms: ms(detected),
            lease_granted_ms: ms(detected) + t.lease_granted_ms,
            routed_ms: ms(detected) + t.routed_ms,
            first_logon_ms: ms(logon - killed_at),
        };
        progress(
            cycle,
            &format!(
                "{} → {}: detected {:.0} ms, lease {:.0} ms, routed {:.0} ms, logon {:.0} ms",
                c.killed,
                c.new_leader,
                c.detected_ms,
                c.lease_granted_ms,
                c.routed_ms,
                c.first_logon_ms
            ),
        );
        out.push(c);
        group.cluster.nodes[leader]
            .start()
            .map_err(|source| ClusterError::Spawn {
                name: group.cluster.nodes[leader].spec.name.clone(),
                source,
            })?;
    }
    let tally: Tally = trader.settle(LIMIT).await;
    trader.shutdown().await;
    for n in &mut group.cluster.nodes {
        n.kill9();
    }
    Ok(DrillReport {
        router: group.router.name(),
        cycles: out,
        sent: tally.sent,
        answered: tally.sent - tally.lost,
        tally: TallyView {
            lost: tally.lost,
            unflagged_duplicates: tally.unflagged_duplicates,
            flagged_duplicates: tally.flagged_duplicates,
            gaps: tally.gaps,
        },
    })
}

/// The router `opts` asks for, and where counterparties connect.
async fn router_for(
    opts: &LocalOptions,
    cluster: &Cluster,
) -> Result<(Arc<dyn TrafficRouter>, Vec<SocketAddr>, Option<Emulator>), LocalError> {
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.spec.name.clone()).collect();
    let direct: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.fix_addr()).collect();
    let emulated = |e: String| LocalError::Routing(e);
    match opts.router {
        RouterKind::Proxy => {
            let endpoints = names.iter().cloned().zip(direct.iter().copied()).collect();
            let proxy = LocalProxy::start(opts.listen, endpoints)
                .await
                .map_err(|source| LocalError::Proxy {
                    addr: opts.listen,
                    source,
                })?;
            let entry = vec![proxy.addr()];
            Ok((Arc::new(proxy), entry, None))
        }
        RouterKind::GlobalAccelerator => {
            let emu = Emulator::start()
                .await
                .map_err(|e| emulated(format!("starting the emulator: {e}")))?;
            let endpoints: BTreeMap<String, String> = names
                .iter()
                .map(|n| (n.clone(), format!("endpoint-{n}")))
                .collect();
            let ids: Vec<String> = endpoints.values().cloned().collect();
            let port = match opts.listen.port() {
                0 => 9878,
                p => p,
            };
            let group_arn = provision::global_accelerator(&emu.url(), port, &ids)
                .await
                .map_err(emulated)?;
            let router = GlobalAcceleratorRouter::new(
                Layout::Weights {
                    group_arn,
                    endpoints,
                },
                Some(&emu.url()),
            )
            .await;
            Ok((Arc::new(router), direct, Some(emu)))
        }
        RouterKind::Arc => {
            let emu = Emulator::start()
                .await
                .map_err(|e| emulated(format!("starting the emulator: {e}")))?;
            let (endpoints, controls, _rule) = provision::arc(
                &emu.url(),
                &names,
                aws_sdk_route53recoverycontrolconfig::types::RuleType::Atleast,
            )
            .await
            .map_err(emulated)?;
            let router = ArcRouter::new(endpoints, controls, Vec::new(), true).await;
            Ok((Arc::new(router), direct, Some(emu)))
        }
    }
}

/// A fresh work directory under `base` (or the system's temporary directory).
pub fn work_dir(base: Option<&Path>) -> std::io::Result<tempfile::TempDir> {
    match base {
        Some(b) => {
            std::fs::create_dir_all(b)?;
            tempfile::Builder::new()
                .prefix("fixctl-local-")
                .tempdir_in(b)
        }
        None => tempfile::Builder::new().prefix("fixctl-local-").tempdir(),
    }
}
