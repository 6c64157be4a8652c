//! The durable journal: append-only segment files, one writer thread doing group commit.
//!
//! Appends (from any session, any thread) only copy the encoded record into a pending
//! buffer and return at once with the journal position after the record. A single sync
//! thread writes everything pending and calls `fdatasync` once for the whole batch, then
//! publishes the new durable position to waiters and listeners. While it syncs, new
//! appends accumulate for the next batch: one fsync serves many messages under load.
//!
//! A batch starts when someone asks for durability ([`Journal::request_commit`],
//! [`Journal::wait_durable`], [`Journal::sync`]), or once [`UNREQUESTED_COMMIT_BYTES`]
//! are pending, not at every append: a caller that appends several records and then
//! waits (an inbound order, the reports it causes and the mark that it was processed)
//! gets them all into one fsync, instead of a first sync that races ahead with the first
//! record and a second one for the rest.
//!
//! A failed write or fsync is fatal: the journal refuses every later append, because the
//! kernel may have dropped the dirty pages and retrying could report success for data
//! that is gone.
//!
//! With `fsync` off (benchmarks and throw-away tests only) there is nothing to group:
//! each append writes its record to the file at once, under the writer lock, and
//! publishes it; the sync thread only serves replicated appends on a standby.
//!
//! Files are `NNNNNNNNNNNNNNNNNNNN.seg` (zero-padded segment number) in the journal
//! directory; a record never spans two segments.

mod error;
mod options;
mod replica;
mod sync;
mod write;

use error::io_err;
pub use error::JournalError;
pub use options::{JournalOptions, RecoveryMode, ThreadStart};

use sync::sync_loop;
use write::publish_written;

use crate::record::{self, RecordKind};
use crate::stream::{Loc, SessionState, StreamState};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct Chunk {
    segment: u64,
    bytes: Vec<u8>,
}

struct Writer {
    /// The epoch appends are written under; `None` while fenced (standby).
    epoch: Option<u64>,
    /// The newest epoch in the journal or opened for writing.
    max_epoch: u64,
    appended: u64,
    pending: Vec<Chunk>,
    /// Bytes in `pending`.
    pending_bytes: usize,
    /// Someone waits for what is pending: the sync thread commits it now.
    requested: bool,
    /// Since when bytes written to the files outside the sync thread
    /// ([`Journal::write_pending`]) wait for its fdatasync.
    unsynced: Option<std::time::Instant>,
    /// When bytes were last written outside the sync thread: while that is recent the
    /// sync thread looks for them on a timer instead of being woken for each.
    last_written: Option<std::time::Instant>,
    /// The sync thread waits without a deadline: a write outside it must wake it.
    sync_waits_unbounded: bool,
    segment: u64,
    segment_len: u64,
    /// Stream position where each segment starts.
    segment_starts: BTreeMap<u64, u64>,
    state: StreamState,
    shutdown: bool,
    failed: Option<String>,
    scratch: Vec<u8>,
}

struct Files {
    open: BTreeMap<u64, File>,
    dirty: Vec<u64>,
}

struct Durable {
    position: u64,
    failed: Option<String>,
}

struct Written {
    position: u64,
    listeners: Vec<Listener>,
}

type Listener = Box<dyn Fn(u64) + Send + Sync>;
type TimingListener = Box<dyn Fn(std::time::Duration) + Send + Sync>;

struct Inner {
    opts: JournalOptions,
    writer: Mutex<Writer>,
    work: Condvar,
    /// Held from taking pending chunks (under the writer lock) until they are in the
    /// files: writes land in append order, and appenders never wait for the files lock
    /// (which readers hold through their reads).
    write_order: Mutex<()>,
    files: Mutex<Files>,
    durable: Mutex<Durable>,
    durable_cv: Condvar,
    listeners: Mutex<Vec<Listener>>,
    /// The stream position written to the segment files (in the page cache, maybe not
    /// synced), with the listeners told of each advance; a leaf lock.
    written: Mutex<Written>,
    timings: Mutex<Vec<TimingListener>>,
    /// The exclusive lock on the directory (`LOCK`), held until the sync thread stops.
    dir_lock: Mutex<Option<File>>,
    /// When the batch being written and synced began, while one is.
    batch_started: Mutex<Option<std::time::Instant>>,
}

