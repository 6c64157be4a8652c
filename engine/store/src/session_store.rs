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
    no: u32,
    next_sender: u64,
    next_target: u64,
    created: i64,
    batching: bool,
}

impl JournalStore {
    /// Opens the session's store, declaring the session in the journal if it is new.
    pub fn open(
        journal: &Journal,
        id: &SessionId,
        now: UtcTimestamp,
    ) -> Result<Self, JournalError> {
        let key = session_key(id);
        let s = journal.ensure_session(&key, now.0)?;
        Ok(Self {
            journal: journal.clone(),
            key,
            no: s.no,
            next_sender: s.next_sender,
            next_target: s.next_target,
            created: s.created,
            batching: false,
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
        self.journal
            .append(RecordKind::NextSender, self.batching, self.no, seq, &[])
            .map_err(store_err("setting the next sender sequence number"))?;
        self.next_sender = seq;
        Ok(())
    }
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.journal
            .append(RecordKind::NextTarget, self.batching, self.no, seq, &[])
            .map_err(store_err("setting the next target sequence number"))?;
        self.next_target = seq;
        Ok(())
    }
    fn save_outbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        self.journal
            .append(RecordKind::Outbound, self.batching, self.no, seq, message)
            .map_err(store_err("journaling an outbound message"))?;
        self.next_sender = seq + 1;
        Ok(())
    }
    fn save_inbound(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        self.journal
            .append(RecordKind::Inbound, self.batching, self.no, seq, message)
            .map_err(store_err("journaling an inbound message"))?;
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
        self.journal
            .append(
                RecordKind::Reset,
                self.batching,
                self.no,
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
        self.journal
            .append(RecordKind::Processed, false, self.no, processed, &[])
            .map_err(store_err("marking inbound messages processed"))?;
        Ok(())
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
