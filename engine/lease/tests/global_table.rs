//! Leadership across two regions, against moto (`FIX_TEST_MOTO_URL`).
//!
//! A region holds the lease and renews it; the link between the regions is cut; the
//! other region contends. Two lease stores are emulated:
//! - **eventually consistent global table** (the old design): one table per region and a
//!   replicator that copies changed items between them after a delay, newest write wins,
//!   as DynamoDB's default global tables do. Each region conditions on its own replica.
//! - **strongly consistent** (a global table with `MultiRegionConsistency: STRONG`, or
//!   one home-region table): one table that both regions reach through their own
//!   endpoint; a region cut off from the majority cannot write at all.
//!
//! The invariant: no instant at which both regions trust the lease. moto has no global
//! tables, so the engine's refusal of an eventually consistent one
//! (`fix_lease::consistency`) is tested on `DescribeTable` answers in its unit tests.

// Only `unique` is used here.
#[allow(dead_code)]
mod common;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::unique;
use fix_lease::dynamo::DynamoLeaseStore;
use fix_lease::{Holder, LeaseConfig, LeaseStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(1000);

fn moto() -> String {
    std::env::var("FIX_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("set FIX_TEST_MOTO_URL to a moto server (scripts/test.sh starts one)")
    })
}

fn client(endpoint: &str, region: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    Client::from_conf(config)
}

fn config(owner: &str) -> LeaseConfig {
    LeaseConfig {
        ttl: TTL,
        renew_interval: Duration::from_millis(200),
        safety_margin: Duration::from_millis(200),
        ..LeaseConfig::new("g", owner)
    }
}

type Item = HashMap<String, AttributeValue>;

async fn scan(c: &Client, table: &str) -> HashMap<String, Item> {
    let out = c.scan().table_name(table).send().await.expect("scan");
    out.items()
        .iter()
        .filter_map(|i| Some((i.get("grp")?.as_s().ok()?.clone(), i.clone())))
        .collect()
}

