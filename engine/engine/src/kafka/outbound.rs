//! The outbound loop: while this instance leads, it consumes the outbound topic, sends
//! each record on the session its CompIDs (or its `fix-session` header) name, and
//! commits the record's offset only once the engine has the message in its journal
//! (`EngineHandle::send` resolves then). A record that cannot be sent (garbled, or for
//! no session of this engine) is reported on the events topic and skipped. When the
//! instance stops leading it stops consuming, and the next leader resumes from the
//! committed offsets.
//!
//! The leader takes every partition by assignment, not through a consumer-group join:
//! the lease already makes it the only consumer, and a new leader does not wait for the
//! group to notice that a killed one is gone (the session timeout) before it consumes.
//! The group id only names where the offsets are committed.
//!
//! Offsets are committed one record at a time, so at most the first record after the
//! committed offset of each partition can have been sent by an earlier leader (or an
//! earlier consumer of this one) without its commit. That record is checked against the
//! session's last stored outbound messages (the replicated journal): when one of them
//! has the same MsgType and carries the record's body, it is not sent again but skipped
//! with an `outbound-duplicate-skipped` event. The record's body is its idempotency key:
//! an order's ClOrdID makes it unique.

use super::gate::Open;
use super::inbound::Producer;
use super::payload::{decode_outbound, Outbound};
use crate::config::kafka::{KafkaSection, Payload};
use crate::handle::EngineHandle;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use std::time::Duration;

fn leads(handle: &EngineHandle) -> bool {
    matches!(handle.role(), fix_lease::Leadership::Leader { .. })
}

/// The epoch this instance leads with now.
fn leading_epoch(handle: &EngineHandle) -> Option<u64> {
    match handle.role() {
        fix_lease::Leadership::Leader { epoch } => Some(epoch),
        fix_lease::Leadership::Standby => None,
    }
}

/// Runs for the engine's life: consumes while leading, and drops what the producer
/// still holds at each deposition.
pub(crate) async fn run(
    client: ClientConfig,
    section: KafkaSection,
    handle: EngineHandle,
    producer: Producer,
) {
    // A task of its own: the consumer blocks its task in librdkafka calls (metadata,
    // commits) for seconds while the broker is away, exactly when a deposition must
    // still be acted on at once. Aborted with this one.
    let watcher = AbortOnDrop(tokio::spawn(gate_follows_the_role(
        handle.clone(),
        producer.clone(),
    )));
    consume(client, section, handle, producer).await;
    drop(watcher);
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the producer's gate on the role ([`Producer::follow_term`]): open for the term
/// this instance leads, closed (after a purge) when it stops leading, and open for `None`
/// without a lease. Also keeps `fix_kafka_producer_queue` current (twice a second).
async fn gate_follows_the_role(handle: EngineHandle, producer: Producer) {
    let mut roles = handle.role_changes();
    let has_lease = roles.is_some();
    let term = move |handle: &EngineHandle| match (has_lease, leading_epoch(handle)) {
        (false, _) => Open::For(None),
        (true, Some(epoch)) => Open::For(Some(epoch)),
        (true, None) => Open::Closed,
    };
    producer.follow_term(term(&handle));
    // An interval, not a sleep per turn: the role state changes at every lease renewal.
    let mut observe = tokio::time::interval(Duration::from_millis(500));
    observe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = async {
            match roles.as_mut() {
                Some(r) => r.changed().await.is_ok(),
                None => std::future::pending().await, // No lease: the term never ends.
            }
        };
        tokio::select! {
            alive = changed => {
                if !alive {
                    return;
                }
                let next = term(&handle);
                super::blocking(|| producer.follow_term(next));
            }
            _ = observe.tick() => producer.observe_queue(),
        }
    }
}

