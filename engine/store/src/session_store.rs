//! [`JournalStore`]: one session's view of the shared journal, as a [`SessionStore`].

use crate::journal::{Journal, JournalError};
use crate::record::RecordKind;
use fix_codec::UtcTimestamp;
use fix_session::config::SessionId;
use fix_session::{SessionStore, StoreError};

fn store_err(action: &'static str) -> impl FnOnce(JournalError) -> StoreError {
    move |e| match e {
        JournalError::Fenced { ours, current } => StoreError::Fenced {
            ours: ours.unwrap_or(0),
            current,
        },
        other => StoreError::Io {
            action,
            detail: other.to_string(),
        },
    }
}

/// The journal key of a session.
pub fn session_key(id: &SessionId) -> String {
    id.to_string()
}

/// A session's store backed by the journal. Writes are appended (not yet durable); the
/// runtime waits for [`Journal::durable`] to pass [`Journal::appended`] before sending.
pub struct JournalStore {
    journal: Journal,
    key: String,
    /// The session's number in the journal; `None` until it is declared there (a standby
    /// declares nothing: the leader's declaration arrives by replication).
    no: Option<u32>,
    next_sender: u64,
    next_target: u64,
    created: i64,
    batching: bool,
}

impl JournalStore {
    /// Opens the session's store, declaring the session in the journal if it is new and
    /// the journal is open for writing.
    pub fn open(
        journal: &Journal,
        id: &SessionId,
        now: UtcTimestamp,
    ) -> Result<Self, JournalError> {
        let mut store = Self {
            journal: journal.clone(),
            key: session_key(id),
            no: None,
            next_sender: 1,
            next_target: 1,
            created: now.0,
            batching: false,
        };
        store.load()?;
        Ok(store)
    }

    /// Takes the journal's view of the session, declaring it when unknown and writable.
    fn load(&mut self) -> Result<(), JournalError> {
        let state = match self.journal.session_seqs(&self.key) {
            Some(s) => Some(s),
            None if self.journal.epoch().is_some() => {
                Some(self.journal.ensure_session(&self.key, self.created)?)
            }
            None => None,
        };
        if let Some((no, next_sender, next_target, created)) = state {
            self.no = Some(no);
            self.next_sender = next_sender;
            self.next_target = next_target;
            self.created = created;
        }
        Ok(())
    }

    /// Appends one record of this session.
    fn append(
        &mut self,
        kind: RecordKind,
        batched: bool,
        seq: u64,
        payload: &[u8],
        action: &'static str,
    ) -> Result<(), StoreError> {
        let no = self.no()?;
        self.journal
            .append(kind, batched, no, seq, payload)
            .map_err(store_err(action))?;
        Ok(())
    }

    /// The session's number, declaring the session first if needed.
    fn no(&mut self) -> Result<u32, StoreError> {
        if self.no.is_none() {
            self.load().map_err(store_err("declaring the session"))?;
        }
        self.no.ok_or(StoreError::Fenced {
            ours: 0,
            current: self.journal.epoch_history().last().map_or(0, |e| e.0),
        })
    }

    /// The journal behind this store.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

impl SessionStore for JournalStore {
    fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }
    fn next_target_seq(&self) -> u64 {
        self.next_target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.append(
            RecordKind::NextSender,
            self.batching,
            seq,
            &[],
            "setting the next sender sequence number",
        )?;
        self.next_sender = seq;
        Ok(())
    }
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.append(
            RecordKind::NextTarget,
            self.batching,
            seq,
            &[],
            "setting the next target sequence number",
        )?;
        self.next_target = seq;
        Ok(())
    }
    fn save_outbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        self.append(
            RecordKind::Outbound,
            self.batching,
            seq,
            message,
            "journaling an outbound message",
        )?;
        self.next_sender = seq + 1;
        Ok(())
    }
    fn save_inbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        self.append(
            RecordKind::Inbound,
            self.batching,
            seq,
            message,
            "journaling an inbound message",
        )?;
        self.next_target = seq + 1;
        Ok(())
    }
    fn load_outbound(
        &self,
        begin: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        self.journal
            .read_outbound(&self.key, begin, end, visit)
            .map_err(store_err("reading messages for resend"))
    }
    fn reset(&mut self, now: UtcTimestamp) -> Result<(), StoreError> {
        let no = self.no()?;
        self.journal
            .append(
                RecordKind::Reset,
                self.batching,
                no,
                0,
                &now.0.to_le_bytes(),
            )
            .map_err(store_err("resetting the session"))?;
        self.next_sender = 1;
        self.next_target = 1;
        self.created = now.0;
        Ok(())
    }
    fn begin_batch(&mut self) {
        self.batching = true;
    }
    fn commit_batch(&mut self, processed: u64) -> Result<(), StoreError> {
        self.batching = false;
        self.append(
            RecordKind::Processed,
            false,
            processed,
            &[],
            "marking inbound messages processed",
        )?;
        Ok(())
    }
    fn refresh(&mut self) -> Result<(), StoreError> {
        self.load()
            .map_err(store_err("reloading the session from the journal"))
    }
    fn load_unprocessed_inbound(
        &self,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        self.journal
            .read_unprocessed_inbound(&self.key, visit)
            .map_err(store_err("reading unprocessed inbound messages"))
    }
    fn creation_time(&self) -> UtcTimestamp {
        UtcTimestamp(self.created)
    }
}
