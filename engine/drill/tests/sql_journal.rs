//! The SQL journal against real PostgreSQL and MariaDB: a chunk is stored only in the
//! transaction that finds the writer's epoch in the lease row, so a leader that lost the
//! lease cannot add anything, and a position is written once.

use fix_drill::backend::{Backend, LeaseDb, Servers};
use fix_engine::replication::sql::{SqlJournal, SqlJournalError};
use std::time::Duration;

/// Bytes shaped like journal records: the epoch sits at offset 21.
fn chunk(epoch: u64, len: usize) -> Vec<u8> {
    let mut b = vec![7u8; len.max(29)];
    b[21..29].copy_from_slice(&epoch.to_le_bytes());
    b
}

async fn a_stale_epoch_writes_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = LeaseDb::prepare(backend, &Servers::from_env(), dir.path())
        .await
        .expect("fresh database");
    let lease = fix_lease::connect(&db.url).await.expect("lease store");
    let sql = SqlJournal::connect(&db.url, "g")
        .await
        .expect("sql journal");
    let first = lease
        .acquire("g", "a", Duration::from_millis(200))
        .await
        .expect("acquire")
        .expect("free");
    sql.append(first.epoch, 0, &chunk(first.epoch, 40))
        .await
        .expect("the holder writes");
    // b takes the lease once it has watched a's row unchanged for a TTL.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let second = loop {
        if let Some(g) = lease
            .acquire("g", "b", Duration::from_millis(200))
            .await
            .expect("acquire")
        {
            break g;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a's abandoned lease was never taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(second.epoch > first.epoch);
    match sql.append(first.epoch, 40, &chunk(first.epoch, 30)).await {
        Err(SqlJournalError::Fenced { ours, current }) => {
            assert_eq!((ours, current), (first.epoch, second.epoch));
        }
        other => panic!("a stale leader's write must be refused: {other:?}"),
    }
    sql.append(second.epoch, 40, &chunk(second.epoch, 50))
        .await
        .expect("the new holder writes");
    assert!(
        sql.append(second.epoch, 40, &chunk(second.epoch, 50))
            .await
            .is_err(),
        "a position is written once"
    );
    let chunks = sql.chunks_from(0, 10).await.expect("read");
    let got: Vec<(u64, u64, usize)> = chunks
        .iter()
        .map(|c| (c.position, c.epoch, c.records.len()))
        .collect();
    assert_eq!(got, vec![(0, first.epoch, 40), (40, second.epoch, 50)]);
    assert_eq!(sql.end().await.expect("end"), 90);
    assert_eq!(
        sql.chunk_at_or_before(60).await.expect("find"),
        Some((40, second.epoch, 50))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sql_journal_refuses_a_stale_epoch() {
    a_stale_epoch_writes_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sql_journal_refuses_a_stale_epoch() {
    a_stale_epoch_writes_nothing(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_lease_cannot_carry_the_sql_journal() {
    let e = SqlJournal::connect("sqlite://x.db", "g")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("PostgreSQL or MySQL"), "{e}");
}
