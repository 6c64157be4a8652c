//! Group commit: the sync thread that writes each batch of pending appends and fsyncs it
//! once, publishes the new durable position, and declares the journal failed when a
//! write or sync fails or stalls for too long.

use super::{
    io_err, lock, open_segment, segment_path, Chunk, Files, Inner, Journal, JournalError,
    JournalOptions,
};
use std::fs::File;
use std::io::Write;

impl Journal {
    /// Blocks until everything up to `position` is durable (or the journal failed).
    pub fn wait_durable(&self, position: u64) -> Result<(), JournalError> {
        self.request_commit();
        let mut d = lock(&self.inner.durable);
        while d.position < position {
            if let Some(f) = d.failed.clone() {
                return Err(JournalError::Failed(f));
            }
            d = self
                .inner
                .durable_cv
                .wait(d)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        Ok(())
    }

    /// Blocks until everything appended so far is durable.
    pub fn sync(&self) -> Result<(), JournalError> {
        let target = self.appended();
        self.wait_durable(target)
    }

    /// The failure that stopped the journal, if any.
    pub fn failure(&self) -> Option<String> {
        lock(&self.inner.writer).failed.clone()
    }

    /// How long the batch being written and synced has taken so far, while one is.
    pub fn sync_in_flight(&self) -> Option<std::time::Duration> {
        lock(&self.inner.batch_started).map(|t| t.elapsed())
    }

    /// Stops the journal as a failed write would (a disk too slow to be trusted): every
    /// later append is refused, waiters wake with the failure, and the batch in flight
    /// is never reported durable even if it completes.
    pub fn declare_failed(&self, reason: &str) {
        {
            let mut w = lock(&self.inner.writer);
            if w.failed.is_some() {
                return;
            }
            w.failed = Some(reason.to_string());
        }
        publish_failure(&self.inner, &JournalError::Failed(reason.to_string()));
    }

    /// Declares the journal failed (as [`Self::declare_failed`]) if the batch in flight
    /// has been written and synced for longer than `limit`, and returns how long. Atomic
    /// with the sync thread's end of batch: either the batch finished first and is
    /// durable, or it is never reported durable.
    pub fn fail_if_in_flight_longer(
        &self,
        limit: std::time::Duration,
        reason: impl FnOnce(std::time::Duration) -> String,
    ) -> Option<String> {
        let started = lock(&self.inner.batch_started);
        let took = started.map(|t| t.elapsed()).filter(|t| *t > limit)?;
        let reason = reason(took);
        {
            let mut w = lock(&self.inner.writer);
            if w.failed.is_some() {
                return None;
            }
            w.failed = Some(reason.clone());
        }
        drop(started);
        publish_failure(&self.inner, &JournalError::Failed(reason.clone()));
        Some(reason)
    }
}

/// Writes chunks to their segment files (no fsync); remembers which files are dirty.
pub(super) fn drop_write(
    opts: &JournalOptions,
    files: &mut Files,
    chunks: Vec<Chunk>,
) -> Result<(), JournalError> {
    for chunk in chunks {
        let path = segment_path(&opts.dir, chunk.segment);
        let f = match files.open.entry(chunk.segment) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let f = open_segment(&path).map_err(io_err("creating", &path))?;
                if opts.fsync {
                    // Make the new file's directory entry durable too.
                    File::open(&opts.dir)
                        .and_then(|d| d.sync_all())
                        .map_err(io_err("syncing the directory of", &path))?;
                }
                e.insert(f)
            }
        };
        f.write_all(&chunk.bytes)
            .map_err(io_err("writing", &path))?;
        if !files.dirty.contains(&chunk.segment) {
            files.dirty.push(chunk.segment);
        }
    }
    Ok(())
}

/// Keeps only the newest segments open for writing; older ones reopen for reads.
pub(super) fn close_old_segments(files: &mut Files) {
    while files.open.len() > 4 {
        let oldest = files.open.keys().next().copied();
        if let Some(k) = oldest {
            files.open.remove(&k);
        }
    }
}

/// Everything up to `target` is durable: tells waiters and listeners.
pub(super) fn publish(inner: &Inner, target: u64) {
    let position = {
        let mut d = lock(&inner.durable);
        if d.failed.is_some() {
            // Nothing becomes durable after a failure.
            return;
        }
        d.position = d.position.max(target);
        d.position
    };
    inner.durable_cv.notify_all();
    for l in lock(&inner.listeners).iter() {
        l(position);
    }
}

