//! The report at the end of every run: measured RTO and RPO, the lease's move, the
//! sessions' sequence numbers and the reconciled message counts.

use super::state::{RunState, SessionSeqs, StepStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    /// Its id.
    pub id: String,
    /// `done`, `failed`, …
    pub status: StepStatus,
    /// How long it took.
    pub ms: Option<i64>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The runbook.
    pub runbook: String,
    /// Its parameters.
    pub parameters: BTreeMap<String, String>,
    /// The steps, in the order they ran.
    pub steps: Vec<StepOutcome>,
    /// Recovery time: from the first disruptive action (logout or lease move) until every
    /// session was logged on in the new region, in ms.
    pub rto_ms: Option<i64>,
    /// Recovery point: journal bytes the new region lacked at the cut-over, as last
    /// measured by the RPO gate (`None` when the run had no gate, as in DR with the source
    /// dark: then the sequence-number and reconciliation checks show what was kept).
    pub rpo_lag_bytes: Option<u64>,
    /// The leader before and after, with the lease epochs.
    pub leader_before: Option<String>,
    /// The new leader.
    pub leader_after: Option<String>,
    /// The lease epoch before the move.
    pub epoch_before: Option<u64>,
    /// The lease epoch after.
    pub epoch_after: Option<u64>,
    /// Sequence numbers recorded during the run.
    pub sessions: BTreeMap<String, SessionSeqs>,
    /// Session → instance (or `recorded`) → outbound messages stored.
    pub reconciled: BTreeMap<String, BTreeMap<String, u64>>,
    /// Whole run, ms.
    pub total_ms: Option<i64>,
}

impl Report {
    /// The report of the run `s` describes.
    pub fn from_state(s: &RunState) -> Self {
        let mut steps: Vec<StepOutcome> = s
            .steps
            .iter()
            .map(|(id, r)| StepOutcome {
                id: id.clone(),
                status: r.status,
                ms: r.finished_ms.map(|f| f - r.started_ms),
            })
            .collect();
        steps.sort_by_key(|o| s.steps.get(&o.id).map(|r| r.started_ms));
        let f = &s.facts;
        Self {
            runbook: s.runbook.clone(),
            parameters: s.parameters.clone(),
            steps,
            rto_ms: f
                .disruption_started_ms
                .zip(f.restored_ms)
                .map(|(a, b)| b - a),
            rpo_lag_bytes: f.lag_bytes_at_cutover,
            leader_before: f.leader_before.clone(),
            leader_after: f.leader_after.clone(),
            epoch_before: f.epoch_before,
            epoch_after: f.epoch_after,
            sessions: f.sessions.clone(),
            reconciled: f.reconciled.clone(),
            total_ms: s.finished_ms.map(|e| e - s.started_ms),
        }
    }

    /// For people.
    pub fn human(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let mut out = format!("runbook {} report\n", self.runbook);
        out.push_str(&format!(
            "  RTO: {} ms (first disruption → every session logged on in the new region)\n",
            opt(self.rto_ms.map(|v| v.to_string()))
        ));
        out.push_str(&match self.rpo_lag_bytes {
            Some(v) => format!("  RPO: {v} journal byte(s) not in the new region at the cut-over\n"),
            None => "  RPO: not measured at the cut-over (the source did not answer); the sequence-number and reconciliation checks below show what the new region holds\n".to_string(),
        });
        out.push_str(&format!(
            "  lead: {} (epoch {}) → {} (epoch {})\n",
            opt(self.leader_before.clone()),
            opt(self.epoch_before.map(|v| v.to_string())),
            opt(self.leader_after.clone()),
            opt(self.epoch_after.map(|v| v.to_string())),
        ));
        for (id, s) in &self.sessions {
            out.push_str(&format!(
                "  session {id}: recorded next sender {} / next target {}, {} outbound stored\n",
                s.next_sender_seq, s.next_target_seq, s.stored_outbound
            ));
        }
        for (id, counts) in &self.reconciled {
            let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("  reconciled {id}: {}\n", c.join(", ")));
        }
        for st in &self.steps {
            out.push_str(&format!(
                "  step {:<22} {:?} {} ms\n",
                st.id,
                st.status,
                opt(st.ms.map(|v| v.to_string()))
            ));
        }
        out.push_str(&format!(
            "  total: {} ms\n",
            opt(self.total_ms.map(|v| v.to_string()))
        ));
        out
    }
}
