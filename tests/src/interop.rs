//! Running QuickFIX (its C++ engine through the Python package) as the counterparty.

use fix_codec::MessageRef;
use fix_engine::app::{AppContext, AppReject, Application};
use fix_engine::config::{EngineSection, SessionSection, StoreKind};
use fix_engine::EngineConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

/// The Python interpreter with QuickFIX installed (`FIX_QUICKFIX_PYTHON`, set by
/// `scripts/test.sh`).
pub fn python() -> String {
    std::env::var("FIX_QUICKFIX_PYTHON").unwrap_or_else(|_| {
        panic!("set FIX_QUICKFIX_PYTHON to a python with QuickFIX installed (scripts/test.sh builds one)")
    })
}

/// The QuickFIX data dictionaries (`FIX_DICTIONARY_DIR`).
pub fn dictionary_dir() -> PathBuf {
    PathBuf::from(std::env::var("FIX_DICTIONARY_DIR").unwrap_or_else(|_| {
        panic!("set FIX_DICTIONARY_DIR to QuickFIX's data dictionaries (scripts/test.sh does)")
    }))
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/qf_peer.py")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Starts `qf_peer.py` in `role`. QuickFIX's CompIDs are `QF`, ours `ENGINE`.
///
/// The peer runs with `FIX_LOOPBACK_PRELOAD` (built by `scripts/test.sh` from
/// `interop/loopback_bind.c`) as `LD_PRELOAD`, because QuickFIX's acceptor binds every
/// address whatever `SocketAcceptHost` says; the acceptor peer refuses to run unless its
/// port is bound to 127.0.0.1 only.
pub fn spawn_peer(role: &str, port: u16, begin: &str, workdir: &Path) -> Child {
    let preload = std::env::var("FIX_LOOPBACK_PRELOAD").unwrap_or_else(|_| {
        panic!("set FIX_LOOPBACK_PRELOAD to the loopback bind shim (scripts/test.sh builds it)")
    });
    Command::new(python())
        .env("LD_PRELOAD", preload)
        .arg(peer_script())
        .args([
            "--role",
            role,
            "--port",
            &port.to_string(),
            "--begin",
            begin,
        ])
        .args(["--sender", "QF", "--target", "ENGINE"])
        .arg("--dict-dir")
        .arg(dictionary_dir())
        .arg("--workdir")
        .arg(workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the QuickFIX peer: {e}"))
}

/// Reads JSON lines from the peer until one contains `needle`; returns every line read.
pub fn read_until(out: &mut std::io::BufReader<ChildStdout>, needle: &str) -> Vec<String> {
    use std::io::BufRead;
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => return lines,
            Ok(_) => {
                let found = line.contains(needle);
                lines.push(line);
                if found {
                    return lines;
                }
            }
        }
    }
}

/// Closes the peer's stdin (which stops an acceptor peer) and waits for it.
pub fn stop_peer(mut child: Child, stdin: Option<ChildStdin>) {
    drop(stdin);
    let _ = child.wait();
}

/// Our session's configuration against QuickFIX, validating with the same dictionaries.
/// The BeginString of a version name: FIX.5.0, FIX.5.0SP1 and FIX.5.0SP2 run over FIXT.1.1.
pub fn begin_string_of(version: &str) -> &str {
    if version.starts_with("FIX.5.") {
        "FIXT.1.1"
    } else {
        version
    }
}

/// An engine for the interop tests. `version` is a BeginString, or FIX.5.0, FIX.5.0SP1 or
/// FIX.5.0SP2 for FIXT.1.1 with that DefaultApplVerID (FIXT.1.1 alone means FIX.5.0SP2).
pub fn engine_config(version: &str, role: &str, port: u16, data_dir: &Path) -> EngineConfig {
    let dicts = dictionary_dir();
    let begin = begin_string_of(version);
    let mut s = SessionSection {
        begin_string: begin.into(),
        sender_comp_id: "ENGINE".into(),
        target_comp_id: "QF".into(),
        role: role.into(),
        reconnect_interval: Some(1),
        ..SessionSection::default()
    };
    let addr = format!("127.0.0.1:{port}");
    if role == "acceptor" {
        s.listen = Some(addr);
    } else {
        s.connect = vec![addr];
    }
    if begin == "FIXT.1.1" {
        let appl = if version == "FIXT.1.1" {
            "FIX.5.0SP2"
        } else {
            version
        };
        s.transport_data_dictionary = Some(dicts.join("FIXT11.xml"));
        s.data_dictionary = Some(dicts.join(format!("{}.xml", appl.replace('.', ""))));
        s.default_appl_ver_id = Some(appl.into());
    } else {
        s.data_dictionary = Some(dicts.join(format!("{}.xml", begin.replace('.', ""))));
    }
    EngineConfig {
        engine: EngineSection {
            store: StoreKind::Journal,
            data_dir: data_dir.to_path_buf(),
            app: fix_engine::config::AppKind::Exec,
            ..EngineSection::default()
        },
        sessions: vec![s],
    }
}

/// One application message as our application saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// MsgType.
    pub msg_type: String,
    /// ClOrdID.
    pub cl_ord_id: String,
    /// ExecType.
    pub exec_type: String,
    /// PossDupFlag=Y.
    pub poss_dup: bool,
}

/// An application that records what it receives.
#[derive(Default)]
pub struct Recorder {
    /// Everything received, in order.
    pub seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    /// How many recorded messages satisfy `f`.
    pub fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .lock()
            .map(|s| s.iter().filter(|m| f(m)).count())
            .unwrap_or(0)
    }
}

impl Application for Recorder {
    fn from_app(&self, _ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let text = |t| msg.get_str(t).unwrap_or_default().to_string();
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                msg_type: text(35),
                cl_ord_id: text(11),
                // FIX.4.0 has no ExecType: OrdStatus tells a fill there.
                exec_type: msg
                    .get_str(150)
                    .or(msg.get_str(39))
                    .unwrap_or_default()
                    .to_string(),
                poss_dup: msg.get_flag(43),
            });
        }
        Ok(())
    }
}
