//! Conformance with QuickFIX, version by version: each scenario in `tests/conformance/` is
//! written once and played, for every FIX version it names, against QuickFIX (the
//! reference acceptor, `interop/qf_reference.py`) and against fix-engine, both started
//! from the same QuickFIX settings file with QuickFIX's own data dictionaries. fix-engine
//! must answer exactly as QuickFIX did: the same messages with the same fields in the same
//! order and the same values (only SendingTime, OrigSendingTime, BodyLength and CheckSum
//! may differ), the same disconnects and the same silences. QuickFIX must also answer as
//! the scenario says, so a scenario cannot drift from the reference.
//!
//! Scenario format: the one of [`crate::scenario`], plus
//! - `versions 4.2+` (or `4.0,4.1`, `-4.4`, `5.0SP2`): the versions the scenario runs on
//!   (default: all eight);
//! - `qf Key=Value`: a QuickFIX setting for the session (for example
//!   `qf ValidateFieldsOutOfOrder=N`);
//! - `@4.2+ < …` (any step may start with such a filter): the step belongs only to those
//!   versions;
//! - the field `<APPLVER>` stands for `1137=<DefaultApplVerID>` on FIXT.1.1 and for nothing
//!   on the FIX.4.x versions; `<ORDER:ID>` for the fields of a NewOrderSingle with ClOrdID
//!   `ID` valid in every version (TransactTime from FIX.4.2 on);
//! - in `>raw` lines, `<BEGIN>`, `<LEN>` and `<SUM>` stand for the session's BeginString,
//!   the right BodyLength and the right CheckSum.

use crate::client::{FixClient, Received};
use crate::scenario::{matches, Step};
use fix_codec::human::to_human;
use fix_engine::Engine;
use fix_session::SessionId;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The FIX versions QuickFIX ships dictionaries for, oldest first.
pub const VERSIONS: [Version; 8] = [
    Version("4.0"),
    Version("4.1"),
    Version("4.2"),
    Version("4.3"),
    Version("4.4"),
    Version("5.0"),
    Version("5.0SP1"),
    Version("5.0SP2"),
];

/// A FIX version by its short name (`4.2`, `5.0SP2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub &'static str);

impl Version {
    fn rank(self) -> usize {
        VERSIONS.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn named(name: &str) -> Option<Version> {
        VERSIONS.iter().copied().find(|v| v.0 == name)
    }

    /// FIX.5.0 and later run over FIXT.1.1.
    pub fn is_fixt(self) -> bool {
        self.0.starts_with('5')
    }

    /// The session's BeginString.
    pub fn begin_string(self) -> String {
        if self.is_fixt() {
            "FIXT.1.1".into()
        } else {
            format!("FIX.{}", self.0)
        }
    }

    /// ApplVerID (tag 1137) of the FIX.5.0 versions.
    pub fn appl_ver_id(self) -> Option<&'static str> {
        match self.0 {
            "5.0" => Some("7"),
            "5.0SP1" => Some("8"),
            "5.0SP2" => Some("9"),
            _ => None,
        }
    }

    /// The application dictionary's file name (`FIX42.xml`).
    pub fn dictionary(self) -> String {
        format!("FIX{}.xml", self.0.replace('.', ""))
    }
}

/// Which versions a step or a scenario applies to: a comma-separated list of `4.2`,
/// `4.2+` (that one and later) and `-4.2` (up to that one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFilter(Vec<(usize, usize)>);

impl VersionFilter {
    /// Every version.
    pub fn all() -> Self {
        Self(vec![(0, VERSIONS.len() - 1)])
    }

    /// Parses a filter; the error names the bad item.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |item: &str| {
            format!(
                "'{item}' is not a FIX version filter (use 4.0 … 4.4, 5.0, 5.0SP1, 5.0SP2, with + for 'and later' or a leading - for 'up to')"
            )
        };
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            let last = VERSIONS.len() - 1;
            let (name, from_start, to_end) = if let Some(n) = item.strip_suffix('+') {
                (n, false, true)
            } else if let Some(n) = item.strip_prefix('-') {
                (n, true, false)
            } else {
                (item, false, false)
            };
            let v = Version::named(name).ok_or_else(|| bad(item))?;
            let r = v.rank();
            ranges.push((
                if from_start { 0 } else { r },
                if to_end { last } else { r },
            ));
        }
        Ok(Self(ranges))
    }

    /// Whether `v` is in the filter.
    pub fn contains(&self, v: Version) -> bool {
        let r = v.rank();
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&r))
    }
}

