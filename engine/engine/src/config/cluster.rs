//! The `[engine.*]` subsections about how an instance runs beside its peers: CPU
//! placement (`runtime`), journal replication and durability (`replication`), the admin
//! API (`admin`) and the leadership lease (`lease`).

use super::{invalid, yes, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `[engine.runtime]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Worker threads (default: one per CPU).
    pub worker_threads: Option<usize>,
    /// Pin the worker threads to these CPU cores, round-robin (default: not pinned);
    /// the journal's sync thread runs on the first of them.
    #[serde(default)]
    pub pin_cores: Vec<usize>,
    /// Busy-poll the FIX connections instead of sleeping until data arrives: each
    /// session task checks its socket, yields, and checks again, so a message is picked
    /// up without a thread wake-up (lower, steadier latency) at the price of one core
    /// per worker thread kept at 100% (default: false, the runtime sleeps in epoll).
    /// A session waiting for its store's commit (the journal's fsync, a standby's Ack)
    /// spins too, for up to 2 ms, yielding the core to other threads between looks.
    #[serde(default)]
    pub busy_poll: bool,
}

/// When a message counts as safe to send or to hand to the application
/// (`local`, `replicated`, `replicated-written`, `sql`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// On the leader's disk (fdatasync). A failover can lose what the standby had not
    /// received yet.
    #[default]
    Local,
    /// On the disk of every instance in the group's **in-sync set**, recorded in the
    /// lease store: a failover loses nothing (RPO 0), because only members of that set
    /// may take the lease. A standby that keeps a message waiting longer than
    /// `standby_wait_ms` is removed from the set (`on_standby_loss = "shrink"`, by a
    /// write conditional on the leader's epoch, before anything it lacks is answered) or
    /// the leader waits for it (`"halt"`); it rejoins once it has caught up.
    Replicated,
    /// Received and **written** (not yet synced) by every instance in the in-sync set,
    /// this leader included; every instance fsyncs in the background. A message leaves
    /// after one network round trip instead of two fdatasyncs in series. Loses nothing
    /// when any one machine or process fails; loses what was not synced yet when the
    /// leader's machine and every in-sync standby's machine fail together (a power
    /// loss of the whole group). While no other instance is recorded in the set, the
    /// leader waits for its own fsync.
    ReplicatedWritten,
    /// On the leader's disk and committed to a `fix_journal` table in the lease's
    /// database (PostgreSQL or MySQL), in the transaction that checks the lease epoch.
    /// Standbys tail the table; RPO 0 without a live standby.
    Sql,
}

impl Durability {
    /// Whether writes wait for the in-sync set kept in the lease store (`replicated`,
    /// `replicated-written`).
    pub fn keeps_in_sync_set(self) -> bool {
        matches!(self, Self::Replicated | Self::ReplicatedWritten)
    }

    /// What a standby's acknowledgement counts: what it wrote (`replicated-written`) or
    /// what it made durable (every other mode).
    pub fn counted(self) -> fix_cluster::source::Counted {
        match self {
            Self::ReplicatedWritten => fix_cluster::source::Counted::Written,
            _ => fix_cluster::source::Counted::Durable,
        }
    }
}

/// `[engine.replication]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    /// Where this instance serves its journal to standbys while it leads, e.g.
    /// `127.0.0.1:9901` (not used with `sql` durability).
    pub listen: Option<String>,
    /// The replication addresses of the other instances of the group; a standby follows
    /// whichever of them leads.
    #[serde(default)]
    pub peers: Vec<String>,
    /// `local` (default), `replicated` or `sql`.
    #[serde(default)]
    pub durability: Durability,
    /// With `replicated`: how long a message may wait for an in-sync standby before
    /// `on_standby_loss` applies (default 1000 ms).
    pub standby_wait_ms: Option<u64>,
    /// With `replicated`, when an in-sync standby keeps a message waiting past
    /// `standby_wait_ms`: `shrink` (default) records the in-sync set without it and goes
    /// on (the standby may not lead until it has caught up); `halt` keeps waiting, so
    /// nothing is answered with a single copy.
    #[serde(default)]
    pub on_standby_loss: fix_cluster::in_sync::OnStandbyLoss,
    /// A group spread over regions (`[engine.lease] region` on every instance): with
    /// `replicated`, whether a message also waits for a standby in another region
    /// (`sync`: RPO 0 across regions, at the price of the cross-region round trip) or only
    /// for the nearest one (`async`, the default: the other regions follow behind by the
    /// `fix_replication_cross_region_lag_bytes` metric).
    #[serde(default)]
    pub cross_region: CrossRegion,
    /// Environment variable holding the group's replication key (at least 16 bytes,
    /// e.g. `openssl rand -hex 32`): peers prove they hold it before any record moves.
    /// Required when `listen` is not a loopback address.
    pub key_env: Option<String>,
    /// File holding the replication key (a mounted Secret), instead of `key_env`.
    pub key_file: Option<std::path::PathBuf>,
    /// `[engine.replication.tls]`: the replication channel over mutual TLS (a network
    /// between regions, say). `cert` and `key` are this instance's (presented both when
    /// it serves its journal and when it follows another), `ca` the certificates the
    /// group's instances are signed by; `server_name` the name to verify in the leader's
    /// certificate (default: the host part of the peer address followed).
    pub tls: Option<super::TlsSection>,
}

