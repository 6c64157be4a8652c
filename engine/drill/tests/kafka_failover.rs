//! The Kafka bridge across a failover, with real processes: a replicated pair (SQLite
//! lease) whose application is the bridge, a real Kafka-protocol broker (Tansu, from
//! scripts/test.sh as `FIX_TEST_KAFKA_BROKERS`), a counterparty sending orders over FIX,
//! and an application that reads the orders from the inbound topic and answers each
//! with a fill on the outbound topic. The leader is killed with `kill -9` mid-stream:
//! every order reaches the application and every fill reaches the counterparty, with no
//! unflagged duplicate on either side. Then the broker itself is killed and restarted
//! mid-stream (Tansu keeping its data in S3 on moto): the sessions wait, and nothing is
//! lost when it is back. And the leader's journal fails while fills are in flight.
//!
//! Every engine of this test binary runs under the fault shim (`faults/fault_shim.c`),
//! which passes every call through until a test switches a fault on: the variable that
//! says so is the process's, so it is set once for all the tests here.

use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::{Cluster, GroupOptions};
use fix_drill::trader::Trader;
use fix_e2e::kafka::{brokers, create_topics, payloads, reader};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the application saw on the inbound topic.
#[derive(Debug, Default)]
struct AppBook {
    /// Orders by dedup key (session:seq) → ClOrdID.
    orders: HashMap<String, String>,
    /// A dedup key seen again with `fix-republished: Y`.
    flagged_duplicates: u64,
    /// A dedup key seen again without the flag.
    unflagged_duplicates: u64,
}

fn field<'a>(msg: &'a str, tag: &str) -> Option<&'a str> {
    msg.split('\x01')
        .find_map(|f| f.strip_prefix(tag)?.strip_prefix('='))
}

