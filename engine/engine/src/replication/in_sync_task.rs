//! Moves the in-sync set's decisions ([`super::in_sync`]) to the lease store: the task
//! follows this instance's role, feeds the set the journal's held positions (durable,
//! or written under `replicated-written`), and writes each change it asks for with
//! `LeaseStore::set_in_sync`, conditional on the epoch it leads with.

use super::in_sync::{Record, Step, Stored, Written};
use super::Replication;
use fix_cluster::source::Counted;
use fix_lease::{Grant, InSync, Leadership, LeaseStore, RoleState};
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
    /// What counts as held here: what is durable, or what is written
    /// (`replicated-written`).
    pub counted: Counted,
    /// The journal's held position, as `counted` says.
    pub held: watch::Receiver<u64>,
    /// Shared status (holds the set).
    pub state: Arc<Replication>,
}

fn leading(role: &watch::Receiver<RoleState>) -> Option<u64> {
    match role.borrow().role {
        Leadership::Leader { epoch } => Some(epoch),
        Leadership::Standby => None,
    }
}

impl InSyncTask {
    /// Runs until the role channel closes.
    pub async fn run(mut self) {
        loop {
            self.state.in_sync_term(leading(&self.role));
            let journal = &self.journal;
            match self
                .state
                .poll_in_sync(Instant::now(), || match self.counted {
                    Counted::Written => journal.written(),
                    Counted::Durable => journal.durable(),
                }) {
                Some(Step::Record(record)) => {
                    let outcome = self.write(&record).await;
                    self.state.in_sync_written(&record, outcome, Instant::now());
                    continue;
                }
                Some(Step::ReadBack { epoch }) => {
                    let stored = self.read_back(epoch).await;
                    self.state.in_sync_read_back(epoch, stored, Instant::now());
                    continue;
                }
                None => {}
            }
            tokio::select! {
                changed = self.held.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let position = *self.held.borrow_and_update();
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

    async fn write(&self, record: &Record) -> Written {
        let grant = Grant {
            group: self.group.clone(),
            owner: self.owner.clone(),
            epoch: record.epoch,
            expires_at_ms: 0,
        };
        let to_store = |s: &Stored| InSync {
            members: s.members.iter().cloned().collect(),
            version: s.version,
        };
        let new = to_store(&record.new);
        let expected = record.expected.as_ref().map(to_store);
        let before = self.state.in_sync().and_then(|v| v.recorded);
        let attempt = async {
            if let Some(mine) = &self.region {
                // The active region moved away (which lifted the recorded set for the new
                // region): record nothing more; the step-down follows.
                match fix_lease::region::active_region(self.store.as_ref(), &self.group).await? {
                    Some(active) if &active != mine => return Ok(None),
                    _ => {}
                }
            }
            self.store
                .set_in_sync(&grant, expected.as_ref(), &new)
                .await
                .map(Some)
        };
        match tokio::time::timeout(WRITE_TIMEOUT, attempt).await {
            Ok(Ok(Some(true))) => {
                report(before.as_deref(), &new.members, record.epoch);
                Written::Recorded
            }
            Ok(Ok(Some(false))) => {
                tracing::warn!(epoch = record.epoch, "recording the in-sync set was refused (deposed, or the stored set changed); reading it back");
                Written::Refused
            }
            Ok(Ok(None)) => {
                tracing::warn!("the active region moved away: not recording the in-sync set");
                Written::Refused
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recording the in-sync set failed; reading it back (messages keep waiting meanwhile)");
                Written::Unknown
            }
            Err(_) => {
                tracing::warn!("recording the in-sync set took over {WRITE_TIMEOUT:?}; reading it back (messages keep waiting meanwhile)");
                Written::Unknown
            }
        }
    }

    /// The stored set, if the row is still this term's.
    #[allow(clippy::option_option)]
    async fn read_back(&self, epoch: u64) -> Result<Option<Option<Stored>>, ()> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.store.read(&self.group)).await {
            Ok(Ok(Some(row))) if row.owner == self.owner && row.epoch == epoch => {
                Ok(Some(row.in_sync.map(|r| Stored {
                    members: r.members.into_iter().collect(),
                    version: r.version,
                })))
            }
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the in-sync set back failed; retrying");
                Err(())
            }
            Err(_) => Err(()),
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
