//! The bridge as the engine's application: inbound application messages go to the
//! inbound topic, and the batch they came in is marked processed in the journal only
//! once the broker has acknowledged every one of them
//! ([`Application::before_processed`]). A crash or a failover in between leaves them
//! unprocessed in the journal, and the next leader hands them to the bridge again: they
//! are republished (at least once; the `fix-dedup-key` header lets consumers drop the
//! copy). Logons, logouts and session-level rejects go to the events topic.

use super::blocking;
use super::config::{KafkaSection, Payload};
use super::payload::encode_inbound;
use crate::app::{AppContext, AppReject, Application};
use crate::metrics::KafkaMetrics;
use fix_codec::MessageRef;
use fix_session::SessionId;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One record to produce, kept until the broker has it.
#[derive(Clone)]
pub(crate) struct Record {
    topic: String,
    key: String,
    value: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Record {
    fn headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
    }
}

/// The producing side, shared by the application and the outbound loop's events.
#[derive(Clone)]
pub(crate) struct Producer {
    producer: FutureProducer,
    pub(crate) counts: KafkaMetrics,
    events_topic: String,
}

impl Producer {
    pub(crate) fn new(producer: FutureProducer, events_topic: &str, counts: KafkaMetrics) -> Self {
        Self {
            producer,
            counts,
            events_topic: events_topic.into(),
        }
    }

    /// Queues `r`; while the bounded queue is full the caller waits (backpressure).
    fn enqueue(&self, r: &Record) -> DeliveryFuture {
        let headers = r.headers();
        let mut waited: Option<Instant> = None;
        loop {
            let record = FutureRecord::to(&r.topic)
                .key(&r.key)
                .payload(&r.value)
                .headers(headers.clone());
            match self.producer.send_result(record) {
                Ok(delivery) => return delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let since = *waited.get_or_insert_with(|| {
                        self.counts.produce_retries.inc();
                        Instant::now()
                    });
                    if since.elapsed() > Duration::from_secs(1) {
                        tracing::warn!(topic = %r.topic, "the Kafka buffer is full (the broker is down or slow): the session waits");
                        waited = Some(Instant::now());
                    }
                    blocking(|| std::thread::sleep(Duration::from_millis(5)));
                }
                Err((e, _)) => {
                    tracing::error!(topic = %r.topic, error = %e, "cannot queue a Kafka record; retrying");
                    self.counts.produce_retries.inc();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Waits until the broker has `r` (queued as `delivery`), producing it again after
    /// a failed attempt.
    fn confirm(&self, r: &Record, mut delivery: DeliveryFuture) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match futures::executor::block_on(&mut delivery) {
                Ok(Ok(_)) => return,
                Ok(Err((e, _))) => {
                    tracing::warn!(topic = %r.topic, key = %r.key, error = %e, "Kafka did not take a record; producing it again")
                }
                Err(_) => {
                    tracing::warn!(topic = %r.topic, key = %r.key, "the Kafka producer dropped a record; producing it again")
                }
            }
            self.counts.produce_retries.inc();
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            delivery = self.enqueue(r);
        }
    }

    /// Puts a session event on the events topic (not waited for: events inform, the
    /// journal is the record).
    pub(crate) fn event(&self, id: &str, event: &str, detail: serde_json::Value) {
        let value = serde_json::json!({
            "session": id,
            "event": event,
            "time": chrono::Utc::now().to_rfc3339(),
            "detail": detail,
        })
        .to_string();
        let record = FutureRecord::to(&self.events_topic).key(id).payload(&value);
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::warn!(event, session = id, error = %e, "cannot queue a session event");
        }
    }
}

/// The application that bridges a group's sessions to Kafka.
pub struct BridgeApp {
    producer: Producer,
    inbound_topic: String,
    payload: Payload,
    pending: Mutex<HashMap<SessionId, Vec<(Record, DeliveryFuture)>>>,
}

impl BridgeApp {
    pub(crate) fn new(producer: Producer, section: &KafkaSection) -> Self {
        Self {
            producer,
            inbound_topic: section.inbound_topic.clone(),
            payload: section.payload,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// The bridge's metrics.
    pub fn metrics(&self) -> KafkaMetrics {
        self.producer.counts.clone()
    }
}

impl Application for BridgeApp {
    fn on_logon(&self, id: &SessionId) {
        self.producer
            .event(&id.to_string(), "logon", serde_json::Value::Null);
    }

    fn on_logout(&self, id: &SessionId) {
        self.producer
            .event(&id.to_string(), "logout", serde_json::Value::Null);
    }

    fn from_admin(&self, id: &SessionId, msg: MessageRef<'_>) {
        if msg.msg_type() == b"3" {
            let detail = serde_json::json!({
                "ref_seq_num": msg.get_str(45),
                "reason": msg.get_str(373),
                "text": msg.get_str(58),
            });
            self.producer.event(&id.to_string(), "reject", detail);
        }
    }

    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let id = ctx.session_id().clone();
        let seq = msg
            .get_u64(fix_codec::tags::MSG_SEQ_NUM)
            .ok()
            .flatten()
            .unwrap_or(0);
        let session = id.to_string();
        let record = Record {
            topic: self.inbound_topic.clone(),
            key: session.clone(),
            value: encode_inbound(self.payload, &id, seq, msg),
            headers: vec![
                ("fix-dedup-key", format!("{session}:{seq}")),
                ("fix-session", session),
                ("fix-seq", seq.to_string()),
                (
                    "fix-msg-type",
                    String::from_utf8_lossy(msg.msg_type()).into_owned(),
                ),
            ],
        };
        let mut record = record;
        if ctx.is_replay() {
            // Journaled by an earlier leader (or before a restart) and not confirmed as
            // produced: it may be on the topic already.
            record.headers.push(("fix-republished", "Y".into()));
        }
        let delivery = self.producer.enqueue(&record);
        self.producer.counts.pending.inc();
        if let Ok(mut p) = self.pending.lock() {
            p.entry(id).or_default().push((record, delivery));
        }
        Ok(())
    }

    fn before_processed(&self, id: &SessionId) {
        let batch = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(id))
            .unwrap_or_default();
        if batch.is_empty() {
            return;
        }
        blocking(|| {
            for (record, delivery) in batch {
                self.producer.confirm(&record, delivery);
                self.producer.counts.produced.inc();
                self.producer.counts.pending.dec();
            }
        });
    }
}