/// How a multi-region group replicates between regions.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CrossRegion {
    /// The other regions follow; only the nearest standby holds messages back.
    #[default]
    Async,
    /// A standby in another region must have each message before it is sent.
    Sync,
}

impl ReplicationSection {
    /// `listen` and `peers`, parsed (`listen` is required except with `sql` durability).
    ///
    /// Peers may be named (`HOST:PORT`, looked up at every connection attempt, as a
    /// Kubernetes pod's DNS name must be); the listen address is an `IP:PORT`.
    pub fn addresses(&self) -> Result<(Option<SocketAddr>, Vec<String>), ConfigError> {
        let parse = |key: &str, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|_| invalid("engine", key, v, "IP:PORT, e.g. 127.0.0.1:9901"))
        };
        let listen = match (&self.listen, self.durability) {
            (Some(l), _) => Some(parse("replication.listen", l)?),
            (None, Durability::Sql) => None,
            (None, _) => return Err(invalid(
                "engine",
                "replication.listen",
                "missing",
                "IP:PORT where this instance serves its journal to standbys, e.g. 127.0.0.1:9901",
            )),
        };
        let peers = self
            .peers
            .iter()
            .map(|p| match p.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(p.clone())
                }
                _ => Err(invalid(
                    "engine",
                    "replication.peers",
                    p,
                    "HOST:PORT or IP:PORT, e.g. 10.0.0.2:9901 or engine-1.engine-peers:9901",
                )),
            })
            .collect::<Result<_, _>>()?;
        if let Some(addr) = listen.filter(|a| !a.ip().is_loopback()) {
            if self.key_env.is_none() && self.key_file.is_none() {
                return Err(invalid(
                    "engine",
                    "replication.listen",
                    &addr.to_string(),
                    "a loopback address, or set replication.key_env (or key_file) to the group's shared key: without one, any host that reaches this port could read the journal or pose as a standby",
                ));
            }
        }
        Ok((listen, peers))
    }

    /// The replication key's bytes from `key_env` or `key_file` (at least
    /// [`MIN_KEY_LEN`]); `None` when neither is set.
    pub fn key_bytes(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let (source, key, bytes) = match (&self.key_env, &self.key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "engine",
                    "replication.key_file",
                    "set together with key_env",
                    "one of key_env and key_file",
                ))
            }
            (None, None) => return Ok(None),
            (Some(var), None) => {
                let value = std::env::var(var).map_err(|_| {
                    invalid(
                        "engine",
                        "replication.key_env",
                        var,
                        "the name of a set environment variable holding the key (the variable is not set)",
                    )
                })?;
                (var.clone(), "replication.key_env", value.into_bytes())
            }
            (None, Some(path)) => {
                let text = std::fs::read(path).map_err(|e| {
                    invalid(
                        "engine",
                        "replication.key_file",
                        &path.display().to_string(),
                        &format!("a readable file holding the key ({e})"),
                    )
                })?;
                (path.display().to_string(), "replication.key_file", text)
            }
        };
        let trimmed = bytes.trim_ascii();
        if trimmed.len() >= MIN_KEY_LEN {
            return Ok(Some(trimmed.to_vec()));
        }
        Err(invalid(
                "engine",
                key,
                &source,
                &format!(
                    "a key of at least {MIN_KEY_LEN} bytes (this one has {}), e.g. `openssl rand -hex 32`",
                    trimmed.len()
                ),
        ))
    }
}

/// The shortest replication key accepted (bytes).
pub const MIN_KEY_LEN: usize = 16;

