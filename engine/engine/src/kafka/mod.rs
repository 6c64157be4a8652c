//! The Kafka bridge: applications in any language trade through topics instead of
//! linking a FIX library. With `app = "kafka"` and an `[engine.kafka]` section:
//!
//! - [`inbound`]: the leader publishes every inbound application message to the inbound
//!   topic (default `FROM-FIX-ENGINE`), keyed by session so per-session order holds, with
//!   the headers `fix-session`, `fix-seq`, `fix-msg-type` and `fix-dedup-key`
//!   (`session:seq`). The messages are marked processed in the journal only after the
//!   broker acknowledged them (idempotent producer, `acks=all`), so after a crash or a
//!   promotion the new leader republishes what was not confirmed.
//! - [`outbound`]: the leader consumes the outbound topic (default `TO-FIX-ENGINE`),
//!   sends each message on the session its SenderCompID / TargetCompID name, and commits
//!   the offset once the message is in the journal.
//! - Logons, logouts, session-level rejects and refused outbound records go to the
//!   events topic (default `FIX-ENGINE-EVENTS`).
//! - [`payload`]: the raw FIX string (default) or JSON.
//! - `delivery`: which acknowledgements prove a record stored (a batch the broker calls
//!   a duplicate comes back with made-up offsets; its records are produced again).
//! - Metrics `fix_kafka_produced_total`, `fix_kafka_produce_retries_total`,
//!   `fix_kafka_pending`, `fix_kafka_consumed_total`, `fix_kafka_rejected_total`,
//!   `fix_kafka_duplicates_skipped_total`, `fix_kafka_producer_queue`.
//!
//! Only the leader produces or consumes: inbound messages reach the bridge only on a
//! leading instance, and the outbound consumer runs only while the engine's role is
//! leader (the lease's epoch), leaving the group when it is not. The producer sends only
//! for the term its gate is open for (`kafka/gate.rs`): when a term ends the gate closes and the
//! producer drops every record it still holds (a broker that was away gets nothing from
//! a deposed leader when it comes back; the next leader publishes those records again,
//! flagged). The consumer checks the term before each offset commit; a commit racing a
//! deposition can still land, for a record already in the journal, which the next
//! leader's first-record check finds.

#[cfg(feature = "kafka")]
mod delivery;
#[cfg(feature = "kafka")]
mod gate;
#[cfg(feature = "kafka")]
pub mod inbound;
#[cfg(feature = "kafka")]
pub mod outbound;
pub mod payload;

pub use crate::config::kafka::{KafkaSection, Payload};
pub use crate::error::BridgeError;
#[cfg(feature = "kafka")]
pub use inbound::BridgeApp;

#[cfg(feature = "kafka")]
use crate::handle::EngineHandle;
#[cfg(feature = "kafka")]
use rdkafka::ClientConfig;
#[cfg(feature = "kafka")]
use std::sync::Arc;

#[cfg(feature = "kafka")]
pub(crate) use crate::blocking::blocking;

#[cfg(feature = "kafka")]
/// A configured bridge: the application to start the engine with, and the outbound
/// loop to spawn once it runs.
pub struct Bridge {
    app: Arc<BridgeApp>,
    producer: inbound::Producer,
    consumer: ClientConfig,
    section: KafkaSection,
}

#[cfg(feature = "kafka")]
fn client_config(section: &KafkaSection) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &section.brokers);
    for (k, v) in &section.client {
        c.set(k, v);
    }
    c
}

#[cfg(feature = "kafka")]
impl Bridge {
    /// Creates the producer (idempotent, `acks=all`, retrying without a deadline, a
    /// queue of `buffer_messages`) and the consumer's settings (group `group_id`, or
    /// `fix-engine-GROUP` after the lease group, manual commits).
    pub fn new(
        section: &KafkaSection,
        lease_group: Option<&str>,
        metrics: crate::metrics::KafkaMetrics,
    ) -> Result<Self, BridgeError> {
        let mut p = client_config(section);
        p.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "1")
            .set(
                "queue.buffering.max.messages",
                section.buffer_messages.max(1).to_string(),
            );

        let group = section
            .group_id
            .clone()
            .unwrap_or_else(|| format!("fix-engine-{}", lease_group.unwrap_or("default")));
        let mut consumer = client_config(section);
        consumer
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000");
        // Check the consumer's settings now, not at the first promotion.
        consumer
            .create::<rdkafka::consumer::BaseConsumer>()
            .map_err(|e| BridgeError::Client {
                client: "consumer",
                detail: e.to_string(),
            })?;
        // Without a lease the one term never ends: the gate is open from the start (the
        // sessions may log on before the gate's watcher first runs). With one, it opens
        // when this instance leads.
        let gate = match lease_group {
            None => gate::Open::For(None),
            Some(_) => gate::Open::Closed,
        };
        let producer =
            inbound::Producer::new(p, &section.events_topic, metrics, gate).map_err(|e| {
                BridgeError::Client {
                    client: "producer",
                    detail: e.to_string(),
                }
            })?;
        Ok(Self {
            app: Arc::new(BridgeApp::new(producer.clone(), section)),
            producer,
            consumer,
            section: section.clone(),
        })
    }

    /// The application to start the engine with.
    pub fn application(&self) -> Arc<BridgeApp> {
        Arc::clone(&self.app)
    }

    /// Spawns the outbound loop on the engine's runtime.
    pub fn spawn_outbound(&self, handle: EngineHandle) -> tokio::task::JoinHandle<()> {
        tokio::spawn(outbound::run(
            self.consumer.clone(),
            self.section.clone(),
            handle,
            self.producer.clone(),
        ))
    }
}
