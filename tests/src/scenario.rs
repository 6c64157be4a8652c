//! Parsing and running scenario files.
//!
//! One step per line: `connect`, `disconnect`, `> fields` (send), `>raw text`,
//! `< fields` (expect; `*` matches any value), `<~ fields` (expect, after any Heartbeats the
//! interval made the engine send; MsgSeqNum not compared), `expect-disconnect`,
//! `expect-silence SECS`, `sleep SECS`, `use 1|2`; and the settings `begin`, `dictionary`,
//! `set`.

use crate::client::{FixClient, Received};
use fix_codec::human::to_human;
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Expect a message, skipping plain Heartbeats (no TestReqID) sent before it because
    /// the heartbeat interval ran out; MsgSeqNum is not compared. For scenarios whose
    /// HeartBtInt is short enough that a slow machine lets the interval elapse.
    ExpectAfterHeartbeats(String),
    /// Expect the connection to be closed.
    ExpectDisconnect,
    /// Expect nothing for a while.
    ExpectSilence(f64),
    /// Wait.
    Sleep(f64),
    /// The steps that follow go to connection N (1, the default, or 2): two connections
    /// for the same session at once.
    Use(usize),
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
                _ => parse_step(line).map_err(|e| format!("{name}:{n}: {e}"))?,
            };
            s.steps.push((n, step));
        }
        Ok(s)
    }
}

