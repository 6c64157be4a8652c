//! A Kafka-protocol broker for the bridge's tests (Tansu, started by `scripts/test.sh`
//! as `FIX_TEST_KAFKA_BROKERS`): topics, and reading a topic from its start.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The broker's address (`FIX_TEST_KAFKA_BROKERS`).
pub fn brokers() -> String {
    std::env::var("FIX_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "set FIX_TEST_KAFKA_BROKERS to a Kafka-protocol broker (scripts/test.sh starts Tansu)"
        )
    })
}

/// A client of `brokers` with extra librdkafka `settings` (TLS, say).
pub fn client(brokers: &str, settings: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}

/// Creates `names`, one partition each.
pub async fn create_topics(brokers: &str, names: &[&str]) {
    create_topics_with(brokers, &BTreeMap::new(), names).await;
}

/// [`create_topics`] with extra librdkafka `settings`.
pub async fn create_topics_with(
    brokers: &str,
    settings: &BTreeMap<String, String>,
    names: &[&str],
) {
    let admin: AdminClient<_> = client(brokers, settings).create().expect("admin client");
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
    }
}

/// A consumer of `topic`'s partition 0 from its start (`assign`, no group join; never
/// skipping ahead when the broker does not know a position).
pub fn reader(brokers: &str, topic: &str) -> BaseConsumer {
    reader_with(brokers, &BTreeMap::new(), topic)
}

/// [`reader`] with extra librdkafka `settings`.
pub fn reader_with(
    brokers: &str,
    settings: &BTreeMap<String, String>,
    topic: &str,
) -> BaseConsumer {
    let c: BaseConsumer = client(brokers, settings)
        .set("group.id", "fix-e2e-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    c
}

/// Every record value of `topic` from its start, read until it stays quiet for `idle`
/// (SOH shown as is).
pub fn payloads(brokers: &str, topic: &str, idle: Duration) -> Vec<String> {
    payloads_with(brokers, &BTreeMap::new(), topic, idle)
}

/// [`payloads`] with extra librdkafka `settings`.
pub fn payloads_with(
    brokers: &str,
    settings: &BTreeMap<String, String>,
    topic: &str,
    idle: Duration,
) -> Vec<String> {
    let c = reader_with(brokers, settings, topic);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            last = Instant::now();
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}
