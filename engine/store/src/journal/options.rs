//! The journal's settings.

use std::path::PathBuf;

/// What to do with a damaged tail found on recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// A torn or corrupt tail of the *last* segment (a write cut short by a crash) is cut
    /// off and logged; damage anywhere else is an error.
    #[default]
    TruncateTornTail,
    /// Any damage is an error; nothing is changed on disk.
    Strict,
}

/// Journal settings.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// Segment size at which a new file is started.
    pub segment_size: u64,
    /// Torn-tail policy.
    pub recovery: RecoveryMode,
    /// `fdatasync` after each batch. Off only for benchmarks and throw-away tests.
    pub fsync: bool,
    /// Largest record payload accepted.
    pub max_record: usize,
    /// Run first on the journal's sync thread: where the engine places its threads
    /// (pinned to its cores, say), the group commit's thread goes too.
    pub sync_thread_start: Option<ThreadStart>,
}

/// Code a thread the journal starts runs first.
#[derive(Clone)]
pub struct ThreadStart(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ThreadStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadStart")
    }
}

impl JournalOptions {
    /// Defaults: 64 MiB segments, torn-tail truncation, fsync on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: 64 << 20,
            recovery: RecoveryMode::TruncateTornTail,
            fsync: true,
            max_record: 16 << 20,
            sync_thread_start: None,
        }
    }
}
