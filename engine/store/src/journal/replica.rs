//! The journal as a replication source (reading the record stream by position) and as a
//! replica (appending a leader's records verbatim, cutting off a tail that diverged).

use super::{io_err, lock, open_segment, segment_path, Journal, JournalError};
use crate::record;
use std::os::unix::fs::FileExt;

impl Journal {
    /// The epochs that wrote records, each with the stream position of its first record.
    pub fn epoch_history(&self) -> Vec<(u64, u64)> {
        lock(&self.inner.writer).state.epochs.clone()
    }

    /// The epoch history and where the stream ends, read together (a record appended
    /// between two separate reads could start an epoch the history does not show yet).
    pub fn stream_view(&self) -> (Vec<(u64, u64)>, u64) {
        let w = lock(&self.inner.writer);
        (w.state.epochs.clone(), w.appended)
    }

    /// Up to where this journal's stream agrees with a replica whose stream has
    /// `epochs` (as from [`Journal::epoch_history`]) and ends at `end`.
    pub fn agreed_position(&self, epochs: &[(u64, u64)], end: u64) -> u64 {
        let w = lock(&self.inner.writer);
        w.state.common_prefix(w.appended, epochs, end)
    }

    /// Whole durable records from stream position `from`, about `max` bytes (at least one
    /// record). Empty when nothing durable lies beyond `from`.
    pub fn read_stream(&self, from: u64, max: usize) -> Result<Vec<u8>, JournalError> {
        self.read_stream_to(from, max, self.durable())
    }

    /// As [`Journal::read_stream`], up to what is written to the files rather than what
    /// is durable (`replicated-written` streams records before they are synced).
    pub fn read_written_stream(&self, from: u64, max: usize) -> Result<Vec<u8>, JournalError> {
        self.read_stream_to(from, max, self.written())
    }

