//! QuickFIX as the reference counterparty (`interop/qf_reference.py`): an acceptor, or an
//! initiator for the scenarios that test the initiator's side.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The QuickFIX reference (`interop/qf_reference.py`), one process for many runs.
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

    /// Starts an acceptor, or with `initiator` an initiator, from a settings file.
    pub fn start(&mut self, settings: &Path, initiator: bool) -> Result<(), String> {
        let word = if initiator { "initiate" } else { "start" };
        let line = format!("{word} {}", settings.display());
        match self.command(&line, "ready") {
            // The bindings sometimes crash after answering a stop (see `stop`): a process
            // that is gone is replaced once.
            Err(_) if matches!(self.child.try_wait(), Ok(Some(_))) => {
                *self = Self::spawn()?;
                self.command(&line, "ready")
            }
            other => other,
        }
    }

    /// Stops the acceptor or initiator. QuickFIX's Python bindings now and then crash or
    /// hang while stopping an acceptor whose connection just closed; the process is then replaced
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
