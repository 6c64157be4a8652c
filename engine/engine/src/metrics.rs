//! Prometheus metrics of the engine.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A session's labels: its BeginString, SenderCompID and TargetCompID, each its own
/// label (so that a query can select by counterparty or version).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabel {
    /// `FIX.4.4`, `FIXT.1.1`, …
    pub begin_string: String,
    /// This engine's CompID on the session.
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
}

impl SessionLabel {
    /// The labels of a session.
    pub fn of(id: &fix_session::SessionId) -> Self {
        Self {
            begin_string: id.begin_string.clone(),
            sender_comp_id: id.sender_comp_id.clone(),
            target_comp_id: id.target_comp_id.clone(),
        }
    }
}

/// Per-session counters of session-level events, kept by the session state machine
/// ([`fix_session::SessionCounters`]) and copied here when `/metrics` is read.
#[derive(Debug, Clone, Default)]
pub struct SessionCountMetrics {
    rejects_sent: Family<SessionLabel, Counter>,
    resend_requests_sent: Family<SessionLabel, Counter>,
    gap_fills_sent: Family<SessionLabel, Counter>,
    disconnects: Family<SessionLabel, Counter>,
    logon_failures: Family<SessionLabel, Counter>,
    heartbeat_timeouts: Family<SessionLabel, Counter>,
}