    fn read_stream_to(&self, from: u64, max: usize, durable: u64) -> Result<Vec<u8>, JournalError> {
        if from >= durable {
            return Ok(Vec::new());
        }
        let (segment, start, end) = {
            let w = lock(&self.inner.writer);
            let Some((&start, &segment)) = w.segment_starts.range(..=from).next_back() else {
                return Err(JournalError::Replication(format!(
                    "no segment holds stream position {from}"
                )));
            };
            let end = w
                .segment_starts
                .range(from + 1..)
                .next()
                .map_or(w.appended, |(p, _)| *p);
            (segment, start, end.min(durable))
        };
        let path = segment_path(&self.inner.opts.dir, segment);
        let mut files = lock(&self.inner.files);
        if let std::collections::btree_map::Entry::Vacant(e) = files.open.entry(segment) {
            e.insert(open_segment(&path).map_err(io_err("opening", &path))?);
        }
        let Some(file) = files.open.get(&segment) else {
            return Ok(Vec::new());
        };
        let offset = from - start;
        let mut header = [0u8; record::HEADER_LEN];
        file.read_exact_at(&mut header, offset)
            .map_err(io_err("reading", &path))?;
        let first = record::HEADER_LEN
            + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let available = (end - from) as usize;
        let want = first.max(max.min(available)).min(available);
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, offset)
            .map_err(io_err("reading", &path))?;
        drop(files);
        // Keep whole records only.
        let mut whole = 0;
        while whole + record::HEADER_LEN <= buf.len() {
            let len =
                u32::from_le_bytes([buf[whole], buf[whole + 1], buf[whole + 2], buf[whole + 3]])
                    as usize;
            if whole + record::HEADER_LEN + len > buf.len() {
                break;
            }
            whole += record::HEADER_LEN + len;
        }
        buf.truncate(whole);
        Ok(buf)
    }

    /// How many records of each session lie in the stream after `from` (what a standby
    /// that acknowledged `from` still lacks), by session key. Scans at most 64 MiB.
    pub fn records_after(&self, from: u64) -> Result<Vec<(String, u64)>, JournalError> {
        let mut counts: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let mut at = from;
        let limit = from.saturating_add(64 << 20);
        while at < limit {
            let chunk = self.read_stream(at, 1 << 20)?;
            if chunk.is_empty() {
                break;
            }
            let mut i = 0;
            while let Ok((r, len)) = record::decode(&chunk[i..], self.inner.opts.max_record) {
                *counts.entry(r.session).or_default() += 1;
                i += len;
            }
            at += chunk.len() as u64;
        }
        let w = lock(&self.inner.writer);
        let mut out: Vec<(String, u64)> = counts
            .into_iter()
            .filter_map(|(no, n)| w.state.by_no.get(&no).map(|k| (k.clone(), n)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Appends a leader's records verbatim at stream position `start` (which must be where
    /// this journal ends). Only while fenced: a leader never takes records from another.
    /// Every record's CRC is checked before any is appended.
    pub fn append_replicated(&self, start: u64, bytes: &[u8]) -> Result<u64, JournalError> {
        self.append_replicated_then(start, bytes, false)
    }

    /// [`Journal::append_replicated`], and the records written to the files before it
    /// returns ([`Journal::written`] includes them; the fsync follows in the background):
    /// a standby under `replicated-written` acknowledges what it wrote.
    pub fn append_replicated_written(&self, start: u64, bytes: &[u8]) -> Result<u64, JournalError> {
        self.append_replicated_then(start, bytes, true)
    }

    fn append_replicated_then(
        &self,
        start: u64,
        bytes: &[u8],
        write_now: bool,
    ) -> Result<u64, JournalError> {
        let max = self.inner.opts.max_record;
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (r, len) = record::decode(&bytes[at..], max).map_err(|e| {
                JournalError::Replication(format!(
                    "replicated record at stream position {} is damaged ({e:?})",
                    start + at as u64
                ))
            })?;
            records.push((r, at, len));
            at += len;
        }
        let mut w = lock(&self.inner.writer);
        if let Some(f) = &w.failed {
            return Err(JournalError::Failed(f.clone()));
        }
        if let Some(epoch) = w.epoch {
            return Err(JournalError::Replication(format!(
                "refusing replicated records: this instance leads with epoch {epoch}"
            )));
        }
        if start != w.appended {
            return Err(JournalError::Replication(format!(
                "replicated records start at stream position {start} but this journal ends at {}",
                w.appended
            )));
        }
        for (r, at, len) in records {
            let segment = self.place(&mut w, len as u64);
            let position = w.appended;
            let offset = w.segment_len + record::HEADER_LEN as u64;
            if let Some(chunk) = w.pending.last_mut() {
                chunk.bytes.extend_from_slice(&bytes[at..at + len]);
            }
            w.pending_bytes += len;
            w.segment_len += len as u64;
            w.appended += len as u64;
            w.max_epoch = w.max_epoch.max(r.epoch);
            w.state.apply(&r, position, segment, offset);
        }
        if write_now {
            // Acknowledged as written: synced in the background (the sync thread finds
            // them on its timer, or `write_locked` wakes it after a quiet spell; waking
            // it on every frame put a futex call and a lock hand-off on the standby's
            // critical path).
            self.write_locked(&mut w)?;
        } else if !w.pending.is_empty() {
            // A standby acknowledges what it has synced: commit at once.
            w.requested = true;
            self.inner.work.notify_one();
        }
        Ok(w.appended)
    }

    /// Cuts the stream back to `position` (a replica whose tail diverged from the new
    /// leader's: records an old leader wrote and never replicated). Only while fenced. The
    /// cut bytes are moved to `diverged/` beside the segments, never deleted. Returns how
    /// many bytes were cut.
    pub fn truncate(&self, position: u64) -> Result<u64, JournalError> {
        // Checked and held under the writer lock: no promotion and no append can land
        // between the checks and the cut, and no batch is in flight that could be
        // reported durable past it.
        let mut w = loop {
            let w = lock(&self.inner.writer);
            if let Some(epoch) = w.epoch {
                return Err(JournalError::Replication(format!(
                    "refusing to truncate: this instance leads with epoch {epoch}"
                )));
            }
            if let Some(f) = &w.failed {
                return Err(JournalError::Failed(f.clone()));
            }
            if w.pending.is_empty() && self.durable() >= w.appended {
                break w;
            }
            drop(w);
            self.sync()?;
        };
        if position >= w.appended {
            return Ok(0);
        }
        let cut = w.appended - position;
        let dir = &self.inner.opts.dir;
        let aside = dir.join("diverged");
        std::fs::create_dir_all(&aside).map_err(io_err("creating", &aside))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut files = lock(&self.inner.files);
        files.open.clear();
        let starts: Vec<(u64, u64)> = w.segment_starts.iter().map(|(p, s)| (*p, *s)).collect();
        let mut moved = false;
        for (start, segment) in starts {
            let path = segment_path(dir, segment);
            let target = aside.join(format!("{stamp}-at-{position}-{segment:020}.seg"));
            if start >= position {
                std::fs::rename(&path, &target).map_err(io_err("moving aside", &path))?;
                moved = true;
            } else {
                let keep = position - start;
                let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
                if (bytes.len() as u64) > keep {
                    // The copy is durable (file and directory entry) before the segment
                    // is cut: a crash in between leaves the bytes in both places, never
                    // in neither.
                    let mut copy =
                        std::fs::File::create(&target).map_err(io_err("creating", &target))?;
                    std::io::Write::write_all(&mut copy, &bytes[keep as usize..])
                        .map_err(io_err("saving the cut tail of", &path))?;
                    copy.sync_all().map_err(io_err("syncing", &target))?;
                    sync_dir(&aside)?;
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err("opening", &path))?;
                    f.set_len(keep).map_err(io_err("truncating", &path))?;
                    f.sync_all().map_err(io_err("syncing", &path))?;
                }
            }
        }
        if moved {
            // Renames are durable only once both directories are synced.
            sync_dir(&aside)?;
            sync_dir(dir)?;
        }
        drop(files);
        let recovered = crate::recovery::recover(&self.inner.opts)?;
        w.appended = recovered.position;
        w.segment = recovered.segment;
        w.segment_len = recovered.segment_len;
        w.segment_starts = recovered.segment_starts;
        w.max_epoch = w.max_epoch.max(recovered.state.max_epoch());
        w.state = recovered.state;
        // Both positions come back down (and their listeners hear it): acknowledgements
        // and stream reads must not count on the tail that was cut.
        lock(&self.inner.durable).position = recovered.position;
        for l in lock(&self.inner.listeners).iter() {
            l(recovered.position);
        }
        super::write::reset_written(&self.inner, recovered.position);
        tracing::warn!(
            position,
            cut_bytes = cut,
            saved_in = %aside.display(),
            "journal tail diverged from the leader's; cut it off"
        );
        Ok(cut)
    }
}

/// Makes the directory's entries (files created, renamed or removed in it) durable.
fn sync_dir(dir: &std::path::Path) -> Result<(), JournalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory", dir))
}