/// A conformance scenario: steps for every version, some only for a few.
#[derive(Debug, Clone)]
pub struct Case {
    /// File name.
    pub name: String,
    /// The versions it runs on.
    pub versions: VersionFilter,
    /// QuickFIX settings for the session (`Key=Value`).
    pub settings: Vec<String>,
    /// Steps with their line numbers and versions.
    pub steps: Vec<(usize, VersionFilter, Step)>,
}

impl Case {
    /// Parses a scenario file's text.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut case = Case {
            name: name.to_string(),
            versions: VersionFilter::all(),
            settings: Vec::new(),
            steps: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let mut line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut filter = VersionFilter::all();
            if let Some(rest) = line.strip_prefix('@') {
                let (f, step) = rest.split_once(' ').unwrap_or((rest, ""));
                filter = VersionFilter::parse(f).map_err(|e| format!("{name}:{n}: {e}"))?;
                line = step.trim();
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "versions" => {
                    case.versions =
                        VersionFilter::parse(rest).map_err(|e| format!("{name}:{n}: {e}"))?
                }
                "qf" if rest.contains('=') => case.settings.push(rest.trim().to_string()),
                "qf" => return Err(format!("{name}:{n}: qf takes Key=Value, found '{rest}'")),
                _ => {
                    let step = crate::scenario::parse_step(line)
                        .map_err(|e| format!("{name}:{n}: {e}"))?;
                    case.steps.push((n, filter, step));
                }
            }
        }
        Ok(case)
    }

    /// The steps of one version, `<APPLVER>` and `<ORDER:ClOrdID>` expanded.
    pub fn steps_for(&self, v: Version) -> Vec<(usize, Step)> {
        let expand_with = |fields: &str, time: &str| {
            let applver = v.appl_ver_id().map(|id| format!("1137={id}"));
            fields
                .split('|')
                .filter_map(|f| match f {
                    "<APPLVER>" => applver.clone(),
                    f if f.starts_with("<ORDER:") => {
                        let id = f.trim_start_matches("<ORDER:").trim_end_matches('>');
                        let mut order = format!("11={id}|21=1|38=100|40=1|54=1|55=INTC");
                        if v.rank() >= 2 {
                            order.push_str("|60=");
                            order.push_str(time);
                        }
                        Some(order)
                    }
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>()
                .join("|")
        };
        let expand = |fields: &str| expand_with(fields, "<TIME>");
        self.steps
            .iter()
            .filter(|(_, f, _)| f.contains(v))
            .map(|(n, _, step)| {
                let step = match step {
                    Step::Send(f) => Step::Send(expand(f)),
                    Step::Expect(f) => Step::Expect(expand_with(f, "*")),
                    other => other.clone(),
                };
                (*n, step)
            })
            .collect()
    }

    /// The QuickFIX settings file for one version, an acceptor ISLD (counterparty TW) on
    /// `port`.
    pub fn settings_for(&self, v: Version, port: u16, dictionaries: &Path, store: &Path) -> String {
        let mut s = format!(
            "[DEFAULT]\nConnectionType=acceptor\nStartTime=00:00:00\nEndTime=00:00:00\nHeartBtInt=30\nUseDataDictionary=Y\nFileStorePath={}\n[SESSION]\nBeginString={}\nSenderCompID=ISLD\nTargetCompID=TW\nSocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\n",
            store.display(),
            v.begin_string()
        );
        let dict = dictionaries.join(v.dictionary());
        if v.is_fixt() {
            s.push_str(&format!(
                "DefaultApplVerID=FIX.{}\nTransportDataDictionary={}\nAppDataDictionary={}\n",
                v.0,
                dictionaries.join("FIXT11.xml").display(),
                dict.display()
            ));
        } else {
            s.push_str(&format!("DataDictionary={}\n", dict.display()));
        }
        for line in &self.settings {
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

/// What one `<`, `expect-disconnect` or `expect-silence` step observed.
#[derive(Debug, Clone)]
pub enum Observed {
    /// A message, in the `|` notation.
    Message(String),
    /// The connection closed.
    Closed,
    /// Nothing arrived in time.
    Nothing,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Message(m) => f.write_str(m),
            Observed::Closed => f.write_str("(disconnect)"),
            Observed::Nothing => f.write_str("(nothing)"),
        }
    }
}

/// Fields whose values may differ between two engines' answers: BodyLength, CheckSum,
/// SendingTime, OrigSendingTime.
const TIMES_AND_FRAMING: [&str; 4] = ["9", "10", "52", "122"];

/// Whether two answers are the same message: the same tags in the same order with the
/// same values, except the values of [`TIMES_AND_FRAMING`] and timestamps (a reflected
/// TransactTime is the time the scenario sent it, which differs between the two runs;
/// its precision must still agree).
pub fn same_message(reference: &str, actual: &str) -> bool {
    let fields = |m: &str| -> Vec<(String, String)> {
        m.split('|')
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (t, v) = f.split_once('=').unwrap_or((f, ""));
                let v = if TIMES_AND_FRAMING.contains(&t) {
                    String::new()
                } else if fix_codec::UtcTimestamp::parse(v.as_bytes()).is_some() {
                    format!("<timestamp of {} characters>", v.len())
                } else {
                    v.to_string()
                };
                (t.to_string(), v)
            })
            .collect()
    };
    fields(reference) == fields(actual)
}