/// Pending bytes at which the sync thread starts a batch although nobody asked for one.
pub const UNREQUESTED_COMMIT_BYTES: usize = 1 << 20;

/// How long bytes written to the files outside the sync thread
/// ([`Journal::write_pending`]) wait for an fdatasync nobody asked for: the background
/// commit of `replicated-written`, one per interval however many turns wrote.
pub const WRITTEN_COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// How long after the last write outside the sync thread it keeps looking for more on
/// a timer (every [`WRITTEN_COMMIT_INTERVAL`]) rather than waiting to be woken: under
/// load no write pays for waking it (a futex call, and a thread that then contends for
/// the writer's lock, on the write's critical path); the fsync comes at most one
/// interval later than it would.
const WRITTEN_POLL_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// How long an open waits for a lock that an earlier journal of this process (shut down
/// a moment ago) is still releasing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the exclusive `flock` on `dir/LOCK` and writes this process's id in it.
fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err("opening the lock file", &path))?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(JournalError::Locked {
                    dir: dir.display().to_string(),
                    holder: if holder.trim().is_empty() {
                        "unknown".into()
                    } else {
                        holder.trim().to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_err("locking", &path)(e));
            }
        }
    }
    let me = format!("pid {}", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(io_err("writing", &path))?;
    Ok(file)
}

/// A handle to the journal; clones share it.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens (creating if needed) a segment for appending and positional reads; the same
/// handle serves both, so a read can never leave a read-only handle where writes go.
fn open_segment(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
}

