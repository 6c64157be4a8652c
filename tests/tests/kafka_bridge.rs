//! The Kafka bridge against a real Kafka-protocol broker (Tansu, started by
//! scripts/test.sh as `FIX_TEST_KAFKA_BROKERS`) and QuickFIX as the counterparty:
//! application → outbound topic → engine → QuickFIX → engine → inbound topic →
//! application, with session events and a refused record on the events topic.

use fix_e2e::interop::{engine_config, free_port, read_until, spawn_peer, stop_peer};
use fix_e2e::kafka::{brokers, create_topics};
use fix_engine::config::AppKind;
use fix_engine::kafka::{KafkaSection, Payload};
use fix_engine::Engine;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::time::{Duration, Instant};

struct Topics {
    inbound: String,
    outbound: String,
    events: String,
}

/// Fresh topics of one partition each.
async fn topics(tag: &str) -> Topics {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    let t = Topics {
        inbound: format!("{tag}-from-{n}"),
        outbound: format!("{tag}-to-{n}"),
        events: format!("{tag}-events-{n}"),
    };
    create_topics(&brokers(), &[&t.inbound, &t.outbound, &t.events]).await;
    t
}

fn reader(topic: &str) -> BaseConsumer {
    fix_e2e::kafka::reader(&brokers(), topic)
}

/// A record as the test reads it: its value and headers.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    value: String,
    headers: BTreeMap<String, String>,
}

/// Polls `c` until `done` holds for what was read (or the time is up); returns it all.
async fn read_until_done(
    c: BaseConsumer,
    limit: Duration,
    done: impl Fn(&[Seen]) -> bool + Send + 'static,
) -> Vec<Seen> {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while Instant::now() < deadline && !done(&seen) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                seen.push(Seen {
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default())
                        .replace('\x01', "|"),
                    headers,
                });
            }
        }
        seen
    })
    .await
    .expect("reader")
}

fn order(cl: &str) -> String {
    let now = fix_codec::UtcTimestamp::now().format(fix_codec::TimePrecision::Seconds);
    format!("8=FIX.4.4\x0135=D\x0149=ENGINE\x0156=QF\x0111={cl}\x0121=1\x0155=IBM\x0154=1\x0160={now}\x0138=100\x0140=1\x01")
}

fn filled(seen: &[Seen], cl: &str) -> bool {
    seen.iter().any(|s| {
        s.value.contains(&format!("|11={cl}|"))
            && (s.value.contains("|150=2|") || s.value.contains("|150=F|"))
    })
}

