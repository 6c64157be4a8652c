//! The DynamoDB backend against moto (`FIX_TEST_MOTO_URL`, started by scripts/test.sh).

mod common;

use fix_lease::dynamo::DynamoLeaseStore;
use fix_lease::LeaseStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn store() -> DynamoLeaseStore {
    let url = std::env::var("FIX_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("set FIX_TEST_MOTO_URL to a moto server (scripts/test.sh starts one)")
    });
    let s = DynamoLeaseStore::with_endpoint(&url, "us-east-1", &common::unique("fix_lease"));
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
    let b = common::taken_by_watching(&s, "g", "node-b", ttl, Instant::now(), "dynamodb").await;
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
    common::in_sync_rule(&s, "dynamodb").await;
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
    common::taken_by_watching(&b, "skew", "node-b", ttl, last_renew, "dynamodb").await;
}

/// An engine of the previous version renews by setting `expires_at_ms` only (it
/// knows no `beat`): during a rolling upgrade, a new standby must still see it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_by_an_older_engine_keep_a_new_contender_out() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let url = std::env::var("FIX_TEST_MOTO_URL").expect("FIX_TEST_MOTO_URL");
    let table = common::unique("fix_lease");
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
    let g = common::taken_by_watching(&s, "up", "new-engine", ttl, last_renew, "dynamodb").await;
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
