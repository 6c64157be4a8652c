//! An engine group of real processes (two instances, one lease store, replication
//! between them) and the questions a drill or test asks of it.

use crate::backend::{Backend, BackendError, LeaseDb, Servers};
use crate::journals::{self, JournalCheck};
use crate::node::{Node, NodeSpec};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lease group every drill group's engines share.
pub const GROUP: &str = "drill";

/// How the group runs.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// The drill binary (run as `EXE engine --config FILE`).
    pub exe: PathBuf,
    /// Lease backend.
    pub backend: Backend,
    /// `local` or `replicated`.
    pub durability: String,
    /// Lease TTL, renew interval, safety margin (ms).
    pub lease_ms: (u64, u64, u64),
    /// Instances in the group (2 or more).
    pub instances: usize,
    /// The instances' names (and lease owners); empty: `engine-a`, `engine-b`, …
    pub names: Vec<String>,
    /// The instances' regions (`[engine.lease] region`), in order; empty: none (a
    /// single-region group).
    pub regions: Vec<String>,
    /// Pin the group to this active region before the engines start (see
    /// `fix_lease::region`).
    pub active_region: Option<String>,
    /// `[engine.replication] cross_region = 'sync'` (else `async`).
    pub cross_region_sync: bool,
    /// The Kafka bridge's `[engine.kafka]` body for every instance (none: `exec`).
    pub kafka: Option<String>,
    /// Run each instance in a network namespace of its own ([`crate::netns`]), so that
    /// links between them can be cut. Needs root; the lease store must be reachable from
    /// the namespaces (SQLite: a file).
    pub netns: bool,
    /// Also accept `EXEC`←`SLOW` on each instance's FIX port, for the zero-window
    /// counterparty ([`crate::stalled_reader`]); off, every configured session is the
    /// trader's.
    pub stalled_reader: bool,
    /// FIX sessions per instance: `EXEC`←`CLIENT`, then `CLIENT2` … on the same port
    /// (the counterparty opens as many, [`crate::trader::Trader::start_sessions`]).
    pub sessions: usize,
}

impl GroupOptions {
    /// A single-region group of `instances` run by `exe`: TTL 1.5 s, renew 300 ms,
    /// margin 300 ms (longer than the engine's defaults, [`default_lease_ms`]: the test
    /// suite runs several groups at once on two cores), default names, the `exec`
    /// simulator.
    pub fn new(exe: PathBuf, backend: Backend, durability: &str, instances: usize) -> Self {
        Self {
            exe,
            backend,
            durability: durability.into(),
            lease_ms: (1500, 300, 300),
            instances,
            names: Vec::new(),
            regions: Vec::new(),
            active_region: None,
            cross_region_sync: false,
            kafka: None,
            netns: false,
            stalled_reader: false,
            sessions: 1,
        }
    }
}

/// The engine's default lease settings: TTL, renew interval, safety margin (ms).
pub fn default_lease_ms() -> (u64, u64, u64) {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    (
        ms(fix_lease::DEFAULT_TTL),
        ms(fix_lease::DEFAULT_RENEW_INTERVAL),
        ms(fix_lease::DEFAULT_SAFETY_MARGIN),
    )
}

