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