async fn consume(
    client: ClientConfig,
    section: KafkaSection,
    handle: EngineHandle,
    producer: Producer,
) {
    loop {
        while !leads(&handle) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match consume_while_leading(&client, &section, &handle, &producer).await {
            Err(e) => {
                tracing::warn!(error = %e, topic = %section.outbound_topic, "the Kafka outbound consumer stopped; starting again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // A record left for later while still leading (the session was stopping):
            // do not spin on it.
            Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn consume_while_leading(
    client: &ClientConfig,
    section: &KafkaSection,
    handle: &EngineHandle,
    producer: &Producer,
) -> Result<(), rdkafka::error::KafkaError> {
    let consumer: StreamConsumer = client.create()?;
    let topic = section.outbound_topic.as_str();
    let metadata =
        super::blocking(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(10)))?;
    let mut partitions = rdkafka::TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        if let Some(e) = t.error() {
            return Err(rdkafka::error::KafkaError::MetadataFetch(e.into()));
        }
        for p in t.partitions() {
            partitions.add_partition_offset(topic, p.id(), rdkafka::Offset::Stored)?;
        }
    }
    if partitions.count() == 0 {
        tracing::warn!(topic, "the outbound topic has no partitions: create it (or let the broker auto-create topics)");
        return Err(rdkafka::error::KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    consumer.assign(&partitions)?;
    tracing::info!(topic = %section.outbound_topic, "leading: consuming outbound messages");
    let mut checked = std::collections::HashSet::new();
    // The term this consumer serves: a lose-and-regain of the lease starts a new one.
    let Some(epoch) = leading_epoch(handle) else {
        return Ok(());
    };
    while leading_epoch(handle) == Some(epoch) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            Err(_) => continue,
            Ok(m) => m?,
        };
        let value = msg.payload().unwrap_or_default();
        let header = session_header(&msg);
        let first = checked.insert(msg.partition());
        let record = Record {
            value,
            header: header.as_deref(),
            first,
        };
        if !send(section.payload, record, handle, producer).await {
            // Not sent and not refused for good (the session is fenced or stopping):
            // leave the offset for the next leader.
            return Ok(());
        }
        if leading_epoch(handle) != Some(epoch) {
            // Deposed while sending: the next leader decides about this record (its
            // first-record check finds it in the replicated journal if it was sent).
            tracing::info!("no longer leading under this term: the offset is left uncommitted");
            return Ok(());
        }
        super::blocking(|| consumer.commit_message(&msg, CommitMode::Sync))?;
    }
    tracing::info!("no longer leading: outbound consumption stopped");
    Ok(())
}

/// The record's `fix-session` header, when it has one.
fn session_header(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<String> {
    use rdkafka::message::Headers;
    msg.headers()?
        .iter()
        .find(|h| h.key == "fix-session")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// One outbound record as `send` needs it.
struct Record<'a> {
    value: &'a [u8],
    /// Its `fix-session` header.
    header: Option<&'a str>,
    /// The first of its partition since this consumer started (an earlier one may have
    /// sent it).
    first: bool,
}

/// How many of a session's last outbound messages the first record is checked against.
const SENT_WINDOW: u64 = 1000;

/// Whether the session's last stored outbound messages hold `out` already.
async fn already_sent(handle: &EngineHandle, id: &fix_session::SessionId, out: &Outbound) -> bool {
    let Ok(status) = handle.status(id).await else {
        return false;
    };
    let to = status.next_sender_seq.saturating_sub(1);
    let from = to.saturating_sub(SENT_WINDOW).max(1);
    let Ok(stored) = handle
        .stored_messages(id, from, to, SENT_WINDOW as usize)
        .await
    else {
        return false;
    };
    let msg_type = format!("\x0135={}\x01", out.msg_type);
    let mut body = vec![1u8];
    body.extend_from_slice(&out.body);
    stored.iter().any(|(_, m)| {
        memchr::memmem::find(m, msg_type.as_bytes()).is_some()
            && memchr::memmem::find(m, &body).is_some()
    })
}

/// Sends one record's message; false when it should be consumed again later.
async fn send(
    format: Payload,
    record: Record<'_>,
    handle: &EngineHandle,
    producer: &Producer,
) -> bool {
    let Record {
        value,
        header,
        first,
    } = record;
    let reject = |why: String| {
        tracing::warn!(reason = %why, "an outbound Kafka record was not sent");
        producer.counts.rejected.inc();
        producer.event(
            "-",
            "outbound-rejected",
            serde_json::json!({
                "reason": why,
                "record": String::from_utf8_lossy(value).replace('\x01', "|"),
            }),
        );
        true
    };
    let decoded = decode_outbound(format, value).and_then(|o| match header {
        Some(h) => o.with_session_header(h),
        None => Ok(o),
    });
    let out = match decoded {
        Ok(o) => o,
        Err(e) => return reject(e.to_string()),
    };
    let (sender, target) = match out.comp_ids() {
        Ok(c) => c,
        Err(e) => return reject(e.to_string()),
    };
    let Some(id) = handle.session_ids().into_iter().find(|id| out.is_for(id)) else {
        return reject(format!(
            "no session of this engine has SenderCompID {sender} and TargetCompID {target}"
        ));
    };
    if first && already_sent(handle, &id, &out).await {
        tracing::warn!(session = %id, "an outbound record already sent before the failover or restart was not sent again");
        producer.counts.duplicates_skipped.inc();
        producer.event(
            &id.to_string(),
            "outbound-duplicate-skipped",
            serde_json::json!({"record": String::from_utf8_lossy(value).replace('\x01', "|")}),
        );
        return true;
    }
    match handle.send(&id, out.msg_type.as_bytes(), &out.body).await {
        Ok(_) => {
            producer.counts.consumed.inc();
            true
        }
        Err(crate::EngineError::Send(e)) if !leads(handle) => {
            tracing::info!(session = %id, error = %e, "not sent: no longer leading");
            false
        }
        Err(crate::EngineError::Send(fix_session::SendError::Refused)) => reject(format!(
            "session {id} refused it (the application's to_app hook)"
        )),
        // The store could not keep it (or the session stopped on a store failure): not a
        // verdict on the record. It stays on the topic; the journal's failure steps this
        // leader down, and the next one sends it.
        Err(crate::EngineError::Send(e)) => {
            tracing::warn!(session = %id, error = %e, "not sent: the store failed; the record stays on the topic");
            false
        }
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "not sent; it stays on the topic");
            false
        }
    }
}
