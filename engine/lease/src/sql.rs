//! SQL lease backends through sqlx: SQLite, PostgreSQL, MySQL/MariaDB.
//!
//! One row per group in `fix_lease(grp, owner, epoch, expires_at_ms, in_sync)`. No clock
//! decides who holds the lease ([`crate::watch`]): `(epoch, expires_at_ms)` is the
//! holder's beat, which every renew changes (`expires_at_ms` only grows); a contender
//! takes the lease after watching the same beat for a TTL by its own monotonic clock, or
//! at once when it was released (`expires_at_ms = 0`). Each change is one conditional
//! statement, so the database serialises contenders:
//! - acquire: create the row released if missing, then update only where the beat is
//!   the one watched and the contender is in `in_sync` (a comma-separated list; NULL:
//!   anyone); the epoch is incremented in the same statement;
//! - renew: update only where owner and epoch match and the lease was not released;
//! - set the in-sync set: the same condition as renew;
//! - release: set `expires_at_ms = 0` only where owner and epoch match.
//!
//! `expires_at_ms` is the database's clock + TTL at the last renew (or one more than before,
//! should that clock have stepped back), for people to read.
//!
//! A table created before the in-sync set existed gets its column on connect.
//!
//! MySQL has no `RETURNING`: the new epoch comes back through `LAST_INSERT_ID(expr)`,
//! which is per connection, so acquire runs its statements on one pooled connection.

use crate::store::{Grant, InSync, LeaseError, LeaseState, LeaseStore};
use crate::watch::{Verdict, Watcher};
use async_trait::async_trait;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PG_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/// Milliseconds since the Unix epoch by the server's clock, whatever the session's time
/// zone (`UNIX_TIMESTAMP(NOW())` reads NOW in the session zone and is off by an hour
/// around a daylight-saving change in a zone that has one).
const MY_NOW: &str =
    "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)";
const SQLITE_NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// A lease store in a SQL database.
#[derive(Debug, Clone)]
pub struct SqlLeaseStore {
    pool: Pool,
    /// The holders' beats as watched ([`crate::watch`]).
    watcher: Arc<Watcher>,
}

/// The database.
#[derive(Debug, Clone)]
enum Pool {
    /// SQLite (a file; the embedded default).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL, MariaDB, Aurora MySQL.
    MySql(MySqlPool),
}

