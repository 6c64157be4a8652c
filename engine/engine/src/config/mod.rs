//! The engine's TOML configuration, turned into session configurations with errors that
//! name the key, the value and what is allowed.

use chrono::{NaiveTime, Weekday};
use fix_codec::TimePrecision;
use fix_session::{Role, Schedule, SessionConfig, SessionId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

mod cluster;
mod connections;
pub use cluster::{
    AdminSection, CrossRegion, Durability, LeaseSection, ReplicationSection, RuntimeSection,
};
pub use connections::ConnectionsSection;

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
    /// Built-in application.
    #[serde(default)]
    pub app: AppKind,
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
    pub kafka: Option<crate::kafka::KafkaSection>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
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
            app: AppKind::Echo,
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

/// `[[session]]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// BeginString.
    pub begin_string: String,
    /// Our CompID.
    pub sender_comp_id: String,
    /// Their CompID.
    pub target_comp_id: String,
    /// `acceptor` or `initiator`.
    pub role: String,
    /// Acceptor: address to listen on.
    pub listen: Option<String>,
    /// Initiator: addresses to connect to, in order of preference.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Seconds between reconnect attempts (doubles up to 8×).
    pub reconnect_interval: Option<u64>,
    /// Reconnect interval in milliseconds (overrides `reconnect_interval`; for fast
    /// failover across alternate addresses).
    pub reconnect_interval_ms: Option<u64>,
    /// HeartBtInt in seconds.
    pub heartbeat_interval: Option<u64>,
    /// Logon timeout in seconds.
    pub logon_timeout: Option<u64>,
    /// Logout timeout in seconds.
    pub logout_timeout: Option<u64>,
    /// ResetOnLogon.
    pub reset_on_logon: Option<bool>,
    /// ResetOnLogout.
    pub reset_on_logout: Option<bool>,
    /// ResetOnDisconnect.
    pub reset_on_disconnect: Option<bool>,
    /// CheckLatency.
    pub check_latency: Option<bool>,
    /// MaxLatency in seconds.
    pub max_latency: Option<u64>,
    /// ResendRequestChunkSize.
    pub resend_request_chunk_size: Option<u64>,
    /// Send NextExpectedMsgSeqNum on Logon.
    pub send_next_expected_msg_seq_num: Option<bool>,
    /// UseDataDictionary.
    pub validate: Option<bool>,
    /// ValidateFieldsOutOfOrder.
    pub validate_fields_out_of_order: Option<bool>,
    /// ValidateFieldsHaveValues.
    pub validate_fields_have_values: Option<bool>,
    /// ValidateUserDefinedFields.
    pub validate_user_defined_fields: Option<bool>,
    /// AllowUnknownMsgFields.
    pub allow_unknown_msg_fields: Option<bool>,
    /// DataDictionary (FIX 4.x) or AppDataDictionary (FIXT).
    pub data_dictionary: Option<PathBuf>,
    /// TransportDataDictionary (FIXT).
    pub transport_data_dictionary: Option<PathBuf>,
    /// DefaultApplVerID (FIXT), e.g. `9` or `FIX.5.0SP2`.
    pub default_appl_ver_id: Option<String>,
    /// Username to send on Logon.
    pub username: Option<String>,
    /// Password to send on Logon.
    pub password: Option<String>,
    /// StartTime `HH:MM:SS`.
    pub start_time: Option<String>,
    /// EndTime `HH:MM:SS`.
    pub end_time: Option<String>,
    /// StartDay (weekly sessions).
    pub start_day: Option<String>,
    /// EndDay (weekly sessions).
    pub end_day: Option<String>,
    /// TimeZone, e.g. `America/New_York`.
    pub time_zone: Option<String>,
    /// Largest accepted message in bytes.
    pub max_message_size: Option<usize>,
    /// CheckCompID: refuse messages whose CompIDs do not match the session.
    pub check_comp_id: Option<bool>,
    /// Digits of the fraction of a second in SendingTime and OrigSendingTime, 0 to 9
    /// (QuickFIX's TimestampPrecision; default 3). FIX.4.0 and FIX.4.1 always send whole
    /// seconds, as QuickFIX does.
    pub timestamp_precision: Option<u32>,
    /// TLS for this session's connections.
    pub tls: Option<TlsSection>,
    /// Acceptor: the Username (553) the counterparty's Logon must carry.
    pub expect_username: Option<String>,
    /// Acceptor: the Password (554) the counterparty's Logon must carry.
    pub expect_password: Option<String>,
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

/// A session, ready to run.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Session-layer configuration.
    pub config: SessionConfig,
    /// Acceptor listen address.
    pub listen: Option<SocketAddr>,
    /// Initiator targets.
    pub connect: Vec<SocketAddr>,
    /// Base reconnect interval.
    pub reconnect_interval: Duration,
    /// Dictionary for application messages (FIX 4.x: the whole dictionary).
    pub data_dictionary: Option<PathBuf>,
    /// FIXT transport dictionary.
    pub transport_data_dictionary: Option<PathBuf>,
    /// TLS settings.
    pub tls: Option<TlsSection>,
    /// Logon credential check, when configured.
    pub credentials: Option<crate::auth::CredentialCheck>,
}