/// The QuickFIX reference acceptor (`interop/qf_reference.py`), one process for many runs.
pub struct Reference {
    child: Child,
    stdin: ChildStdin,
    answers: std::sync::mpsc::Receiver<String>,
}

impl Reference {
    /// Starts the process (with the loopback bind shim, as for the interop peer).
    pub fn spawn() -> Result<Self, String> {
        let preload = std::env::var("FIX_LOOPBACK_PRELOAD").map_err(|_| {
            "set FIX_LOOPBACK_PRELOAD to the loopback bind shim (scripts/test.sh builds it)"
                .to_string()
        })?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/qf_reference.py");
        let mut child = Command::new(crate::interop::python())
            .env("LD_PRELOAD", preload)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the QuickFIX reference: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout: ChildStdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            answers,
        })
    }

    fn command(&mut self, line: &str, answer: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}").map_err(|e| format!("QuickFIX reference: {e}"))?;
        match self.answers.recv_timeout(Duration::from_secs(10)) {
            Ok(got) if got.trim() == answer => Ok(()),
            Ok(got) => Err(format!(
                "QuickFIX reference answered '{}' to '{line}'",
                got.trim()
            )),
            Err(e) => Err(format!("QuickFIX reference did not answer '{line}': {e}")),
        }
    }

    /// Starts an acceptor from a settings file.
    pub fn start(&mut self, settings: &Path) -> Result<(), String> {
        self.command(&format!("start {}", settings.display()), "ready")
    }

    /// Stops the acceptor. QuickFIX's Python bindings now and then crash or hang while
    /// stopping an acceptor whose connection just closed; the process is then replaced
    /// (the run's answers were already read).
    pub fn stop(&mut self) -> Result<(), String> {
        if self.command("stop", "stopped").is_err() {
            *self = Self::spawn()?;
        }
        Ok(())
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays one version's steps against an acceptor at `addr`. With `reference`, every
/// observation must equal QuickFIX's; the scenario's own expectations must hold always.
pub async fn play(
    begin_string: &str,
    steps: &[(usize, Step)],
    addr: std::net::SocketAddr,
    reference: Option<&[Observed]>,
) -> Result<Vec<Observed>, String> {
    let mut c = FixClient::new(begin_string);
    let mut seen = Vec::new();
    let wait = Duration::from_secs(5);
    for (line, step) in steps {
        let at = format!("line {line}");
        let observed = match step {
            Step::Connect => {
                c.connect(addr)
                    .await
                    .map_err(|e| format!("{at}: connect: {e}"))?;
                continue;
            }
            Step::Disconnect => {
                c.disconnect();
                continue;
            }
            Step::Send(fields) => {
                c.send(fields)
                    .await
                    .map_err(|e| format!("{at}: send: {e}"))?;
                continue;
            }
            Step::SendRaw(text) => {
                c.send_raw(text)
                    .await
                    .map_err(|e| format!("{at}: send: {e}"))?;
                continue;
            }
            Step::Sleep(secs) => {
                tokio::time::sleep(Duration::from_secs_f64(*secs)).await;
                continue;
            }
            Step::Expect(_) | Step::ExpectDisconnect => observe(&mut c, wait).await,
            Step::ExpectSilence(secs) => observe(&mut c, Duration::from_secs_f64(*secs)).await,
        };
        let expected_ok = match (step, &observed) {
            (Step::Expect(fields), Observed::Message(m)) => matches(fields, m),
            (Step::ExpectDisconnect, Observed::Closed) => true,
            (Step::ExpectSilence(_), Observed::Nothing) => true,
            _ => false,
        };
        if let Some(reference) = reference {
            let want = reference.get(seen.len());
            let same = match (want, &observed) {
                (Some(Observed::Message(r)), Observed::Message(m)) => same_message(r, m),
                (Some(Observed::Closed), Observed::Closed) => true,
                (Some(Observed::Nothing), Observed::Nothing) => true,
                _ => false,
            };
            if !same {
                let want = want.map_or("(no observation)".to_string(), |w| w.to_string());
                return Err(format!(
                    "{at}: QuickFIX answered\n    {want}\n  fix-engine answered\n    {observed}"
                ));
            }
        }
        if !expected_ok {
            let what = match step {
                Step::Expect(f) => f.clone(),
                Step::ExpectDisconnect => "(disconnect)".into(),
                _ => "(nothing)".into(),
            };
            return Err(format!(
                "{at}: the scenario expects\n    {what}\n  but got\n    {observed}"
            ));
        }
        seen.push(observed);
    }
    Ok(seen)
}

async fn observe(c: &mut FixClient, wait: Duration) -> Observed {
    match c.next(wait).await {
        Received::Message(m) => Observed::Message(to_human(&m)),
        Received::Closed => Observed::Closed,
        Received::TimedOut => Observed::Nothing,
    }
}

/// Runs one scenario for one version: QuickFIX first, then fix-engine against QuickFIX's
/// answers. The error says which of the two went wrong and where.
pub async fn run_version(
    case: &Case,
    v: Version,
    reference: &mut Reference,
    dictionaries: &Path,
) -> Result<(), String> {
    let steps = case.steps_for(v);
    let begin = v.begin_string();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = crate::interop::free_port();
    let settings = dir.path().join("reference.cfg");
    std::fs::write(
        &settings,
        case.settings_for(v, port, dictionaries, &dir.path().join("qf")),
    )
    .map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| reference.start(&settings))?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let quickfix = play(&begin, &steps, addr, None).await;
    tokio::task::block_in_place(|| reference.stop())?;
    let quickfix = quickfix.map_err(|e| format!("QuickFIX itself: {e}"))?;

    let text = case.settings_for(v, 0, dictionaries, &dir.path().join("engine"));
    let imported = fix_engine::quickfix_settings::import(&text, &case.name)
        .map_err(|e| format!("fix-engine cannot import the settings: {e}"))?;
    let engine = Engine::start(imported.config)
        .await
        .map_err(|e| format!("fix-engine does not start: {e}"))?;
    let id = SessionId::new(&begin, "ISLD", "TW");
    let addr = engine
        .listen_addr(&id)
        .ok_or("fix-engine has no acceptor")?;
    let ours = play(&begin, &steps, addr, Some(&quickfix)).await;
    engine.shutdown().await;
    ours.map(|_| ()).map_err(|e| format!("fix-engine: {e}"))
}

