//! `[engine.kafka]`: where the bridge's topics are and how it writes to them.

use serde::{Deserialize, Serialize};

/// How a FIX message is put on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// The FIX string itself (`8=…␁9=…␁…10=…␁`); outbound, `tag=value` fields separated
    /// by SOH (BodyLength, MsgSeqNum, SendingTime and CheckSum are the engine's).
    #[default]
    Raw,
    /// `{"session": …, "seq": …, "msg_type": …, "fields": [[tag, "value"], …]}`;
    /// outbound, `{"fields": [[tag, "value"], …]}` (35, 49 and 56 required).
    Json,
}

fn default_inbound() -> String {
    "FROM-FIX-ENGINE".into()
}

fn default_outbound() -> String {
    "TO-FIX-ENGINE".into()
}

fn default_events() -> String {
    "FIX-ENGINE-EVENTS".into()
}

fn default_buffer() -> usize {
    100_000
}

/// `[engine.kafka]`, used with `app = "kafka"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// The brokers, `host:port,host:port`.
    pub brokers: String,
    /// Inbound application messages go here, keyed by session (default `FROM-FIX-ENGINE`).
    #[serde(default = "default_inbound")]
    pub inbound_topic: String,
    /// Applications put messages to send here (default `TO-FIX-ENGINE`).
    #[serde(default = "default_outbound")]
    pub outbound_topic: String,
    /// Logons, logouts and rejects go here (default `FIX-ENGINE-EVENTS`).
    #[serde(default = "default_events")]
    pub events_topic: String,
    /// The consumer group of the outbound topic (default `fix-engine-` and the lease
    /// group, so every engine of a group shares its offsets).
    pub group_id: Option<String>,
    /// The payload format of the inbound and outbound topics.
    #[serde(default)]
    pub payload: Payload,
    /// At most this many messages wait for the broker; beyond it the sessions wait
    /// (backpressure toward the FIX side: reading stops).
    #[serde(default = "default_buffer")]
    pub buffer_messages: usize,
    /// Extra librdkafka settings (`"security.protocol" = "SASL_SSL"`, …).
    #[serde(default)]
    pub client: std::collections::BTreeMap<String, String>,
}

impl KafkaSection {
    /// The first wrong value: its key, the value, and what is allowed.
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        if self.brokers.trim().is_empty() {
            return Err((
                "brokers",
                self.brokers.clone(),
                "one or more HOST:PORT, comma-separated",
            ));
        }
        for (key, topic) in [
            ("inbound_topic", &self.inbound_topic),
            ("outbound_topic", &self.outbound_topic),
            ("events_topic", &self.events_topic),
        ] {
            let ok = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err((
                    key,
                    topic.clone(),
                    "a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -",
                ));
            }
        }
        if self.inbound_topic == self.outbound_topic {
            return Err((
                "outbound_topic",
                self.outbound_topic.clone(),
                "a topic other than inbound_topic (the engine would send what it received back out)",
            ));
        }
        if self.buffer_messages == 0 {
            return Err(("buffer_messages", "0".into(), "at least 1"));
        }
        Ok(())
    }
}