/// The URL without its credentials, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqlLeaseStore {
    /// Connects by URL (`sqlite://PATH`, `postgres://…`, `mysql://…`) and creates the
    /// lease table if it is missing.
    pub async fn connect(url: &str) -> Result<Self, LeaseError> {
        let connect_err = |backend| {
            let target = redact(url);
            move |source| LeaseError::Connect {
                backend,
                target,
                source,
            }
        };
        let timeout = Duration::from_secs(5);
        let store = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(connect_err("sqlite"))?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(5));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err("sqlite"))?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect(url)
                    .await
                    .map_err(connect_err("postgres"))?,
            )
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url.replacen("mariadb:", "mysql:", 1);
            Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect(&url)
                    .await
                    .map_err(connect_err("mysql"))?,
            )
        } else {
            return Err(LeaseError::UnsupportedUrl(redact(url)));
        };
        let store = Self {
            pool: store,
            watcher: Arc::default(),
        };
        store.create_table().await?;
        Ok(store)
    }

    fn query_err(&self, action: &'static str) -> impl FnOnce(sqlx::Error) -> LeaseError {
        let backend = self.backend_name();
        move |source| LeaseError::Query {
            backend,
            action,
            source,
        }
    }

    fn backend_name(&self) -> &'static str {
        match &self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
            Pool::MySql(_) => "mysql",
        }
    }

    /// Creates the table unless it exists. Two instances starting together may race:
    /// PostgreSQL's `IF NOT EXISTS` can still fail with a duplicate catalog entry, so a
    /// failure is retried once after a pause (the other instance has created it then).
    async fn create_table(&self) -> Result<(), LeaseError> {
        if self.create_table_once().await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.create_table_once().await?;
        }
        self.add_column("in_sync", "TEXT").await?;
        self.add_column("ttl_ms", "BIGINT").await
    }

    /// Adds a column to a table made by an older version (two instances may race: the
    /// loser's `ALTER` fails and the column is there when it looks again).
    async fn add_column(&self, column: &str, kind: &str) -> Result<(), LeaseError> {
        let probe = format!("SELECT {column} FROM fix_lease WHERE 1 = 0");
        let alter = format!("ALTER TABLE fix_lease ADD COLUMN {column} {kind}");
        let (probe, alter) = (probe.as_str(), alter.as_str());
        for _ in 0..2 {
            let present = match &self.pool {
                Pool::Sqlite(p) => sqlx::query(probe).execute(p).await.is_ok(),
                Pool::Postgres(p) => sqlx::query(probe).execute(p).await.is_ok(),
                Pool::MySql(p) => sqlx::query(probe).execute(p).await.is_ok(),
            };
            if present {
                return Ok(());
            }
            let added = match &self.pool {
                Pool::Sqlite(p) => sqlx::query(alter).execute(p).await.map(|_| ()),
                Pool::Postgres(p) => sqlx::query(alter).execute(p).await.map(|_| ()),
                Pool::MySql(p) => sqlx::query(alter).execute(p).await.map(|_| ()),
            };
            if added.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let err = self.query_err("adding a column to fix_lease");
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query(probe).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query(probe).execute(p).await.map(|_| ()),
            Pool::MySql(p) => sqlx::query(probe).execute(p).await.map(|_| ()),
        }
        .map_err(err)
    }

    async fn create_table_once(&self) -> Result<(), LeaseError> {
        let err = self.query_err("creating the fix_lease table");
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query(
                "CREATE TABLE IF NOT EXISTS fix_lease (grp TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL, in_sync TEXT)",
            )
            .execute(p)
            .await
            .map(|_| ()),
            Pool::Postgres(p) => sqlx::query(
                "CREATE TABLE IF NOT EXISTS fix_lease (grp TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL, expires_at_ms BIGINT NOT NULL, in_sync TEXT)",
            )
            .execute(p)
            .await
            .map(|_| ()),
            Pool::MySql(p) => sqlx::query(
                "CREATE TABLE IF NOT EXISTS fix_lease (grp VARCHAR(190) PRIMARY KEY, owner VARCHAR(190) NOT NULL, epoch BIGINT NOT NULL, expires_at_ms BIGINT NOT NULL, in_sync TEXT)",
            )
            .execute(p)
            .await
            .map(|_| ()),
        }
        .map_err(err)
    }

    /// The takeover on MySQL: `LAST_INSERT_ID(expr)` hands the new epoch back on the
    /// same connection (no `RETURNING`).
    async fn take_mysql(
        p: &MySqlPool,
        group: &str,
        owner: &str,
        ttl: i64,
        (epoch, expires): (i64, i64),
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let mut conn = p.acquire().await?;
        let sql = format!(
            "UPDATE fix_lease SET owner = ?, epoch = LAST_INSERT_ID(epoch + 1), ttl_ms = ?, expires_at_ms = GREATEST({MY_NOW} + ?, expires_at_ms + 1) WHERE grp = ? AND epoch = ? AND expires_at_ms = ? AND (in_sync IS NULL OR FIND_IN_SET(BINARY ?, BINARY in_sync) > 0)"
        );
        let done = sqlx::query(&sql)
            .bind(owner)
            .bind(ttl)
            .bind(ttl)
            .bind(group)
            .bind(epoch)
            .bind(expires)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT LAST_INSERT_ID(), expires_at_ms FROM fix_lease WHERE grp = ?")
                .bind(group)
                .fetch_one(&mut *conn)
                .await?;
        let epoch: u64 = row.try_get(0)?;
        Ok(Some((epoch as i64, row.try_get(1)?)))
    }

    /// The group's row and the TTL its holder was granted (0 when not recorded).
    async fn row(&self, group: &str) -> Result<Option<(LeaseState, i64)>, LeaseError> {
        let err = self.query_err("reading the lease");
        type Row = (String, i64, i64, i64, Option<String>, Option<i64>);
        let row: Option<Row> = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = format!("SELECT owner, epoch, expires_at_ms, {SQLITE_NOW}, in_sync, ttl_ms FROM fix_lease WHERE grp = ?1");
                sqlx::query_as(&sql).bind(group).fetch_optional(p).await
            }
            Pool::Postgres(p) => {
                let sql = format!("SELECT owner, epoch, expires_at_ms, {PG_NOW}, in_sync, ttl_ms FROM fix_lease WHERE grp = $1");
                sqlx::query_as(&sql).bind(group).fetch_optional(p).await
            }
            Pool::MySql(p) => {
                let sql = format!("SELECT owner, epoch, expires_at_ms, {MY_NOW}, in_sync, ttl_ms FROM fix_lease WHERE grp = ?");
                sqlx::query_as(&sql).bind(group).fetch_optional(p).await
            }
        }
        .map_err(err)?;
        Ok(
            row.map(|(owner, epoch, expires_at_ms, now_ms, in_sync, ttl)| {
                (
                    LeaseState {
                        owner,
                        epoch: epoch.max(0) as u64,
                        expires_at_ms,
                        now_ms,
                        in_sync: in_sync.and_then(|s| InSync::decode(s.split(','))),
                    },
                    ttl.unwrap_or(0),
                )
            }),
        )
    }

    /// The group's row, created released (epoch 0, `expires_at_ms` 0) if missing.
    async fn insert_released(&self, group: &str) -> Result<(), LeaseError> {
        let err = self.query_err("creating the lease row");
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("INSERT INTO fix_lease (grp, owner, epoch, expires_at_ms) VALUES (?1, '', 0, 0) ON CONFLICT (grp) DO NOTHING").bind(group).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query("INSERT INTO fix_lease (grp, owner, epoch, expires_at_ms) VALUES ($1, '', 0, 0) ON CONFLICT (grp) DO NOTHING").bind(group).execute(p).await.map(|_| ()),
            Pool::MySql(p) => sqlx::query("INSERT IGNORE INTO fix_lease (grp, owner, epoch, expires_at_ms) VALUES (?, '', 0, 0)").bind(group).execute(p).await.map(|_| ()),
        }
        .map_err(err)
    }
}

