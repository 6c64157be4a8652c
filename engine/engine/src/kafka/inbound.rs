//! The bridge as the engine's application: inbound application messages go to the
//! inbound topic, and the batch they came in is marked processed in the journal only
//! once the broker has acknowledged every one of them
//! ([`Application::before_processed`]). A crash or a failover in between leaves them
//! unprocessed in the journal, and the next leader hands them to the bridge again: they
//! are republished (at least once; the `fix-dedup-key` header lets consumers drop the
//! copy). Logons, logouts and session-level rejects go to the events topic.

use super::blocking;
use super::delivery::{Delivered, Judge, Serials, Ticket};
use super::gate::{Gate, Open};
use super::payload::encode_inbound;
use crate::app::{AppContext, AppReject, Application, Term, TermEnded};
use crate::config::kafka::{KafkaSection, Payload};
use crate::metrics::KafkaMetrics;
use fix_codec::MessageRef;
use fix_session::SessionId;
use futures::channel::oneshot;
use rdkafka::error::KafkaResult;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, PurgeConfig, ThreadedProducer};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The librdkafka producer with the context that judges its delivery reports.
type Kafka = Arc<ThreadedProducer<Judge>>;

/// How long a session event waits for the gate to open (see [`Producer::event`]).
const EVENT_GATE_WAIT: Duration = Duration::from_millis(200);

/// The verdict on one queued record, once the broker answered.
pub(crate) type DeliveryFuture = oneshot::Receiver<Delivered>;

/// A record from `from_app`, its delivery (`None`: not queued yet, the term ended while
/// the buffer was full), and the epoch of the term it was handled in.
type Queued = (Record, Option<DeliveryFuture>, Option<u64>);

/// One record to produce, kept until the broker has it.
#[derive(Clone)]
pub(crate) struct Record {
    topic: String,
    key: String,
    value: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Record {
    /// The same record flagged as possibly published already.
    pub(crate) fn republished(&self) -> Self {
        let mut r = self.clone();
        if !r.headers.iter().any(|(k, _)| *k == "fix-republished") {
            r.headers.push(("fix-republished", "Y".into()));
        }
        r
    }

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
    producer: Arc<Mutex<Kafka>>,
    /// To create a new producer after a fatal error (an idempotent producer whose state
    /// the broker lost, for example after a broker restart).
    config: ClientConfig,
    /// Shared by every producer created, so that a replaced one's reports still count.
    judge: Judge,
    pub(crate) counts: KafkaMetrics,
    events_topic: String,
    /// Which term may produce ([`super::gate`]); follows the role
    /// ([`super::outbound`]).
    gate: Gate,
}

impl Producer {
    pub(crate) fn new(
        config: ClientConfig,
        events_topic: &str,
        counts: KafkaMetrics,
        gate: Open,
    ) -> KafkaResult<Self> {
        let judge = Judge {
            serials: Arc::new(Serials::default()),
        };
        Ok(Self {
            producer: Arc::new(Mutex::new(Arc::new(
                config.create_with_context(judge.clone())?,
            ))),
            config,
            judge,
            counts,
            events_topic: events_topic.into(),
            gate: Gate::new(gate),
        })
    }

