//! The `FixSession` custom resource (`fixsessions.fix.fixengine.dev/v1alpha1`): an engine
//! group — a leader and its hot standbys — with its sessions, lease, durability and
//! routing. The CRD's YAML is generated from these types (`crdgen`) and committed in the
//! chart; a test fails when the two drift.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of the custom resources.
pub const GROUP: &str = "fix.fixengine.dev";

/// Annotation asking for a manual failover: `any` (whichever standby takes over) or the
/// name of the pod that should lead next.
pub const FAILOVER_ANNOTATION: &str = "fix.fixengine.dev/failover";
/// Annotation naming the request (any string, new for each request); the result is
/// reported in `status.manualFailover` under the same id, and a request is carried out
/// once per id.
pub const FAILOVER_ID_ANNOTATION: &str = "fix.fixengine.dev/failover-id";

/// What a FixSession runs: the engine pair (or more instances) for one group of FIX
/// sessions that fail over together.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "fix.fixengine.dev",
    version = "v1alpha1",
    kind = "FixSession",
    namespaced,
    status = "FixSessionStatus",
    shortname = "fixs",
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader"}"#,
    printcolumn = r#"{"name":"Epoch","type":"integer","jsonPath":".status.epoch"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FixSessionSpec {
    /// The engine's container image (default: what `scripts/image.sh` tags,
    /// `localhost/fix-engine:VERSION`; push it to a registry the cluster pulls from and
    /// name that one here).
    #[serde(default = "default_image")]
    pub image: String,
    /// Instances: one leads, the others are hot standbys following its journal.
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 7))]
    pub instances: u32,
    /// The sessions' configuration: the engine's TOML, inline or from a ConfigMap, or a
    /// QuickFIX settings file from a ConfigMap.
    pub config: SessionConfig,
    /// Who may lead: the lease store and its timings.
    pub lease: LeaseSpec,
    /// When a message counts as safe to send or hand to the application.
    #[serde(default)]
    pub durability: Durability,
    /// How counterparties reach the leader.
    #[serde(default)]
    pub routing: RoutingSpec,
    /// The regions this group runs in (the first is where it runs now).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Ports inside the pods.
    #[serde(default)]
    pub ports: Ports,
    /// The journal's volume, one per instance.
    #[serde(default)]
    pub storage: StorageSpec,
    /// The admin API's bearer token (a Secret key), needed for actions and for every
    /// read but `/healthz` and `/readyz`; without it the engines refuse actions and serve
    /// other reads to loopback clients only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<SecretKeyRef>,
    /// The replication key the instances authenticate each other with (a Secret key,
    /// at least 16 bytes); without it the operator creates a Secret
    /// `<name>-replication-key` with a random key and keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_key: Option<SecretKeyRef>,
    /// The replication channel over mutual TLS: a Secret of type `kubernetes.io/tls`
    /// with `tls.crt`, `tls.key` and `ca.crt` (as cert-manager writes it), shared by the
    /// group's instances. The certificate must name every instance's address,
    /// `<name>-<i>.<name>-peers.<namespace>.svc` (a wildcard
    /// `*.<name>-peers.<namespace>.svc` does), for both server and client use. Without
    /// it the channel is authenticated by the replication key but not encrypted. The
    /// engines read the files when they start: after a renewal, restart the pods one at
    /// a time, standbys first, before the old certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_tls: Option<ReplicationTls>,
    /// The engine container's resources (default: requests 1 CPU and 512Mi, limit
    /// 2Gi). Instances of a group never share a node, and spread over zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

fn default_image() -> String {
    format!("localhost/fix-engine:{}", env!("CARGO_PKG_VERSION"))
}

fn default_instances() -> u32 {
    2
}

/// A key of a Secret in the FixSession's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret.
    pub name: String,
    /// The key in it.
    pub key: String,
}

/// The Secret holding the instances' replication certificate.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationTls {
    /// A `kubernetes.io/tls` Secret in the FixSession's namespace, with `ca.crt`.
    pub secret_name: String,
}

/// A key of a ConfigMap in the FixSession's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapKeyRef {
    /// The ConfigMap.
    pub name: String,
    /// The key in it.
    pub key: String,
}

/// Where the sessions' configuration comes from: exactly one of the three.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionConfig {
    /// The engine's TOML (`[engine]` and `[[session]]` tables), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// The engine's TOML in a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKeyRef>,
    /// A QuickFIX settings file in a ConfigMap (`fix-engine --quickfix-settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quickfix_settings: Option<ConfigMapKeyRef>,
}

/// The lease store.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseBackend {
    /// PostgreSQL (`postgres://…`).
    Postgres,
    /// MySQL or MariaDB (`mysql://…`).
    Mysql,
    /// DynamoDB (`dynamodb://TABLE?region=…`).
    Dynamodb,
}