const SUPPORTED: [&str; 6] = [
    "FIX.4.0", "FIX.4.1", "FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1",
];

fn invalid(session: &str, key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        session: session.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn parse_time(s: &str, key: &str, v: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(v, "%H:%M:%S")
        .map_err(|_| invalid(s, key, v, "expected HH:MM:SS, e.g. 08:00:00"))
}

fn parse_day(s: &str, key: &str, v: &str) -> Result<Weekday, ConfigError> {
    let lower = v.to_ascii_lowercase();
    let day = match lower.get(..2) {
        Some("mo") => Weekday::Mon,
        Some("tu") => Weekday::Tue,
        Some("we") => Weekday::Wed,
        Some("th") => Weekday::Thu,
        Some("fr") => Weekday::Fri,
        Some("sa") => Weekday::Sat,
        Some("su") => Weekday::Sun,
        _ => {
            return Err(invalid(
                s,
                key,
                v,
                "expected a day name, e.g. Sunday or Sun",
            ))
        }
    };
    Ok(day)
}

fn parse_addr(s: &str, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse()
        .map_err(|_| invalid(s, key, v, "expected IP:PORT, e.g. 127.0.0.1:9878"))
}

impl SessionSection {
    /// Checks every value and builds the plan.
    pub fn plan(&self) -> Result<SessionPlan, ConfigError> {
        let name = format!(
            "{}:{}->{}",
            self.begin_string, self.sender_comp_id, self.target_comp_id
        );
        let s = name.as_str();
        if !SUPPORTED.contains(&self.begin_string.as_str()) {
            return Err(invalid(
                s,
                "begin_string",
                &self.begin_string,
                "one of FIX.4.0, FIX.4.1, FIX.4.2, FIX.4.3, FIX.4.4, FIXT.1.1",
            ));
        }
        for (key, v) in [
            ("sender_comp_id", &self.sender_comp_id),
            ("target_comp_id", &self.target_comp_id),
        ] {
            if v.is_empty()
                || v.bytes()
                    .any(|b| b == 1 || b == b'|' || b.is_ascii_whitespace())
            {
                return Err(invalid(
                    s,
                    key,
                    v,
                    "a non-empty CompID without spaces, '|' or SOH",
                ));
            }
        }
        let role = match self.role.to_ascii_lowercase().as_str() {
            "acceptor" => Role::Acceptor,
            "initiator" => Role::Initiator,
            other => return Err(invalid(s, "role", other, "acceptor or initiator")),
        };
        let id = SessionId::new(
            &self.begin_string,
            &self.sender_comp_id,
            &self.target_comp_id,
        );
        let mut c = SessionConfig::new(id, role);
        if let Some(v) = self.heartbeat_interval {
            c.heartbeat_interval = Duration::from_secs(v);
        }
        if let Some(v) = self.logon_timeout {
            c.logon_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = self.logout_timeout {
            c.logout_timeout = Duration::from_secs(v.max(1));
        }
        c.reset_on_logon = self.reset_on_logon.unwrap_or(false);
        c.reset_on_logout = self.reset_on_logout.unwrap_or(false);
        c.reset_on_disconnect = self.reset_on_disconnect.unwrap_or(false);
        c.check_latency = self.check_latency.unwrap_or(true);
        if let Some(v) = self.max_latency {
            c.max_latency = Duration::from_secs(v);
        }
        c.resend_request_chunk_size = self.resend_request_chunk_size.unwrap_or(0);
        c.send_next_expected_msg_seq_num = self.send_next_expected_msg_seq_num.unwrap_or(false);
        c.check_comp_id = self.check_comp_id.unwrap_or(true);
        if let Some(digits) = self.timestamp_precision {
            let precision = match digits {
                0 => TimePrecision::Seconds,
                1..=3 => TimePrecision::Millis,
                4..=6 => TimePrecision::Micros,
                7..=9 => TimePrecision::Nanos,
                _ => {
                    let v = digits.to_string();
                    return Err(invalid(s, "timestamp_precision", &v, "0 to 9 digits"));
                }
            };
            if c.timestamp_precision != TimePrecision::Seconds {
                c.timestamp_precision = precision;
            }
        }
        c.validate = self.validate.unwrap_or(true);
        let v = &mut c.validation;
        v.fields_out_of_order = self
            .validate_fields_out_of_order
            .unwrap_or(v.fields_out_of_order);
        v.fields_have_values = self
            .validate_fields_have_values
            .unwrap_or(v.fields_have_values);
        v.user_defined_fields = self
            .validate_user_defined_fields
            .unwrap_or(v.user_defined_fields);
        v.allow_unknown_msg_fields = self
            .allow_unknown_msg_fields
            .unwrap_or(v.allow_unknown_msg_fields);
        c.default_appl_ver_id = self
            .default_appl_ver_id
            .as_deref()
            .map(normalize_appl_ver_id)
            .transpose()
            .map_err(|v| invalid(s, "default_appl_ver_id", &v, "2-9 or FIX.4.0 … FIX.5.0SP2"))?;
        c.username.clone_from(&self.username);
        c.password.clone_from(&self.password);
        if let Some(m) = self.max_message_size {
            if m < 64 {
                return Err(invalid(
                    s,
                    "max_message_size",
                    &m.to_string(),
                    "at least 64 bytes",
                ));
            }
            c.max_message_size = m;
        }
        c.schedule = self.schedule(s)?;
        let listen = self
            .listen
            .as_deref()
            .map(|v| parse_addr(s, "listen", v))
            .transpose()?;
        let connect = self
            .connect
            .iter()
            .map(|v| parse_addr(s, "connect", v))
            .collect::<Result<Vec<_>, _>>()?;
        match role {
            Role::Acceptor if listen.is_none() => {
                return Err(invalid(
                    s,
                    "listen",
                    "",
                    "an acceptor needs listen = \"IP:PORT\"",
                ))
            }
            Role::Initiator if connect.is_empty() => {
                return Err(invalid(
                    s,
                    "connect",
                    "",
                    "an initiator needs connect = [\"IP:PORT\", …]",
                ))
            }
            _ => {}
        }
        Ok(SessionPlan {
            config: c,
            listen,
            connect,
            reconnect_interval: match self.reconnect_interval_ms {
                Some(ms) => Duration::from_millis(ms.max(10)),
                None => Duration::from_secs(self.reconnect_interval.unwrap_or(5).max(1)),
            },
            data_dictionary: self.data_dictionary.clone(),
            transport_data_dictionary: self.transport_data_dictionary.clone(),
            tls: self.tls.clone(),
            credentials: (self.expect_username.is_some() || self.expect_password.is_some()).then(
                || crate::auth::CredentialCheck {
                    username: self.expect_username.clone(),
                    password: self.expect_password.clone(),
                },
            ),
        })
    }

    fn schedule(&self, s: &str) -> Result<Option<Schedule>, ConfigError> {
        let (start, end) = match (&self.start_time, &self.end_time) {
            (None, None) => return Ok(None),
            (Some(a), Some(b)) => (
                parse_time(s, "start_time", a)?,
                parse_time(s, "end_time", b)?,
            ),
            (Some(_), None) => {
                return Err(invalid(s, "end_time", "", "start_time needs end_time too"))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    s,
                    "start_time",
                    "",
                    "end_time needs start_time too",
                ))
            }
        };
        let mut sched = Schedule::daily(start, end);
        sched.start_day = self
            .start_day
            .as_deref()
            .map(|d| parse_day(s, "start_day", d))
            .transpose()?;
        sched.end_day = self
            .end_day
            .as_deref()
            .map(|d| parse_day(s, "end_day", d))
            .transpose()?;
        if sched.start_day.is_some() != sched.end_day.is_some() {
            return Err(invalid(s, "start_day/end_day", "", "give both or neither"));
        }
        if let Some(tz) = &self.time_zone {
            sched.time_zone = tz.parse().map_err(|_| {
                invalid(
                    s,
                    "time_zone",
                    tz,
                    "an IANA zone name such as UTC or America/New_York",
                )
            })?;
        }
        Ok(Some(sched))
    }
}

/// Maps `FIX.5.0SP2` and friends to their ApplVerID codes; codes pass through.
pub fn normalize_appl_ver_id(v: &str) -> Result<String, String> {
    let code = match v {
        "FIX.2.7" => "0",
        "FIX.3.0" => "1",
        "FIX.4.0" => "2",
        "FIX.4.1" => "3",
        "FIX.4.2" => "4",
        "FIX.4.3" => "5",
        "FIX.4.4" => "6",
        "FIX.5.0" => "7",
        "FIX.5.0SP1" => "8",
        "FIX.5.0SP2" => "9",
        c if c.len() <= 2 && c.bytes().all(|b| b.is_ascii_digit()) => c,
        other => return Err(other.to_string()),
    };
    Ok(code.to_string())
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
            if r.durability == Durability::Replicated && owner.is_none() {
                return Err(invalid(
                    "engine",
                    "lease.owner",
                    "unset",
                    "a stable instance name (for example the pod or host name): with `replicated` durability it names this instance in the in-sync set recorded in the lease store, and must be the same after a restart",
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