impl SqlLeaseStore {
    /// MySQL counts only rows whose value changed: a write of the set already stored is
    /// confirmed by reading the row under the same conditions.
    async fn set_in_sync_mysql(
        p: &MySqlPool,
        g: &Grant,
        check: i64,
        expected: Option<String>,
        members: Option<String>,
    ) -> Result<u64, sqlx::Error> {
        let epoch = g.epoch as i64;
        let owned = "grp = ? AND owner = ? AND epoch = ? AND expires_at_ms <> 0";
        let sql = format!(
            "UPDATE fix_lease SET in_sync = ? WHERE {owned} AND (? = 0 OR BINARY in_sync <=> BINARY ?)"
        );
        let done = sqlx::query(&sql)
            .bind(&members)
            .bind(&g.group)
            .bind(&g.owner)
            .bind(epoch)
            .bind(check)
            .bind(&expected)
            .execute(p)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(1);
        }
        let sql =
            format!("SELECT COUNT(*) FROM fix_lease WHERE {owned} AND BINARY in_sync <=> BINARY ?");
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(&g.group)
            .bind(&g.owner)
            .bind(epoch)
            .bind(&members)
            .fetch_one(p)
            .await?;
        Ok(n as u64)
    }

    async fn renew_mysql(
        p: &MySqlPool,
        sql: &str,
        g: &Grant,
        ttl: i64,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let epoch = g.epoch as i64;
        let done = sqlx::query(sql)
            .bind(ttl)
            .bind(ttl)
            .bind(&g.group)
            .bind(&g.owner)
            .bind(epoch)
            .execute(p)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        // Informational only (the holder trusts its local deadline): the new expiry.
        let expires: Option<i64> =
            sqlx::query_scalar("SELECT expires_at_ms FROM fix_lease WHERE grp = ? AND epoch = ?")
                .bind(&g.group)
                .bind(epoch)
                .fetch_optional(p)
                .await?;
        Ok(Some((epoch, expires.unwrap_or(g.expires_at_ms))))
    }
}

fn grant(group: &str, owner: &str, row: Option<(i64, i64)>) -> Option<Grant> {
    row.map(|(epoch, expires_at_ms)| Grant {
        group: group.to_string(),
        owner: owner.to_string(),
        epoch: epoch.max(0) as u64,
        expires_at_ms,
    })
}

