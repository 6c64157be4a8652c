//! The role loop over a real SQLite lease store: one leader at a time, step-down hands
//! over, and a leader cut off from the store demotes itself before anyone can take over.

use async_trait::async_trait;
use fix_lease::sql::SqlLeaseStore;
use fix_lease::{
    Grant, InSync, Keeper, Leadership, LeaseConfig, LeaseError, LeaseState, LeaseStore,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fault injection around the real store: while `down`, every call hangs (an unresponsive
/// database, as after a network cut), then fails.
struct Cuttable {
    inner: SqlLeaseStore,
    down: AtomicBool,
}

impl Cuttable {
    async fn gate(&self) -> Result<(), LeaseError> {
        if self.down.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Err(LeaseError::UnsupportedUrl("cut off".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseStore for Cuttable {
    async fn acquire(&self, g: &str, o: &str, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        self.gate().await?;
        self.inner.acquire(g, o, ttl).await
    }
    async fn renew(&self, grant: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        self.gate().await?;
        self.inner.renew(grant, ttl).await
    }
    async fn release(&self, grant: &Grant) -> Result<bool, LeaseError> {
        self.gate().await?;
        self.inner.release(grant).await
    }
    async fn set_in_sync(
        &self,
        grant: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError> {
        self.gate().await?;
        self.inner.set_in_sync(grant, expected, record).await
    }
    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        self.gate().await?;
        self.inner.clear_in_sync(group).await
    }
    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.gate().await?;
        self.inner.clear_in_sync_at(group, epoch).await
    }
    fn watch_ends(&self, group: &str) -> Option<std::time::Instant> {
        self.inner.watch_ends(group)
    }
    async fn read(&self, g: &str) -> Result<Option<LeaseState>, LeaseError> {
        self.inner.read(g).await
    }
    fn backend(&self) -> &'static str {
        "cuttable"
    }
}

fn cfg(owner: &str) -> LeaseConfig {
    let mut c = LeaseConfig::new("group", owner);
    c.ttl = Duration::from_millis(900);
    c.renew_interval = Duration::from_millis(150);
    c.safety_margin = Duration::from_millis(200);
    c
}

async fn sqlite(dir: &tempfile::TempDir) -> SqlLeaseStore {
    SqlLeaseStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("lease.db").display()
    ))
    .await
    .expect("sqlite")
}

fn is_leader(k: &Keeper) -> bool {
    matches!(k.role(), Leadership::Leader { .. })
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keepers_never_lead_together_and_step_down_hands_over() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn LeaseStore> = Arc::new(sqlite(&dir).await);
    let a = Keeper::spawn(Arc::clone(&store), cfg("a"));
    let b = Keeper::spawn(Arc::clone(&store), cfg("b"));
    until("a leader", Duration::from_secs(3), || {
        is_leader(&a) || is_leader(&b)
    })
    .await;
    let sample_end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < sample_end {
        assert!(!(is_leader(&a) && is_leader(&b)), "two leaders");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (leader, other) = if is_leader(&a) { (&a, &b) } else { (&b, &a) };
    let Leadership::Leader { epoch: first } = leader.role() else {
        unreachable!()
    };
    leader.step_down(Duration::from_secs(5)).await;
    let started = Instant::now();
    until("the other to take over", Duration::from_secs(3), || {
        is_leader(other)
    })
    .await;
    // A release hands over without waiting for the TTL to run out.
    assert!(
        started.elapsed() < cfg("a").ttl,
        "handover took {:?}",
        started.elapsed()
    );
    assert!(!is_leader(leader));
    let Leadership::Leader { epoch: second } = other.role() else {
        unreachable!()
    };
    assert!(second > first, "epoch {second} after {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_store_demotes_before_anyone_takes_over() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = sqlite(&dir).await;
    let cut = Arc::new(Cuttable {
        inner: real.clone(),
        down: AtomicBool::new(false),
    });
    let a = Keeper::spawn(cut.clone(), cfg("a"));
    until("a to lead", Duration::from_secs(3), || is_leader(&a)).await;
    let b = Keeper::spawn(Arc::new(real.clone()), cfg("b"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(is_leader(&a) && !is_leader(&b));

    cut.down.store(true, Ordering::SeqCst);
    let outage = Instant::now();
    let a_demoted = until("a to demote", Duration::from_secs(3), || !is_leader(&a)).await;
    let b_leads = until("b to take over", Duration::from_secs(5), || is_leader(&b)).await;
    assert!(
        a_demoted < b_leads,
        "a demoted after b took over: split brain"
    );
    // The deadline counts from the last renew *sent*, which came before the outage (the
    // 50 ms allow for this test's polling).
    let trusted = a_demoted - outage;
    assert!(
        trusted <= cfg("a").trust_window() + Duration::from_millis(50),
        "a trusted its lease for {trusted:?}"
    );
    println!(
        "outage → a standby {:?}, → b leader {:?}",
        a_demoted - outage,
        b_leads - outage
    );

    // The store comes back: b keeps the lease, a stays standby — one leader again.
    cut.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(is_leader(&b) && !is_leader(&a));
}

/// A multi-region group: only the active region's instance contends. Moving the pin and
/// stepping the leader down hands the lease to the other region with a higher epoch, and
/// moving it again is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_active_region_contends() {
    use fix_lease::region::{active_region, set_active_region};
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn LeaseStore> = Arc::new(sqlite(&dir).await);
    assert_eq!(
        active_region(store.as_ref(), "group").await.expect("read"),
        None
    );
    let pin = set_active_region(store.as_ref(), "group", "east")
        .await
        .expect("pin east");
    assert_eq!(pin.moved_from, None);
    let in_region = |owner: &str, region: &str| {
        let mut c = cfg(owner);
        c.region = Some(region.into());
        c
    };
    let west = Keeper::spawn(Arc::clone(&store), in_region("w1", "west"));
    let east = Keeper::spawn(Arc::clone(&store), in_region("e1", "east"));
    until("east to lead", Duration::from_secs(3), || is_leader(&east)).await;
    let Leadership::Leader { epoch: first } = east.role() else {
        unreachable!()
    };
    // West never contends while east is active, even with the lease free.
    east.step_down(Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !is_leader(&west),
        "west took the lease of an east-pinned group"
    );
    until("east to lead again", Duration::from_secs(3), || {
        is_leader(&east)
    })
    .await;
    assert!(west
        .subscribe()
        .borrow()
        .reason
        .contains("not the active region (east)"));

    let moved = set_active_region(store.as_ref(), "group", "west")
        .await
        .expect("pin west");
    assert_eq!(moved.moved_from.as_deref(), Some("east"));
    assert!(moved.epoch > pin.epoch);
    east.step_down(Duration::from_secs(30)).await;
    until("west to lead", Duration::from_secs(3), || is_leader(&west)).await;
    let Leadership::Leader { epoch: second } = west.role() else {
        unreachable!()
    };
    assert!(second > first, "epoch {second} after {first}");
    let again = set_active_region(store.as_ref(), "group", "west")
        .await
        .expect("pin west again");
    assert_eq!((again.epoch, again.moved_from), (moved.epoch, None));
}

/// A store whose acquire takes `.1` (a call retried through an outage, say).
struct SlowAcquire(SqlLeaseStore, Duration);

#[async_trait]
impl LeaseStore for SlowAcquire {
    async fn acquire(&self, g: &str, o: &str, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        tokio::time::sleep(self.1).await;
        self.0.acquire(g, o, ttl).await
    }
    async fn renew(&self, grant: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        self.0.renew(grant, ttl).await
    }
    async fn release(&self, grant: &Grant) -> Result<bool, LeaseError> {
        self.0.release(grant).await
    }
    async fn set_in_sync(
        &self,
        grant: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError> {
        self.0.set_in_sync(grant, expected, record).await
    }
    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        self.0.clear_in_sync(group).await
    }
    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.0.clear_in_sync_at(group, epoch).await
    }
    async fn read(&self, g: &str) -> Result<Option<LeaseState>, LeaseError> {
        self.0.read(g).await
    }
    fn backend(&self) -> &'static str {
        "slow"
    }
}

/// Once `k` leads, it stays leader for `how_long` (every role change is watched, not
/// sampled, so a leadership of a few milliseconds is seen too).
async fn leads_without_a_break(k: &Keeper, how_long: Duration) {
    let mut rx = k.subscribe();
    let first = rx
        .wait_for(|s| matches!(s.role, Leadership::Leader { .. }))
        .await
        .expect("keeper alive")
        .clone();
    let end = tokio::time::Instant::now() + how_long;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                changed.expect("keeper alive");
                let s = rx.borrow_and_update().clone();
                assert!(
                    matches!(s.role, Leadership::Leader { .. }),
                    "published leader ({}) then demoted: {}",
                    first.reason,
                    s.reason
                );
            }
            () = tokio::time::sleep_until(end) => return,
        }
    }
}

