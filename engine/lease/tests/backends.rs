//! Every SQL backend against a real database: SQLite (a file), PostgreSQL and MariaDB on
//! this machine, each in a database created for this run.
//!
//! `FIX_TEST_POSTGRES_URL` / `FIX_TEST_MYSQL_URL` override the admin connections
//! (defaults: postgres://postgres@127.0.0.1:5432/postgres, mysql://root@127.0.0.1:3306/test).

mod common;

use common::{in_sync_rule, taken_by_watching, unique};
use fix_lease::sql::SqlLeaseStore;
use fix_lease::{Holder, LeaseConfig, LeaseError, LeaseStore};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Databases left by earlier test runs (other process ids), not this run's.
fn leftovers(names: Vec<String>) -> Vec<String> {
    let mine = format!("fixlease_{}_", std::process::id());
    names
        .into_iter()
        .filter(|n| !n.starts_with(&mine))
        .collect()
}

/// A fresh database on the server behind `admin_url`; returns the URL to it.
async fn fresh_database(kind: &str) -> String {
    match kind {
        "postgres" => {
            let admin = std::env::var("FIX_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = unique("fixlease");
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL must run at {admin} (scripts/test.sh starts it): {e}")
                });
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'fixlease_%'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap_or_default();
            for db in leftovers(old) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                    .execute(&mut c)
                    .await;
            }
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .expect("create database");
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or(admin);
            format!("{base}/{name}")
        }
        "mysql" => {
            let admin = std::env::var("FIX_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
            let name = unique("fixlease");
            let mut c = sqlx::MySqlConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("MariaDB must run at {admin} (scripts/test.sh starts it): {e}")
                });
            let old: Vec<String> = sqlx::query_scalar("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'fixlease_%'")
                .fetch_all(&mut c)
                .await
                .unwrap_or_default();
            for db in leftovers(old) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                    .execute(&mut c)
                    .await;
            }
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .expect("create database");
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or(admin);
            format!("{base}/{name}")
        }
        _ => unreachable!("unknown backend {kind}"),
    }
}

async fn store(kind: &str, dir: &tempfile::TempDir) -> SqlLeaseStore {
    store_at(kind, dir).await.0
}

/// A store and its URL.
async fn store_at(kind: &str, dir: &tempfile::TempDir) -> (SqlLeaseStore, String) {
    let url = match kind {
        "sqlite" => format!("sqlite://{}", dir.path().join("lease.db").display()),
        other => fresh_database(other).await,
    };
    let s = SqlLeaseStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    (s, url)
}

/// Runs one statement on the store's database, as a person with a SQL prompt would.
async fn execute(kind: &str, url: &str, sql: &str) {
    match kind {
        "sqlite" => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        "postgres" => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        _ => {
            let mut c = sqlx::MySqlConnection::connect(url).await.expect("mysql");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
    }
}

const KINDS: [&str; 3] = ["sqlite", "postgres", "mysql"];
const TTL: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_of_the_recorded_in_sync_set_may_acquire() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        in_sync_rule(&store(kind, &dir).await, kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_table_from_before_the_in_sync_set_gets_its_column() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("sqlite");
        sqlx::query("CREATE TABLE fix_lease (grp TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)")
            .execute(&mut c)
            .await
            .expect("old table");
        sqlx::query("INSERT INTO fix_lease VALUES ('isr', 'old', 4, 0)")
            .execute(&mut c)
            .await
            .expect("old row");
    }
    let s = SqlLeaseStore::connect(&url).await.expect("migrates");
    let state = s.read("isr").await.expect("read").expect("row");
    assert_eq!((state.epoch, state.in_sync), (4, None));
    let g = s
        .acquire("isr", "a", TTL)
        .await
        .expect("call")
        .expect("expired");
    assert_eq!(g.epoch, 5);
    assert!(s.release(&g).await.expect("release"));
    in_sync_rule(&s, "sqlite migrated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_until_it_expires_and_epochs_only_grow() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(kind, &dir).await;
        let a = s
            .acquire("g1", "node-a", TTL)
            .await
            .expect("query")
            .expect("free lease");
        assert_eq!(a.epoch, 1, "{kind}");
        assert!(
            s.acquire("g1", "node-b", TTL)
                .await
                .expect("query")
                .is_none(),
            "{kind}: held by a"
        );
        let a2 = s.renew(&a, TTL).await.expect("query").expect("a renews");
        assert!(a2.expires_at_ms >= a.expires_at_ms, "{kind}");
        // b takes it once it has watched the renewed row for a TTL.
        let b = taken_by_watching(&s, "g1", "node-b", TTL, Instant::now(), kind).await;
        assert_eq!(b.epoch, 2, "{kind}: a new holder gets a new epoch");
        assert!(
            s.renew(&a2, TTL).await.expect("query").is_none(),
            "{kind}: a's lease is gone"
        );
        assert!(
            !s.release(&a2).await.expect("query"),
            "{kind}: a cannot release b's lease"
        );
        let state = s.read("g1").await.expect("query").expect("row");
        assert_eq!(
            (state.owner.as_str(), state.epoch, state.is_held()),
            ("node-b", 2, true),
            "{kind}"
        );
        assert!(
            s.read("never-leased").await.expect("query").is_none(),
            "{kind}"
        );
    }
}

