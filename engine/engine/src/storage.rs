//! The engine's store: the journal (with an async durability wait) or memory.

use crate::config::{EngineSection, StoreKind};
use crate::replication::Replication;
use fix_cluster::source::Counted;
use fix_codec::UtcTimestamp;
use fix_session::{MemoryStore, SessionId, SessionStore};
use fix_store::{Journal, JournalError, JournalOptions, JournalStore, ThreadStart};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why a write is not (yet) safe to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDurable {
    /// The journal failed: nothing more may be sent, ever.
    Failed(String),
    /// This instance lost the lease while waiting: send nothing, stay alive.
    Fenced,
}

impl std::fmt::Display for NotDurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "journal failed: {e}"),
            Self::Fenced => f.write_str("fenced while waiting for a standby"),
        }
    }
}

/// Whose copies a write waits for besides the local disk.
#[derive(Clone)]
pub enum Replicas {
    /// `replicated` ([`Counted::Durable`]) and `replicated-written`
    /// ([`Counted::Written`]): every member of the in-sync set; with
    /// `cross_region = "sync"` also a standby of another region, or `standby_wait`
    /// without one.
    InSync(Arc<Replication>, Duration, Counted),
    /// `sql`: the SQL journal, however long it takes.
    SqlShipper(Arc<Replication>),
}

/// Where every session of this engine keeps its state.
#[derive(Clone)]
pub enum Storage {
    /// The durable journal.
    Journal {
        /// The journal.
        journal: Journal,
        /// Durable position, published by the journal's sync thread.
        durable: watch::Receiver<u64>,
        /// Position written to the journal files (synced or not).
        written: watch::Receiver<u64>,
        /// What a write waits for besides the local disk.
        replicas: Option<Replicas>,
    },
    /// Memory only: each session keeps this many bytes of sent messages.
    Memory {
        /// Bytes of sent messages per session.
        limit: usize,
    },
}

impl Storage {
    /// Opens the configured store (recovering the journal). A `fenced` journal accepts
    /// no writes until [`Storage::open_epoch`] (an instance under a lease).
    pub fn open(engine: &EngineSection, fenced: bool) -> Result<Self, JournalError> {
        match engine.store {
            StoreKind::Memory => Ok(Self::Memory {
                limit: engine.memory_store_mb.saturating_mul(1 << 20),
            }),
            StoreKind::Journal => {
                let mut opts = JournalOptions::new(engine.data_dir.join("journal"));
                opts.fsync = engine.fsync;
                if let Some(&core) = engine.runtime.pin_cores.first() {
                    // The group commit's thread on the engine's cores too: beside a
                    // busy-polling worker (which yields to it) rather than on a core
                    // some other process spins on.
                    opts.sync_thread_start = Some(ThreadStart(Arc::new(move || {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(core, "could not pin the journal's sync thread");
                        }
                    })));
                }
                let journal = if fenced {
                    Journal::open_fenced(opts)?
                } else {
                    Journal::open(opts)?
                };
                let (tx, rx) = watch::channel(journal.durable());
                journal.on_durable(move |pos| {
                    tx.send_replace(pos);
                });
                let (tx, written) = watch::channel(journal.written());
                journal.on_written(move |pos| {
                    tx.send_replace(pos);
                });
                Ok(Self::Journal {
                    journal,
                    durable: rx,
                    written,
                    replicas: None,
                })
            }
        }
    }

    /// A store for one session.
    pub fn store_for(
        &self,
        id: &SessionId,
        now: UtcTimestamp,
    ) -> Result<Box<dyn SessionStore>, JournalError> {
        Ok(match self {
            Self::Memory { limit } => Box::new(MemoryStore::with_limit(now, *limit)),
            Self::Journal { journal, .. } => Box::new(JournalStore::open(journal, id, now)?),
        })
    }

    /// From now on a write counts as durable only once `required` has it too.
    pub fn require_replicas(&mut self, required: Replicas) {
        if let Self::Journal { replicas, .. } = self {
            *replicas = Some(required);
        }
    }

    /// The journal, if that is the store.
    pub fn journal(&self) -> Option<(&Journal, watch::Receiver<u64>)> {
        match self {
            Self::Journal {
                journal, durable, ..
            } => Some((journal, durable.clone())),
            Self::Memory { .. } => None,
        }
    }

    /// The position written to the journal files, if that is the store.
    pub fn written(&self) -> Option<watch::Receiver<u64>> {
        match self {
            Self::Journal { written, .. } => Some(written.clone()),
            Self::Memory { .. } => None,
        }
    }

    /// Waits until everything appended so far is durable as the durability mode says.
    ///
    /// `replicated-written` writes what is pending to the files at once and waits for the
    /// in-sync set to have written it too; the local fsync follows in the background
    /// (`fix_store::WRITTEN_COMMIT_INTERVAL`), unless no other instance is recorded in the
    /// set (only a recorded member may be elected), when it waits for it.
    pub async fn wait_durable(&self) -> Result<(), NotDurable> {
        let Self::Journal {
            journal,
            durable,
            replicas,
            ..
        } = self
        else {
            return Ok(());
        };
        let target = journal.appended();
        let counted = match replicas {
            Some(Replicas::InSync(_, _, counted)) => *counted,
            _ => Counted::Durable,
        };
        match counted {
            // Written now, synced within the journal's background interval.
            Counted::Written => {
                journal
                    .write_pending()
                    .map_err(|e| NotDurable::Failed(e.to_string()))?;
            }
            Counted::Durable => {
                // The group commit starts now, with everything this caller appended.
                journal.request_commit();
                await_local(journal, durable, target).await?;
            }
        }
        match replicas {
            None => Ok(()),
            Some(Replicas::SqlShipper(shipper)) => {
                await_ack(journal, shipper.acked(), target, Duration::MAX, || None)
                    .await
                    .map(|_| ())
            }
            Some(Replicas::InSync(replication, standby_wait, counted)) => {
                let alone = await_in_sync(journal, replication, target).await?;
                // Written elsewhere counts only on an instance that may be elected: a
                // standby still joining holds it but could not take over.
                if *counted == Counted::Written && (alone || !replication.recorded_with_others()) {
                    // Only the local disk keeps it for whoever leads next.
                    journal.request_commit();
                    await_local(journal, durable, target).await?;
                }
                if replication.cross_region_sync() {
                    // `cross_region = "sync"`: a standby of another region must have it too.
                    let r = replication.as_ref();
                    let remote = await_ack(
                        journal,
                        replication.remote_acked(),
                        target,
                        *standby_wait,
                        || r.remote_alone_for(),
                    )
                    .await?;
                    if !remote {
                        replication.note_degraded_write();
                    }
                }
                Ok(())
            }
        }
    }

    /// Starts a group commit of what is pending without waiting for it (the mark that
    /// messages were processed, when nothing else in the turn asked for one). Under
    /// `replicated-written` it is written to the files (and so streamed) instead, and
    /// synced in the background.
    pub fn request_commit(&self) {
        match self {
            Self::Journal {
                journal,
                replicas: Some(Replicas::InSync(_, _, Counted::Written)),
                ..
            } => {
                // A failure here is the journal's: the next wait reports it.
                let _ = journal.write_pending();
            }
            Self::Journal { journal, .. } => journal.request_commit(),
            Self::Memory { .. } => {}
        }
    }

    /// Why the journal stopped (a failed write or fsync), if it did.
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Journal { journal, .. } => journal.failure(),
            Self::Memory { .. } => None,
        }
    }

    /// Declares the journal failed when its batch in flight has taken longer than
    /// `limit` (a disk slower than the lease); returns the failure then.
    pub fn fail_if_stalled(&self, limit: std::time::Duration) -> Option<String> {
        let Self::Journal { journal, .. } = self else {
            return None;
        };
        journal.fail_if_in_flight_longer(limit, |took| {
            format!(
                "a journal write and fsync has taken {} ms, over the limit of {} ms ([engine] sync_stall_ms): the disk is too slow to lead on",
                took.as_millis(),
                limit.as_millis()
            )
        })
    }

    /// Allows journal writes under `epoch` (this instance leads with it).
    pub fn open_epoch(&self, epoch: u64) -> Result<(), JournalError> {
        match self {
            Self::Journal { journal, .. } => journal.open_epoch(epoch),
            Self::Memory { .. } => Ok(()),
        }
    }

    /// Refuses journal writes (this instance is a standby).
    pub fn fence(&self) {
        if let Self::Journal { journal, .. } = self {
            journal.fence();
        }
    }

    /// Stops the journal's sync thread after writing what is pending.
    pub fn shutdown(&self) {
        if let Self::Journal { journal, .. } = self {
            journal.shutdown();
        }
    }
}