impl SessionCountMetrics {
    fn register(&self, registry: &mut Registry) {
        let families = [
            (
                "session_rejects_sent",
                "Session-level Rejects sent",
                &self.rejects_sent,
            ),
            (
                "session_resend_requests_sent",
                "ResendRequests sent (gaps in the counterparty's numbers)",
                &self.resend_requests_sent,
            ),
            (
                "session_gap_fills_sent",
                "SequenceReset-GapFills sent answering ResendRequests",
                &self.gap_fills_sent,
            ),
            (
                "session_disconnects",
                "FIX connections that ended",
                &self.disconnects,
            ),
            (
                "session_logon_failures",
                "FIX connections that ended without a completed Logon",
                &self.logon_failures,
            ),
            (
                "session_heartbeat_timeouts",
                "FIX connections closed for unanswered heartbeats and TestRequest",
                &self.heartbeat_timeouts,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
    }

    /// Brings a session's counters up to `counts` (they only grow).
    pub fn update(&self, label: &SessionLabel, counts: &fix_session::SessionCounters) {
        // Atomic: two scrapes at once raise a counter to the same value, never past it.
        let raise = |family: &Family<SessionLabel, Counter>, to: u64| {
            family
                .get_or_create(label)
                .inner()
                .fetch_max(to, std::sync::atomic::Ordering::Relaxed);
        };
        raise(&self.rejects_sent, counts.rejects_sent);
        raise(&self.resend_requests_sent, counts.resend_requests_sent);
        raise(&self.gap_fills_sent, counts.gap_fills_sent);
        raise(&self.disconnects, counts.disconnects);
        raise(&self.logon_failures, counts.logon_failures);
        raise(&self.heartbeat_timeouts, counts.heartbeat_timeouts);
    }
}

/// The labels of `fix_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

/// The Kafka bridge's metrics (all zero without the bridge).
#[derive(Debug, Clone, Default)]
pub struct KafkaMetrics {
    /// Inbound messages the broker acknowledged.
    pub produced: Counter,
    /// Produce attempts that failed or waited for buffer space, and were retried.
    pub produce_retries: Counter,
    /// Inbound messages waiting for the broker's acknowledgement.
    pub pending: Gauge,
    /// Outbound records sent on a session.
    pub consumed: Counter,
    /// Outbound records that could not be sent (an event on the events topic says why).
    pub rejected: Counter,
    /// Outbound records not sent again because an earlier leader had sent them.
    pub duplicates_skipped: Counter,
    /// Records the Kafka producer holds (queued, or sent without an answer); 0 soon
    /// after this instance stops leading.
    pub producer_queue: Gauge,
}

impl KafkaMetrics {
    fn register(&self, registry: &mut Registry) {
        let kafka = registry.sub_registry_with_prefix("kafka");
        kafka.register(
            "produced",
            "Inbound messages the broker acknowledged",
            self.produced.clone(),
        );
        kafka.register(
            "produce_retries",
            "Produce attempts retried (broker down, slow, or the buffer full)",
            self.produce_retries.clone(),
        );
        kafka.register(
            "pending",
            "Inbound messages waiting for the broker's acknowledgement",
            self.pending.clone(),
        );
        kafka.register(
            "consumed",
            "Outbound records sent on a session",
            self.consumed.clone(),
        );
        kafka.register(
            "rejected",
            "Outbound records that could not be sent",
            self.rejected.clone(),
        );
        kafka.register(
            "duplicates_skipped",
            "Outbound records not sent again after a failover or restart",
            self.duplicates_skipped.clone(),
        );
        kafka.register(
            "producer_queue",
            "Records the Kafka producer holds (queued, or sent without an answer)",
            self.producer_queue.clone(),
        );
    }
}

/// Every metric the engine exports.
pub struct Metrics {
    registry: Registry,
    /// Messages received per session.
    pub messages_in: Family<SessionLabel, Counter>,
    /// Messages written to the socket per session (resends included).
    pub messages_out: Family<SessionLabel, Counter>,
    /// 1 while the session is logged on.
    pub logged_on: Family<SessionLabel, Gauge>,
    /// Next outbound sequence number.
    pub next_sender_seq: Family<SessionLabel, Gauge>,
    /// Next expected inbound sequence number.
    pub next_target_seq: Family<SessionLabel, Gauge>,
    /// Session-level counts (rejects, resend requests, gap fills, disconnects, logon
    /// failures, heartbeat timeouts), brought up to the sessions' own counts when
    /// scraped.
    pub session_counts: SessionCountMetrics,
    /// 1 while this instance is the leader (always 1 without a lease).
    pub leader: Gauge,
    /// The lease epoch in force here.
    pub epoch: Gauge,
    /// How many times this instance became leader.
    pub leader_terms: Gauge,
    /// Standbys connected to this leader.
    pub replication_standbys: Gauge,
    /// Journal bytes durable here that the most advanced standby has not acknowledged.
    pub replication_lag_bytes: Gauge,
    /// Journal bytes durable here that the most advanced standby of another region has
    /// not acknowledged (multi-region groups; all of it while none is connected).
    pub replication_cross_region_lag_bytes: Gauge,
    /// Writes acknowledged by this leader alone under `replicated` durability (the
    /// in-sync set had shrunk to it).
    pub replication_degraded_writes: Gauge,
    /// Members of the in-sync set recorded under this leader's epoch (this leader
    /// included; 0 while not leading or before the takeover record).
    pub replication_in_sync_members: Gauge,
    /// Standbys removed from the in-sync set since start.
    pub replication_in_sync_shrinks: Gauge,
    /// Standbys added to the in-sync set since start.
    pub replication_in_sync_expands: Gauge,
    /// 1 while messages wait past `standby_wait_ms` with `on_standby_loss = "halt"`.
    pub replication_halted: Gauge,
    /// FIX connections closed at accept because too many were waiting for their Logon
    /// (`[engine.connections]`).
    pub connections_refused: Counter,
    /// Replication connections closed at accept because too many were still
    /// authenticating ([`crate::pending::REPLICATION_LIMITS`]).
    pub replication_connections_refused: Counter,
    /// Admin API connections closed at accept because too many were open
    /// ([`crate::pending::ADMIN_LIMITS`]).
    pub admin_connections_refused: Counter,
    /// Time one journal group commit (write + fdatasync) took.
    pub journal_fsync_seconds: Histogram,
    /// Time one lease renewal took.
    pub lease_renew_seconds: Histogram,
    /// The Kafka bridge.
    pub kafka: KafkaMetrics,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16)
}

/// Finer buckets for the lease's calls (0.2 ms to about 1.2 s, 25 % apart): the TTL is
/// sized from their tail.
fn lease_call_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_2, 1.25, 40)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `fix_` prefix.
    pub fn new() -> Self {
        Self::with_kafka(KafkaMetrics::default())
    }

    /// The same, with the Kafka bridge's metrics (shared with the bridge).
    pub fn with_kafka(kafka: KafkaMetrics) -> Self {
        let mut registry = Registry::with_prefix("fix");
        kafka.register(&mut registry);
        let m = Self {
            messages_in: Family::default(),
            messages_out: Family::default(),
            logged_on: Family::default(),
            next_sender_seq: Family::default(),
            next_target_seq: Family::default(),
            session_counts: SessionCountMetrics::default(),
            leader: Gauge::default(),
            epoch: Gauge::default(),
            leader_terms: Gauge::default(),
            replication_standbys: Gauge::default(),
            replication_lag_bytes: Gauge::default(),
            replication_cross_region_lag_bytes: Gauge::default(),
            replication_degraded_writes: Gauge::default(),
            replication_in_sync_members: Gauge::default(),
            replication_in_sync_shrinks: Gauge::default(),
            replication_in_sync_expands: Gauge::default(),
            replication_halted: Gauge::default(),
            connections_refused: Counter::default(),
            replication_connections_refused: Counter::default(),
            admin_connections_refused: Counter::default(),
            journal_fsync_seconds: Histogram::new(latency_buckets()),
            lease_renew_seconds: Histogram::new(lease_call_buckets()),
            kafka,
            registry: Registry::default(),
        };
        m.session_counts.register(&mut registry);
        let build_info = Family::<BuildLabel, Gauge>::default();
        build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register(
            "build_info",
            "1, with the engine's version as a label",
            build_info,
        );
        registry.register(
            "messages_in",
            "FIX messages received",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "FIX messages written to the socket",
            m.messages_out.clone(),
        );
        registry.register(
            "session_logged_on",
            "1 while the session is logged on",
            m.logged_on.clone(),
        );
        registry.register(
            "next_sender_seq",
            "Next outbound MsgSeqNum",
            m.next_sender_seq.clone(),
        );
        registry.register(
            "next_target_seq",
            "Next expected inbound MsgSeqNum",
            m.next_target_seq.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the lease",
            m.leader.clone(),
        );
        registry.register(
            "lease_epoch",
            "Lease epoch (fencing token) in force",
            m.epoch.clone(),
        );
        registry.register(
            "leader_terms",
            "Times this instance became leader",
            m.leader_terms.clone(),
        );
        registry.register(
            "replication_standbys",
            "Standbys connected to this leader",
            m.replication_standbys.clone(),
        );
        registry.register(
            "replication_lag_bytes",
            "Journal bytes not yet acknowledged by the most advanced standby",
            m.replication_lag_bytes.clone(),
        );
        registry.register(
            "replication_cross_region_lag_bytes",
            "Journal bytes not yet acknowledged by the most advanced standby of another region",
            m.replication_cross_region_lag_bytes.clone(),
        );
        registry.register(
            "replication_degraded_writes",
            "Writes acknowledged by the leader alone under replicated durability (in-sync set shrunk to it)",
            m.replication_degraded_writes.clone(),
        );
        registry.register(
            "replication_in_sync_members",
            "Members of the in-sync set recorded in the lease store under this leader's epoch",
            m.replication_in_sync_members.clone(),
        );
        registry.register(
            "replication_in_sync_shrinks",
            "Standbys removed from the in-sync set since start",
            m.replication_in_sync_shrinks.clone(),
        );
        registry.register(
            "replication_in_sync_expands",
            "Standbys added to the in-sync set since start",
            m.replication_in_sync_expands.clone(),
        );
        registry.register(
            "connections_refused",
            "FIX connections closed at accept because too many were waiting for their Logon",
            m.connections_refused.clone(),
        );
        registry.register(
            "replication_connections_refused",
            "Replication connections closed at accept because too many were still authenticating",
            m.replication_connections_refused.clone(),
        );
        registry.register(
            "admin_connections_refused",
            "Admin API connections closed at accept because too many were open",
            m.admin_connections_refused.clone(),
        );
        registry.register(
            "replication_halted",
            "1 while messages wait past standby_wait_ms with on_standby_loss = halt",
            m.replication_halted.clone(),
        );
        registry.register(
            "journal_fsync_seconds",
            "Duration of one journal group commit (write and fdatasync)",
            m.journal_fsync_seconds.clone(),
        );
        registry.register(
            "lease_renew_seconds",
            "Duration of one lease renewal",
            m.lease_renew_seconds.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// How many whole messages a chunk of outbound bytes holds (one CheckSum trailer each).
pub fn count_messages(bytes: &[u8]) -> u64 {
    memchr::memmem::find_iter(bytes, b"\x0110=").count() as u64
}
