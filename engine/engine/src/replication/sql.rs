//! `sql` durability: the leader copies its journal stream into a table of the lease's
//! database (PostgreSQL or MySQL), each chunk in a transaction that first locks the lease
//! row and checks the epoch, so a leader that lost the lease cannot add a row. A write
//! counts as durable once its row is committed. Standbys tail the table into their own
//! journal; a standby that wins the lease reads the table to its end before it leads, so
//! nothing the old leader made durable is missing (RPO 0 without a live standby).
//!
//! ```text
//! fix_journal (grp, position, epoch, records): one row per chunk of the record stream;
//!   position = stream position of its first byte, epoch = epoch of its first record.
//! ```

use super::{FollowerView, Replication, CHUNK, IDLE_TICK};
use fix_lease::{Leadership, RoleState};
use fix_store::Journal;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// A SQL journal operation failed.
#[derive(Debug, Error)]
pub enum SqlJournalError {
    /// The URL is not PostgreSQL or MySQL.
    #[error("durability = \"sql\" needs the lease in PostgreSQL or MySQL (lease.url postgres://… or mysql://…), not {0}")]
    Unsupported(String),
    /// The database could not be reached.
    #[error("cannot connect to the SQL journal: {0}")]
    Connect(sqlx::Error),
    /// A statement failed.
    #[error("SQL journal failed while {action}: {source}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// The error.
        source: sqlx::Error,
    },
    /// The lease row holds another epoch: this instance no longer leads.
    #[error("SQL journal refused the write: the lease epoch is {current}, ours is {ours}")]
    Fenced {
        /// Our epoch.
        ours: u64,
        /// The lease's epoch.
        current: u64,
    },
}

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

/// One chunk of the stream as stored.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Stream position of its first byte.
    pub position: u64,
    /// Epoch of its first record.
    pub epoch: u64,
    /// Whole journal records.
    pub records: Vec<u8>,
}

/// The `fix_journal` table of one engine group.
pub struct SqlJournal {
    pool: Pool,
    group: String,
}

fn q(action: &'static str) -> impl FnOnce(sqlx::Error) -> SqlJournalError {
    move |source| SqlJournalError::Query { action, source }
}

/// Epoch of the first record in `records` (the record header's epoch field).
fn first_epoch(records: &[u8]) -> u64 {
    let mut e = [0u8; 8];
    if let Some(b) = records.get(21..29) {
        e.copy_from_slice(b);
    }
    u64::from_le_bytes(e)
}