/// Who may lead.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// The lease store.
    pub backend: LeaseBackend,
    /// The store's URL, from a Secret (it may carry credentials).
    pub url_secret: SecretKeyRef,
    /// The lease group (default: the FixSession's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Lease time to live.
    #[serde(default = "default_ttl")]
    pub ttl_ms: u64,
    /// How often the leader renews.
    #[serde(default = "default_renew")]
    pub renew_interval_ms: u64,
    /// How long before expiry the leader stops sending (at least 1).
    #[serde(default = "default_margin")]
    #[schemars(range(min = 1))]
    pub safety_margin_ms: u64,
}

fn default_ttl() -> u64 {
    fix_lease::DEFAULT_TTL.as_millis() as u64
}
fn default_renew() -> u64 {
    fix_lease::DEFAULT_RENEW_INTERVAL.as_millis() as u64
}
fn default_margin() -> u64 {
    fix_lease::DEFAULT_SAFETY_MARGIN.as_millis() as u64
}

/// `[engine.replication] durability`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// On the leader's disk only.
    Local,
    /// On the leader's and a standby's disk before it is sent (RPO 0).
    #[default]
    Replicated,
    /// Written (not yet synced) by the leader and every in-sync standby before it is
    /// sent; both fsync in the background (RPO 0 for the loss of any one machine).
    ReplicatedWritten,
    /// Committed to the lease's SQL database too.
    Sql,
}

/// How counterparties reach the leader.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingSpec {
    /// Which router moves traffic at a failover.
    #[serde(default)]
    pub backend: RoutingBackend,
    /// Global Accelerator: the endpoint group and each instance's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_accelerator: Option<GlobalAcceleratorRouting>,
    /// Route 53 ARC: the cluster's endpoints and each instance's routing control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc: Option<ArcRouting>,
    /// The routing API's URL, for an emulator (called with fixed test credentials);
    /// absent in production, where the AWS SDK's usual endpoints and credential chain
    /// (IAM roles for service accounts) apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// The router.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingBackend {
    /// Only the Kubernetes Service (its endpoints are the leader's pod).
    #[default]
    None,
    /// AWS Global Accelerator endpoint weights.
    GlobalAccelerator,
    /// Route 53 Application Recovery Controller routing controls.
    Arc,
}

/// Global Accelerator routing: endpoint weights in one endpoint group
/// (`endpointGroupArn` with `endpoints`), or traffic dials with one endpoint group per
/// instance (`dialGroups`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalAcceleratorRouting {
    /// The endpoint group's ARN (weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_group_arn: Option<String>,
    /// Instance (pod name) → endpoint ID, for example its NLB's ARN (weights).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, String>,
    /// Instance (pod name) → its own endpoint group's ARN (traffic dials).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dial_groups: BTreeMap<String, String>,
}

/// Route 53 ARC routing.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArcRouting {
    /// The cluster's data-plane endpoints (`DescribeCluster`), tried in turn.
    pub cluster_endpoints: Vec<ArcClusterEndpoint>,
    /// Instance (pod name) → routing control ARN.
    pub routing_controls: BTreeMap<String, String>,
    /// Safety rules to override (break-glass only; empty normally).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_rules_to_override: Vec<String>,
}

/// One regional endpoint of an ARC cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ArcClusterEndpoint {
    /// Its URL.
    pub url: String,
    /// Its region.
    pub region: String,
}

/// Ports inside the pods.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    /// The FIX port (the sessions' listen port).
    pub fix: u16,
    /// The journal replication port.
    pub replication: u16,
    /// The admin API (`/readyz`, metrics).
    pub admin: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            fix: 9878,
            replication: 9901,
            admin: 9100,
        }
    }
}

/// The journal's volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Its size (a Kubernetes quantity).
    pub size: String,
    /// Its StorageClass (default: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: "10Gi".into(),
            storage_class_name: None,
        }
    }
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FixSessionStatus {
    /// `Ready`, `LeaseHeld`, `RoutingConverged`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The pod that leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Its lease epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The last leadership change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverRecord>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last manual failover request (annotation or `fixctl failover`) and its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_failover: Option<ManualFailoverStatus>,
}

/// A manual failover request's result.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualFailoverStatus {
    /// The request's id (the `fix.fixengine.dev/failover-id` annotation).
    pub id: String,
    /// What was asked: `any` or a pod name.
    pub target: String,
    /// `Succeeded` or `Failed`.
    pub outcome: String,
    /// The new leader, or why it failed.
    pub message: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
}

/// One leadership change, as the supervisor measured it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// The old leader (absent when none was known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The new leader.
    pub to: String,
    /// When it was detected (RFC 3339).
    pub detected_at: String,
    /// Why: `LeaderLost`, `Manual`, …
    pub reason: String,
    /// Each phase and its duration, in order.
    pub phases: Vec<FailoverPhase>,
}

/// A phase of a failover.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPhase {
    /// `Detected`, `LeaseGranted`, `Routed`, `OldLeaderFenced`.
    pub name: String,
    /// Milliseconds since the failover began.
    pub at_ms: u64,
}