/// The application: each new order on `inbound` is answered with a fill on `outbound`.
fn run_application(
    brokers: &str,
    inbound: String,
    outbound: String,
    book: Arc<Mutex<AppBook>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
) {
    let consumer = reader(brokers, &inbound);
    let new_producer = || -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "0")
            .create()
            .expect("producer")
    };
    let mut producer = new_producer();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let m = match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                eprintln!("application: consuming: {e}");
                continue;
            }
            None => continue,
        };
        let mut key = None;
        let mut republished = false;
        if let Some(h) = m.headers() {
            for h in h.iter() {
                let v = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                match h.key {
                    "fix-dedup-key" => key = Some(v),
                    "fix-republished" => republished = v == "Y",
                    _ => {}
                }
            }
        }
        let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        let (Some(key), Some("D"), Some(cl)) = (key, field(&value, "35"), field(&value, "11"))
        else {
            continue;
        };
        let mut b = book.lock().expect("book");
        if b.orders.contains_key(&key) {
            if republished {
                b.flagged_duplicates += 1;
            } else {
                b.unflagged_duplicates += 1;
            }
            continue; // A consumer that deduplicates does not fill twice.
        }
        b.orders.insert(key, cl.to_string());
        drop(b);
        n += 1;
        let qty = field(&value, "38").unwrap_or("100");
        let fill = format!(
            "35=8\x0149=EXEC\x0156=CLIENT\x0137=K{n}\x0117=KE{n}\x01150=F\x0139=2\x0111={cl}\x0155={}\x0154={}\x0138={qty}\x0132={qty}\x0131=10\x01151=0\x0114={qty}\x016=10\x01",
            field(&value, "55").unwrap_or("X"),
            field(&value, "54").unwrap_or("1"),
        );
        // Each fill is produced until the broker has it (a new producer after a fatal
        // error), as an application that must not lose one would.
        loop {
            let record = FutureRecord::<str, str>::to(&outbound)
                .key("EXEC")
                .payload(&fill);
            let outcome = match producer.send_result(record) {
                Ok(delivery) => match futures::executor::block_on(delivery) {
                    Ok(Ok(d)) if d.offset >= 0 => Ok(()),
                    // What a broker that lost its producer state answers (see the bridge).
                    // Such a record may be stored or not: look before producing it again
                    // (its ExecID is unique), as an application that must not send a
                    // fill twice would.
                    Ok(Ok(_))
                        if records_with(brokers, &outbound, &format!("\x0117=KE{n}\x01")) > 0 =>
                    {
                        Ok(())
                    }
                    Ok(Ok(_)) => {
                        Err("acknowledged without an offset, and not on the topic".to_string())
                    }
                    Ok(Err((e, _))) => Err(e.to_string()),
                    Err(_) => Err("cancelled".to_string()),
                },
                Err((e, _)) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("application: a fill was not delivered ({e}); producing it again");
                    if producer.client().fatal_error().is_some() {
                        producer = new_producer();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(5));
}

/// How many records of `topic` contain `needle`, read from its start.
fn records_with(brokers: &str, topic: &str, needle: &str) -> usize {
    payloads(brokers, topic, Duration::from_secs(2))
        .iter()
        .filter(|v| v.contains(needle))
        .count()
}

/// How many distinct orders (ClOrdIDs) the inbound topic holds, read from its start.
fn orders_on_topic(brokers: &str, topic: &str) -> usize {
    payloads(brokers, topic, Duration::from_secs(2))
        .iter()
        .filter(|v| field(v, "35") == Some("D"))
        .filter_map(|v| field(v, "11"))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// A pair running the bridge on `brokers`, one leader and a caught-up standby, with an
/// application answering orders and a counterparty sending them.
struct Stream {
    _dir: tempfile::TempDir,
    cluster: Cluster,
    leader: usize,
    trader: Trader,
    book: Arc<Mutex<AppBook>>,
    stop: Arc<AtomicBool>,
    /// While set, the application reads and answers nothing.
    paused: Arc<AtomicBool>,
    app: std::thread::JoinHandle<()>,
    brokers: String,
    inbound: String,
    outbound: String,
}

static SHIM: std::sync::Once = std::sync::Once::new();

/// Every engine this process starts runs under the fault shim.
fn under_the_shim() {
    SHIM.call_once(|| {
        let dir = std::env::temp_dir().join(format!("fix-kafka-shim-{}", std::process::id()));
        let shim = fix_drill::shim::build(&dir).expect("the fault shim");
        std::env::set_var("FIX_DRILL_ENGINE_PRELOAD", shim);
        std::env::set_var("FIX_FAULT_ERRNO", "28"); // ENOSPC
    });
}

async fn stream(brokers: &str, tag: &str) -> Stream {
    under_the_shim();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    let (inbound, outbound, events) = (
        format!("{tag}-from-{n}"),
        format!("{tag}-to-{n}"),
        format!("{tag}-events-{n}"),
    );
    create_topics(brokers, &[&inbound, &outbound, &events]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let opts = GroupOptions {
        exe: env!("CARGO_BIN_EXE_fix-drill").into(),
        backend: Backend::Sqlite,
        durability: "replicated".into(),
        lease_ms: (1500, 300, 300),
        instances: 2,
        names: Vec::new(),
        regions: Vec::new(),
        active_region: None,
        cross_region_sync: false,
        kafka: Some(format!(
            "brokers = '{brokers}'\ninbound_topic = '{inbound}'\noutbound_topic = '{outbound}'\nevents_topic = '{events}'\ngroup_id = '{tag}-{n}'\n"
        )),
        netns: false,
        stalled_reader: false,
        sessions: 1,
    };
    let cluster = Cluster::start(&opts, &Servers::from_env(), dir.path())
        .await
        .expect("the pair");
    let leader = cluster
        .wait_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    cluster
        .wait_caught_up(1 - leader, Duration::from_secs(20))
        .await
        .expect("caught up");
    let book = Arc::new(Mutex::new(AppBook::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let app = {
        let (book, stop, paused, brokers) = (
            Arc::clone(&book),
            Arc::clone(&stop),
            Arc::clone(&paused),
            brokers.to_string(),
        );
        let (inbound, outbound) = (inbound.clone(), outbound.clone());
        std::thread::spawn(move || run_application(&brokers, inbound, outbound, book, stop, paused))
    };
    let trader = Trader::start(&cluster.fix_addrs(), 50)
        .await
        .expect("counterparty");
    let s = Stream {
        _dir: dir,
        cluster,
        leader,
        trader,
        book,
        stop,
        paused,
        app,
        brokers: brokers.to_string(),
        inbound,
        outbound,
    };
    s.more_orders(40).await;
    s
}

impl Stream {
    /// Waits until `n` more orders were sent (and so the stream flows).
    async fn more_orders(&self, n: u64) {
        let book = self.trader.book();
        let before = book.tally().sent;
        let deadline = Instant::now() + Duration::from_secs(60);
        while book.tally().sent < before + n {
            assert!(
                Instant::now() < deadline,
                "orders do not flow: {:?}{}",
                book.tally(),
                self.cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Settles both sides, prints the counts, and asserts nothing was lost or
    /// duplicated without a flag.
    async fn settle(mut self, what: &str) {
        let tally = self.trader.settle(Duration::from_secs(60)).await;
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.app.join();
        let (orders, flagged, unflagged) = {
            let b = self.book.lock().expect("book");
            let ordered: std::collections::HashSet<&String> = b.orders.values().collect();
            (
                ordered.len() as u64,
                b.flagged_duplicates,
                b.unflagged_duplicates,
            )
        };
        let on_topic = orders_on_topic(&self.brokers, &self.inbound);
        for cl in self.trader.book().unanswered_orders() {
            // Where the fill of an unanswered order went: on the outbound topic, in the
            // leader's journal?
            let on_outbound =
                records_with(&self.brokers, &self.outbound, &format!("\x0111={cl}\x01"));
            let leader = self.cluster.leader().await.unwrap_or(self.leader);
            let (_, stored) = fix_drill::http::request(
                self.cluster.nodes[leader].admin_addr(),
                "GET",
                "/sessions/FIX.4.4/EXEC/CLIENT/messages?from=1&to=1000",
                Some(fix_drill::node::TOKEN),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_default();
            eprintln!(
                "unanswered order {cl}: {on_outbound} fill record(s) on the outbound topic; in the leader's journal: {}",
                stored.contains(&format!("|11={cl}|"))
            );
            for n in &self.cluster.nodes {
                let log =
                    std::fs::read_to_string(n.spec.dir.join("engine.log")).unwrap_or_default();
                for l in log
                    .lines()
                    .filter(|l| l.contains("kafka") || l.contains("actor"))
                {
                    eprintln!("[{}] {l}", n.spec.name);
                }
            }
        }
        eprintln!(
            "Kafka bridge, {what}: FIX side {tally:?}; Kafka side {orders} orders seen by the application ({on_topic} on the topic read again from the start), {flagged} flagged and {unflagged} unflagged duplicates"
        );
        assert_eq!(
            (tally.lost, tally.unflagged_duplicates, tally.gaps),
            (0, 0, 0),
            "FIX side: {tally:?}{}",
            self.cluster.logs()
        );
        assert_eq!(
            orders, tally.sent,
            "every order reached the application once"
        );
        assert_eq!(unflagged, 0, "Kafka side: unflagged duplicates");
        self.trader.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_stream_loses_nothing_through_kafka() {
    let mut s = stream(&brokers(), "fo").await;
    let standby = 1 - s.leader;
    s.cluster.nodes[s.leader].kill9();
    s.cluster
        .wait_promoted(standby, Duration::from_secs(20))
        .await
        .expect("the standby takes over");
    s.more_orders(40).await;
    s.settle("through kill -9 of the leader").await;
}

/// A Tansu broker of the test's own, keeping its data in a bucket on moto's S3 so that
/// a restarted broker has it.
struct Broker {
    child: std::process::Child,
    port: u16,
    bucket: String,
}

impl Broker {
    async fn start(bucket: &str, port: u16) -> Self {
        let moto = std::env::var("FIX_TEST_MOTO_URL")
            .expect("FIX_TEST_MOTO_URL (scripts/test.sh starts moto)");
        let tansu = std::env::var("FIX_TEST_TANSU")
            .expect("FIX_TEST_TANSU: the tansu binary (scripts/test.sh sets it)");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("s3://{bucket}/")])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &moto)
            .env("AWS_ALLOW_HTTP", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "tansu does not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            port,
            bucket: bucket.into(),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A broker of the test's own on a free port, with a fresh bucket.
async fn own_broker() -> Broker {
    let moto: std::net::SocketAddr = std::env::var("FIX_TEST_MOTO_URL")
        .expect("FIX_TEST_MOTO_URL")
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let bucket = format!(
        "tansu-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000)
    );
    let (code, body) = fix_drill::http::request(
        moto,
        "PUT",
        &format!("/{bucket}"),
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("moto answers");
    assert_eq!(code, 200, "creating bucket {bucket}: {body}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    Broker::start(&bucket, port).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_restarted_mid_stream_loses_nothing() {
    let mut broker = own_broker().await;
    let s = stream(&format!("127.0.0.1:{}", broker.port), "br").await;
    broker.kill();
    // The counterparty goes on sending while the broker is away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let broker = Broker::start(&broker.bucket.clone(), broker.port).await;
    s.more_orders(40).await;
    s.settle("through a broker restart").await;
    drop(broker);
}

/// The leader is deposed (`POST /step-down`) while the broker is away, its producer
/// holding orders it could not publish: it must drop them at once (no byte after
/// deposition: once the broker was back, they used to land after the new leader's
/// republished copies, as unflagged duplicates) and commit no offset while deposed. Once
/// the broker is back the new leader publishes them, every order reaches the application
/// and every fill the counterparty, nothing duplicated without a flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_deposed_while_the_broker_is_away_loses_nothing() {
    let mut broker = own_broker().await;
    let s = stream(&format!("127.0.0.1:{}", broker.port), "dp").await;
    broker.kill();
    let old = s.leader;
    let held = |n: usize| {
        let admin = s.cluster.nodes[n].admin_addr();
        async move { producer_queue(admin).await }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while held(old).await.unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader's producer never held records while the broker was away: {:?}",
            fix_drill::http::request(
                s.cluster.nodes[old].admin_addr(),
                "GET",
                "/metrics",
                Some(fix_drill::node::TOKEN),
                Duration::from_secs(2),
            )
            .await
            .map(|(_, m)| m
                .lines()
                .filter(|l| l.contains("kafka"))
                .collect::<Vec<_>>()
                .join("\n"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = fix_drill::http::request(
        s.cluster.nodes[old].admin_addr(),
        "POST",
        "/step-down?pause_ms=30000",
        Some(fix_drill::node::TOKEN),
        Duration::from_secs(5),
    )
    .await
    .expect("the leader answers");
    assert_eq!(code, 202, "step-down: {body}");
    s.cluster
        .wait_promoted(1 - old, Duration::from_secs(20))
        .await
        .expect("the standby takes over while the broker is away");
    // Nothing of the deposed leader's may reach the broker when it comes back: its
    // producer holds nothing, seen twice across more than one refresh of the gauge.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut empty_since: Option<Instant> = None;
    loop {
        let now = held(old).await;
        if now == Some(0) {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(1200) {
                break;
            }
        } else {
            empty_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "the deposed leader's producer still holds {now:?} records for the broker{}",
            s.cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let broker = Broker::start(&broker.bucket.clone(), broker.port).await;
    s.more_orders(40).await;
    s.settle("through a deposition while the broker was away")
        .await;
    drop(broker);
}

/// The leader's journal writes start failing (ENOSPC, the fault shim) in mid-stream: the
/// fills the application publishes on the outbound topic meanwhile cannot be stored, so
/// they are not sent, and they must not be consumed as rejected either (a store error is
/// not a verdict on the record): they stay on the topic and the next leader sends them.
/// Every order must be answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_journal_fails_mid_stream_loses_nothing_through_kafka() {
    let mut s = stream(&brokers(), "jf").await;
    let old = s.leader;
    // Orders reach the application, which holds its fills back; then no more orders, so
    // that the first journal write to fail is that of a fill from the outbound topic.
    s.paused.store(true, Ordering::Relaxed);
    let book = s.trader.book();
    let deadline = Instant::now() + Duration::from_secs(20);
    while book.unanswered() < 5 {
        assert!(Instant::now() < deadline, "orders held by the application");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.trader.hold_orders(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.cluster.nodes[old]
        .fail_journal_writes(true)
        .expect("fail the leader's journal");
    s.paused.store(false, Ordering::Relaxed);
    s.cluster
        .wait_promoted(1 - old, Duration::from_secs(20))
        .await
        .expect("the standby takes over from a leader whose journal failed");
    s.trader.hold_orders(false);
    s.more_orders(40).await;
    let log = std::fs::read_to_string(s.cluster.nodes[old].spec.dir.join("engine.log"))
        .unwrap_or_default();
    assert!(
        log.contains("stays on the topic"),
        "no fill met the failed journal (the test shows nothing){}",
        s.cluster.logs()
    );
    let (code, metrics) = metrics(s.cluster.nodes[old].admin_addr())
        .await
        .expect("the failed leader's /metrics");
    assert!(
        code == 200 && metrics.contains("fix_kafka_consumed"),
        "no Kafka metrics: {code} {metrics}"
    );
    let rejected: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("fix_kafka_rejected") && !l.ends_with(" 0"))
        .collect();
    assert!(
        rejected.is_empty(),
        "the failed leader consumed records as rejected: {rejected:?}"
    );
    s.cluster.nodes[old]
        .fail_journal_writes(false)
        .expect("heal the disk");
    s.cluster.nodes[old].kill9();
    s.cluster.nodes[old]
        .start()
        .expect("restart on a healed disk");
    s.settle("through a journal failure of the leader").await;
}

/// `GET /metrics` of the engine whose admin API is at `admin`.
async fn metrics(admin: std::net::SocketAddr) -> Option<(u16, String)> {
    fix_drill::http::request(
        admin,
        "GET",
        "/metrics",
        Some(fix_drill::node::TOKEN),
        Duration::from_secs(2),
    )
    .await
    .ok()
}

/// `fix_kafka_producer_queue` of the engine whose admin API is at `admin`.
async fn producer_queue(admin: std::net::SocketAddr) -> Option<i64> {
    let (_, metrics) = metrics(admin).await?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("fix_kafka_producer_queue "))
        .and_then(|v| v.trim().parse().ok())
}