/// The store's clock steps 10 s forward right after a renew (emulated: the stored
/// expiry moved 10 s into the past, which is what the store then sees): the holder,
/// which trusts its own monotonic deadline, still leads, so nobody else may get the
/// lease; the holder's next renew goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_clock_that_steps_forward_hands_no_lease_to_a_contender() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let (s, url) = store_at(kind, &dir).await;
        let a = s
            .acquire("g5", "node-a", TTL)
            .await
            .expect("query")
            .expect("free");
        assert!(s
            .acquire("g5", "node-b", TTL)
            .await
            .expect("query")
            .is_none());
        execute(
            kind,
            &url,
            "UPDATE fix_lease SET expires_at_ms = expires_at_ms - 10000 WHERE grp = 'g5'",
        )
        .await;
        let stepped = Instant::now();
        while stepped.elapsed() < TTL / 2 {
            assert!(
                s.acquire("g5", "node-b", TTL)
                    .await
                    .expect("query")
                    .is_none(),
                "{kind}: the store's clock stepped and b took the lease a still trusts"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let a = s
            .renew(&a, TTL)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("{kind}: a's renew was refused after the step"));
        let b = taken_by_watching(&s, "g5", "node-b", TTL, Instant::now(), kind).await;
        assert_eq!(b.epoch, a.epoch + 1, "{kind}");
    }
}

/// The store's clock steps 10 s back right after a write (emulated: the stored expiry
/// moves 10 s later, which is what the database then sees), and the holder dies: a
/// contender takes the lease a TTL after its last look, not 10 s later, and the old
/// holder's renew is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_clock_that_steps_back_does_not_strand_the_lease() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let (s, url) = store_at(kind, &dir).await;
        let a = s
            .acquire("g6", "node-a", TTL)
            .await
            .expect("query")
            .expect("free");
        execute(
            kind,
            &url,
            "UPDATE fix_lease SET expires_at_ms = expires_at_ms + 10000 WHERE grp = 'g6'",
        )
        .await;
        let b = taken_by_watching(&s, "g6", "node-b", TTL, Instant::now(), kind).await;
        assert_eq!(b.epoch, a.epoch + 1, "{kind}");
        assert!(
            s.renew(&a, TTL).await.expect("query").is_none(),
            "{kind}: the old holder renewed a lease b holds"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lets_a_standby_take_over_at_once_with_a_higher_epoch() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(kind, &dir).await;
        let a = s
            .acquire("g2", "node-a", Duration::from_secs(30))
            .await
            .expect("query")
            .expect("lease");
        assert!(s.release(&a).await.expect("query"), "{kind}");
        let b = s
            .acquire("g2", "node-b", TTL)
            .await
            .expect("query")
            .expect("released lease");
        assert_eq!(b.epoch, a.epoch + 1, "{kind}");
        // The same owner cannot take an unexpired lease either: a restarted node waits.
        assert!(
            s.acquire("g2", "node-b", TTL)
                .await
                .expect("query")
                .is_none(),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_simultaneous_contenders_exactly_one_wins() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Arc::new(store(kind, &dir).await);
        for round in 0..5 {
            let group = format!("race{round}");
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let s = Arc::clone(&s);
                    let group = group.clone();
                    tokio::spawn(async move { s.acquire(&group, &format!("node-{i}"), TTL).await })
                })
                .collect();
            let mut winners = 0;
            for t in tasks {
                if t.await
                    .expect("join")
                    .unwrap_or_else(|e| panic!("{kind}: {e}"))
                    .is_some()
                {
                    winners += 1;
                }
            }
            assert_eq!(winners, 1, "{kind} round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_stops_trusting_its_lease_before_the_store_expires_it() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(kind, &dir).await;
        let mut cfg = LeaseConfig::new("g3", "node-a");
        cfg.ttl = Duration::from_millis(800);
        cfg.safety_margin = Duration::from_millis(200);
        let before = Instant::now();
        let h = Holder::acquire(&s, &cfg)
            .await
            .expect("query")
            .expect("lease");
        assert!(
            h.valid_until <= Instant::now() + cfg.trust_window(),
            "{kind}"
        );
        assert!(h.valid_until >= before + cfg.trust_window(), "{kind}");
        // Until the local deadline passes, nobody else can get the lease.
        while h.is_valid(Instant::now()) {
            assert!(
                s.acquire("g3", "node-b", cfg.ttl)
                    .await
                    .expect("query")
                    .is_none(),
                "{kind}: two leaders"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let renewed = h.renew(&s, &cfg).await.expect("query");
        assert!(
            renewed.is_some(),
            "{kind}: within the TTL the holder may still renew"
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_naming_it_without_credentials() {
    let e = SqlLeaseStore::connect("postgres://fix:hunter2@127.0.0.1:1/nowhere")
        .await
        .expect_err("nothing listens on port 1");
    let text = e.to_string();
    assert!(
        matches!(
            e,
            LeaseError::Connect {
                backend: "postgres",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );
    let e = SqlLeaseStore::connect("redis://127.0.0.1")
        .await
        .expect_err("unsupported");
    assert!(e.to_string().contains("sqlite://"), "{e}");
}
