//! The invariants checked from the journals themselves once a drill is over, after every
//! instance has stopped: what the counterparty saw cannot show a standby that holds
//! records the leader never wrote, or two writers under one epoch.
//!
//! - **One stream.** Every instance's journal is a byte prefix of the last leader's: a
//!   standby holds only what the leader wrote, in its order, and a deposed leader's
//!   unreplicated tail was cut off (kept in `diverged/`) when it rejoined.
//! - **One writer per epoch.** Within a journal, epochs never go back: once a record of
//!   epoch `e` is written, no record of an epoch below `e` follows it. Together with the
//!   prefix rule this means no two instances wrote different records under one epoch.
//! - **No sequence number reused.** Within a session, each outbound message committed to
//!   the journal has a higher sequence number than the one before, unless the session
//!   was reset in between. Records of an application batch count only once committed by
//!   the session's next `Processed` record; an `Abort` discards them.

use fix_store::record::{self, RecordKind};
use fix_store::{Journal, JournalError, JournalOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the journals showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalCheck {
    /// Journals read.
    pub journals: usize,
    /// Bytes in the longest stream (the last leader's).
    pub stream_bytes: u64,
    /// Tails cut off deposed leaders (files in `diverged/`, all instances).
    pub cut_tails: usize,
    /// Each broken invariant, naming the journal and the position.
    pub violations: Vec<String>,
}

/// One journal's whole stream.
struct Stream {
    dir: PathBuf,
    bytes: Vec<u8>,
}

fn read(dir: &Path) -> Result<Stream, JournalError> {
    let journal = Journal::open_fenced(JournalOptions::new(dir))?;
    let mut bytes = Vec::new();
    loop {
        let chunk = journal.read_stream(bytes.len() as u64, 1 << 20)?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    journal.shutdown();
    Ok(Stream {
        dir: dir.to_path_buf(),
        bytes,
    })
}

/// Checks the journals in `dirs` (stopped instances' journal directories); the one at
/// `leader` (the last leader's) is the reference every other must be a prefix of.
pub fn check(dirs: &[PathBuf], leader: usize) -> Result<JournalCheck, JournalError> {
    let streams = dirs
        .iter()
        .filter(|d| d.exists())
        .map(|d| read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let reference = dirs
        .get(leader)
        .and_then(|d| streams.iter().find(|s| &s.dir == d));
    let mut out = JournalCheck {
        journals: streams.len(),
        stream_bytes: reference.map_or(0, |s| s.bytes.len() as u64),
        cut_tails: dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d.join("diverged")).ok())
            .map(|entries| entries.count())
            .sum(),
        violations: Vec::new(),
    };
    let Some(reference) = reference else {
        if !streams.is_empty() {
            out.violations.push(format!(
                "the last leader's journal (instance {leader}) is missing"
            ));
        }
        return Ok(out);
    };
    for s in &streams {
        out.violations.extend(within(s));
        let differs = s
            .bytes
            .iter()
            .zip(&reference.bytes)
            .position(|(a, b)| a != b);
        if let Some(at) = differs {
            out.violations.push(format!(
                "{} differs from the last leader's {} at stream position {at}: two writers, or a tail never cut",
                s.dir.display(),
                reference.dir.display()
            ));
        } else if s.bytes.len() > reference.bytes.len() {
            out.violations.push(format!(
                "{} holds {} bytes past the end of the last leader's {}: a deposed leader's tail never cut",
                s.dir.display(),
                s.bytes.len() - reference.bytes.len(),
                reference.dir.display()
            ));
        }
    }
    Ok(out)
}

/// The per-journal rules: epochs never go back, outbound sequence numbers never repeat.
fn within(s: &Stream) -> Vec<String> {
    let mut seqs = Sequences::default();
    let mut epoch = 0;
    let mut at = 0;
    while at < s.bytes.len() {
        let Ok((r, len)) = record::decode(&s.bytes[at..], usize::MAX) else {
            seqs.violations
                .push(format!("undecodable record at stream position {at}"));
            break;
        };
        if r.epoch < epoch {
            seqs.violations.push(format!(
                "a record of epoch {} at stream position {at} follows one of epoch {epoch}",
                r.epoch
            ));
        }
        epoch = epoch.max(r.epoch);
        match r.kind {
            RecordKind::Processed => {
                for (kind, seq) in seqs.batch.remove(&r.session).unwrap_or_default() {
                    seqs.apply(r.session, kind, seq, at);
                }
            }
            RecordKind::Abort => {
                seqs.batch.remove(&r.session);
            }
            kind if r.batched => seqs.batch.entry(r.session).or_default().push((kind, r.seq)),
            kind => seqs.apply(r.session, kind, r.seq, at),
        }
        at += len;
    }
    let dir = s.dir.display();
    seqs.violations
        .into_iter()
        .map(|v| format!("{dir}: {v}"))
        .collect()
}

/// Outbound sequence numbers per session, as committed.
#[derive(Default)]
struct Sequences {
    /// The last outbound number used by each session (an application message, or one the
    /// session wrote itself as its `NextSender` record shows).
    last: HashMap<u32, u64>,
    /// Each session's open batch: records that take effect at its `Processed` record.
    batch: HashMap<u32, Vec<(RecordKind, u64)>>,
    violations: Vec<String>,
}

impl Sequences {
    /// A committed record of `session`.
    fn apply(&mut self, session: u32, kind: RecordKind, seq: u64, at: usize) {
        match kind {
            RecordKind::Outbound => {
                let last = self.last.entry(session).or_insert(0);
                if seq <= *last {
                    self.violations.push(format!(
                        "outbound sequence number {seq} of session {session}, committed at stream position {at}, reuses one (the last used was {last})"
                    ));
                }
                *last = seq;
            }
            // The next number to send is `seq`: everything below it is used (or given up
            // by an explicit reset of the sequence, which may lower it).
            RecordKind::NextSender => {
                self.last.insert(session, seq.saturating_sub(1));
            }
            RecordKind::Reset => {
                self.last.remove(&session);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fix_store::record::{encode, Meta};

    fn rec(out: &mut Vec<u8>, kind: RecordKind, batched: bool, seq: u64, epoch: u64) {
        let payload: &[u8] = if kind == RecordKind::Session {
            b"FIX.4.4:ME->YOU"
        } else {
            b"8=FIX.4.4"
        };
        let m = Meta {
            kind,
            batched,
            session: 1,
            seq,
            epoch,
        };
        encode(out, m, payload);
    }

    /// A journal in `dir` holding exactly `records` (written as a replica would).
    fn journal(dir: &Path, records: &[(RecordKind, bool, u64, u64)]) -> PathBuf {
        let mut bytes = Vec::new();
        rec(&mut bytes, RecordKind::Session, false, 0, 1);
        for &(kind, batched, seq, epoch) in records {
            rec(&mut bytes, kind, batched, seq, epoch);
        }
        let j = Journal::open_fenced(JournalOptions::new(dir)).expect("journal");
        j.append_replicated(0, &bytes).expect("append");
        j.sync().expect("durable");
        j.shutdown();
        dir.to_path_buf()
    }

    use RecordKind::{Abort, NextSender, Outbound, Processed, Reset};

    #[test]
    fn a_standby_holding_a_prefix_of_the_leaders_stream_passes() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let leader = [
            (Outbound, false, 1, 1),
            (Outbound, false, 2, 1),
            (Outbound, false, 3, 2),
        ];
        let dirs = [journal(a.path(), &leader), journal(b.path(), &leader[..2])];
        let c = check(&dirs, 0).expect("check");
        assert_eq!((c.journals, c.violations.len()), (2, 0), "{c:?}");
        assert!(c.stream_bytes > 0);
    }

    #[test]
    fn two_writers_under_one_epoch_are_caught() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let dirs = [
            journal(
                a.path(),
                &[(Outbound, false, 1, 1), (Outbound, false, 2, 1)],
            ),
            journal(b.path(), &[(Outbound, false, 1, 1), (Reset, false, 0, 1)]),
        ];
        let c = check(&dirs, 0).expect("check");
        assert_eq!(c.violations.len(), 1, "{c:?}");
        assert!(c.violations[0].contains("differs"), "{c:?}");
    }

    #[test]
    fn an_epoch_going_back_and_a_reused_sequence_number_are_caught() {
        let a = tempfile::tempdir().expect("tmp");
        let dirs = [journal(
            a.path(),
            &[
                (Outbound, false, 1, 2),
                (Outbound, false, 2, 1),
                (Outbound, false, 2, 2),
            ],
        )];
        let c = check(&dirs, 0).expect("check");
        assert_eq!(c.violations.len(), 2, "{c:?}");
        assert!(c.violations[0].contains("follows one of epoch 2"), "{c:?}");
        assert!(c.violations[1].contains("reuses"), "{c:?}");
    }

    #[test]
    fn aborted_batches_and_resets_free_their_numbers() {
        let a = tempfile::tempdir().expect("tmp");
        let dirs = [journal(
            a.path(),
            &[
                (Outbound, false, 1, 1),
                (Outbound, true, 2, 1),
                (Abort, false, 0, 1),
                (Outbound, true, 2, 1),
                (Processed, false, 1, 1),
                (Reset, false, 0, 1),
                (Outbound, false, 1, 1),
            ],
        )];
        let c = check(&dirs, 0).expect("check");
        assert!(c.violations.is_empty(), "{c:?}");
        // Committing the batch twice would reuse 2.
        let b = tempfile::tempdir().expect("tmp");
        let dirs = [journal(
            b.path(),
            &[
                (Outbound, true, 2, 1),
                (Processed, false, 1, 1),
                (Outbound, false, 2, 1),
            ],
        )];
        assert_eq!(check(&dirs, 0).expect("check").violations.len(), 1);
    }

    #[test]
    fn a_tail_past_the_last_leaders_end_is_caught() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let dirs = [
            journal(
                a.path(),
                &[(Outbound, false, 1, 1), (Outbound, false, 2, 1)],
            ),
            journal(b.path(), &[(Outbound, false, 1, 1)]),
        ];
        let c = check(&dirs, 1).expect("check");
        assert_eq!(c.violations.len(), 1, "{c:?}");
        assert!(c.violations[0].contains("past the end"), "{c:?}");
        assert_eq!(c.stream_bytes, check(&dirs, 1).expect("again").stream_bytes);
    }

    #[test]
    fn numbers_the_session_used_itself_or_an_aborted_reset_gave_back_are_not_reused() {
        let a = tempfile::tempdir().expect("tmp");
        // An admin message took 2 (NextSender 3): an application message may not.
        let dirs = [journal(
            a.path(),
            &[
                (Outbound, false, 1, 1),
                (NextSender, false, 3, 1),
                (Outbound, false, 2, 1),
            ],
        )];
        let c = check(&dirs, 0).expect("check");
        assert_eq!(c.violations.len(), 1, "{c:?}");
        // A reset in a batch that was aborted never happened.
        let b = tempfile::tempdir().expect("tmp");
        let dirs = [journal(
            b.path(),
            &[
                (Outbound, false, 1, 1),
                (Reset, true, 0, 1),
                (Abort, false, 0, 1),
                (Outbound, false, 1, 1),
            ],
        )];
        assert_eq!(check(&dirs, 0).expect("check").violations.len(), 1);
    }
}
