//! The engine's TOML configuration, turned into session configurations with errors that
//! name the key, the value and what is allowed.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub mod cluster;
mod connections;
pub mod kafka;
mod session;
pub use cluster::{
    AdminSection, CrossRegion, Durability, LeaseSection, ReplicationSection, RuntimeSection,
};
pub use connections::ConnectionsSection;
pub use session::{normalize_appl_ver_id, SessionPlan, SessionSection};

/// A configuration problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has a value of the wrong type.
    #[error("config file {path} is not valid: {message}")]
    Parse {
        /// The path.
        path: String,
        /// What the parser said (with line and column).
        message: String,
    },
    /// A value is not allowed.
    #[error("invalid value for '{key}' in session {session}: '{value}' — {allowed}")]
    Invalid {
        /// The session (or `engine`).
        session: String,
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Where sessions keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// The durable journal (default).
    #[default]
    Journal,
    /// Memory only: sequence numbers are lost on restart.
    Memory,
}

/// When the application sees an inbound application message (`[engine] delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Once the message is durable (synced, and acknowledged by the standbys the
    /// durability mode waits for); what it causes waits for a second commit. Nothing the
    /// application saw is ever taken back. The default.
    #[default]
    Durable,
    /// As soon as the message is journaled, before it is synced; everything it causes
    /// (outbound messages, the mark that it was processed) is held until one group
    /// commit covers the message and its outputs together. A crash or a lost lease
    /// before that commit can take back a message the application (`from_app`,
    /// `from_admin`) saw: it comes again as a resend (PossDupFlag=Y) or a replay, and no
    /// output of the first sight ever left. One fsync per round trip instead of two.
    /// Not with the Kafka bridge (it publishes as it sees).
    Early,
}

/// Which built-in application runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AppKind {
    /// Reflects orders back.
    #[default]
    Echo,
    /// Exchange simulator.
    Exec,
    /// The Kafka bridge (needs `[engine.kafka]`): applications trade through topics.
    Kafka,
}

/// `[engine]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Store kind.
    #[serde(default)]
    pub store: StoreKind,
    /// Directory of the journal.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Directory of per-session message logs (none when absent).
    pub log_dir: Option<PathBuf>,
    /// fdatasync the journal (only turn off for benchmarks).
    #[serde(default = "yes")]
    pub fsync: bool,
    /// `store = "memory"`: MiB of sent messages each session keeps for resends (default
    /// 256); a ResendRequest for an older one is answered with a SequenceReset-GapFill.
    #[serde(default = "default_memory_store_mb")]
    pub memory_store_mb: usize,
    /// A leader's journal write and fsync in flight for longer than this (ms) counts as
    /// a failed disk: the leader gives the lease up and the instance stays out of
    /// elections until restarted, as after an fsync error. Default: the lease's TTL when
    /// the group replicates (a standby can take over; a disk slower than the lease cannot
    /// serve), off otherwise (stepping down would leave nobody to lead); 0 turns it off.
    pub sync_stall_ms: Option<u64>,
    /// Built-in application.
    #[serde(default)]
    pub app: AppKind,
    /// When the application sees an inbound message: `durable` (default) or `early`
    /// (one fsync per round trip; see [`Delivery`]).
    #[serde(default)]
    pub delivery: Delivery,
    /// Leadership lease: with it, this instance serves its sessions only while it holds
    /// the lease of its group (leader) and is a standby otherwise.
    pub lease: Option<LeaseSection>,
    /// The admin HTTP API.
    pub admin: Option<AdminSection>,
    /// Caps on FIX connections waiting for their Logon.
    #[serde(default)]
    pub connections: ConnectionsSection,
    /// Journal replication between the instances of the group (needs `lease`).
    pub replication: Option<ReplicationSection>,
    /// The async runtime's threads and their CPU placement.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// The Kafka bridge's topics (with `app = "kafka"`).
    pub kafka: Option<kafka::KafkaSection>,
}

impl EngineSection {
    /// How long a leader's journal write and fsync may be in flight before the disk
    /// counts as failed: `sync_stall_ms`, else the lease's `ttl` when the group
    /// replicates; `None`: never.
    pub fn sync_stall(&self, ttl: std::time::Duration) -> Option<std::time::Duration> {
        match self.sync_stall_ms {
            Some(0) => None,
            Some(ms) => Some(std::time::Duration::from_millis(ms)),
            None => self.replication.as_ref().map(|_| ttl),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_memory_store_mb() -> usize {
    fix_session::DEFAULT_MEMORY_STORE_BYTES >> 20
}

fn yes() -> bool {
    true
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            store: StoreKind::Journal,
            data_dir: default_data_dir(),
            log_dir: None,
            fsync: true,
            memory_store_mb: default_memory_store_mb(),
            sync_stall_ms: None,
            app: AppKind::Echo,
            delivery: Delivery::Durable,
            lease: None,
            admin: None,
            connections: ConnectionsSection::default(),
            replication: None,
            runtime: RuntimeSection::default(),
            kafka: None,
        }
    }
}

/// `tls` of a session.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Our certificate chain (PEM). Required on an acceptor; with `key`, a client
    /// certificate on an initiator.
    pub cert: Option<PathBuf>,
    /// Our private key (PEM).
    pub key: Option<PathBuf>,
    /// Certificates we trust (PEM). An initiator verifies the server with them; an
    /// acceptor with `ca` requires client certificates signed by them (mutual TLS).
    pub ca: Option<PathBuf>,
    /// Initiator: the name to verify (default: the IP address connected to).
    pub server_name: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `[engine]`
    #[serde(default)]
    pub engine: EngineSection,
    /// `[[session]]`
    #[serde(default, rename = "session")]
    pub sessions: Vec<SessionSection>,
}

