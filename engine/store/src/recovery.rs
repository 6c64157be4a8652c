//! Rebuilding sequence numbers and the resend index from the segment files.

use crate::journal::{
    apply_record, new_session_state, JournalError, JournalOptions, RecoveryMode, SessionState,
};
use crate::record::{self, DecodeError, RecordKind};
use std::collections::HashMap;
use std::path::PathBuf;

pub(crate) struct Recovered {
    pub(crate) sessions: HashMap<String, SessionState>,
    /// Sessions whose last application batch has no commit: the crash cut it, and an
    /// Abort record must be written before new records.
    pub(crate) open_batches: Vec<u32>,
    /// The newest epoch any record was written under.
    pub(crate) max_epoch: u64,
    pub(crate) segment: u64,
    pub(crate) segment_len: u64,
    pub(crate) position: u64,
}

fn segments(opts: &JournalOptions) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let rd = std::fs::read_dir(&opts.dir).map_err(|source| JournalError::Io {
        action: "listing",
        path: opts.dir.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A batched record waiting for its session's `Processed` record:
/// (kind, seq, payload, segment, offset).
type BatchedRecord = (RecordKind, u64, Vec<u8>, u64, u64);

pub(crate) fn recover(opts: &JournalOptions) -> Result<Recovered, JournalError> {
    let segs = segments(opts)?;
    let mut sessions: HashMap<String, SessionState> = HashMap::new();
    let mut by_no: HashMap<u32, String> = HashMap::new();
    let mut batches: HashMap<u32, Vec<BatchedRecord>> = HashMap::new();
    let mut max_epoch = 0u64;
    let mut position = 0u64;
    let mut last = (segs.first().map_or(1, |s| s.0), 0u64);
    let count = segs.len();
    for (i, (n, path)) in segs.into_iter().enumerate() {
        let bytes = std::fs::read(&path).map_err(|source| JournalError::Io {
            action: "reading",
            path: path.display().to_string(),
            source,
        })?;
        let mut at = 0usize;
        while at < bytes.len() {
            match record::decode(&bytes[at..], opts.max_record) {
                Ok((r, len)) => {
                    max_epoch = max_epoch.max(r.epoch);
                    if r.kind == RecordKind::Session {
                        let key = String::from_utf8_lossy(r.payload).into_owned();
                        by_no.insert(r.session, key.clone());
                        sessions
                            .entry(key)
                            .or_insert_with(|| new_session_state(r.session));
                    } else if let Some(s) = by_no.get(&r.session).and_then(|k| sessions.get_mut(k))
                    {
                        let offset = (at + record::HEADER_LEN) as u64;
                        match r.kind {
                            _ if r.batched => batches.entry(r.session).or_default().push((
                                r.kind,
                                r.seq,
                                r.payload.to_vec(),
                                n,
                                offset,
                            )),
                            RecordKind::Abort => {
                                batches.remove(&r.session);
                            }
                            RecordKind::Processed => {
                                let batch = batches.remove(&r.session).unwrap_or_default();
                                for (kind, seq, payload, seg, off) in batch {
                                    apply_record(s, kind, seq, &payload, seg, off);
                                }
                                apply_record(s, r.kind, r.seq, r.payload, n, offset);
                            }
                            _ => apply_record(s, r.kind, r.seq, r.payload, n, offset),
                        }
                    }
                    at += len;
                }
                Err(e) => {
                    let detail = match e {
                        DecodeError::Truncated => "record cut short",
                        DecodeError::Corrupt => "checksum mismatch",
                    };
                    let is_last = i + 1 == count;
                    if !is_last || opts.recovery == RecoveryMode::Strict {
                        return Err(JournalError::Corrupt {
                            path: path.display().to_string(),
                            offset: at as u64,
                            detail: detail.to_string(),
                        });
                    }
                    tracing::warn!(
                        segment = %path.display(),
                        offset = at,
                        dropped_bytes = bytes.len() - at,
                        "journal tail is torn ({detail}); truncating it (records there were never acknowledged as durable)"
                    );
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| {
                            f.set_len(at as u64)?;
                            f.sync_all()
                        });
                    f.map_err(|source| JournalError::Io {
                        action: "truncating the torn tail of",
                        path: path.display().to_string(),
                        source,
                    })?;
                    break;
                }
            }
        }
        position += at as u64;
        last = (n, at as u64);
    }
    let mut open_batches: Vec<u32> = batches
        .into_iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(no, _)| no)
        .collect();
    open_batches.sort_unstable();
    Ok(Recovered {
        sessions,
        open_batches,
        max_epoch,
        segment: last.0,
        segment_len: last.1,
        position,
    })
}