/// A session's number, next sender and target sequence numbers, and creation time.
fn seqs_of(state: &StreamState, key: &str) -> Option<(u32, u64, u64, i64)> {
    state
        .sessions
        .get(key)
        .map(|s| (s.no, s.next_sender, s.next_target, s.created))
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

impl Journal {
    /// Opens (recovering) or creates the journal in `opts.dir` and starts its sync thread,
    /// ready for appends under the newest epoch it holds (a single instance without a
    /// lease). Application batches a crash cut short are discarded first.
    pub fn open(opts: JournalOptions) -> Result<Self, JournalError> {
        let journal = Self::open_fenced(opts)?;
        let epoch = lock(&journal.inner.writer).max_epoch;
        journal.open_epoch(epoch)?;
        Ok(journal)
    }

    /// Opens the journal fenced: nothing may be appended until [`Journal::open_epoch`]
    /// (a leader) and records may arrive from a leader through
    /// [`Journal::append_replicated`] (a standby). Nothing is written by opening it, so its
    /// record stream stays a copy of the leader's.
    pub fn open_fenced(opts: JournalOptions) -> Result<Self, JournalError> {
        std::fs::create_dir_all(&opts.dir).map_err(io_err("creating", &opts.dir))?;
        let dir_lock = lock_dir(&opts.dir)?;
        let recovered = crate::recovery::recover(&opts)?;
        let files = Files {
            open: BTreeMap::new(),
            dirty: Vec::new(),
        };
        let inner = Arc::new(Inner {
            writer: Mutex::new(Writer {
                epoch: None,
                max_epoch: recovered.state.max_epoch(),
                appended: recovered.position,
                pending: Vec::new(),
                pending_bytes: 0,
                requested: false,
                unsynced: None,
                last_written: None,
                sync_waits_unbounded: false,
                segment: recovered.segment,
                segment_len: recovered.segment_len,
                segment_starts: recovered.segment_starts,
                state: recovered.state,
                shutdown: false,
                failed: None,
                scratch: Vec::with_capacity(1024),
            }),
            work: Condvar::new(),
            write_order: Mutex::new(()),
            files: Mutex::new(files),
            durable: Mutex::new(Durable {
                position: recovered.position,
                failed: None,
            }),
            durable_cv: Condvar::new(),
            listeners: Mutex::new(Vec::new()),
            written: Mutex::new(Written {
                position: recovered.position,
                listeners: Vec::new(),
            }),
            timings: Mutex::new(Vec::new()),
            dir_lock: Mutex::new(Some(dir_lock)),
            batch_started: Mutex::new(None),
            opts,
        });
        let worker = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                if let Some(start) = &worker.opts.sync_thread_start {
                    (start.0)();
                }
                sync_loop(&worker);
                // Stopped (shut down, or failed): nothing more is written here.
                lock(&worker.dir_lock).take();
            })
            .map_err(io_err("starting the sync thread for", &inner.opts.dir))?;
        Ok(Self { inner })
    }

    /// Calls `f(position)` from the sync thread each time more of the journal is durable
    /// (with `fsync` off, from the appending thread, under the journal's locks: `f` must
    /// not call back into the journal).
    pub fn on_durable(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        lock(&self.inner.listeners).push(Box::new(f));
    }

    /// Calls `f(duration)` from the sync thread after each group commit (write and
    /// fdatasync of one batch), for latency metrics.
    pub fn on_commit_timing(&self, f: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        lock(&self.inner.timings).push(Box::new(f));
    }

    /// Allows appends under `epoch` (this instance became leader with it). Refused when a
    /// newer epoch is already in the journal. Application batches left open at the end of
    /// the stream (cut by a crash or a failover: none of them was sent) are discarded.
    pub fn open_epoch(&self, epoch: u64) -> Result<(), JournalError> {
        let mut w = lock(&self.inner.writer);
        if epoch < w.max_epoch {
            return Err(JournalError::Fenced {
                ours: Some(epoch),
                current: w.max_epoch,
            });
        }
        w.epoch = Some(epoch);
        w.max_epoch = epoch;
        let open = w.state.open_batches();
        for no in &open {
            tracing::warn!(
                session = no,
                "discarding an application batch that never committed (none of it was sent)"
            );
            self.append_locked(&mut w, RecordKind::Abort, false, *no, 0, &[])?;
        }
        drop(w);
        if !open.is_empty() {
            self.sync()?;
        }
        Ok(())
    }

    /// Refuses every append until the next [`Journal::open_epoch`] (this instance is a
    /// standby now).
    pub fn fence(&self) {
        lock(&self.inner.writer).epoch = None;
    }

    /// The epoch appends are written under, `None` while fenced.
    pub fn epoch(&self) -> Option<u64> {
        lock(&self.inner.writer).epoch
    }

    /// Journal position after the last append.
    pub fn appended(&self) -> u64 {
        lock(&self.inner.writer).appended
    }

    /// Journal position known to be on disk.
    pub fn durable(&self) -> u64 {
        lock(&self.inner.durable).position
    }

    /// Sessions known to the journal, by key.
    pub fn session_keys(&self) -> Vec<String> {
        lock(&self.inner.writer)
            .state
            .sessions
            .keys()
            .cloned()
            .collect()
    }

    /// Asks the sync thread to commit everything appended so far (without waiting for
    /// it): the start of a group commit. [`Self::wait_durable`] asks too.
    pub fn request_commit(&self) {
        let wake = {
            let mut w = lock(&self.inner.writer);
            let wake = !w.requested && (!w.pending.is_empty() || w.unsynced.is_some());
            w.requested |= wake;
            wake
        };
        // Woken after the lock is let go, so that it does not wake only to wait for it.
        if wake {
            self.inner.work.notify_one();
        }
    }

    /// Stops the sync thread after writing what is pending.
    pub fn shutdown(&self) {
        lock(&self.inner.writer).shutdown = true;
        self.inner.work.notify_all();
    }

    /// The journal's view of session `key` (number, next sender and target sequence
    /// numbers, creation time), if it knows it.
    pub(crate) fn session_seqs(&self, key: &str) -> Option<(u32, u64, u64, i64)> {
        seqs_of(&lock(&self.inner.writer).state, key)
    }

    /// Declares a session if the journal does not know it yet; returns its state.
    pub(crate) fn ensure_session(
        &self,
        key: &str,
        created: i64,
    ) -> Result<(u32, u64, u64, i64), JournalError> {
        let mut w = lock(&self.inner.writer);
        if let Some(s) = seqs_of(&w.state, key) {
            return Ok(s);
        }
        let no = w.state.next_session_no();
        self.append_locked(&mut w, RecordKind::Session, false, no, 0, key.as_bytes())?;
        self.append_locked(
            &mut w,
            RecordKind::Reset,
            false,
            no,
            0,
            &created.to_le_bytes(),
        )?;
        seqs_of(&w.state, key)
            .ok_or_else(|| JournalError::Failed(format!("session {key} was not declared")))
    }

    /// Appends one record for session `no`; returns the journal position after it.
    /// `batched` records belong to the session's open application batch (see
    /// [`RecordKind::Processed`]).
    pub(crate) fn append(
        &self,
        kind: RecordKind,
        batched: bool,
        no: u32,
        seq: u64,
        payload: &[u8],
    ) -> Result<u64, JournalError> {
        let mut w = lock(&self.inner.writer);
        self.append_locked(&mut w, kind, batched, no, seq, payload)
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        kind: RecordKind,
        batched: bool,
        no: u32,
        seq: u64,
        payload: &[u8],
    ) -> Result<u64, JournalError> {
        if let Some(f) = &w.failed {
            return Err(JournalError::Failed(f.clone()));
        }
        let Some(epoch) = w.epoch else {
            return Err(JournalError::Fenced {
                ours: None,
                current: w.max_epoch,
            });
        };
        let len = (record::HEADER_LEN + payload.len()) as u64;
        let segment = self.place(w, len);
        let position = w.appended;
        let offset = w.segment_len + record::HEADER_LEN as u64;
        let mut scratch = std::mem::take(&mut w.scratch);
        scratch.clear();
        let meta = record::Meta {
            kind,
            batched,
            session: no,
            seq,
            epoch,
        };
        record::encode(&mut scratch, meta, payload);
        if let Some(chunk) = w.pending.last_mut() {
            chunk.bytes.extend_from_slice(&scratch);
        }
        w.pending_bytes += scratch.len();
        w.scratch = scratch;
        w.segment_len += len;
        w.appended += len;
        let r = record::Record {
            kind,
            batched,
            session: no,
            seq,
            epoch,
            payload,
        };
        w.state.apply(&r, position, segment, offset);
        if self.inner.opts.fsync {
            if w.pending_bytes >= UNREQUESTED_COMMIT_BYTES {
                self.inner.work.notify_one();
            }
        } else {
            self.write_through(w)?;
        }
        Ok(w.appended)
    }

    /// Chooses the segment for a record of `len` bytes (starting a new one when the
    /// current one is full) and makes sure a pending chunk for it is last.
    fn place(&self, w: &mut Writer, len: u64) -> u64 {
        if w.segment_len > 0 && w.segment_len + len > self.inner.opts.segment_size {
            w.segment += 1;
            w.segment_len = 0;
        }
        let (segment, position) = (w.segment, w.appended);
        if w.segment_len == 0 {
            w.segment_starts.insert(position, segment);
        }
        if w.pending.last().is_none_or(|c| c.segment != segment) {
            w.pending.push(Chunk {
                segment,
                bytes: Vec::with_capacity(64 * 1024),
            });
        }
        segment
    }

    /// Reads stored outbound messages of session `key` in `begin..=end`.
    pub(crate) fn read_outbound(
        &self,
        key: &str,
        begin: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), JournalError> {
        self.read(key, |s| s.outbound.range(begin, end).collect(), visit)
    }

    /// Reads the inbound application messages of session `key` that the application has
    /// not processed, in order.
    pub(crate) fn read_unprocessed_inbound(
        &self,
        key: &str,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), JournalError> {
        self.read(
            key,
            |s| s.inbound.iter().map(|(k, v)| (*k, *v)).collect(),
            visit,
        )
    }

    fn read(
        &self,
        key: &str,
        select: impl FnOnce(&SessionState) -> Vec<(u64, Loc)>,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), JournalError> {
        // Records still pending are not in the files yet: wait for the sync thread to
        // write them (reads are rare; one group commit is a small price).
        let appended = self.appended();
        self.wait_durable(appended)?;
        let locs = lock(&self.inner.writer)
            .state
            .sessions
            .get(key)
            .map(select)
            .unwrap_or_default();
        let mut files = lock(&self.inner.files);
        let mut buf = Vec::new();
        for (seq, loc) in locs {
            buf.resize(loc.len as usize, 0);
            let path = segment_path(&self.inner.opts.dir, loc.segment);
            if let std::collections::btree_map::Entry::Vacant(e) = files.open.entry(loc.segment) {
                let f = open_segment(&path).map_err(io_err("opening", &path))?;
                e.insert(f);
            }
            if let Some(f) = files.open.get(&loc.segment) {
                f.read_exact_at(&mut buf, loc.offset)
                    .map_err(io_err("reading", &path))?;
            }
            visit(seq, &buf);
        }
        Ok(())
    }
}
