//! Writing pending appends to the segment files outside the sync thread, and the written
//! position: what is in the files (the page cache) whether or not it is synced yet.
//!
//! A process that dies keeps what it wrote (the kernel holds it); a machine that dies
//! keeps only what was synced. `replicated-written` durability counts a record once every
//! in-sync member has *written* it, so the leader writes at the end of each turn
//! ([`Journal::write_pending`]) and streams what is written; fdatasync follows in the
//! background.
//!
//! File writes happen in append order: every writer (the sync thread, this module) takes
//! the pending chunks and the write-order lock while it holds the writer lock, and keeps
//! the write-order lock until its chunks are in the files.

use super::sync::{close_old_segments, drop_write, publish, publish_failure};
use super::{lock, Inner, Journal, JournalError, Writer};

impl Journal {
    /// Journal position written to the segment files (survives the death of this process,
    /// not of the machine, until [`Journal::durable`] reaches it).
    pub fn written(&self) -> u64 {
        lock(&self.inner.written).position
    }

    /// Calls `f(position)` each time more of the journal is written to the files, from
    /// whichever thread wrote it, under a journal lock (`f` must not call back into the
    /// journal).
    pub fn on_written(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        lock(&self.inner.written).listeners.push(Box::new(f));
    }

    /// Writes everything appended so far to the segment files now, from the calling
    /// thread, without syncing, and returns the written position. The sync thread syncs
    /// it within [`super::WRITTEN_COMMIT_INTERVAL`], or at once on
    /// [`Journal::request_commit`].
    pub fn write_pending(&self) -> Result<u64, JournalError> {
        let mut w = lock(&self.inner.writer);
        self.write_locked(&mut w)
    }

    /// [`Journal::write_pending`] under the writer lock, held by the caller.
    pub(super) fn write_locked(&self, w: &mut Writer) -> Result<u64, JournalError> {
        if let Some(f) = &w.failed {
            return Err(JournalError::Failed(f.clone()));
        }
        if w.pending.is_empty() {
            return Ok(self.written());
        }
        // The dirty segments stay dirty (and open) for the sync thread's fdatasync.
        let (result, target) = self.write_chunks(w, true);
        match result {
            Ok(()) => {
                let now = std::time::Instant::now();
                w.last_written = Some(now);
                if w.unsynced.is_none() {
                    w.unsynced = Some(now);
                    if w.sync_waits_unbounded {
                        // Idle for a while: the sync thread waits without a deadline.
                        self.inner.work.notify_one();
                    }
                }
                publish_written(&self.inner, target);
                Ok(target)
            }
            Err(e) => {
                w.failed = Some(e.to_string());
                publish_failure(&self.inner, &e);
                Err(e)
            }
        }
    }

    /// `fsync` off: writes what is pending now, from the appending thread, and publishes
    /// it. The writer lock held throughout keeps file order and published positions in
    /// append order.
    pub(super) fn write_through(&self, w: &mut Writer) -> Result<(), JournalError> {
        // Nothing to sync: no segment stays dirty.
        let (result, target) = self.write_chunks(w, false);
        match result {
            Ok(()) => {
                publish_written(&self.inner, target);
                publish(&self.inner, target);
                Ok(())
            }
            Err(e) => {
                w.failed = Some(e.to_string());
                publish_failure(&self.inner, &e);
                Err(e)
            }
        }
    }
}

impl Journal {
    /// Takes what is pending and writes it to the files in append order (the write-order
    /// lock, under the caller's writer lock); returns the outcome and the position after
    /// it. `for_sync`: the written segments stay dirty and open for the sync thread.
    fn write_chunks(&self, w: &mut Writer, for_sync: bool) -> (Result<(), JournalError>, u64) {
        let chunks = std::mem::take(&mut w.pending);
        w.pending_bytes = 0;
        let target = w.appended;
        let _order = lock(&self.inner.write_order);
        let mut files = lock(&self.inner.files);
        let result = drop_write(&self.inner.opts, &mut files, chunks);
        if !for_sync {
            files.dirty.clear();
            close_old_segments(&mut files);
        }
        (result, target)
    }
}

/// Everything up to `target` is in the files: tells the listeners (positions only grow,
/// whichever writer publishes first).
pub(super) fn publish_written(inner: &Inner, target: u64) {
    let mut written = lock(&inner.written);
    if target > written.position {
        written.position = target;
        for l in &written.listeners {
            l(target);
        }
    }
}

/// The stream was cut back to `position` (a standby's diverged tail): the written
/// position comes down with it, and the listeners hear it.
pub(super) fn reset_written(inner: &Inner, position: u64) {
    let mut written = lock(&inner.written);
    written.position = position;
    for l in &written.listeners {
        l(position);
    }
}