fn invalid(session: &str, key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        session: session.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}
impl EngineConfig {
    /// Parses TOML text (`path` only names the source in errors).
    pub fn from_toml(text: &str, path: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if let Some(lease) = &mut config.engine.lease {
            lease.resolve_url()?;
        }
        Ok(config)
    }

    /// The configuration as TOML text that [`EngineConfig::from_toml`] reads back to the
    /// same configuration (an imported QuickFIX settings file written as the engine's own
    /// file, for example).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Parse {
            path: "(writing the configuration as TOML)".into(),
            message: e.to_string(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The Kafka bridge's section against `app`.
    fn check_kafka(&self) -> Result<(), ConfigError> {
        match (&self.engine.kafka, self.engine.app) {
            (None, AppKind::Kafka) => Err(invalid(
                "engine",
                "app",
                "kafka",
                "an [engine.kafka] section with at least brokers = \"HOST:PORT\"",
            )),
            (Some(_), app) if app != AppKind::Kafka => Err(invalid(
                "engine",
                "kafka",
                "set while app is not \"kafka\"",
                "app = \"kafka\" to run the bridge, or no [engine.kafka] section",
            )),
            (Some(k), _) => k.check().map_err(|(key, value, allowed)| {
                invalid("engine", &format!("kafka.{key}"), &value, allowed)
            }),
            (None, _) => Ok(()),
        }
    }

    /// Plans every session, refusing duplicates.
    pub fn plans(&self) -> Result<Vec<SessionPlan>, ConfigError> {
        self.check_kafka()?;
        if self.engine.store == StoreKind::Memory && self.engine.memory_store_mb == 0 {
            return Err(invalid(
                "engine",
                "memory_store_mb",
                "0",
                "at least 1 (MiB of sent messages each session keeps for resends; default 256)",
            ));
        }
        if self.engine.delivery == Delivery::Early && self.engine.app == AppKind::Kafka {
            return Err(invalid(
                "engine",
                "delivery",
                "early",
                "delivery = \"durable\" with app = \"kafka\": the bridge publishes each message to the broker as it sees it, so early delivery would put on the topic messages a crash can take back from the journal",
            ));
        }
        if let Some(l) = &self.engine.lease {
            l.lease_config()?;
        }
        if let Some(r) = &self.engine.replication {
            r.addresses()?;
            if self.engine.lease.is_none() {
                return Err(invalid(
                    "engine",
                    "replication",
                    "without [engine.lease]",
                    "an [engine.lease] section too: the lease decides which instance leads and which ones follow",
                ));
            }
            let lease_url = self.engine.lease.as_ref().map_or("", |l| l.url.as_str());
            let sql_lease = ["postgres:", "postgresql:", "mysql:", "mariadb:"]
                .iter()
                .any(|p| lease_url.starts_with(p));
            if r.durability == Durability::Sql && !sql_lease {
                return Err(invalid(
                    "engine",
                    "replication.durability",
                    "sql",
                    "a lease in PostgreSQL or MySQL (lease.url postgres://… or mysql://…): the journal rows are committed with the lease's epoch check in that database",
                ));
            }
            let owner = self.engine.lease.as_ref().and_then(|l| l.owner.as_ref());
            if r.durability.keeps_in_sync_set() && owner.is_none() {
                return Err(invalid(
                    "engine",
                    "lease.owner",
                    "unset",
                    "a stable instance name (for example the pod or host name): with `replicated` and `replicated-written` durability it names this instance in the in-sync set recorded in the lease store, and must be the same after a restart",
                ));
            }
            if self.engine.store != StoreKind::Journal {
                return Err(invalid(
                    "engine",
                    "replication",
                    "with store = \"memory\"",
                    "store = \"journal\": replication copies the journal",
                ));
            }
        }
        let mut plans: Vec<SessionPlan> = Vec::new();
        for s in &self.sessions {
            let p = s.plan()?;
            if let Some(q) = plans
                .iter()
                .find(|q| q.listen.is_some() && q.listen == p.listen && q.tls != p.tls)
            {
                return Err(invalid(
                    &p.config.id.to_string(),
                    "tls",
                    "differs",
                    &format!(
                        "sessions sharing listen address {} must have the same tls settings as {}",
                        p.listen.map(|a| a.to_string()).unwrap_or_default(),
                        q.config.id
                    ),
                ));
            }
            if plans.iter().any(|q| q.config.id == p.config.id) {
                return Err(invalid(
                    &p.config.id.to_string(),
                    "session",
                    "duplicate",
                    "each BeginString/SenderCompID/TargetCompID once",
                ));
            }
            plans.push(p);
        }
        if plans.is_empty() {
            return Err(invalid(
                "engine",
                "session",
                "none",
                "at least one [[session]]",
            ));
        }
        Ok(plans)
    }

    /// The embedded default: one FIX.4.4 acceptor on 127.0.0.1:9878 running `exec`.
    pub fn embedded_default(data_dir: PathBuf) -> Self {
        Self {
            engine: EngineSection {
                data_dir,
                app: AppKind::Exec,
                ..EngineSection::default()
            },
            sessions: vec![SessionSection {
                begin_string: "FIX.4.4".into(),
                sender_comp_id: "EXEC".into(),
                target_comp_id: "CLIENT".into(),
                role: "acceptor".into(),
                listen: Some("127.0.0.1:9878".into()),
                heartbeat_interval: Some(30),
                ..SessionSection::default()
            }],
        }
    }
}

#[cfg(test)]
mod tests;