impl SqlLeaseStore {
    /// Removes the recorded in-sync set (with `epoch`: only while the lease is still at
    /// that epoch); whether a row changed.
    async fn remove_in_sync(&self, group: &str, epoch: Option<u64>) -> Result<bool, LeaseError> {
        let err = self.query_err("clearing the in-sync set");
        // Without an epoch, -1 matches every row (epochs are never negative).
        let epoch = epoch.map_or(-1, |e| e as i64);
        let affected = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(
                "UPDATE fix_lease SET in_sync = NULL WHERE grp = ?1 AND (?2 = -1 OR epoch = ?2)",
            )
            .bind(group)
            .bind(epoch)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
            Pool::Postgres(p) => sqlx::query(
                "UPDATE fix_lease SET in_sync = NULL WHERE grp = $1 AND ($2 = -1 OR epoch = $2)",
            )
            .bind(group)
            .bind(epoch)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
            Pool::MySql(p) => sqlx::query(
                "UPDATE fix_lease SET in_sync = NULL WHERE grp = ? AND (? = -1 OR epoch = ?)",
            )
            .bind(group)
            .bind(epoch)
            .bind(epoch)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
        }
        .map_err(err)?;
        Ok(affected > 0)
    }
}

#[async_trait]
impl LeaseStore for SqlLeaseStore {
    async fn acquire(
        &self,
        group: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Grant>, LeaseError> {
        let beat = match self.row(group).await? {
            None => {
                self.insert_released(group).await?;
                (0, 0)
            }
            Some((st, held_for)) => {
                let beat = (st.epoch as i64, st.expires_at_ms);
                // Wait the longer of our TTL and the one the holder was granted.
                let wait = ttl.max(Duration::from_millis(held_for.max(0) as u64));
                match self
                    .watcher
                    .judge(group, beat, st.expires_at_ms == 0, wait, Instant::now())
                {
                    Verdict::Wait => return Ok(None),
                    Verdict::Take(beat) => beat,
                }
            }
        };
        let ttl = ms(ttl);
        let err = self.query_err("acquiring the lease");
        let row = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = format!(
                    "UPDATE fix_lease SET owner = ?2, epoch = epoch + 1, ttl_ms = ?3, expires_at_ms = MAX({SQLITE_NOW} + ?3, expires_at_ms + 1) \
                     WHERE grp = ?1 AND epoch = ?4 AND expires_at_ms = ?5 \
                     AND (in_sync IS NULL OR instr(',' || in_sync || ',', ',' || ?2 || ',') > 0) \
                     RETURNING epoch, expires_at_ms"
                );
                sqlx::query_as::<_, (i64, i64)>(&sql).bind(group).bind(owner).bind(ttl).bind(beat.0).bind(beat.1).fetch_optional(p).await
            }
            Pool::Postgres(p) => {
                let sql = format!(
                    "UPDATE fix_lease SET owner = $2, epoch = epoch + 1, ttl_ms = $3, expires_at_ms = GREATEST({PG_NOW} + $3, expires_at_ms + 1) \
                     WHERE grp = $1 AND epoch = $4 AND expires_at_ms = $5 \
                     AND (in_sync IS NULL OR strpos(',' || in_sync || ',', ',' || $2 || ',') > 0) \
                     RETURNING epoch, expires_at_ms"
                );
                sqlx::query_as::<_, (i64, i64)>(&sql).bind(group).bind(owner).bind(ttl).bind(beat.0).bind(beat.1).fetch_optional(p).await
            }
            Pool::MySql(p) => Self::take_mysql(p, group, owner, ttl, beat).await,
        }
        .map_err(err)?;
        Ok(grant(group, owner, row))
    }

    async fn renew(&self, g: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        let ttl = ms(ttl);
        let epoch = g.epoch as i64;
        let err = self.query_err("renewing the lease");
        let row = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = format!(
                    "UPDATE fix_lease SET ttl_ms = ?4, expires_at_ms = MAX({SQLITE_NOW} + ?4, expires_at_ms + 1) WHERE grp = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at_ms <> 0 RETURNING epoch, expires_at_ms"
                );
                sqlx::query_as::<_, (i64, i64)>(&sql).bind(&g.group).bind(&g.owner).bind(epoch).bind(ttl).fetch_optional(p).await
            }
            Pool::Postgres(p) => {
                let sql = format!(
                    "UPDATE fix_lease SET ttl_ms = $4, expires_at_ms = GREATEST({PG_NOW} + $4, expires_at_ms + 1) WHERE grp = $1 AND owner = $2 AND epoch = $3 AND expires_at_ms <> 0 RETURNING epoch, expires_at_ms"
                );
                sqlx::query_as::<_, (i64, i64)>(&sql).bind(&g.group).bind(&g.owner).bind(epoch).bind(ttl).fetch_optional(p).await
            }
            Pool::MySql(p) => {
                let sql = format!(
                    "UPDATE fix_lease SET ttl_ms = ?, expires_at_ms = GREATEST({MY_NOW} + ?, expires_at_ms + 1) WHERE grp = ? AND owner = ? AND epoch = ? AND expires_at_ms <> 0"
                );
                Self::renew_mysql(p, &sql, g, ttl).await
            }
        }
        .map_err(err)?;
        Ok(grant(&g.group, &g.owner, row))
    }

    async fn set_in_sync(
        &self,
        g: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError> {
        let epoch = g.epoch as i64;
        let members = record.encode();
        let check = i64::from(expected.is_some());
        let expected = expected.and_then(InSync::encode);
        let err = self.query_err("recording the in-sync set");
        let affected = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = "UPDATE fix_lease SET in_sync = ?4 WHERE grp = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at_ms <> 0 AND (?5 = 0 OR in_sync IS ?6)";
                sqlx::query(sql).bind(&g.group).bind(&g.owner).bind(epoch).bind(members).bind(check).bind(expected).execute(p).await.map(|d| d.rows_affected())
            }
            Pool::Postgres(p) => {
                let sql = "UPDATE fix_lease SET in_sync = $4 WHERE grp = $1 AND owner = $2 AND epoch = $3 AND expires_at_ms <> 0 AND ($5::bigint = 0 OR in_sync IS NOT DISTINCT FROM $6::text)";
                sqlx::query(sql).bind(&g.group).bind(&g.owner).bind(epoch).bind(members).bind(check).bind(expected).execute(p).await.map(|d| d.rows_affected())
            }
            Pool::MySql(p) => Self::set_in_sync_mysql(p, g, check, expected, members).await,
        }
        .map_err(err)?;
        Ok(affected == 1)
    }

    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        self.remove_in_sync(group, None).await.map(|_| ())
    }

    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.remove_in_sync(group, Some(epoch)).await
    }

    async fn release(&self, g: &Grant) -> Result<bool, LeaseError> {
        let epoch = g.epoch as i64;
        let err = self.query_err("releasing the lease");
        let affected = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = "UPDATE fix_lease SET expires_at_ms = 0 WHERE grp = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at_ms <> 0";
                sqlx::query(sql).bind(&g.group).bind(&g.owner).bind(epoch).execute(p).await.map(|d| d.rows_affected())
            }
            Pool::Postgres(p) => {
                let sql = "UPDATE fix_lease SET expires_at_ms = 0 WHERE grp = $1 AND owner = $2 AND epoch = $3 AND expires_at_ms <> 0";
                sqlx::query(sql).bind(&g.group).bind(&g.owner).bind(epoch).execute(p).await.map(|d| d.rows_affected())
            }
            Pool::MySql(p) => {
                let sql = "UPDATE fix_lease SET expires_at_ms = 0 WHERE grp = ? AND owner = ? AND epoch = ? AND expires_at_ms <> 0";
                sqlx::query(sql).bind(&g.group).bind(&g.owner).bind(epoch).execute(p).await.map(|d| d.rows_affected())
            }
        }
        .map_err(err)?;
        Ok(affected == 1)
    }

    async fn read(&self, group: &str) -> Result<Option<LeaseState>, LeaseError> {
        Ok(self.row(group).await?.map(|(state, _)| state))
    }

    fn watch_ends(&self, group: &str) -> Option<std::time::Instant> {
        self.watcher.watch_ends(group)
    }

    fn backend(&self) -> &'static str {
        self.backend_name()
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_appear_in_messages() {
        assert_eq!(
            redact("postgres://user:secret@db:5432/x"),
            "postgres://…@db:5432/x"
        );
        assert_eq!(redact("sqlite:///tmp/l.db"), "sqlite:///tmp/l.db");
    }
}