/// `[engine.admin]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address to serve on, e.g. `127.0.0.1:9100`.
    pub listen: String,
    /// Bearer token for actions (logout, sequence numbers, step down).
    pub token: Option<String>,
    /// Environment variable holding the token (preferred over `token` in files).
    pub token_env: Option<String>,
}

impl AdminSection {
    /// The token: from `token_env` if set there, else `token`.
    pub fn token(&self) -> Option<String> {
        self.token_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty())
            .or_else(|| self.token.clone())
    }
}

/// `[engine.lease]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LeaseSection {
    /// `sqlite://PATH`, `postgres://…`, `mysql://…` or `dynamodb://TABLE[?region=…&endpoint=…]`.
    #[serde(default)]
    pub url: String,
    /// Read `url` from this environment variable instead (it may carry credentials, as
    /// when Kubernetes passes a Secret): exactly one of `url` and `url_env`.
    pub url_env: Option<String>,
    /// The engine group: the sessions that fail over together.
    #[serde(default = "default_group")]
    pub group: String,
    /// This instance's id, unique per instance (default: host name and process id).
    pub owner: Option<String>,
    /// The region this instance runs in, for a group spread over regions: it contends
    /// for the lease only while its region is the group's active region (moved by the
    /// rotation and DR runbooks; unset = every instance contends).
    pub region: Option<String>,
    /// Lease time to live in milliseconds (default 800).
    pub ttl_ms: Option<u64>,
    /// Renew interval in milliseconds (default 150).
    pub renew_interval_ms: Option<u64>,
    /// How long before the TTL the holder stops trusting the lease (default 150).
    pub safety_margin_ms: Option<u64>,
    /// Whether a standby keeps its FIX ports open and refuses logons (true, default) or
    /// closes them until it leads (false: connections are refused outright, and TCP
    /// health checks of a load balancer fail on the standby).
    #[serde(default = "yes")]
    pub standby_listens: bool,
}

fn default_group() -> String {
    "default".into()
}

impl LeaseSection {
    /// Fills `url` from `url_env`; exactly one of the two must be given.
    pub(super) fn resolve_url(&mut self) -> Result<(), ConfigError> {
        match (&self.url_env, self.url.is_empty()) {
            (Some(var), true) => {
                self.url = std::env::var(var).map_err(|_| {
                    invalid(
                        "engine",
                        "lease.url_env",
                        var,
                        "the name of a set environment variable holding the lease URL",
                    )
                })?;
                Ok(())
            }
            (Some(var), false) => Err(invalid(
                "engine",
                "lease.url_env",
                var,
                "either lease.url or lease.url_env, not both",
            )),
            (None, true) => Err(invalid(
                "engine",
                "lease.url",
                "",
                "a lease URL (sqlite://PATH, postgres://…, mysql://…, dynamodb://TABLE), or lease.url_env naming a variable that holds one",
            )),
            (None, false) => Ok(()),
        }
    }

    /// The lease settings, checked.
    pub fn lease_config(&self) -> Result<fix_lease::LeaseConfig, ConfigError> {
        let owner = self.owner.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_else(|_| "host".into());
            format!("{}-{}", host.trim(), std::process::id())
        });
        if owner.is_empty() || owner.contains(',') || owner.contains('\0') || owner.starts_with('#')
        {
            return Err(invalid(
                "engine",
                "lease.owner",
                &owner,
                "a non-empty instance name without commas, not starting with '#' (the in-sync set is stored as a comma-separated list with a #version)",
            ));
        }
        let mut c = fix_lease::LeaseConfig::new(&self.group, &owner);
        c.region = self.region.clone();
        if let Some(v) = self.ttl_ms {
            c.ttl = Duration::from_millis(v);
        }
        if let Some(v) = self.renew_interval_ms {
            c.renew_interval = Duration::from_millis(v);
        }
        if let Some(v) = self.safety_margin_ms {
            if v == 0 {
                return Err(invalid(
                    "engine",
                    "lease.safety_margin_ms",
                    "0",
                    "a margin above the clock drift between this machine and the lease store over one TTL plus a request's latency (default 150): with 0 the holder may still trust its lease after the store has let another instance acquire it",
                ));
            }
            c.safety_margin = Duration::from_millis(v);
        }
        if c.renew_interval >= c.trust_window() {
            return Err(invalid(
                "engine",
                "lease.renew_interval_ms",
                &c.renew_interval.as_millis().to_string(),
                &format!("less than ttl_ms − safety_margin_ms ({} ms), or the lease lapses between renewals", c.trust_window().as_millis()),
            ));
        }
        Ok(c)
    }
}