/// A keeper on a SQLite store whose acquires take `acquire`: once it leads (within
/// `limit`), it leads without a break for 800 ms.
async fn leads_steadily_despite_a_slow_acquire(acquire: Duration, limit: Duration) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SlowAcquire(sqlite(&dir).await, acquire);
    let k = Keeper::spawn(Arc::new(store), cfg("a"));
    tokio::time::timeout(limit, leads_without_a_break(&k, Duration::from_millis(800)))
        .await
        .unwrap_or_else(|_| panic!("no leader within {limit:?}"));
}

/// An acquire that takes most of the trust window is renewed at once instead of being
/// dropped at the local deadline while still good in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_acquire_is_renewed_before_its_deadline() {
    // Trust window 700 ms − 550 ms acquire = 150 ms left, no more than the 150 ms interval.
    leads_steadily_despite_a_slow_acquire(Duration::from_millis(550), Duration::from_secs(3)).await;
}

/// An acquire that outlasts the whole trust window (seen after a DynamoDB outage: the
/// client's retries ended after the window) is confirmed by a renew before the keeper
/// says it leads: it never publishes a leadership whose window has already passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_slower_than_the_trust_window_is_confirmed_before_leading() {
    leads_steadily_despite_a_slow_acquire(Duration::from_millis(900), Duration::from_secs(4)).await;
}

