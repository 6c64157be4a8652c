//! The engine's store: the journal (with an async durability wait) or memory.

use crate::config::{EngineSection, StoreKind};
use fix_codec::UtcTimestamp;
use fix_session::{MemoryStore, SessionId, SessionStore};
use fix_store::{Journal, JournalError, JournalOptions, JournalStore};
use tokio::sync::watch;

/// Where every session of this engine keeps its state.
#[derive(Clone)]
pub enum Storage {
    /// The durable journal.
    Journal {
        /// The journal.
        journal: Journal,
        /// Durable position, published by the journal's sync thread.
        durable: watch::Receiver<u64>,
    },
    /// Memory only.
    Memory,
}

impl Storage {
    /// Opens the configured store (recovering the journal).
    pub fn open(engine: &EngineSection) -> Result<Self, JournalError> {
        match engine.store {
            StoreKind::Memory => Ok(Self::Memory),
            StoreKind::Journal => {
                let mut opts = JournalOptions::new(engine.data_dir.join("journal"));
                opts.fsync = engine.fsync;
                let journal = Journal::open(opts)?;
                let (tx, rx) = watch::channel(journal.durable());
                journal.on_durable(move |pos| {
                    tx.send_replace(pos);
                });
                Ok(Self::Journal {
                    journal,
                    durable: rx,
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
            Self::Memory => Box::new(MemoryStore::new(now)),
            Self::Journal { journal, .. } => Box::new(JournalStore::open(journal, id, now)?),
        })
    }

    /// Waits until everything appended so far is durable.
    pub async fn wait_durable(&self) -> Result<(), String> {
        let Self::Journal { journal, durable } = self else {
            return Ok(());
        };
        let target = journal.appended();
        let mut rx = durable.clone();
        loop {
            if *rx.borrow_and_update() >= target {
                return Ok(());
            }
            if let Some(f) = journal.failure() {
                return Err(f);
            }
            if rx.changed().await.is_err() {
                return Err("journal sync thread stopped".into());
            }
        }
    }

    /// Allows journal writes under `epoch` (this instance leads with it).
    pub fn open_epoch(&self, epoch: u64) -> Result<(), JournalError> {
        match self {
            Self::Journal { journal, .. } => journal.open_epoch(epoch),
            Self::Memory => Ok(()),
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
