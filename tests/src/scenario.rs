//! Parsing and running scenario files.

use fix_codec::human::{encode_human, from_human, to_human};
use fix_codec::{frame, FrameError, TimePrecision, UtcTimestamp};
use fix_engine::config::{EngineSection, SessionSection, StoreKind};
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Open the connection.
    Connect,
    /// Close the connection.
    Disconnect,
    /// Send a framed message built from fields.
    Send(String),
    /// Send raw bytes.
    SendRaw(String),
    /// Expect a message.
    Expect(String),
    /// Expect the connection to be closed.
    ExpectDisconnect,
    /// Expect nothing for a while.
    ExpectSilence(f64),
    /// Wait.
    Sleep(f64),
}

/// A parsed scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// File name.
    pub name: String,
    /// BeginString.
    pub begin_string: String,
    /// Dictionary file name, if any.
    pub dictionary: Option<String>,
    /// Session settings (TOML lines).
    pub settings: Vec<String>,
    /// Steps (with line numbers).
    pub steps: Vec<(usize, Step)>,
}

impl Scenario {
    /// Parses scenario text.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut s = Scenario {
            name: name.to_string(),
            begin_string: "FIX.4.2".into(),
            dictionary: None,
            settings: Vec::new(),
            steps: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let n = i + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line
                .split_once(' ')
                .map_or((line, ""), |(a, b)| (a, b.trim()));
            let secs = |r: &str| {
                r.parse::<f64>()
                    .map_err(|_| format!("{name}:{n}: '{r}' is not a number of seconds"))
            };
            let step = match word {
                "begin" => {
                    s.begin_string = rest.to_string();
                    continue;
                }
                "dictionary" => {
                    s.dictionary = Some(rest.to_string());
                    continue;
                }
                "set" => {
                    s.settings.push(rest.to_string());
                    continue;
                }
                "connect" => Step::Connect,
                "disconnect" => Step::Disconnect,
                ">" => Step::Send(rest.to_string()),
                ">raw" => Step::SendRaw(rest.to_string()),
                "<" => Step::Expect(rest.to_string()),
                "expect-disconnect" => Step::ExpectDisconnect,
                "expect-silence" => Step::ExpectSilence(secs(rest)?),
                "sleep" => Step::Sleep(secs(rest)?),
                other => return Err(format!("{name}:{n}: unknown step '{other}'")),
            };
            s.steps.push((n, step));
        }
        Ok(s)
    }
}

fn with_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<TIME") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let spec = &rest[start + 5..start + end];
        let shift: i64 = spec.trim_start_matches('+').parse().unwrap_or(0);
        let t = UtcTimestamp::now().add_nanos(shift * 1_000_000_000);
        out.push_str(&t.format(TimePrecision::Millis));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

const IGNORED: [&str; 5] = ["8", "9", "10", "52", "122"];

fn comparable(text: &str) -> Vec<(String, String)> {
    text.split('|')
        .filter(|f| !f.is_empty())
        .filter_map(|f| f.split_once('='))
        .filter(|(t, _)| !IGNORED.contains(t))
        .map(|(t, v)| (t.to_string(), v.to_string()))
        .collect()
}

fn matches(expected: &str, actual: &str) -> bool {
    let e = comparable(expected);
    let a = comparable(actual);
    e.len() == a.len()
        && e.iter()
            .zip(&a)
            .all(|((et, ev), (at, av))| et == at && (ev == "*" || ev == av))
}

struct Client {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    /// The next message, `Ok(None)` on close, `Err` on time-out.
    async fn next(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match frame::check(&self.buf, 1 << 20) {
                Ok(f) => return Ok(Some(self.buf.drain(..f.len).collect())),
                Err(FrameError::Incomplete) => {}
                Err(_) => return Ok(Some(std::mem::take(&mut self.buf))),
            }
            let Some(stream) = &mut self.stream else {
                return Ok(None);
            };
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.stream = None;
                    return Ok(None);
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn dictionary_path(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var("FIX_DICTIONARY_DIR").map_err(|_| {
        format!("scenario needs dictionary {name}: set FIX_DICTIONARY_DIR to the QuickFIX data dictionaries (.ci/run does)")
    })?;
    let p = Path::new(&dir).join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("dictionary {} not found", p.display()))
    }
}

