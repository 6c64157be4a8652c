//! Import of QuickFIX / QuickFIX/J settings files (`[DEFAULT]` and `[SESSION]` sections),
//! so a team can start from the file it already has.
//!
//! Every `[SESSION]` inherits `[DEFAULT]`. Keys the engine understands are mapped onto the
//! TOML configuration; keys that only matter to QuickFIX's own implementation (logging
//! switches, socket buffer sizes, …) are accepted with a warning that names them; a key
//! nobody knows gives a warning naming it; a value of the wrong form is an error naming the
//! key, the value and what is allowed.

use crate::config::{ConfigError, EngineConfig, EngineSection, SessionSection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The imported configuration and what the import had to say about it.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The equivalent engine configuration.
    pub config: EngineConfig,
    /// One line per key that was ignored or unknown.
    pub warnings: Vec<String>,
}

/// QuickFIX keys that have no effect here (the engine does the job its own way).
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "SocketNodelay",
    "SocketReuseAddress",
    "SocketSendBufferSize",
    "SocketReceiveBufferSize",
    "ScreenLogShowIncoming",
    "ScreenLogShowOutgoing",
    "ScreenLogShowEvents",
    "ScreenLogShowHeartBeats",
    "FileLogHeartbeats",
    "PersistMessages",
    "RefreshOnLogon",
    "FileStoreSync",
    "FileStoreMaxCachedMsgs",
    "UseLocalTime",
    "SendRedundantResendRequests",
];

struct Section {
    name: String,
    line: usize,
    keys: BTreeMap<String, (String, usize)>,
}

fn parse_sections(text: &str, path: &str) -> Result<Vec<Section>, ConfigError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_ascii_uppercase(),
                line: n,
                keys: BTreeMap::new(),
            });
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Parse {
                path: path.to_string(),
                message: format!("line {n}: expected Key=Value or [SECTION], found '{line}'"),
            });
        };
        let Some(section) = sections.last_mut() else {
            return Err(ConfigError::Parse {
                path: path.to_string(),
                message: format!(
                    "line {n}: '{}' comes before any [DEFAULT] or [SESSION] section",
                    k.trim()
                ),
            });
        };
        section
            .keys
            .insert(k.trim().to_string(), (v.trim().to_string(), n));
    }
    Ok(sections)
}

struct Reader<'a> {
    keys: BTreeMap<&'a str, (&'a str, usize)>,
    used: Vec<&'a str>,
    session: String,
}

impl<'a> Reader<'a> {
    fn get(&mut self, key: &'a str) -> Option<&'a str> {
        let v = self.keys.get(key).map(|(v, _)| *v);
        if v.is_some() {
            self.used.push(key);
        }
        v
    }

    fn invalid(&self, key: &str, value: &str, allowed: &str) -> ConfigError {
        let line = self.keys.get(key).map(|(_, n)| *n).unwrap_or(0);
        ConfigError::Invalid {
            session: format!("{} (line {line})", self.session),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }

    fn flag(&mut self, key: &'a str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some("Y" | "y") => Ok(Some(true)),
            Some("N" | "n") => Ok(Some(false)),
            Some(other) => Err(self.invalid(key, other, "Y or N")),
        }
    }

    fn number(&mut self, key: &'a str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, v, "a whole number")),
        }
    }

    fn text(&mut self, key: &'a str) -> Option<String> {
        self.get(key).map(str::to_string)
    }
}

