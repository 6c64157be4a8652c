//! Moves the in-sync set's decisions ([`super::in_sync`]) to the lease store: the task
//! follows this instance's role, feeds the set the journal's durable positions, and
//! writes each change it asks for with `LeaseStore::set_in_sync`, conditional on the
//! epoch it leads with.

use super::in_sync::Record;
use super::Replication;
use fix_lease::{Grant, LeaseStore, Role, RoleState};
use fix_store::Journal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long one write to the lease store may take before it is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the set is looked at without a wake-up (joins and stalls are found then).
const TICK: Duration = Duration::from_millis(20);

/// What the task needs.
pub struct InSyncTask {
    /// The lease store.
    pub store: Arc<dyn LeaseStore>,
    /// The engine group.
    pub group: String,
    /// This instance's lease owner id.
    pub owner: String,
    /// This instance's region in a multi-region group.
    pub region: Option<String>,
    /// This instance's role (leader only once the journal is open for the epoch).
    pub role: watch::Receiver<RoleState>,
    /// The journal.
    pub journal: Journal,
    /// Its durable position.
    pub durable: watch::Receiver<u64>,
    /// Shared status (holds the set).
    pub state: Arc<Replication>,
}

fn leading(role: &watch::Receiver<RoleState>) -> Option<u64> {
    match role.borrow().role {
        Role::Leader { epoch } => Some(epoch),
        Role::Standby => None,
    }
}

impl InSyncTask {
    /// Runs until the role channel closes.
    pub async fn run(mut self) {
        loop {
            self.state.in_sync_term(leading(&self.role));
            let journal = &self.journal;
            if let Some(record) = self
                .state
                .poll_in_sync(Instant::now(), || journal.durable())
            {
                let outcome = self.write(&record).await;
                self.state.in_sync_written(&record, outcome, Instant::now());
                continue;
            }
            tokio::select! {
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let position = *self.durable.borrow_and_update();
                    self.state.note_durable(Instant::now(), position);
                }
                changed = self.role.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    async fn write(&self, record: &Record) -> Result<bool, ()> {
        let grant = Grant {
            group: self.group.clone(),
            owner: self.owner.clone(),
            epoch: record.epoch,
            expires_at_ms: 0,
        };
        let members: Vec<String> = record.members.iter().cloned().collect();
        if let Some(mine) = &self.region {
            // The active region moved away (and lifted the recorded set for the new
            // region): record nothing more; the step-down follows.
            match fix_lease::region::active_region(self.store.as_ref(), &self.group).await {
                Ok(Some(active)) if &active != mine => return Err(()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the active region failed; retrying");
                    return Err(());
                }
            }
        }
        let before = self.state.in_sync().and_then(|v| v.recorded);
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, self.store.set_in_sync(&grant, &members)).await;
        match written {
            Ok(Ok(true)) => {
                report(before.as_deref(), &members, record.epoch);
                Ok(true)
            }
            Ok(Ok(false)) => {
                tracing::warn!(epoch = record.epoch, "recording the in-sync set was refused: this instance no longer holds the lease");
                Ok(false)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recording the in-sync set failed; retrying (messages keep waiting meanwhile)");
                Err(())
            }
            Err(_) => {
                tracing::warn!("recording the in-sync set took over {WRITE_TIMEOUT:?}; retrying (messages keep waiting meanwhile)");
                Err(())
            }
        }
    }
}

/// Logs a recorded change: who left (a warning: it may not lead until it catches up) and
/// who joined.
fn report(before: Option<&[String]>, after: &[String], epoch: u64) {
    let Some(before) = before else {
        tracing::info!(epoch, members = ?after, "in-sync set recorded for this term");
        return;
    };
    for gone in before.iter().filter(|m| !after.contains(m)) {
        tracing::warn!(standby = %gone, epoch, members = ?after, "standby removed from the in-sync set: it kept a message waiting past standby_wait_ms; it may not lead until it has caught up");
    }
    for joined in after.iter().filter(|m| !before.contains(m)) {
        tracing::info!(standby = %joined, epoch, members = ?after, "standby caught up and joined the in-sync set");
    }
}
