//! Every SQL backend against a real database: SQLite (a file), PostgreSQL and MariaDB on
//! this machine, each in a database created for this run.
//!
//! `FIX_TEST_POSTGRES_URL` / `FIX_TEST_MYSQL_URL` override the admin connections
//! (defaults: postgres://postgres@127.0.0.1:5432/postgres, mysql://root@127.0.0.1:3306/test).

use fix_lease::sql::SqlLeaseStore;
use fix_lease::{Grant, Holder, InSync, LeaseConfig, LeaseError, LeaseStore};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

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

/// Contends every 50 ms, as the role loop does, until `owner` gets the lease, which was
/// last written (renewed, or taken) at `since`: never before a TTL of watching has passed
/// since then, and within 5 s.
async fn taken_by_watching(
    s: &dyn LeaseStore,
    group: &str,
    owner: &str,
    ttl: Duration,
    since: Instant,
    what: &str,
) -> Grant {
    let grant = loop {
        if let Some(g) = s.acquire(group, owner, ttl).await.expect("acquire") {
            break g;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{what}: never taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        since.elapsed() >= ttl,
        "{what}: taken {:?} after the holder's last write, before the TTL of {ttl:?}",
        since.elapsed()
    );
    grant
}

/// The in-sync rule as every backend must keep it: only recorded members acquire, only
/// the live holder records, a write expecting an older record is refused, an empty set
/// lifts the rule.
async fn in_sync_rule(s: &dyn LeaseStore, kind: &str) {
    let rec = |v: &[&str], version: u64| InSync {
        members: v.iter().map(|n| n.to_string()).collect(),
        version,
    };
    let none = InSync::default();
    let long = Duration::from_secs(30);
    let a = s
        .acquire("isr", "a", long)
        .await
        .expect("call")
        .expect("free");
    let ab = rec(&["b", "a"], 1);
    assert!(s.set_in_sync(&a, None, &ab).await.expect("call"), "{kind}");
    let state = s.read("isr").await.expect("call").expect("row");
    assert_eq!(
        state.in_sync,
        Some(rec(&["a", "b"], 1)),
        "{kind}: stored sorted"
    );
    assert!(
        !s.set_in_sync(&a, Some(&rec(&["a"], 0)), &rec(&["a", "c"], 2))
            .await
            .expect("call"),
        "{kind}: a write expecting a record no longer stored (one arriving late) is refused"
    );
    assert!(
        !s.set_in_sync(&a, Some(&rec(&["a", "b"], 0)), &rec(&["a"], 2))
            .await
            .expect("call"),
        "{kind}: the same members under another version are another record"
    );
    assert!(
        !s.set_in_sync(&a, Some(&none), &rec(&["a"], 2))
            .await
            .expect("call"),
        "{kind}: a record is stored"
    );
    let ab2 = rec(&["a", "b"], 2);
    assert!(
        s.set_in_sync(&a, Some(&ab), &ab2).await.expect("call"),
        "{kind}: expecting the stored record"
    );
    assert!(s.release(&a).await.expect("call"), "{kind}");
    assert!(
        s.acquire("isr", "c", long).await.expect("call").is_none(),
        "{kind}: c is not in the in-sync set"
    );
    let b = s
        .acquire("isr", "b", long)
        .await
        .expect("call")
        .expect("b is in sync");
    assert_eq!(b.epoch, a.epoch + 1, "{kind}");
    assert!(
        !s.set_in_sync(&a, None, &rec(&["a"], 3))
            .await
            .expect("call"),
        "{kind}: a deposed holder cannot record"
    );
    let only_b = rec(&["b"], 10);
    assert!(
        s.set_in_sync(&b, None, &only_b).await.expect("call"),
        "{kind}: a takeover record expects nothing"
    );
    assert!(
        s.set_in_sync(&b, Some(&only_b), &only_b)
            .await
            .expect("call"),
        "{kind}: recording the same record again is still ours"
    );
    assert!(s.release(&b).await.expect("call"), "{kind}");
    assert!(
        s.acquire("isr", "a", long).await.expect("call").is_none(),
        "{kind}: a was dropped from the set"
    );
    let b = s.acquire("isr", "b", long).await.expect("call").expect("b");
    assert!(
        s.set_in_sync(&b, Some(&only_b), &none).await.expect("call"),
        "{kind}"
    );
    assert_eq!(
        s.read("isr").await.expect("call").expect("row").in_sync,
        None,
        "{kind}"
    );
    assert!(
        s.set_in_sync(&b, Some(&none), &rec(&["b"], 11))
            .await
            .expect("call"),
        "{kind}: expecting none recorded"
    );
    assert!(
        s.set_in_sync(&b, None, &none).await.expect("call"),
        "{kind}"
    );
    assert!(s.release(&b).await.expect("call"), "{kind}");
    assert!(
        s.acquire("isr", "c", long).await.expect("call").is_some(),
        "{kind}: without a recorded set anyone may acquire"
    );
}

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

mod dynamodb {
    //! The DynamoDB backend against moto (`FIX_TEST_MOTO_URL`, started by scripts/test.sh).

    use fix_lease::dynamo::DynamoLeaseStore;
    use fix_lease::LeaseStore;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn store() -> DynamoLeaseStore {
        let url = std::env::var("FIX_TEST_MOTO_URL").unwrap_or_else(|_| {
            panic!("set FIX_TEST_MOTO_URL to a moto server (scripts/test.sh starts one)")
        });
        let s = DynamoLeaseStore::with_endpoint(&url, "us-east-1", &super::unique("fix_lease"));
        s.ensure_table().await.expect("table");
        s.ensure_table().await.expect("creating it again is fine");
        s
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dynamodb_leases_are_exclusive_expire_and_grow_their_epoch() {
        let s = store().await;
        let ttl = Duration::from_millis(600);
        let a = s
            .acquire("g", "node-a", ttl)
            .await
            .expect("call")
            .expect("free");
        assert_eq!(a.epoch, 1);
        assert!(s.acquire("g", "node-b", ttl).await.expect("call").is_none());
        let a2 = s.renew(&a, ttl).await.expect("call").expect("renewed");
        assert!(a2.expires_at_ms >= a.expires_at_ms);
        // Taken once b has watched the renewed item for a TTL.
        let b = super::taken_by_watching(&s, "g", "node-b", ttl, Instant::now(), "dynamodb").await;
        assert_eq!(b.epoch, 2);
        assert!(s.renew(&a2, ttl).await.expect("call").is_none());
        assert!(!s.release(&a2).await.expect("call"));
        assert!(s.release(&b).await.expect("call"));
        let c = s
            .acquire("g", "node-c", ttl)
            .await
            .expect("call")
            .expect("released");
        assert_eq!(c.epoch, 3);
        let state = s.read("g").await.expect("call").expect("item");
        assert_eq!((state.owner.as_str(), state.epoch), ("node-c", 3));
        assert!(s.read("none").await.expect("call").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dynamodb_keeps_the_in_sync_rule() {
        let s = store().await;
        super::in_sync_rule(&s, "dynamodb").await;
        s.clear_in_sync("never-leased")
            .await
            .expect("no item: nothing to do");
        assert!(
            s.read("never-leased").await.expect("call").is_none(),
            "clearing creates no item (a bare one would block every acquire)"
        );
    }

    /// Two contenders on one table, each with its own wall clock.
    async fn pair(a_offset_ms: i64, b_offset_ms: i64) -> (DynamoLeaseStore, DynamoLeaseStore) {
        let a = store().await;
        let b = a.clone();
        let a = a.with_wall_clock(move || fix_lease::dynamo::system_ms() + a_offset_ms);
        let b = b.with_wall_clock(move || fix_lease::dynamo::system_ms() + b_offset_ms);
        (a, b)
    }

    /// The holder renews every 100 ms for 2 s while the other contends every 50 ms: it
    /// must never get the lease. Then the holder stops: the other gets it, but not
    /// before a TTL has passed since the last renew (by its own monotonic clock).
    async fn holder_keeps_the_lease_whatever_the_clocks(a_offset_ms: i64, b_offset_ms: i64) {
        let (a, b) = pair(a_offset_ms, b_offset_ms).await;
        let ttl = Duration::from_millis(600);
        let mut held = a
            .acquire("skew", "node-a", ttl)
            .await
            .expect("call")
            .expect("free");
        let until = Instant::now() + Duration::from_secs(2);
        let mut next_renew = Instant::now();
        let mut last_renew = Instant::now();
        while Instant::now() < until {
            if Instant::now() >= next_renew {
                last_renew = Instant::now();
                held = a.renew(&held, ttl).await.expect("call").unwrap_or_else(|| {
                    panic!("a's renew was refused (clocks a{a_offset_ms:+} b{b_offset_ms:+} ms)")
                });
                next_renew = Instant::now() + Duration::from_millis(100);
            }
            let taken = b.acquire("skew", "node-b", ttl).await.expect("call");
            assert!(
                taken.is_none(),
                "b (clock {b_offset_ms:+} ms) took the lease a (clock {a_offset_ms:+} ms) renews: two leaders"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Sent at `last_renew`: a trusts its lease until then + TTL − margin at most.
        super::taken_by_watching(&b, "skew", "node-b", ttl, last_renew, "dynamodb").await;
    }

    /// An engine of the previous version renews by setting `expires_at_ms` only (it
    /// knows no `beat`): during a rolling upgrade, a new standby must still see it live.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renews_by_an_older_engine_keep_a_new_contender_out() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let url = std::env::var("FIX_TEST_MOTO_URL").expect("FIX_TEST_MOTO_URL");
        let table = super::unique("fix_lease");
        let s = DynamoLeaseStore::with_endpoint(&url, "us-east-1", &table);
        s.ensure_table().await.expect("table");
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .endpoint_url(&url)
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "test", "test", None, None, "static",
                ))
                .build(),
        );
        let now = || fix_lease::dynamo::system_ms();
        // The old engine's acquire: owner, expiry, epoch; no beat.
        client
            .put_item()
            .table_name(&table)
            .item("grp", AttributeValue::S("up".into()))
            .item("owner", AttributeValue::S("old-engine".into()))
            .item("epoch", AttributeValue::N("1".into()))
            .item(
                "expires_at_ms",
                AttributeValue::N((now() + 600).to_string()),
            )
            .send()
            .await
            .expect("old acquire");
        let ttl = Duration::from_millis(600);
        let until = Instant::now() + Duration::from_secs(2);
        let mut last_renew = Instant::now();
        while Instant::now() < until {
            last_renew = Instant::now();
            client
                .update_item()
                .table_name(&table)
                .key("grp", AttributeValue::S("up".into()))
                .update_expression("SET expires_at_ms = :exp")
                .expression_attribute_values(":exp", AttributeValue::N((now() + 600).to_string()))
                .send()
                .await
                .expect("old renew");
            for _ in 0..2 {
                assert!(
                    s.acquire("up", "new-engine", ttl)
                        .await
                        .expect("call")
                        .is_none(),
                    "a new engine took the lease an older one keeps renewing"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let g = super::taken_by_watching(&s, "up", "new-engine", ttl, last_renew, "dynamodb").await;
        assert_eq!(g.epoch, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_contender_whose_clock_runs_ahead_does_not_take_a_renewed_lease() {
        holder_keeps_the_lease_whatever_the_clocks(0, 5_000).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_holder_whose_clock_steps_back_keeps_its_lease() {
        holder_keeps_the_lease_whatever_the_clocks(-5_000, 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_holder_whose_clock_steps_forward_keeps_renewing() {
        holder_keeps_the_lease_whatever_the_clocks(5_000, 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_simultaneous_dynamodb_contenders_exactly_one_wins() {
        let s = Arc::new(store().await);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    s.acquire("race", &format!("node-{i}"), Duration::from_secs(5))
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await.expect("join").expect("call").is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }
}
