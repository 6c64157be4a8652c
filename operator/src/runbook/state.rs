//! A run's progress, kept in a JSON file so a killed run resumes where it stopped.
//!
//! Written after every step (to a temporary file, then renamed over the old one, so a
//! kill mid-write leaves the previous state whole). It records the runbook's name and
//! parameters (a state file is not reused for another run), each step's outcome, and the
//! facts later steps and the report need: the sessions' sequence numbers, when the
//! disruption started and ended, the replication lag at the cut-over.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Started; not known to have finished (a resumed run does it again).
    Running,
    /// Done: its postconditions held.
    Done,
    /// Failed.
    Failed,
    /// Undone by its rollback after a failure.
    RolledBack,
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Where it is.
    pub status: StepStatus,
    /// When it started (ms since the Unix epoch).
    pub started_ms: i64,
    /// When it finished.
    pub finished_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One session's sequence numbers as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSeqs {
    /// The next MsgSeqNum we send.
    pub next_sender_seq: u64,
    /// The next MsgSeqNum we expect.
    pub next_target_seq: u64,
    /// Outbound messages stored (MsgSeqNum 1 up to `next_sender_seq` − 1) where recorded.
    pub stored_outbound: u64,
}

/// What the run learned along the way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Session id → its sequence numbers when recorded.
    pub sessions: BTreeMap<String, SessionSeqs>,
    /// Which instance they were recorded on.
    pub recorded_on: Option<String>,
    /// When traffic was first disrupted (ms since the Unix epoch).
    pub disruption_started_ms: Option<i64>,
    /// When every session was logged on again in the new region.
    pub restored_ms: Option<i64>,
    /// The replication lag (journal bytes) measured by the last RPO gate.
    pub lag_bytes_at_cutover: Option<u64>,
    /// The lease epoch before the move, and after.
    pub epoch_before: Option<u64>,
    /// The lease epoch the new region's leader holds.
    pub epoch_after: Option<u64>,
    /// The instance that led before the move, and the one after.
    pub leader_before: Option<String>,
    /// The new leader.
    pub leader_after: Option<String>,
    /// Per session: outbound messages recorded vs found, by instance (reconciliation).
    pub reconciled: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A run's whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The runbook's name.
    pub runbook: String,
    /// Its parameters.
    pub parameters: BTreeMap<String, String>,
    /// When the run started.
    pub started_ms: i64,
    /// When it finished (all steps done).
    pub finished_ms: Option<i64>,
    /// Step id → its record.
    pub steps: BTreeMap<String, StepRecord>,
    /// What was learned.
    pub facts: Facts,
}

/// Reading or writing the state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It could not be read or written.
    #[error("{action} the runbook state file {path}: {source}")]
    Io {
        /// Reading, writing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a state file.
    #[error(
        "the runbook state file {path} is not valid ({message}); move it away to start a new run"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RunState {
    /// A fresh run.
    pub fn new(runbook: &str, parameters: BTreeMap<String, String>) -> Self {
        Self {
            runbook: runbook.to_string(),
            parameters,
            started_ms: now_ms(),
            finished_ms: None,
            steps: BTreeMap::new(),
            facts: Facts::default(),
        }
    }

    /// The state in `path`, or `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Self>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    action: "reading",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Whether step `id` is done.
    pub fn is_done(&self, id: &str) -> bool {
        self.steps
            .get(id)
            .is_some_and(|s| s.status == StepStatus::Done)
    }

    /// Marks step `id` with `status`.
    pub fn mark(&mut self, id: &str, status: StepStatus, error: Option<String>) {
        let now = now_ms();
        let rec = self.steps.entry(id.to_string()).or_insert(StepRecord {
            status,
            started_ms: now,
            finished_ms: None,
            error: None,
        });
        if status == StepStatus::Running {
            rec.started_ms = now;
            rec.finished_ms = None;
        } else {
            rec.finished_ms = Some(now);
        }
        rec.status = status;
        rec.error = error;
    }
}