/// Starts an acceptor (ISLD, counterparty TW) for the scenario and runs it.
pub async fn run(s: &Scenario) -> Result<(), String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut section = SessionSection {
        begin_string: s.begin_string.clone(),
        sender_comp_id: "ISLD".into(),
        target_comp_id: "TW".into(),
        role: "acceptor".into(),
        listen: Some("127.0.0.1:0".into()),
        ..SessionSection::default()
    };
    if let Some(d) = &s.dictionary {
        section.data_dictionary = Some(dictionary_path(d)?);
    }
    if !s.settings.is_empty() {
        let mut table = String::from(
            "[[session]]\nbegin_string='x'\nsender_comp_id='x'\ntarget_comp_id='x'\nrole='x'\n",
        );
        for line in &s.settings {
            table.push_str(line);
            table.push('\n');
        }
        let parsed = EngineConfig::from_toml(&table, &s.name).map_err(|e| e.to_string())?;
        let extra = &parsed.sessions[0];
        section.heartbeat_interval = extra.heartbeat_interval.or(section.heartbeat_interval);
        section.validate_fields_out_of_order = extra.validate_fields_out_of_order;
        section.resend_request_chunk_size = extra.resend_request_chunk_size;
        section.reset_on_logout = extra.reset_on_logout;
        section.allow_unknown_msg_fields = extra.allow_unknown_msg_fields;
    }
    let config = EngineConfig {
        engine: EngineSection {
            store: StoreKind::Journal,
            data_dir: data.path().to_path_buf(),
            ..EngineSection::default()
        },
        sessions: vec![section],
    };
    let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
    let id = SessionId::new(&s.begin_string, "ISLD", "TW");
    let addr = engine.listen_addr(&id).ok_or("acceptor has no address")?;
    let result = drive(s, addr).await;
    engine.shutdown().await;
    result
}

async fn drive(s: &Scenario, addr: std::net::SocketAddr) -> Result<(), String> {
    let mut c = Client {
        stream: None,
        buf: Vec::new(),
    };
    for (line, step) in &s.steps {
        let at = format!("{}:{line}", s.name);
        match step {
            Step::Connect => {
                c.stream = Some(
                    TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("{at}: connect: {e}"))?,
                );
                c.buf.clear();
            }
            Step::Disconnect => c.stream = None,
            Step::Send(fields) | Step::SendRaw(fields) => {
                let text = with_times(fields);
                let bytes = match step {
                    Step::Send(_) => encode_human(&text, &s.begin_string),
                    _ => from_human(&text),
                };
                let stream = c.stream.as_mut().ok_or(format!("{at}: not connected"))?;
                stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| format!("{at}: send: {e}"))?;
            }
            Step::Expect(fields) => match c.next(Duration::from_secs(5)).await {
                Ok(Some(m)) => {
                    let got = to_human(&m);
                    if !matches(fields, &got) {
                        return Err(format!("{at}: expected\n  {fields}\nreceived\n  {got}"));
                    }
                }
                Ok(None) => {
                    return Err(format!(
                        "{at}: expected {fields}, but the connection closed"
                    ))
                }
                Err(()) => return Err(format!("{at}: expected {fields}, nothing arrived in 5 s")),
            },
            Step::ExpectDisconnect => match c.next(Duration::from_secs(5)).await {
                Ok(None) => {}
                Ok(Some(m)) => {
                    return Err(format!(
                        "{at}: expected a disconnect, received {}",
                        to_human(&m)
                    ))
                }
                Err(()) => {
                    return Err(format!(
                        "{at}: expected a disconnect, connection still open after 5 s"
                    ))
                }
            },
            Step::ExpectSilence(secs) => match c.next(Duration::from_secs_f64(*secs)).await {
                Err(()) => {}
                Ok(Some(m)) => {
                    return Err(format!("{at}: expected silence, received {}", to_human(&m)))
                }
                Ok(None) => return Err(format!("{at}: expected silence, the connection closed")),
            },
            Step::Sleep(secs) => tokio::time::sleep(Duration::from_secs_f64(*secs)).await,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_messages_ignore_times_and_framing_and_accept_wildcards() {
        assert!(matches(
            "35=A|34=1|58=*",
            "8=FIX.4.2|9=20|35=A|34=1|52=x|58=hello|10=000|"
        ));
        assert!(!matches("35=A|34=1", "8=FIX.4.2|35=A|34=2|10=1|"));
        assert!(!matches("35=A|34=1", "35=A|34=1|58=extra|"));
    }

    #[test]
    fn time_placeholders_are_shifted() {
        let t = with_times("52=<TIME-121>|122=<TIME+10>|");
        assert!(!t.contains('<'), "{t}");
    }

    #[test]
    fn unknown_steps_are_reported_with_their_line() {
        let e = Scenario::parse("x.fixs", "connect\nfrobnicate\n").expect_err("bad step");
        assert!(e.contains("x.fixs:2"), "{e}");
    }
}