/// The scenario files of `tests/conformance/`, sorted.
pub fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p: &PathBuf| p.extension().is_some_and(|e| e == "fixs"));
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_filters_select_ranges_and_single_versions() {
        let f = VersionFilter::parse("4.0,4.2+").expect("parses");
        let names: Vec<_> = VERSIONS
            .iter()
            .filter(|v| f.contains(**v))
            .map(|v| v.0)
            .collect();
        assert_eq!(
            names,
            ["4.0", "4.2", "4.3", "4.4", "5.0", "5.0SP1", "5.0SP2"]
        );
        let f = VersionFilter::parse("-4.1").expect("parses");
        assert!(f.contains(Version("4.1")) && !f.contains(Version("4.2")));
        let e = VersionFilter::parse("4.5").expect_err("no such version");
        assert!(e.contains("'4.5'"), "{e}");
    }

    #[test]
    fn applver_is_1137_on_fixt_and_nothing_elsewhere() {
        let case = Case::parse("x", "> 35=A|34=1|98=0|108=30|<APPLVER>\n").expect("parses");
        let fixt = case.steps_for(Version("5.0SP1"));
        assert_eq!(fixt[0].1, Step::Send("35=A|34=1|98=0|108=30|1137=8".into()));
        let fix4 = case.steps_for(Version("4.1"));
        assert_eq!(fix4[0].1, Step::Send("35=A|34=1|98=0|108=30".into()));
    }

    #[test]
    fn same_message_ignores_times_and_framing_but_not_order() {
        assert!(same_message(
            "8=FIX.4.2|9=5|35=0|52=a|10=1|",
            "8=FIX.4.2|9=6|35=0|52=b|10=2|"
        ));
        assert!(!same_message("35=3|45=2|58=x|", "35=3|58=x|45=2|"));
        assert!(!same_message("35=3|45=2|", "35=3|45=2|58=x|"));
    }
}
