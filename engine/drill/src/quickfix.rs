//! QuickFIX as an independent counterparty for failover tests: `tests/interop/qf_peer.py
//! --role trader` (the QuickFIX C++ engine through its Python package, with its file
//! store), which logs on to the given ports in turn, sends NewOrderSingle at a fixed rate
//! while logged on, and, when its stdin closes, waits for the answers and prints one JSON
//! report (orders sent, filled, unanswered, logons, every Logout or Reject text).
//!
//! Needs `FIX_QUICKFIX_PYTHON` and `FIX_DICTIONARY_DIR` (set by `scripts/test.sh`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why the QuickFIX counterparty could not run or report.
#[derive(Debug, Error)]
pub enum QuickFixError {
    /// A variable the test runner sets is missing.
    #[error("set {0} (scripts/test.sh does)")]
    Unset(&'static str),
    /// The process could not start.
    #[error("starting QuickFIX: {0}")]
    Spawn(#[from] std::io::Error),
    /// Its last line was not its JSON report.
    #[error("QuickFIX's report is not JSON ({0}): {1:?}")]
    Report(serde_json::Error, String),
}

/// A running QuickFIX trader.
pub struct QuickFixTrader {
    child: Child,
    lines: Receiver<String>,
    logons: usize,
}

fn var(name: &'static str) -> Result<String, QuickFixError> {
    std::env::var(name).map_err(|_| QuickFixError::Unset(name))
}

impl QuickFixTrader {
    /// Starts it (FIX.4.4, CLIENT→EXEC, 100 orders/s) against `ports` on 127.0.0.1 in
    /// that order, its store and logs under `workdir`.
    pub fn start(ports: &[u16], workdir: &Path) -> Result<Self, QuickFixError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/qf_peer.py");
        let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
        let mut child = Command::new(var("FIX_QUICKFIX_PYTHON")?)
            .arg(script)
            .args(["--role", "trader", "--begin", "FIX.4.4"])
            .args(["--sender", "CLIENT", "--target", "EXEC"])
            .args([
                "--ports",
                &ports.join(","),
                "--rate",
                "100",
                "--settle",
                "30",
            ])
            .arg("--dict-dir")
            .arg(var("FIX_DICTIONARY_DIR")?)
            .arg("--workdir")
            .arg(workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        // Its lines (events, then the report) are read as they come, so that the test
        // can wait for its logons and the pipe never fills.
        let out = child.stdout.take().map(BufReader::new);
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for l in out
                .into_iter()
                .flat_map(|o| o.lines().map_while(Result::ok))
            {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            logons: 0,
        })
    }

    /// Waits (up to `limit`) until it has logged on `n` times in all; false if it has
    /// not by then. Blocks the calling thread (use `block_in_place` in async tests).
    pub fn wait_logons(&mut self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.logons < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains("\"logon\"") => self.logons += 1,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Stops sending (closes its stdin), waits for its answers and returns its report.
    /// Blocks the calling thread for up to its settle time.
    pub fn finish(mut self) -> Result<serde_json::Value, QuickFixError> {
        drop(self.child.stdin.take());
        let mut last = String::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(60)) {
            last = l;
        }
        let _ = self.child.wait();
        serde_json::from_str(&last).map_err(|e| QuickFixError::Report(e, last))
    }
}

impl Drop for QuickFixTrader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a report shows the session went on without a reset or a reject: QuickFIX logs
/// out on a MsgSeqNum too low, and reports every Logout and Reject text.
pub fn no_reset_nor_reject(report: &serde_json::Value) -> bool {
    let texts = report["texts"].as_array().cloned().unwrap_or_default();
    !texts.iter().any(|t| {
        let t = t.as_str().unwrap_or_default();
        t.contains("too low") || t.starts_with("3:")
    })
}
