//! Rebuilding sequence numbers and the resend index from the segment files.

use crate::journal::{JournalError, JournalOptions, RecoveryMode};
use crate::record::{self, DecodeError};
use crate::stream::StreamState;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) struct Recovered {
    pub(crate) state: StreamState,
    /// Stream position where each segment starts, by position.
    pub(crate) segment_starts: BTreeMap<u64, u64>,
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

pub(crate) fn recover(opts: &JournalOptions) -> Result<Recovered, JournalError> {
    let segs = segments(opts)?;
    let mut state = StreamState::default();
    let mut segment_starts = BTreeMap::new();
    let mut position = 0u64;
    let mut last = (segs.first().map_or(1, |s| s.0), 0u64);
    let count = segs.len();
    for (i, (n, path)) in segs.into_iter().enumerate() {
        let bytes = std::fs::read(&path).map_err(|source| JournalError::Io {
            action: "reading",
            path: path.display().to_string(),
            source,
        })?;
        segment_starts.insert(position, n);
        let mut at = 0usize;
        while at < bytes.len() {
            match record::decode(&bytes[at..], opts.max_record) {
                Ok((r, len)) => {
                    let offset = (at + record::HEADER_LEN) as u64;
                    state.apply(&r, position + at as u64, n, offset);
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
    Ok(Recovered {
        state,
        segment_starts,
        segment: last.0,
        segment_len: last.1,
        position,
    })
}