/// QuickFIX's `TimestampPrecision` (0-9 digits), QuickFIX/J's `TimeStampPrecision`
/// (SECONDS, MILLIS, MICROS, NANOS) and the older `MillisecondsInTimeStamp` (N: seconds).
fn timestamp_precision<'a>(r: &mut Reader<'a>) -> Result<Option<u32>, ConfigError> {
    if let Some(v) = r.get("TimestampPrecision") {
        return match v.parse::<u32>() {
            Ok(d) if d <= 9 => Ok(Some(d)),
            _ => Err(r.invalid("TimestampPrecision", v, "0 to 9 digits")),
        };
    }
    if let Some(v) = r.get("TimeStampPrecision") {
        return match v.to_ascii_uppercase().as_str() {
            "SECONDS" => Ok(Some(0)),
            "MILLIS" => Ok(Some(3)),
            "MICROS" => Ok(Some(6)),
            "NANOS" => Ok(Some(9)),
            _ => Err(r.invalid("TimeStampPrecision", v, "SECONDS, MILLIS, MICROS or NANOS")),
        };
    }
    Ok(r.flag("MillisecondsInTimeStamp")?
        .map(|ms| if ms { 3 } else { 0 }))
}

/// Reads a QuickFIX settings file.
pub fn import_file(path: &Path) -> Result<Imported, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    import(&text, &path.display().to_string())
}

/// Converts QuickFIX settings text.
pub fn import(text: &str, path: &str) -> Result<Imported, ConfigError> {
    let sections = parse_sections(text, path)?;
    let default: BTreeMap<String, (String, usize)> = sections
        .iter()
        .filter(|s| s.name == "DEFAULT")
        .flat_map(|s| s.keys.clone())
        .collect();
    let mut engine = EngineSection::default();
    let mut sessions = Vec::new();
    let mut warnings = Vec::new();
    for section in sections.iter().filter(|s| s.name != "DEFAULT") {
        if section.name != "SESSION" {
            warnings.push(format!(
                "{path}:{}: section [{}] ignored (only [DEFAULT] and [SESSION] are read)",
                section.line, section.name
            ));
            continue;
        }
        let mut merged = default.clone();
        merged.extend(section.keys.clone());
        let mut r = Reader {
            keys: merged
                .iter()
                .map(|(k, (v, n))| (k.as_str(), (v.as_str(), *n)))
                .collect(),
            used: Vec::new(),
            session: format!("[SESSION] at {path}:{}", section.line),
        };
        let s = read_session(&mut r, &mut engine)?;
        for (key, (_, line)) in &r.keys {
            if r.used.contains(key) {
                continue;
            }
            if ACCEPTED_WITHOUT_EFFECT.contains(key) {
                warnings.push(format!(
                    "{path}:{line}: {key} has no effect in this engine (ignored)"
                ));
            } else {
                warnings.push(format!("{path}:{line}: unknown key {key} (ignored)"));
            }
        }
        sessions.push(s);
    }
    warnings.sort();
    warnings.dedup();
    let config = EngineConfig { engine, sessions };
    config.plans()?;
    Ok(Imported { config, warnings })
}

