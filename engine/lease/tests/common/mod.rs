//! Helpers shared by the backend tests.

use fix_lease::{Grant, InSync, LeaseStore};
use std::time::{Duration, Instant};

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Contends every 50 ms, as the role loop does, until `owner` gets the lease, which was
/// last written (renewed, or taken) at `since`: never before a TTL of watching has passed
/// since then, and within 5 s.
pub async fn taken_by_watching(
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
pub async fn in_sync_rule(s: &dyn LeaseStore, kind: &str) {
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
    let c = s
        .acquire("isr", "c", long)
        .await
        .expect("call")
        .expect("without a recorded set anyone may acquire");
    // An operator clears a set naming instances that are gone, only at the epoch read.
    assert!(s
        .set_in_sync(&c, None, &rec(&["c", "gone"], 1))
        .await
        .expect("call"));
    assert!(s.release(&c).await.expect("call"), "{kind}");
    assert!(
        !s.clear_in_sync_at("isr", c.epoch - 1).await.expect("call"),
        "{kind}: the epoch moved since it was read: nothing cleared"
    );
    assert!(
        s.read("isr")
            .await
            .expect("call")
            .expect("row")
            .in_sync
            .is_some(),
        "{kind}"
    );
    assert!(
        s.clear_in_sync_at("isr", c.epoch).await.expect("call"),
        "{kind}: cleared at the epoch read"
    );
    assert_eq!(
        s.read("isr").await.expect("call").expect("row").in_sync,
        None
    );
    assert!(
        !s.clear_in_sync_at("never-leased-isr", 1)
            .await
            .expect("call"),
        "{kind}: no lease, nothing cleared"
    );
    assert!(
        s.read("never-leased-isr").await.expect("call").is_none(),
        "{kind}"
    );
}