impl SqlJournal {
    /// Connects to the lease database and creates the table if needed.
    pub async fn connect(url: &str, group: &str) -> Result<Self, SqlJournalError> {
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let p = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(SqlJournalError::Connect)?;
            let ddl = "CREATE TABLE IF NOT EXISTS fix_journal (grp TEXT NOT NULL, position BIGINT NOT NULL, epoch BIGINT NOT NULL, records BYTEA NOT NULL, PRIMARY KEY (grp, position))";
            if sqlx::query(ddl).execute(&p).await.is_err() {
                // Another instance created it at the same moment.
                tokio::time::sleep(Duration::from_millis(200)).await;
                sqlx::query(ddl)
                    .execute(&p)
                    .await
                    .map_err(q("creating the fix_journal table"))?;
            }
            Pool::Pg(p)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let p = MySqlPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url.replacen("mariadb:", "mysql:", 1))
                .await
                .map_err(SqlJournalError::Connect)?;
            sqlx::query("CREATE TABLE IF NOT EXISTS fix_journal (grp VARCHAR(190) NOT NULL, position BIGINT NOT NULL, epoch BIGINT NOT NULL, records LONGBLOB NOT NULL, PRIMARY KEY (grp, position))")
                .execute(&p)
                .await
                .map_err(q("creating the fix_journal table"))?;
            Pool::My(p)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(SqlJournalError::Unsupported(format!("{scheme}://…")));
        };
        Ok(Self {
            pool,
            group: group.to_string(),
        })
    }

    /// Stores `records` at stream `position`, in one transaction that locks the lease row
    /// and requires `epoch` to be the lease's epoch.
    pub async fn append(
        &self,
        epoch: u64,
        position: u64,
        records: &[u8],
    ) -> Result<(), SqlJournalError> {
        let first = first_epoch(records) as i64;
        /// Locks the lease row, checks the epoch, inserts: one transaction.
        macro_rules! locked_insert {
            ($pool:expr, $lock:literal, $insert:literal) => {{
                let mut tx = $pool.begin().await.map_err(q("starting a transaction"))?;
                let current: i64 = sqlx::query_scalar($lock)
                    .bind(&self.group)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q("locking the lease row"))?
                    .unwrap_or(-1);
                if current == epoch as i64 {
                    sqlx::query($insert)
                        .bind(&self.group)
                        .bind(position as i64)
                        .bind(first)
                        .bind(records)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("inserting journal records"))?;
                    tx.commit().await.map_err(q("committing journal records"))?;
                }
                current
            }};
        }
        let current: i64 = match &self.pool {
            Pool::Pg(p) => locked_insert!(
                p,
                "SELECT epoch FROM fix_lease WHERE grp = $1 FOR UPDATE",
                "INSERT INTO fix_journal (grp, position, epoch, records) VALUES ($1, $2, $3, $4)"
            ),
            Pool::My(p) => locked_insert!(
                p,
                "SELECT epoch FROM fix_lease WHERE grp = ? FOR UPDATE",
                "INSERT INTO fix_journal (grp, position, epoch, records) VALUES (?, ?, ?, ?)"
            ),
        };
        if current == epoch as i64 {
            Ok(())
        } else {
            Err(SqlJournalError::Fenced {
                ours: epoch,
                current: current.max(0) as u64,
            })
        }
    }

    /// Up to `limit` chunks from stream `position` on, in order.
    pub async fn chunks_from(
        &self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<Chunk>, SqlJournalError> {
        macro_rules! select_chunks {
            ($pool:expr, $sql:literal) => {
                sqlx::query($sql)
                    .bind(&self.group)
                    .bind(position as i64)
                    .bind(i64::from(limit))
                    .fetch_all($pool)
                    .await
                    .map_err(q("reading journal records"))?
                    .into_iter()
                    .map(|r| {
                        Ok::<_, sqlx::Error>((
                            r.try_get::<i64, _>(0)?,
                            r.try_get::<i64, _>(1)?,
                            r.try_get::<Vec<u8>, _>(2)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
        }
        let rows = match &self.pool {
            Pool::Pg(p) => select_chunks!(p, "SELECT position, epoch, records FROM fix_journal WHERE grp = $1 AND position >= $2 ORDER BY position LIMIT $3"),
            Pool::My(p) => select_chunks!(p, "SELECT position, epoch, records FROM fix_journal WHERE grp = ? AND position >= ? ORDER BY position LIMIT ?"),
        }
        .map_err(q("decoding journal rows"))?;
        Ok(rows
            .into_iter()
            .map(|(position, epoch, records)| Chunk {
                position: position as u64,
                epoch: epoch as u64,
                records,
            })
            .collect())
    }

    /// The chunk holding stream byte `at` or the last one before it: (position, epoch,
    /// length).
    pub async fn chunk_at_or_before(
        &self,
        at: u64,
    ) -> Result<Option<(u64, u64, u64)>, SqlJournalError> {
        let row: Option<(i64, i64, i64)> = match &self.pool {
            Pool::Pg(p) => sqlx::query_as("SELECT position, epoch, CAST(length(records) AS BIGINT) FROM fix_journal WHERE grp = $1 AND position <= $2 ORDER BY position DESC LIMIT 1")
                .bind(&self.group)
                .bind(at as i64)
                .fetch_optional(p)
                .await,
            Pool::My(p) => sqlx::query_as("SELECT position, epoch, CAST(LENGTH(records) AS SIGNED) FROM fix_journal WHERE grp = ? AND position <= ? ORDER BY position DESC LIMIT 1")
                .bind(&self.group)
                .bind(at as i64)
                .fetch_optional(p)
                .await,
        }
        .map_err(q("finding a journal chunk"))?;
        Ok(row.map(|(p, e, l)| (p as u64, e as u64, l as u64)))
    }

    /// Where the stored stream ends.
    pub async fn end(&self) -> Result<u64, SqlJournalError> {
        Ok(self
            .chunk_at_or_before(i64::MAX as u64)
            .await?
            .map_or(0, |(p, _, l)| p + l))
    }
}

fn epoch_at(history: &[(u64, u64)], position: u64) -> u64 {
    history
        .iter()
        .take_while(|(_, start)| *start <= position)
        .last()
        .map_or(0, |(e, _)| *e)
}

async fn truncate(journal: &Journal, position: u64) -> std::io::Result<u64> {
    let j = journal.clone();
    tokio::task::spawn_blocking(move || j.truncate(position))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

/// Cuts the local journal back until it is a prefix of the stored stream (an old leader's
/// records that never made it into the table are moved aside).
pub async fn realign(journal: &Journal, sql: &SqlJournal) -> std::io::Result<()> {
    loop {
        let p = journal.appended();
        if p == 0 {
            return Ok(());
        }
        let Some((pos, epoch, len)) = sql
            .chunk_at_or_before(p - 1)
            .await
            .map_err(std::io::Error::other)?
        else {
            // The table holds nothing this early: the local journal predates it.
            return Ok(());
        };
        let end = pos + len;
        let same_epoch = epoch_at(&journal.epoch_history(), pos) == epoch;
        let cut_to = match (same_epoch, end.cmp(&p)) {
            (true, std::cmp::Ordering::Equal) => return Ok(()),
            (true, std::cmp::Ordering::Less) => end,
            _ => pos,
        };
        let cut = truncate(journal, cut_to).await?;
        tracing::warn!(
            position = cut_to,
            cut_bytes = cut,
            "local journal diverged from the SQL journal; cut it back"
        );
    }
}

/// Appends what the table holds beyond the local journal's end; returns how many chunks.
pub async fn catch_up(journal: &Journal, sql: &SqlJournal, limit: u32) -> std::io::Result<usize> {
    let at = journal.appended();
    let chunks = sql
        .chunks_from(at, limit)
        .await
        .map_err(std::io::Error::other)?;
    let n = chunks.len();
    for c in chunks {
        journal
            .append_replicated(c.position, &c.records)
            .map_err(std::io::Error::other)?;
    }
    Ok(n)
}

/// Reads the table to its end into the local journal (before leading).
pub async fn drain(journal: &Journal, sql: &SqlJournal) -> std::io::Result<()> {
    realign(journal, sql).await?;
    while catch_up(journal, sql, 256).await? > 0 {}
    let j = journal.clone();
    tokio::task::spawn_blocking(move || j.sync())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

fn leading(role: &watch::Receiver<RoleState>) -> Option<u64> {
    let s = role.borrow();
    match s.role {
        Leadership::Leader { epoch }
            if s.valid_until.is_none_or(|t| std::time::Instant::now() < t) =>
        {
            Some(epoch)
        }
        _ => None,
    }
}

/// The SQL journal tasks of one instance.
#[derive(Clone)]
pub struct SqlChannel {
    /// The local journal.
    pub journal: Journal,
    /// Its durable position.
    pub durable: watch::Receiver<u64>,
    /// This instance's role.
    pub role: watch::Receiver<RoleState>,
    /// The table.
    pub sql: Arc<SqlJournal>,
    /// Shared status (the shipper shows as a standby named `sql`).
    pub state: Arc<Replication>,
    /// Serializes the standby's tailing with the drain before leading.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

impl SqlChannel {
    /// Reads the table to its end into the local journal (before this instance leads),
    /// with the standby's tailing held off.
    pub async fn drain(&self) -> std::io::Result<()> {
        let _held = self.lock.lock().await;
        drain(&self.journal, &self.sql).await
    }

    /// Leader: copy durable local records into the table; standby: tail the table.
    pub async fn run(mut self) {
        loop {
            match leading(&self.role) {
                Some(epoch) => self.ship(epoch).await,
                None => self.tail().await,
            }
        }
    }

    async fn ship(&mut self, epoch: u64) {
        let mut shipped = match self.sql.end().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "SQL journal unreachable; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        };
        let id = self.state.register("sql", "sql".into(), shipped);
        self.state.update(id, |v| {
            v.acked = shipped;
            v.streaming = true;
        });
        while leading(&self.role) == Some(epoch) {
            let j = self.journal.clone();
            let at = shipped;
            let chunk = tokio::task::spawn_blocking(move || j.read_stream(at, CHUNK)).await;
            let chunk = match chunk {
                Ok(Ok(c)) => c,
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if chunk.is_empty() {
                tokio::select! {
                    _ = self.durable.changed() => {}
                    _ = self.role.changed() => {}
                    () = tokio::time::sleep(IDLE_TICK) => {}
                }
                continue;
            }
            match self.sql.append(epoch, shipped, &chunk).await {
                Ok(()) => {
                    shipped += chunk.len() as u64;
                    self.state.update(id, |v| {
                        v.sent = shipped;
                        v.acked = shipped;
                    });
                }
                Err(e @ SqlJournalError::Fenced { .. }) => {
                    tracing::error!(error = %e, "the SQL journal refuses this leader; nothing more is made durable");
                    let _ = self.role.changed().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SQL journal write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.state.unregister(id);
    }

    async fn tail(&mut self) {
        let step = {
            let _held = self.lock.lock().await;
            if leading(&self.role).is_some() {
                return;
            }
            match realign(&self.journal, &self.sql).await {
                Ok(()) => catch_up(&self.journal, &self.sql, 64).await,
                Err(e) => Err(e),
            }
        };
        let position = self.journal.appended();
        match step {
            Ok(n) => {
                self.state.update_follower(|f: &mut FollowerView| {
                    f.leader = Some("sql".into());
                    f.position = position;
                    f.last_error = None;
                    if n == 0 {
                        f.caught_up = true;
                    }
                });
                if n > 0 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "tailing the SQL journal failed; retrying");
                self.state
                    .update_follower(|f| f.last_error = Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = self.role.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