/// A write or sync failed: the journal is stopped; wakes waiters and listeners so that
/// they notice.
pub(super) fn publish_failure(inner: &Inner, e: &JournalError) {
    tracing::error!(error = %e, "journal write failed; the journal is stopped");
    let position = {
        let mut d = lock(&inner.durable);
        d.failed = Some(e.to_string());
        d.position
    };
    inner.durable_cv.notify_all();
    for l in lock(&inner.listeners).iter() {
        l(position);
    }
}

/// Whether the sync thread has a batch to commit: pending appends someone asked to have
/// committed (or a large backlog), or bytes written outside it that were asked for or
/// have waited [`super::WRITTEN_COMMIT_INTERVAL`]. Otherwise how long it may sleep.
fn has_work(w: &super::Writer) -> Result<(), Option<std::time::Duration>> {
    let pending = !w.pending.is_empty()
        && (w.requested || w.pending_bytes >= super::UNREQUESTED_COMMIT_BYTES);
    match w.unsynced {
        _ if pending => Ok(()),
        Some(_) if w.requested => Ok(()),
        Some(since) => match super::WRITTEN_COMMIT_INTERVAL.checked_sub(since.elapsed()) {
            Some(left) if !left.is_zero() => Err(Some(left)),
            _ => Ok(()),
        },
        None => Err(None),
    }
}

pub(super) fn sync_loop(inner: &Inner) {
    loop {
        let (chunks, target, stop, order) = {
            let mut w = lock(&inner.writer);
            while !w.shutdown {
                w = match has_work(&w) {
                    Ok(()) => break,
                    Err(None)
                        if w.last_written
                            .is_some_and(|t| t.elapsed() < super::WRITTEN_POLL_FOR) =>
                    {
                        // Writes outside this thread lately: look again on a timer, so
                        // that they need not wake it.
                        inner
                            .work
                            .wait_timeout(w, super::WRITTEN_COMMIT_INTERVAL)
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0
                    }
                    Err(None) => {
                        w.sync_waits_unbounded = true;
                        let mut w = inner
                            .work
                            .wait(w)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        w.sync_waits_unbounded = false;
                        w
                    }
                    Err(Some(left)) => {
                        inner
                            .work
                            .wait_timeout(w, left)
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0
                    }
                };
            }
            w.requested = false;
            w.unsynced = None;
            w.pending_bytes = 0;
            // Taken before the writer lock is let go: a `write_pending` of later appends
            // cannot write before these chunks.
            let order = lock(&inner.write_order);
            (
                std::mem::take(&mut w.pending),
                w.appended,
                w.shutdown,
                order,
            )
        };
        let mut files = lock(&inner.files);
        // Timed from here: only the write and the sync, not the wait for readers.
        let started = std::time::Instant::now();
        *lock(&inner.batch_started) = Some(started);
        let written = drop_write(&inner.opts, &mut files, chunks).and_then(|()| {
            // The segments to sync, as handles of their own: the sync runs without the
            // lock, so readers of what is durable already (the replication source, a
            // resend) never wait for a slow disk's fsync of newer records.
            let mut to_sync = Vec::new();
            if inner.opts.fsync {
                for seg in &files.dirty {
                    if let Some(f) = files.open.get(seg) {
                        let path = segment_path(&inner.opts.dir, *seg);
                        let handle = f.try_clone().map_err(io_err("duplicating", &path))?;
                        to_sync.push((path, handle));
                    }
                }
            }
            Ok(to_sync)
        });
        files.dirty.clear();
        close_old_segments(&mut files);
        drop(files);
        drop(order);
        if written.is_ok() {
            super::publish_written(inner, target);
        }
        let result = written.and_then(|to_sync| {
            for (path, f) in to_sync {
                f.sync_data().map_err(io_err("syncing", &path))?;
            }
            Ok(())
        });
        let failed_meanwhile = {
            // Same lock order as fail_if_in_flight_longer: batch_started, then writer.
            let mut in_flight = lock(&inner.batch_started);
            *in_flight = None;
            lock(&inner.writer).failed.is_some()
        };
        if let Err(e) = result {
            lock(&inner.writer).failed = Some(e.to_string());
            publish_failure(inner, &e);
            return;
        }
        if failed_meanwhile {
            // Declared failed while this batch was in flight: what it wrote is never
            // reported durable.
            return;
        }
        let took = started.elapsed();
        for t in lock(&inner.timings).iter() {
            t(took);
        }
        publish(inner, target);
        if stop && {
            let w = lock(&inner.writer);
            w.pending.is_empty() && w.unsynced.is_none()
        } {
            return;
        }
    }
}