/// Waits until the local journal is durable up to `target`.
async fn await_local(
    journal: &Journal,
    durable: &watch::Receiver<u64>,
    target: u64,
) -> Result<(), NotDurable> {
    let mut rx = durable.clone();
    while *rx.borrow_and_update() < target {
        if let Some(f) = journal.failure() {
            return Err(NotDurable::Failed(f));
        }
        if rx.changed().await.is_err() {
            return Err(NotDurable::Failed("journal sync thread stopped".into()));
        }
    }
    Ok(())
}

/// Waits until the in-sync set lets `target` count as durable (every member has it).
/// A write acknowledged by this leader alone (the set shrank to it) is counted, and
/// returns true.
async fn await_in_sync(
    journal: &Journal,
    replication: &Replication,
    target: u64,
) -> Result<bool, NotDurable> {
    let mut changes = replication.committed_changes();
    loop {
        changes.borrow_and_update();
        // Judged for the term the journal writes under now: after a lose-and-regain of
        // the lease, nothing counts until the set follows the new term.
        let committed = replication.committed(journal.epoch());
        if committed >= target {
            let alone = committed == u64::MAX;
            if alone {
                replication.note_degraded_write();
            }
            return Ok(alone);
        }
        if journal.epoch().is_none() {
            return Err(NotDurable::Fenced);
        }
        if let Some(f) = journal.failure() {
            return Err(NotDurable::Failed(f));
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Waits until `acked` reaches `target`. Gives up waiting (and counts a degraded write)
/// once `alone_for` says no such standby has streamed for `standby_wait`: returns
/// `Ok(false)` then, `Ok(true)` when acknowledged.
async fn await_ack(
    journal: &Journal,
    mut acked: watch::Receiver<u64>,
    target: u64,
    standby_wait: Duration,
    alone_for: impl Fn() -> Option<Duration>,
) -> Result<bool, NotDurable> {
    while *acked.borrow_and_update() < target {
        if journal.epoch().is_none() {
            return Err(NotDurable::Fenced);
        }
        if let Some(f) = journal.failure() {
            return Err(NotDurable::Failed(f));
        }
        if alone_for().is_some_and(|t| t >= standby_wait) {
            return Ok(false);
        }
        let tick = tokio::time::sleep(Duration::from_millis(20));
        tokio::select! {
            _ = acked.changed() => {}
            () = tick => {}
        }
    }
    Ok(true)
}