/// Parses one step line (`connect`, `> fields`, `expect-silence 2`, …).
pub fn parse_step(line: &str) -> Result<Step, String> {
    let (word, rest) = line
        .split_once(' ')
        .map_or((line, ""), |(a, b)| (a, b.trim()));
    let secs = |r: &str| {
        r.parse::<f64>()
            .map_err(|_| format!("'{r}' is not a number of seconds"))
    };
    Ok(match word {
        "connect" => Step::Connect,
        "disconnect" => Step::Disconnect,
        ">" => Step::Send(rest.to_string()),
        ">raw" => Step::SendRaw(rest.to_string()),
        "<" => Step::Expect(rest.to_string()),
        "<~" => Step::ExpectAfterHeartbeats(rest.to_string()),
        "expect-disconnect" => Step::ExpectDisconnect,
        "expect-silence" => Step::ExpectSilence(secs(rest)?),
        "sleep" => Step::Sleep(secs(rest)?),
        "use" => match rest {
            "1" => Step::Use(0),
            "2" => Step::Use(1),
            _ => return Err(format!("'use {rest}': a scenario has connections 1 and 2")),
        },
        other => return Err(format!("unknown step '{other}'")),
    })
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

/// Whether `message` (human form) is a Heartbeat that answers no TestRequest: one the
/// engine sends because the heartbeat interval ran out.
pub fn is_interval_heartbeat(message: &str) -> bool {
    let fields = comparable(message);
    fields.iter().any(|(t, v)| t == "35" && v == "0") && !fields.iter().any(|(t, _)| t == "112")
}

/// `message` (human form) with its MsgSeqNum replaced by `*`.
pub fn without_seq_num(message: &str) -> String {
    message
        .split('|')
        .map(|f| if f.starts_with("34=") { "34=*" } else { f })
        .collect::<Vec<_>>()
        .join("|")
}

/// Whether `actual` is the message `expected` describes (wildcards `*`; framing and
/// times not compared).
pub fn matches(expected: &str, actual: &str) -> bool {
    if expected.trim() == "*" {
        return true;
    }
    let e = comparable(expected);
    let a = comparable(actual);
    e.len() == a.len()
        && e.iter()
            .zip(&a)
            .all(|((et, ev), (at, av))| et == at && (ev == "*" || ev == av))
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
    let mut toml = format!(
        "[engine]\nstore = 'journal'\ndata_dir = '{}'\n[[session]]\nbegin_string = '{}'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        data.path().display(),
        s.begin_string
    );
    if let Some(d) = &s.dictionary {
        toml.push_str(&format!(
            "data_dictionary = '{}'\n",
            dictionary_path(d)?.display()
        ));
    }
    for line in &s.settings {
        toml.push_str(line);
        toml.push('\n');
    }
    let config = EngineConfig::from_toml(&toml, &s.name).map_err(|e| e.to_string())?;
    let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
    let id = SessionId::new(&s.begin_string, "ISLD", "TW");
    let addr = engine.listen_addr(&id).ok_or("acceptor has no address")?;
    let result = drive(s, addr).await;
    engine.shutdown().await;
    result
}

async fn drive(s: &Scenario, addr: std::net::SocketAddr) -> Result<(), String> {
    let mut clients = [
        FixClient::new(&s.begin_string),
        FixClient::new(&s.begin_string),
    ];
    let mut current = 0;
    let wait = Duration::from_secs(5);
    for (line, step) in &s.steps {
        let at = format!("{}:{line}", s.name);
        if let Step::Use(n) = step {
            current = *n;
            continue;
        }
        let c = &mut clients[current];
        match step {
            Step::Connect => c
                .connect(addr)
                .await
                .map_err(|e| format!("{at}: connect: {e}"))?,
            Step::Disconnect => c.disconnect(),
            Step::Send(fields) => c
                .send(fields)
                .await
                .map_err(|e| format!("{at}: send: {e}"))?,
            Step::SendRaw(text) => c
                .send_raw(text)
                .await
                .map_err(|e| format!("{at}: send: {e}"))?,
            Step::ExpectAfterHeartbeats(fields) => {
                let got = loop {
                    match c.next(wait).await {
                        Received::Message(m) if is_interval_heartbeat(&to_human(&m)) => {}
                        other => break other,
                    }
                };
                match got {
                    Received::Message(m)
                        if matches(&without_seq_num(fields), &without_seq_num(&to_human(&m))) => {}
                    _ => return Err(format!("{at}: expected {fields} after any Heartbeats")),
                }
            }
            Step::Expect(fields) => match c.next(wait).await {
                Received::Message(m) if matches(fields, &to_human(&m)) => {}
                Received::Message(m) => {
                    return Err(format!(
                        "{at}: expected\n  {fields}\nreceived\n  {}",
                        to_human(&m)
                    ))
                }
                Received::Closed => {
                    return Err(format!(
                        "{at}: expected {fields}, but the connection closed"
                    ))
                }
                Received::TimedOut => {
                    return Err(format!("{at}: expected {fields}, nothing arrived in 5 s"))
                }
            },
            Step::ExpectDisconnect => match c.next(wait).await {
                Received::Closed => {}
                Received::Message(m) => {
                    return Err(format!(
                        "{at}: expected a disconnect, received {}",
                        to_human(&m)
                    ))
                }
                Received::TimedOut => {
                    return Err(format!(
                        "{at}: expected a disconnect, connection still open after 5 s"
                    ))
                }
            },
            Step::ExpectSilence(secs) => match c.next(Duration::from_secs_f64(*secs)).await {
                Received::TimedOut => {}
                Received::Message(m) => {
                    return Err(format!("{at}: expected silence, received {}", to_human(&m)))
                }
                Received::Closed => {
                    return Err(format!("{at}: expected silence, the connection closed"))
                }
            },
            Step::Sleep(secs) => tokio::time::sleep(Duration::from_secs_f64(*secs)).await,
            Step::Use(_) => {}
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
    fn interval_heartbeats_are_told_from_answers_to_test_requests() {
        assert!(is_interval_heartbeat("8=FIX.4.2|35=0|34=4|52=x|10=1|"));
        assert!(!is_interval_heartbeat("8=FIX.4.2|35=0|34=4|112=X|10=1|"));
        assert!(!is_interval_heartbeat("8=FIX.4.2|35=1|34=4|112=X|10=1|"));
        assert_eq!(without_seq_num("35=0|34=5|112=X"), "35=0|34=*|112=X");
    }

    #[test]
    fn time_placeholders_are_shifted() {
        let t = crate::client::with_times("52=<TIME-121>|122=<TIME+10>|");
        assert!(!t.contains('<'), "{t}");
    }

    #[test]
    fn unknown_steps_are_reported_with_their_line() {
        let e = Scenario::parse("x.fixs", "connect\nfrobnicate\n").expect_err("bad step");
        assert!(e.contains("x.fixs:2"), "{e}");
    }
}