/// The real store, counting when acquires were made.
struct Counted {
    inner: SqlLeaseStore,
    acquires: std::sync::Mutex<Vec<Instant>>,
}

impl Counted {
    fn acquires(&self) -> Vec<Instant> {
        self.acquires.lock().expect("lock").clone()
    }
}

#[async_trait]
impl LeaseStore for Counted {
    async fn acquire(&self, g: &str, o: &str, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        self.acquires.lock().expect("lock").push(Instant::now());
        self.inner.acquire(g, o, ttl).await
    }
    async fn renew(&self, grant: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        self.inner.renew(grant, ttl).await
    }
    async fn release(&self, grant: &Grant) -> Result<bool, LeaseError> {
        self.inner.release(grant).await
    }
    async fn set_in_sync(
        &self,
        grant: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError> {
        self.inner.set_in_sync(grant, expected, record).await
    }
    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        self.inner.clear_in_sync(group).await
    }
    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.inner.clear_in_sync_at(group, epoch).await
    }
    fn watch_ends(&self, group: &str) -> Option<Instant> {
        self.inner.watch_ends(group)
    }
    async fn read(&self, g: &str) -> Result<Option<LeaseState>, LeaseError> {
        self.inner.read(g).await
    }
    fn backend(&self) -> &'static str {
        "counted"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_now_reads_at_once_and_never_shortens_the_watch() {
    let dir = tempfile::tempdir().expect("tmp");
    let ttl = Duration::from_millis(3000);
    let holder_cfg = {
        let mut c = cfg("a");
        c.ttl = ttl;
        c.renew_interval = Duration::from_millis(500);
        c.safety_margin = Duration::from_millis(300);
        c
    };
    let a = Keeper::spawn(Arc::new(sqlite(&dir).await), holder_cfg);
    until("a leading", Duration::from_secs(5), || is_leader(&a)).await;
    // The holder dies without a word: its lease stays in the store.
    a.abort();
    let aborted = Instant::now();
    // A contender that looks only every 2.5 s on its own.
    let store = Arc::new(Counted {
        inner: sqlite(&dir).await,
        acquires: Default::default(),
    });
    let mut b_cfg = cfg("b");
    b_cfg.ttl = ttl;
    b_cfg.renew_interval = Duration::from_millis(2500);
    b_cfg.safety_margin = Duration::from_millis(300);
    let b = Keeper::spawn(Arc::clone(&store) as Arc<dyn LeaseStore>, b_cfg);
    until("a first look", Duration::from_secs(2), || {
        !store.acquires().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.acquires().len(), 1, "no second look on its own yet");
    let told = Instant::now();
    b.look_now_handle().look_now();
    let looked = until("a look when told", Duration::from_secs(2), || {
        store.acquires().len() >= 2
    })
    .await;
    assert!(
        looked - told < Duration::from_millis(1000),
        "looked {:?} after being told (its own interval is 2.5 s)",
        looked - told
    );
    let led = until("b taking over", Duration::from_secs(10), || is_leader(&b)).await;
    // Looking sooner never takes sooner: the beat stood unchanged for a whole TTL after
    // the holder's last write (before `aborted`).
    assert!(
        led - aborted >= ttl,
        "led {:?} after the holder stopped, TTL {ttl:?}",
        led - aborted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_left_out_of_the_in_sync_set_looks_once_an_interval_after_the_watch() {
    let dir = tempfile::tempdir().expect("tmp");
    let inner = sqlite(&dir).await;
    // The holder records itself alone in sync, then dies without a word.
    let grant = inner
        .acquire("group", "a", Duration::from_millis(900))
        .await
        .expect("acquire")
        .expect("free");
    let alone = InSync {
        members: vec!["a".into()],
        version: 1,
    };
    assert!(inner
        .set_in_sync(&grant, None, &alone)
        .await
        .expect("record"));
    let store = Arc::new(Counted {
        inner,
        acquires: Default::default(),
    });
    let b = Keeper::spawn(Arc::clone(&store) as Arc<dyn LeaseStore>, cfg("b"));
    // Past the watch (900 ms) the lease may be taken, but not by b: it is not in sync.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = store.acquires().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let looks = store.acquires().len() - before;
    assert!(!is_leader(&b), "a standby out of the in-sync set took over");
    // One look per renew interval (150 ms): about 10 in 1.5 s, not one a millisecond.
    assert!(
        (3..=20).contains(&looks),
        "{looks} acquires in 1.5 s with a renew interval of 150 ms"
    );
}