/// A group that failed to start or misbehaved.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The lease store could not be prepared.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A process could not be started.
    #[error("starting engine {name}: {source}")]
    Spawn {
        /// Which.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Only a SQLite lease store (a file) is reachable from the namespaces.
    #[error("a group in network namespaces needs the sqlite lease backend, not {0}: the servers listen on loopback, which the namespaces do not share")]
    NetnsBackend(&'static str),
    /// A partition fault was asked of a group that does not run in namespaces.
    #[error("a partition fault needs the group in network namespaces (GroupOptions::netns)")]
    NoNetwork,
    /// The network namespaces could not be made or changed.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// The journals could not be read after the drill.
    #[error("reading the journals after the drill: {0}")]
    Journal(#[from] fix_store::JournalError),
    /// A process could not be stopped or resumed (SIGSTOP / SIGCONT).
    #[error("signalling engine {name}: {source}")]
    Signal {
        /// Which.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {limit:?}{logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        limit: Duration,
        /// The engines' last log lines.
        logs: String,
    },
}

/// `n` distinct free loopback ports (all held open until every one is chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    held.iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect()
}

/// A running group.
pub struct Cluster {
    /// Its instances.
    pub nodes: Vec<Node>,
    /// Its lease store.
    pub lease: LeaseDb,
    /// The instances' network namespaces, when the group runs in them.
    pub network: Option<crate::netns::Network>,
}

impl Cluster {
    /// Prepares the lease store and starts every instance.
    pub async fn start(
        opts: &GroupOptions,
        servers: &Servers,
        dir: &Path,
    ) -> Result<Self, ClusterError> {
        let mut lease = LeaseDb::prepare(opts.backend, servers, dir).await?;
        if let Some(region) = &opts.active_region {
            let store =
                fix_lease::connect(&lease.url)
                    .await
                    .map_err(|e| BackendError::Unreachable {
                        backend: opts.backend.name(),
                        detail: e.to_string(),
                    })?;
            fix_lease::region::set_active_region(store.as_ref(), GROUP, region)
                .await
                .map_err(|e| BackendError::Unreachable {
                    backend: opts.backend.name(),
                    detail: format!("pinning the active region: {e}"),
                })?;
        }
        let n = opts.instances.max(2);
        // The lease proxies bind ephemeral ports: start them before choosing the
        // engines' ports, so none of them can take a port chosen (and let go) below.
        let mut lease_urls = Vec::new();
        for i in 0..n {
            lease_urls.push(lease.node_url(i).await?);
        }
        let ports: Vec<(u16, u16, u16)> = free_ports(3 * n)
            .chunks(3)
            .filter(|c| c.len() == 3)
            .map(|c| (c[0], c[1], c[2]))
            .collect();
        let network = if opts.netns {
            if opts.backend != Backend::Sqlite {
                return Err(ClusterError::NetnsBackend(opts.backend.name()));
            }
            Some(crate::netns::Network::create(n)?)
        } else {
            None
        };
        let host = |i: usize| {
            network
                .as_ref()
                .map_or(std::net::Ipv4Addr::LOCALHOST, |net| net.host(i))
        };
        let mut nodes = Vec::new();
        for (i, &(fix_port, admin_port, repl_port)) in ports.iter().enumerate() {
            let spec = NodeSpec {
                name: opts
                    .names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("engine-{}", (b'a' + i as u8) as char)),
                dir: dir.join(format!("engine-{i}")),
                fix_port,
                admin_port,
                repl_port,
                peers: ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(j, p)| SocketAddr::from((host(j), p.2)))
                    .collect(),
                host: host(i),
                netns: network.as_ref().map(|net| net.namespace(i)),
                lease_url: lease_urls[i].clone(),
                region: opts.regions.get(i).cloned(),
                cross_region_sync: opts.cross_region_sync,
                kafka: opts.kafka.clone(),
                stalled_reader: opts.stalled_reader,
                sessions: opts.sessions,
                durability: opts.durability.clone(),
                ttl_ms: opts.lease_ms.0,
                renew_ms: opts.lease_ms.1,
                margin_ms: opts.lease_ms.2,
            };
            let mut node = Node::new(&opts.exe, spec);
            node.start().map_err(|source| ClusterError::Spawn {
                name: node.spec.name.clone(),
                source,
            })?;
            nodes.push(node);
        }
        Ok(Self {
            nodes,
            lease,
            network,
        })
    }

    /// Every instance's FIX address, in order (the counterparty's alternates).
    pub fn fix_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(Node::fix_addr).collect()
    }

    /// The index of the instance that reports leader, if exactly one does.
    pub async fn leader(&self) -> Option<usize> {
        let mut found = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_leader().await {
                found.push(i);
            }
        }
        (found.len() == 1).then(|| found[0])
    }

    /// How many instances report leader now.
    pub async fn leaders(&self) -> usize {
        let mut count = 0;
        for n in &self.nodes {
            if n.is_leader().await {
                count += 1;
            }
        }
        count
    }

    /// The engines' last log lines, for error messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!("\n--- {} ---\n{}", n.spec.name, n.log_tail(15)));
        }
        out
    }

    fn timeout(&self, what: &str, limit: Duration) -> ClusterError {
        ClusterError::Timeout {
            what: what.to_string(),
            limit,
            logs: self.logs(),
        }
    }

    /// Waits for exactly one leader.
    pub async fn wait_leader(&self, limit: Duration) -> Result<usize, ClusterError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.leader().await {
                return Ok(i);
            }
            if Instant::now() > deadline {
                return Err(self.timeout("a single leader", limit));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until instance `i` follows a leader, has caught up with it, and may take
    /// over: it is in the in-sync set recorded in the lease store (when one is).
    pub async fn wait_caught_up(&self, i: usize, limit: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = self.nodes[i].readiness().await {
                let follower = v.replication.as_ref().and_then(|r| r.follower.as_ref());
                if follower.is_some_and(|f| f.caught_up && f.leader.is_some())
                    && v.in_sync != Some(false)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let name = &self.nodes[i].spec.name;
                return Err(self.timeout(&format!("{name} catching up with the leader"), limit));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for one leader and every other instance caught up with it; returns the
    /// leader.
    pub async fn wait_settled(&self, limit: Duration) -> Result<usize, ClusterError> {
        let leader = self.wait_leader(limit).await?;
        for i in (0..self.nodes.len()).filter(|i| *i != leader) {
            self.wait_caught_up(i, limit).await?;
        }
        Ok(leader)
    }

    /// Ends the group and checks its journals ([`crate::journals`]): waits for one
    /// leader and for every other running instance to catch up with it, stops them all
    /// (`kill -9`, so nothing is tidied on the way out) and compares the journals, the
    /// last leader's as the reference. Instances not running are compared as they were
    /// left.
    pub async fn stop_and_check_journals(
        &mut self,
        limit: Duration,
    ) -> Result<JournalCheck, ClusterError> {
        let leader = self.wait_leader(limit).await?;
        for i in 0..self.nodes.len() {
            if i != leader && self.nodes[i].running() {
                self.wait_caught_up(i, limit).await?;
            }
        }
        for n in &mut self.nodes {
            n.kill9();
        }
        let dirs: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.spec.dir.join("journal"))
            .collect();
        Ok(journals::check(&dirs, leader)?)
    }

    /// Polls instance `i` until it reports leader; returns when it did.
    pub async fn wait_promoted(&self, i: usize, limit: Duration) -> Result<Instant, ClusterError> {
        let deadline = Instant::now() + limit;
        loop {
            if self.nodes[i].is_leader().await {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                let name = &self.nodes[i].spec.name;
                return Err(self.timeout(&format!("{name} taking over"), limit));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