fn written_at(item: &Item) -> i64 {
    item.get("expires_at_ms")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Copies every item changed on one replica to the other every `lag`, while `link` is
/// up. When both changed since the last copy, the newest write wins (the item whose
/// writer set the later expiry, which DynamoDB decides by the write's timestamp). A copy
/// lands only if the target item is still what was read, so a local write in between
/// wins until the next round.
async fn replicate(replicas: [(Client, String); 2], lag: Duration, link: Arc<AtomicBool>) {
    let mut merged: HashMap<String, Item> = HashMap::new();
    loop {
        tokio::time::sleep(lag).await;
        if !link.load(Ordering::SeqCst) {
            continue;
        }
        let seen = [
            scan(&replicas[0].0, &replicas[0].1).await,
            scan(&replicas[1].0, &replicas[1].1).await,
        ];
        let keys: std::collections::BTreeSet<&String> =
            seen[0].keys().chain(seen[1].keys()).collect();
        for key in keys {
            let last = merged.get(key);
            let changed = |i: usize| seen[i].get(key).is_some_and(|x| Some(x) != last);
            let from = match (changed(0), changed(1)) {
                (true, false) => 0,
                (false, true) => 1,
                (true, true) if written_at(&seen[0][key]) >= written_at(&seen[1][key]) => 0,
                (true, true) => 1,
                (false, false) => continue,
            };
            let (to_client, to_table) = &replicas[1 - from];
            let winner = seen[from][key].clone();
            let mut put = to_client
                .put_item()
                .table_name(to_table)
                .set_item(Some(winner.clone()));
            put = match seen[1 - from].get(key).and_then(|i| i.get("beat").cloned()) {
                Some(beat) => put
                    .condition_expression("beat = :b")
                    .expression_attribute_values(":b", beat),
                None => put.condition_expression("attribute_not_exists(grp)"),
            };
            if put.send().await.is_ok() {
                merged.insert(key.clone(), winner);
            }
        }
    }
}

/// When each region's holder last trusted its lease until (local monotonic deadlines).
#[derive(Default)]
struct Trust {
    until: Mutex<Option<Instant>>,
}

/// Holds the lease for `cfg.owner` once taken, renewing every interval, and records its
/// local deadline after each successful renew.
async fn hold(store: Arc<DynamoLeaseStore>, cfg: LeaseConfig, trust: Arc<Trust>) {
    let mut held = loop {
        if let Ok(Some(h)) = Holder::acquire(store.as_ref(), &cfg).await {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    *trust.until.lock().expect("lock") = Some(held.valid_until);
    loop {
        tokio::time::sleep(cfg.renew_interval).await;
        if !held.is_valid(Instant::now()) {
            return;
        }
        match held.renew(store.as_ref(), &cfg).await {
            Ok(Some(h)) => {
                held = h;
                *trust.until.lock().expect("lock") = Some(held.valid_until);
            }
            Ok(None) => return,
            Err(_) => {}
        }
    }
}

/// Region east leads; the regions are cut apart; west contends. Returns whether east
/// still trusted its own lease when west took it.
async fn cut_and_contend(
    east: Arc<DynamoLeaseStore>,
    west: Arc<DynamoLeaseStore>,
    cut: impl FnOnce(),
) -> bool {
    let trust = Arc::new(Trust::default());
    let holder = tokio::spawn(hold(east.clone(), config("east-1"), trust.clone()));
    let began = Instant::now();
    while trust.until.lock().expect("lock").is_none() {
        assert!(began.elapsed() < Duration::from_secs(5), "east never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // West sees east's lease and, while the regions are linked, never takes it.
    while west.read("g").await.expect("read").is_none() {
        assert!(began.elapsed() < Duration::from_secs(5), "never replicated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let linked = Instant::now();
    while linked.elapsed() < TTL * 3 {
        let got = Holder::acquire(west.as_ref(), &config("west-1")).await;
        assert!(
            matches!(got, Ok(None)),
            "west took a lease east renews while the regions are linked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cut();
    let taken = loop {
        if let Ok(Some(h)) = Holder::acquire(west.as_ref(), &config("west-1")).await {
            break h;
        }
        assert!(
            linked.elapsed() < TTL * 3 + Duration::from_secs(10),
            "west never led"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let at = Instant::now();
    let east_trusted = trust
        .until
        .lock()
        .expect("lock")
        .is_some_and(|until| until > at);
    holder.abort();
    drop(taken);
    east_trusted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventually_consistent_global_table_lets_two_regions_lead() {
    let url = moto();
    let table = unique("fix_global");
    let east = Arc::new(DynamoLeaseStore::with_endpoint(&url, "us-east-1", &table));
    let west = Arc::new(DynamoLeaseStore::with_endpoint(&url, "us-west-2", &table));
    east.ensure_table().await.expect("east replica");
    west.ensure_table().await.expect("west replica");
    let link = Arc::new(AtomicBool::new(true));
    let replicator = tokio::spawn(replicate(
        [
            (client(&url, "us-east-1"), table.clone()),
            (client(&url, "us-west-2"), table.clone()),
        ],
        Duration::from_millis(150),
        link.clone(),
    ));
    let east_trusted = cut_and_contend(east, west, || link.store(false, Ordering::SeqCst)).await;
    replicator.abort();
    // The emulation reproduces the split brain the old design allowed: this is why an
    // engine now refuses such a table (fix_lease::consistency).
    assert!(
        east_trusted,
        "expected the old design's split brain: west took the lease on its replica while \
         east still renewed on its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strongly_consistent_lease_keeps_one_region_leading_when_the_regions_are_cut() {
    let url = moto();
    let table = unique("fix_strong");
    // One table; each region reaches it through its own endpoint, and the cut region's
    // endpoint stops answering (a strongly consistent replica cut off from the majority
    // refuses writes, as a home-region table is unreachable from a cut-off region).
    let east_link = RegionLink::start(&url).await;
    let west_link = RegionLink::start(&url).await;
    let east = Arc::new(DynamoLeaseStore::with_endpoint(
        &east_link.url(),
        "us-east-1",
        &table,
    ));
    let west = Arc::new(DynamoLeaseStore::with_endpoint(
        &west_link.url(),
        "us-east-1",
        &table,
    ));
    east.ensure_table().await.expect("table");
    west.ensure_table().await.expect("the same table");
    let east_trusted = cut_and_contend(east, west, || east_link.cut()).await;
    assert!(
        !east_trusted,
        "west took the lease while east still trusted its own: two leaders"
    );
}

/// A region's way to the lease store: a TCP forwarder to `target` that [`Self::cut`]
/// turns into a dead link (open connections reset, new ones refused), as a region cut
/// off from the others sees the store.
pub struct RegionLink {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl RegionLink {
    /// Starts forwarding to the `http://host:port` at `target`.
    pub async fn start(target: &str) -> Self {
        let upstream = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut = watching.clone();
                if *cut.borrow() {
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// The endpoint URL to give the store.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the link for good.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }
}
