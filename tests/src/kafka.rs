//! A Kafka-protocol broker for the bridge's tests (Tansu, started by `scripts/test.sh`
//! as `FIX_TEST_KAFKA_BROKERS`): topics, and reading a topic from its start.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// The broker's address (`FIX_TEST_KAFKA_BROKERS`).
pub fn brokers() -> String {
    std::env::var("FIX_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "set FIX_TEST_KAFKA_BROKERS to a Kafka-protocol broker (scripts/test.sh starts Tansu)"
        )
    })
}

/// Creates `names`, one partition each.
pub async fn create_topics(brokers: &str, names: &[&str]) {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
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
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
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
    let c = reader(brokers, topic);
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
