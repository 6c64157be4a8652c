//! Conformance with QuickFIX, version by version: each scenario in `tests/conformance/` is
//! written once and played, for every FIX version it names, against QuickFIX (the
//! reference acceptor, `interop/qf_reference.py`) and against fix-engine, both started
//! from the same QuickFIX settings file with QuickFIX's own data dictionaries. fix-engine
//! must answer exactly as QuickFIX did: the same messages with the same fields in the same
//! order and the same values (only SendingTime, OrigSendingTime, BodyLength and CheckSum
//! may differ), the same disconnects and the same silences. QuickFIX must also answer as
//! the scenario says, so a scenario cannot drift from the reference.
//!
//! Scenario format: the one of [`crate::scenario`] (with `use 2` / `use 1` to switch
//! between two connections to the same session), plus
//! - `versions 4.2+` (or `4.0,4.1`, `-4.4`, `5.0SP2`): the versions the scenario runs on
//!   (default: all eight);
//! - `qf Key=Value`: a QuickFIX setting for the session (for example
//!   `qf ValidateFieldsOutOfOrder=N`);
//! - `@4.2+ < …` (any step may start with such a filter): the step belongs only to those
//!   versions;
//! - the field `<APPLVER>` stands for `1137=<DefaultApplVerID>` on FIXT.1.1 and for nothing
//!   on the FIX.4.x versions; `<ORDER:ID>` for the fields of a NewOrderSingle with ClOrdID
//!   `ID` valid in every version (TransactTime from FIX.4.2 on);
//! - in `>raw` lines, `<BEGIN>`, `<LEN>`, `<SUM>` and `<BADSUM>` stand for the session's
//!   BeginString, the right BodyLength, the right CheckSum and a wrong one.

use crate::scenario::Step;
use fix_engine::Engine;
use fix_session::SessionId;
use std::path::{Path, PathBuf};

mod play;
mod reference;

pub use play::{play, Peer};
pub use reference::Reference;

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
    /// The engine under test initiates (`role initiator`): the scenario is the acceptor,
    /// and its `connect` takes the engine's next connection.
    pub initiator: bool,
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
            initiator: false,
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
                "role" if rest == "initiator" || rest == "acceptor" => {
                    case.initiator = rest == "initiator"
                }
                "role" => {
                    return Err(format!(
                        "{name}:{n}: role is initiator or acceptor, found '{rest}'"
                    ))
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
                    Step::ExpectAfterHeartbeats(f) => {
                        Step::ExpectAfterHeartbeats(expand_with(f, "*"))
                    }
                    other => other.clone(),
                };
                (*n, step)
            })
            .collect()
    }

    /// The QuickFIX settings file for one version: an acceptor ISLD (counterparty TW) on
    /// `port`, or with `role initiator` an initiator ISLD connecting to `port`.
    pub fn settings_for(&self, v: Version, port: u16, dictionaries: &Path, store: &Path) -> String {
        let (kind, socket) = if self.initiator {
            (
                "initiator",
                format!(
                    "SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nReconnectInterval=1\n"
                ),
            )
        } else {
            (
                "acceptor",
                format!("SocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\n"),
            )
        };
        let mut s = format!(
            "[DEFAULT]\nConnectionType={kind}\nStartTime=00:00:00\nEndTime=00:00:00\nHeartBtInt=30\nUseDataDictionary=Y\nFileStorePath={}\n[SESSION]\nBeginString={}\nSenderCompID=ISLD\nTargetCompID=TW\n{socket}",
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
    let settings = dir.path().join("reference.cfg");
    let (listener, port) = initiator_listener(case).await?;
    let port = port.unwrap_or_else(crate::interop::free_port);
    std::fs::write(
        &settings,
        case.settings_for(v, port, dictionaries, &dir.path().join("qf")),
    )
    .map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| reference.start(&settings, case.initiator))?;
    let peer = match &listener {
        Some(l) => Peer::Accept(l),
        None => Peer::Dial(([127, 0, 0, 1], port).into()),
    };
    let quickfix = play(&begin, &steps, &peer, None).await;
    tokio::task::block_in_place(|| reference.stop())?;
    let quickfix = quickfix.map_err(|e| format!("QuickFIX itself: {e}"))?;

    // fix-engine's initiator gets a listener of its own: QuickFIX's may still reconnect.
    let (listener, port) = initiator_listener(case).await?;
    let text = case.settings_for(
        v,
        port.unwrap_or(0),
        dictionaries,
        &dir.path().join("engine"),
    );
    let imported = fix_engine::quickfix_settings::import(&text, &case.name)
        .map_err(|e| format!("fix-engine cannot import the settings: {e}"))?;
    let engine = Engine::start(imported.config)
        .await
        .map_err(|e| format!("fix-engine does not start: {e}"))?;
    let peer = match &listener {
        Some(l) => Peer::Accept(l),
        None => {
            let id = SessionId::new(&begin, "ISLD", "TW");
            Peer::Dial(
                engine
                    .listen_addr(&id)
                    .ok_or("fix-engine has no acceptor")?,
            )
        }
    };
    let ours = play(&begin, &steps, &peer, Some(&quickfix)).await;
    engine.shutdown().await;
    ours.map(|_| ()).map_err(|e| format!("fix-engine: {e}"))
}

/// For a `role initiator` case, a listener on a free loopback port for the initiator under
/// test to connect to, and its port.
async fn initiator_listener(
    case: &Case,
) -> Result<(Option<tokio::net::TcpListener>, Option<u16>), String> {
    if !case.initiator {
        return Ok((None, None));
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok((Some(l), Some(port)))
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