/// QuickFIX as an acceptor filling orders, and our engine with the bridge on `t`
/// connected to it as initiator.
async fn engine_and_counterparty(
    t: &Topics,
    dir: &std::path::Path,
) -> (
    Engine,
    std::process::Child,
    Option<std::process::ChildStdin>,
) {
    let port = free_port();
    let mut peer = spawn_peer("acceptor", port, "FIX.4.4", &dir.join("qf"));
    let stdin = peer.stdin.take();
    let mut out = BufReader::new(peer.stdout.take().expect("stdout"));
    let listening = read_until(&mut out, "listening");
    assert!(
        listening.iter().any(|l| l.contains("listening")),
        "QuickFIX acceptor did not start: {listening:?}"
    );
    // Keep reading the peer's output so it never blocks on a full pipe.
    std::thread::spawn(move || read_until(&mut out, "never printed"));
    let mut config = engine_config("FIX.4.4", "initiator", port, &dir.join("data"));
    config.engine.app = AppKind::Kafka;
    config.engine.kafka = Some(KafkaSection {
        brokers: brokers(),
        inbound_topic: t.inbound.clone(),
        outbound_topic: t.outbound.clone(),
        events_topic: t.events.clone(),
        group_id: Some(format!("{}-group", t.outbound)),
        payload: Payload::Raw,
        buffer_messages: 1000,
        client: BTreeMap::new(),
    });
    let engine = Engine::start(config).await.expect("engine with the bridge");
    (engine, peer, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_from_kafka_is_filled_by_quickfix_and_the_reports_come_back_on_kafka() {
    let t = topics("rt").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (engine, peer, stdin) = engine_and_counterparty(&t, dir.path()).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    for value in [order("K1"), "garbage without fields".into(), order("K2")] {
        producer
            .send(
                FutureRecord::<str, str>::to(&t.outbound).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
    }

    // Routed by its fix-session header instead of CompIDs in the message.
    let k3 = order("K3")
        .replace("8=FIX.4.4\x01", "")
        .replace("49=ENGINE\x0156=QF\x01", "");
    producer
        .send(
            FutureRecord::<str, str>::to(&t.outbound)
                .payload(&k3)
                .headers(
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: "fix-session",
                        value: Some("FIX.4.4:ENGINE->QF"),
                    }),
                ),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");

    let seen = read_until_done(reader(&t.inbound), Duration::from_secs(30), |s| {
        filled(s, "K1") && filled(s, "K2") && filled(s, "K3")
    })
    .await;
    assert!(
        filled(&seen, "K1") && filled(&seen, "K2") && filled(&seen, "K3"),
        "{seen:#?}"
    );
    let first = &seen[0];
    assert_eq!(first.key, "FIX.4.4:ENGINE->QF", "keyed by session");
    assert_eq!(
        first.headers.get("fix-msg-type").map(String::as_str),
        Some("8")
    );
    let seq = first.headers.get("fix-seq").cloned().unwrap_or_default();
    assert!(first.value.contains(&format!("|34={seq}|")), "{first:?}");
    assert_eq!(
        first.headers.get("fix-dedup-key"),
        Some(&format!("FIX.4.4:ENGINE->QF:{seq}"))
    );
    let mut seqs: Vec<u64> = seen
        .iter()
        .filter_map(|s| s.headers.get("fix-seq")?.parse().ok())
        .collect();
    let n = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "no message published twice: {seen:#?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in session order: {seqs:?}"
    );

    let events = read_until_done(reader(&t.events), Duration::from_secs(10), |s| {
        s.iter().any(|e| e.value.contains("\"logon\""))
            && s.iter().any(|e| e.value.contains("outbound-rejected"))
    })
    .await;
    assert!(
        events
            .iter()
            .any(|e| e.value.contains("\"logon\"") && e.key == "FIX.4.4:ENGINE->QF"),
        "{events:#?}"
    );
    let rejected: Vec<&Seen> = events
        .iter()
        .filter(|e| e.value.contains("outbound-rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert!(
        rejected[0].value.contains("not tag=value") && rejected[0].value.contains("garbage"),
        "{rejected:?}"
    );
    let metrics = engine.handle().metrics().encode();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(value("fix_kafka_consumed_total"), 3.0, "{metrics}");
    assert_eq!(value("fix_kafka_rejected_total"), 1.0, "{metrics}");
    assert!(value("fix_kafka_produced_total") >= 4.0, "{metrics}");
    assert_eq!(value("fix_kafka_pending"), 0.0, "{metrics}");
    engine.shutdown().await;
    stop_peer(peer, stdin);
}

/// `examples/kafka_order.py` (confluent-kafka) sends an order through the bridge and
/// prints its execution reports until the fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_sends_an_order_and_prints_its_fill() {
    let python = std::env::var("FIX_TEST_KAFKA_PYTHON").unwrap_or_else(|_| {
        panic!("set FIX_TEST_KAFKA_PYTHON to a python with confluent-kafka (scripts/test.sh does)")
    });
    let t = topics("py").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (engine, peer, stdin) = engine_and_counterparty(&t, dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = fix_session::SessionId::new("FIX.4.4", "ENGINE", "QF");
    while !engine
        .handle()
        .status(&id)
        .await
        .is_ok_and(|s| s.state == fix_session::State::Active)
    {
        assert!(Instant::now() < deadline, "never logged on to QuickFIX");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kafka_order.py");
    let (brokers, inbound, outbound) = (brokers(), t.inbound.clone(), t.outbound.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(["--brokers", &brokers, "--inbound-topic", &inbound])
            .args(["--outbound-topic", &outbound, "--timeout", "30"])
            .output()
    })
    .await
    .expect("join")
    .expect("the example runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("sent NewOrderSingle PY-"), "{text}");
    assert!(
        text.contains("ExecutionReport ExecType=0 OrdStatus=0"),
        "{text}"
    );
    assert!(
        text.contains("OrdStatus=2") && text.trim_end().ends_with("filled"),
        "{text}"
    );
    engine.shutdown().await;
    stop_peer(peer, stdin);
}
