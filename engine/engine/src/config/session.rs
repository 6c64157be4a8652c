//! `[[session]]`: one session's settings, checked and turned into a [`SessionPlan`].

use super::{invalid, ConfigError, TlsSection};
use chrono::{NaiveTime, Weekday};
use fix_codec::TimePrecision;
use fix_session::{Role, Schedule, SessionConfig, SessionId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