fn read_session<'a>(
    r: &mut Reader<'a>,
    engine: &mut EngineSection,
) -> Result<SessionSection, ConfigError> {
    let mut s = SessionSection {
        begin_string: r.text("BeginString").unwrap_or_default(),
        sender_comp_id: r.text("SenderCompID").unwrap_or_default(),
        target_comp_id: r.text("TargetCompID").unwrap_or_default(),
        role: r.text("ConnectionType").unwrap_or_default(),
        ..SessionSection::default()
    };
    if let Some(port) = r.get("SocketAcceptPort") {
        let host = r.get("SocketAcceptHost").unwrap_or("0.0.0.0");
        s.listen = Some(format!("{host}:{port}"));
    }
    for suffix in std::iter::once(String::new()).chain((1..10).map(|i| i.to_string())) {
        let host_key = format!("SocketConnectHost{suffix}");
        let port_key = format!("SocketConnectPort{suffix}");
        let host = r.keys.get(host_key.as_str()).map(|(v, _)| *v);
        let port = r.keys.get(port_key.as_str()).map(|(v, _)| *v);
        if let (Some(h), Some(p)) = (host, port) {
            s.connect.push(format!("{h}:{p}"));
            let used: Vec<&'a str> = r
                .keys
                .keys()
                .copied()
                .filter(|k| *k == host_key || *k == port_key)
                .collect();
            r.used.extend(used);
        }
    }
    s.heartbeat_interval = r.number("HeartBtInt")?;
    s.reconnect_interval = r.number("ReconnectInterval")?;
    s.logon_timeout = r.number("LogonTimeout")?;
    s.logout_timeout = r.number("LogoutTimeout")?;
    s.reset_on_logon = r.flag("ResetOnLogon")?;
    s.reset_on_logout = r.flag("ResetOnLogout")?;
    s.reset_on_disconnect = r.flag("ResetOnDisconnect")?;
    s.check_latency = r.flag("CheckLatency")?;
    s.max_latency = r.number("MaxLatency")?;
    s.resend_request_chunk_size = r.number("ResendRequestChunkSize")?;
    s.send_next_expected_msg_seq_num = match r.flag("EnableNextExpectedMsgSeqNum")? {
        Some(v) => Some(v),
        None => r.flag("SendNextExpectedMsgSeqNum")?,
    };
    s.validate = r.flag("UseDataDictionary")?;
    s.validate_fields_out_of_order = r.flag("ValidateFieldsOutOfOrder")?;
    s.validate_fields_have_values = r.flag("ValidateFieldsHaveValues")?;
    s.validate_user_defined_fields = r.flag("ValidateUserDefinedFields")?;
    s.allow_unknown_msg_fields = r.flag("AllowUnknownMsgFields")?;
    s.check_comp_id = r.flag("CheckCompID")?;
    s.timestamp_precision = timestamp_precision(r)?;
    s.data_dictionary = r
        .text("AppDataDictionary")
        .or_else(|| r.text("DataDictionary"))
        .map(PathBuf::from);
    s.transport_data_dictionary = r.text("TransportDataDictionary").map(PathBuf::from);
    s.default_appl_ver_id = r.text("DefaultApplVerID");
    s.start_time = r.text("StartTime");
    s.end_time = r.text("EndTime");
    s.start_day = r.text("StartDay");
    s.end_day = r.text("EndDay");
    s.time_zone = r.text("TimeZone");
    s.username = r.text("Username");
    s.password = r.text("Password");
    // A QuickFIX session with StartTime = EndTime runs all day: no schedule needed.
    if s.start_time.is_some() && s.start_time == s.end_time && s.start_day.is_none() {
        s.start_time = None;
        s.end_time = None;
        s.time_zone = None;
    }
    if let Some(dir) = r.text("FileStorePath") {
        engine.data_dir = PathBuf::from(dir);
    }
    if let Some(dir) = r.text("FileLogPath") {
        engine.log_dir = Some(PathBuf::from(dir));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QF: &str = "\
# from a QuickFIX/J deployment
[DEFAULT]
ConnectionType=initiator
HeartBtInt=30
ReconnectInterval=5
FileStorePath=store
StartTime=00:00:00
EndTime=00:00:00
SocketNodelay=Y
UseDataDictionary=Y

[SESSION]
BeginString=FIX.4.4
SenderCompID=BUYSIDE
TargetCompID=BROKER
SocketConnectHost=10.0.0.1
SocketConnectPort=9878
SocketConnectHost1=10.0.0.2
SocketConnectPort1=9878
ResetOnLogon=Y
Frobnicate=yes

[SESSION]
ConnectionType=acceptor
BeginString=FIXT.1.1
DefaultApplVerID=FIX.5.0SP2
SenderCompID=EXCH
TargetCompID=MEMBER
SocketAcceptHost=127.0.0.1
SocketAcceptPort=9880
StartTime=08:00:00
EndTime=17:00:00
TimeZone=America/New_York
";

    #[test]
    fn an_import_written_as_toml_reads_back_to_the_same_sessions() {
        let imported = import(QF, "qf.cfg").expect("imports");
        let text = imported.config.to_toml().expect("writes");
        let back = EngineConfig::from_toml(&text, "written.toml").expect("reads back");
        let ids = |c: &EngineConfig| -> Vec<String> {
            c.plans()
                .expect("plans")
                .iter()
                .map(|p| format!("{:?}", p.config))
                .collect()
        };
        assert_eq!(ids(&imported.config), ids(&back));
        assert_eq!(back.sessions[0].connect.len(), 2, "{text}");
    }

    #[test]
    fn sessions_inherit_defaults_and_alternates_are_kept_in_order() {
        let imported = import(QF, "qf.cfg").expect("imports");
        let plans = imported.config.plans().expect("plans");
        assert_eq!(plans.len(), 2);
        let init = &plans[0];
        assert_eq!(init.config.id.to_string(), "FIX.4.4:BUYSIDE->BROKER");
        assert_eq!(
            init.connect
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["10.0.0.1:9878", "10.0.0.2:9878"]
        );
        assert!(init.config.reset_on_logon);
        assert!(
            init.config.schedule.is_none(),
            "StartTime = EndTime means all day"
        );
        let acc = &plans[1];
        assert_eq!(
            acc.listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9880")
        );
        assert_eq!(acc.config.default_appl_ver_id.as_deref(), Some("9"));
        assert!(acc.config.schedule.is_some());
        assert_eq!(imported.config.engine.data_dir, PathBuf::from("store"));
    }

    #[test]
    fn unknown_and_ineffective_keys_are_warned_about_by_name() {
        let imported = import(QF, "qf.cfg").expect("imports");
        let text = imported.warnings.join("\n");
        assert!(text.contains("unknown key Frobnicate"), "{text}");
        assert!(text.contains("SocketNodelay has no effect"), "{text}");
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_what_is_allowed() {
        let bad = QF.replace("ResetOnLogon=Y", "ResetOnLogon=maybe");
        let e = import(&bad, "qf.cfg").expect_err("bad flag").to_string();
        assert!(
            e.contains("ResetOnLogon") && e.contains("maybe") && e.contains("Y or N"),
            "{e}"
        );
        let bad = QF.replace("HeartBtInt=30", "HeartBtInt=thirty");
        let e = import(&bad, "qf.cfg").expect_err("bad number").to_string();
        assert!(e.contains("HeartBtInt") && e.contains("thirty"), "{e}");
        let bad = QF.replace("ConnectionType=acceptor", "ConnectionType=server");
        let e = import(&bad, "qf.cfg").expect_err("bad role").to_string();
        assert!(e.contains("role") && e.contains("server"), "{e}");
    }

    #[test]
    fn timestamp_precision_reads_quickfix_and_quickfix_j_spellings() {
        let with = |line: &str| {
            let text = QF.replace("SocketNodelay=Y", line);
            import(&text, "qf.cfg").map(|i| i.config.sessions[0].timestamp_precision)
        };
        assert_eq!(with("TimestampPrecision=6").expect("imports"), Some(6));
        assert_eq!(with("TimeStampPrecision=NANOS").expect("imports"), Some(9));
        assert_eq!(with("MillisecondsInTimeStamp=N").expect("imports"), Some(0));
        let e = with("TimestampPrecision=12")
            .expect_err("out of range")
            .to_string();
        assert!(
            e.contains("TimestampPrecision") && e.contains("0 to 9"),
            "{e}"
        );
        let plans = import(
            &QF.replace("SocketNodelay=Y", "TimestampPrecision=6"),
            "qf.cfg",
        )
        .and_then(|i| i.config.plans())
        .expect("plans");
        assert_eq!(
            plans[0].config.timestamp_precision,
            fix_codec::TimePrecision::Micros
        );
    }

    #[test]
    fn a_key_outside_any_section_is_an_error_with_its_line() {
        let e = import("HeartBtInt=30\n[SESSION]\n", "qf.cfg")
            .expect_err("no section")
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