    fn current(&self) -> Kafka {
        self.producer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the producer when it is in a fatal state (every later produce would fail).
    fn renew_if_fatal(&self) {
        let Some((code, reason)) = self.current().client().fatal_error() else {
            return;
        };
        tracing::error!(?code, %reason, "the Kafka producer hit a fatal error; creating a new one (records not yet acknowledged are produced again)");
        match self
            .config
            .create_with_context::<_, ThreadedProducer<Judge>>(self.judge.clone())
        {
            Ok(p) => {
                *self
                    .producer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(p)
            }
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }

    /// Lets the term `next` produce (`Open::Closed`: none). When a term this
    /// instance led ends, every record the producer still holds, queued or sent without
    /// an answer, is dropped first, with the gate closed: a broker that comes back later
    /// gets nothing more from a deposed leader. Those records' batches were never marked
    /// processed, so the next leader publishes them again, flagged `fix-republished`.
    pub(crate) fn follow_term(&self, next: Open) {
        let ended = self.gate.switch(next, || {
            let p = self.current();
            let held = p.in_flight_count();
            p.purge(PurgeConfig::default().queue().inflight());
            if held > 0 {
                tracing::warn!(
                    records = held,
                    "no longer leading under this term: dropped the Kafka records not yet acknowledged (the next leader publishes them again)"
                );
            }
        });
        if ended {
            self.observe_queue();
        }
    }

    /// Sets `fix_kafka_producer_queue` to what the producer holds now.
    pub(crate) fn observe_queue(&self) {
        let held = self.current().in_flight_count();
        self.counts.producer_queue.set(i64::from(held));
    }

    /// Queues `r`; while the bounded queue is full the caller waits (backpressure), until
    /// `term` ends.
    fn enqueue(&self, r: &Record, term: &Term) -> Result<DeliveryFuture, TermEnded> {
        let headers = r.headers();
        let mut waited: Option<Instant> = None;
        loop {
            if !term.is_current() {
                return Err(TermEnded);
            }
            let (tx, delivery) = oneshot::channel();
            let ticket = Ticket {
                serial: self.judge.serials.next(),
                verdict: Some(tx),
            };
            let record = BaseRecord::with_opaque_to(&r.topic, Box::new(ticket))
                .key(&r.key)
                .payload(&r.value)
                .headers(headers.clone());
            let Some(sent) = self.gate.send_for(term.epoch(), || {
                self.current().send(record).map_err(|(e, _record)| e)
            }) else {
                // The gate follows the role a moment after the term starts.
                blocking(|| std::thread::sleep(Duration::from_millis(1)));
                continue;
            };
            match sent {
                Ok(()) => return Ok(delivery),
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
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
                Err(e) => {
                    tracing::error!(topic = %r.topic, error = %e, "cannot queue a Kafka record; retrying");
                    self.renew_if_fatal();
                    self.counts.produce_retries.inc();
                    blocking(|| std::thread::sleep(Duration::from_millis(100)));
                }
            }
        }
    }

    /// Waits until the broker has `r` (queued as `delivery`, or not queued when the term
    /// ended in `from_app`), producing it again after a failed attempt, until `term` ends.
    fn confirm(
        &self,
        r: &Record,
        delivery: Option<DeliveryFuture>,
        term: &Term,
    ) -> Result<(), TermEnded> {
        let mut backoff = Duration::from_millis(50);
        let mut again: Option<Record> = None;
        let mut delivery = match delivery {
            Some(d) => d,
            None => self.enqueue(r, term)?,
        };
        loop {
            let record = again.as_ref().unwrap_or(r);
            match wait_delivery(&mut delivery, term).ok_or(TermEnded)? {
                Ok(Delivered::Stored { partition, offset }) => {
                    tracing::debug!(topic = %r.topic, key = %r.key, headers = ?record.headers, partition, offset, "acknowledged by the broker");
                    return Ok(());
                }
                Ok(Delivered::Unproven) => {
                    // A batch the broker called a duplicate comes back without an
                    // offset; a broker that lost its data or producer state in a crash
                    // answers so for records it never stored (see `delivery`).
                    tracing::warn!(topic = %r.topic, key = %r.key, "Kafka acknowledged a record without proof that it is stored; producing it again (flagged fix-republished)")
                }
                Ok(Delivered::Failed(e)) => {
                    tracing::warn!(topic = %r.topic, key = %r.key, error = %e, "Kafka did not take a record; producing it again (flagged fix-republished)")
                }
                Err(_) => {
                    tracing::warn!(topic = %r.topic, key = %r.key, "the Kafka producer dropped a record; producing it again (flagged fix-republished)")
                }
            }
            self.counts.produce_retries.inc();
            self.renew_if_fatal();
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            // The failed attempt may have landed after all: the copy says it may be one.
            let copy = again.get_or_insert_with(|| r.republished());
            delivery = self.enqueue(copy, term)?;
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
        let ticket = Ticket {
            serial: 0,
            verdict: None,
        };
        let record = BaseRecord::with_opaque_to(&self.events_topic, Box::new(ticket))
            .key(id)
            .payload(&value);
        // The gate follows the role a moment after the sessions do: a logon right at the
        // start of a term waits for it briefly (a standby has no session events).
        let deadline = Instant::now() + EVENT_GATE_WAIT;
        let mut record = Some(record);
        let sent = loop {
            let sent = self.gate.send_if_open(|| {
                let r = record.take().expect("sent at most once");
                self.current().send(r).map_err(|(e, _record)| e)
            });
            if sent.is_some() || Instant::now() >= deadline {
                break sent;
            }
            blocking(|| std::thread::sleep(Duration::from_millis(2)));
        };
        match sent {
            None => tracing::debug!(
                event,
                session = id,
                "not leading: session event not published"
            ),
            Some(Err(e)) => {
                tracing::warn!(event, session = id, error = %e, "cannot queue a session event")
            }
            Some(Ok(())) => {}
        }
    }
}

/// The application that bridges a group's sessions to Kafka.
pub struct BridgeApp {
    producer: Producer,
    inbound_topic: String,
    payload: Payload,
    pending: Mutex<HashMap<SessionId, Vec<Queued>>>,
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

    /// Puts `records` back in front of `id`'s pending records.
    fn put_back(&self, id: &SessionId, mut records: Vec<Queued>) {
        if let Ok(mut p) = self.pending.lock() {
            let queue = p.entry(id.clone()).or_default();
            records.append(queue);
            *queue = records;
        }
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
        // Journaled by an earlier leader (or before a restart) and not confirmed as
        // produced: it may be on the topic already.
        let record = if ctx.is_replay() {
            record.republished()
        } else {
            record
        };
        // A term that ended while the buffer was full leaves the record unqueued:
        // `before_processed` then refuses the batch, and the next leader publishes it.
        let delivery = self.producer.enqueue(&record, ctx.term()).ok();
        self.producer.counts.pending.inc();
        if let Ok(mut p) = self.pending.lock() {
            p.entry(id)
                .or_default()
                .push((record, delivery, ctx.term().epoch()));
        }
        Ok(())
    }

    fn before_processed(&self, id: &SessionId, term: &Term) -> Result<(), TermEnded> {
        let batch = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(id))
            .unwrap_or_default();
        if !term.is_current() {
            // Nothing may be marked processed now; kept for this term's next batch (a
            // lease deadline that passed while a late renew was coming keeps the epoch).
            self.put_back(id, batch);
            return Err(TermEnded);
        }
        // Records handled in an earlier term were never marked processed: the journal
        // hands their messages over again in this one, so they are not confirmed twice.
        let (batch, stale): (Vec<Queued>, Vec<Queued>) =
            batch.into_iter().partition(|q| q.2 == term.epoch());
        self.producer.counts.pending.dec_by(stale.len() as i64);
        let mut batch = batch.into_iter();
        blocking(|| {
            while let Some((record, delivery, epoch)) = batch.next() {
                if let Err(e) = self.producer.confirm(&record, delivery, term) {
                    // The same: its commit must not mark these processed before the
                    // broker has them.
                    let mut rest = vec![(record.republished(), None, epoch)];
                    rest.extend(batch.by_ref());
                    self.put_back(id, rest);
                    return Err(e);
                }
                self.producer.counts.produced.inc();
                self.producer.counts.pending.dec();
            }
            Ok(())
        })
    }
}

/// Waits for `delivery` while `term` lasts; `None` when the term ended first.
fn wait_delivery(
    delivery: &mut DeliveryFuture,
    term: &Term,
) -> Option<Result<Delivered, oneshot::Canceled>> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            // Called inside `blocking` (block_in_place): this thread may block on the runtime.
            h.block_on(async {
                loop {
                    if !term.is_current() {
                        return None;
                    }
                    tokio::select! {
                        d = &mut *delivery => return Some(d),
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            })
        }
        _ => loop {
            // No runtime to wait on: look again every millisecond (the producer's own
            // thread completes the delivery).
            match delivery.try_recv() {
                Ok(Some(d)) => return Some(Ok(d)),
                Ok(None) if !term.is_current() => return None,
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Some(Err(e)),
            }
        },
    }
}
