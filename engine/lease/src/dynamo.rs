//! The DynamoDB lease backend: one item per group in a table keyed by `grp`, changed only
//! by conditional `UpdateItem` calls. The in-sync set is a string set `in_sync`; an
//! acquire requires the contender in it (`contains`) when it exists.
//!
//! DynamoDB has no server clock a condition can read, so no wall clock decides who holds
//! the lease. Every write of the holder (acquire, renew, release) adds one to the item's
//! `beat` and changes `expires_at_ms` (an older engine version changes only the latter);
//! a contender takes the lease only after it has seen the same pair for a whole TTL by
//! its own monotonic clock, or at once when the holder released it (`expires_at_ms` 0),
//! with a write conditional on that pair (the scheme of Amazon's DynamoDB lock client). The holder trusts its
//! lease until its request was sent + TTL − margin, which ends before any contender's
//! TTL of watching can: a clock that steps or runs ahead on any machine changes nothing.
//! `expires_at_ms` is still written (by the holder's clock) for people to read.

use crate::store::{Grant, InSync, LeaseError, LeaseState, LeaseStore};
use crate::watch::{Verdict, Watcher};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A lease store in a DynamoDB table (for multi-region, a strongly consistent global
/// table or one home-region table: [`crate::consistency`]).
#[derive(Clone)]
pub struct DynamoLeaseStore {
    client: Client,
    table: String,
    wall_clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The holders' beats as watched ([`crate::watch`]).
    watcher: Arc<Watcher>,
    /// Create the table when it is missing (emulators and tests only: in production a
    /// missing table is a wrong table name or region, and a second table would be a
    /// second lease).
    create_missing: bool,
}

impl std::fmt::Debug for DynamoLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoLeaseStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// This machine's wall clock, milliseconds since the Unix epoch.
pub fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The condition of every write of the holder: still its grant, not released.
const OWN: &str = "#o = :owner AND epoch = :epoch AND expires_at_ms <> :zero";

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn num(item: &HashMap<String, AttributeValue>, key: &str) -> i64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn err(action: &'static str, e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Dynamo {
        action,
        detail: e.to_string(),
    }
}

impl DynamoLeaseStore {
    /// A store over an existing client.
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_string(),
            wall_clock: Arc::new(system_ms),
            watcher: Arc::default(),
            create_missing: false,
        }
    }

    /// The same store reading another wall clock (tests: a clock that runs ahead, or
    /// steps).
    pub fn with_wall_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.wall_clock = Arc::new(clock);
        self
    }

    fn now_ms(&self) -> i64 {
        (self.wall_clock)()
    }

    /// Credentials from the environment (the usual AWS provider chain); the region too
    /// unless `region` names it.
    pub async fn from_env(table: &str, region: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        Self::new(Client::new(&loader.load().await), table)
    }

    /// A store at an explicit endpoint with static credentials (local emulators, tests).
    pub fn with_endpoint(endpoint: &str, region: &str, table: &str) -> Self {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build();
        Self {
            create_missing: true,
            ..Self::new(Client::from_conf(config), table)
        }
    }

    /// Checks that the table exists and can decide leadership ([`crate::consistency`]).
    /// A store at an explicit endpoint (an emulator) creates a missing table (on-demand
    /// billing, one region); with AWS's endpoints a missing table is an error, so engines
    /// need no `CreateTable` permission and a typo never makes a second lease.
    pub async fn ensure_table(&self) -> Result<(), LeaseError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        match described {
            Ok(out) => match out.table {
                Some(t) => crate::consistency::check(&self.table, &t),
                None => Err(LeaseError::TableMissing(self.table.clone())),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                if self.create_missing {
                    self.create_table().await
                } else {
                    Err(LeaseError::TableMissing(self.table.clone()))
                }
            }
            Err(e) => Err(err(
                "describing the lease table",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    async fn create_table(&self) -> Result<(), LeaseError> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("grp")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| err("describing the lease table", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("grp")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| err("describing the lease table", e))?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(
                "creating the lease table",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    /// The group's item, read strongly consistent.
    async fn get(
        &self,
        group: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, LeaseError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("grp", s(group))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                err(
                    "reading the lease",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        Ok(out.item)
    }

    /// An update allowed only while `g` is still the lease (owner, epoch, not released):
    /// no one can have taken it since, because taking it changes the epoch. `Ok(None)`
    /// when the condition failed; otherwise the new item's attributes.
    async fn update_own(
        &self,
        g: &Grant,
        update: &str,
        extra_condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
        action: &'static str,
    ) -> Result<Option<Option<HashMap<String, AttributeValue>>>, LeaseError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("grp", s(&g.group))
            .update_expression(update)
            .condition_expression(match extra_condition {
                Some(extra) => format!("{OWN} AND ({extra})"),
                None => OWN.to_string(),
            })
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(&g.owner))
            .expression_attribute_values(":epoch", n(g.epoch as i64))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew);
        for (name, value) in values {
            req = req.expression_attribute_values(name, value);
        }
        match req.send().await {
            Ok(o) => Ok(Some(o.attributes)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(err(action, aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        }
    }

    fn grant(
        group: &str,
        owner: &str,
        item: Option<&HashMap<String, AttributeValue>>,
        fallback_epoch: u64,
    ) -> Grant {
        Grant {
            group: group.to_string(),
            owner: owner.to_string(),
            epoch: item.map_or(fallback_epoch, |i| num(i, "epoch").max(0) as u64),
            expires_at_ms: item.map_or(0, |i| num(i, "expires_at_ms")),
        }
    }
}

impl DynamoLeaseStore {
    /// Removes the recorded in-sync set, if the group was ever leased and (with `epoch`)
    /// its lease is still at that epoch; whether it did.
    async fn remove_in_sync(&self, group: &str, epoch: Option<u64>) -> Result<bool, LeaseError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("grp", s(group))
            .update_expression("REMOVE in_sync");
        // A group never leased has no item; creating a bare one would block acquires.
        update = match epoch {
            Some(e) => update
                .condition_expression("attribute_exists(grp) AND epoch = :e")
                .expression_attribute_values(":e", n(e as i64)),
            None => update.condition_expression("attribute_exists(grp)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(err(
                "clearing the in-sync set",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoLeaseStore {
    async fn acquire(
        &self,
        group: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Grant>, LeaseError> {
        let item = self.get(group).await?;
        // Wait the longer of our TTL and the one the holder was granted.
        let held_for = item.as_ref().map_or(0, |i| num(i, "ttl_ms").max(0) as u64);
        let wait = ttl.max(Duration::from_millis(held_for));
        // The beat: the counter, and the expiry an engine of an older version (which
        // does not count) changes on every write too. Released: expiry 0.
        let seen = item
            .as_ref()
            .map(|i| (num(i, "beat"), num(i, "expires_at_ms"), num(i, "epoch")));
        let verdict = match seen {
            None => None,
            Some((beat, expires, _)) => {
                match self
                    .watcher
                    .judge(group, (beat, expires), expires == 0, wait, Instant::now())
                {
                    Verdict::Wait => return Ok(None),
                    Verdict::Take(b) => Some(b),
                }
            }
        };
        let condition = match verdict {
            None => "attribute_not_exists(grp)",
            Some((0, _)) => "(attribute_not_exists(beat) OR beat = :beat) AND expires_at_ms = :seen AND (attribute_not_exists(in_sync) OR contains(in_sync, :owner))",
            Some(_) => "beat = :beat AND expires_at_ms = :seen AND (attribute_not_exists(in_sync) OR contains(in_sync, :owner))",
        };
        let now = self.now_ms();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("grp", s(group))
            .update_expression(
                "SET #o = :owner, expires_at_ms = :exp, ttl_ms = :ttl ADD epoch :one, beat :one",
            )
            .condition_expression(condition)
            .expression_attribute_names("#o", "owner")
            .set_expression_attribute_values(Some(
                [
                    (":owner".to_string(), s(owner)),
                    (":exp".to_string(), n(now + ttl.as_millis() as i64)),
                    (":ttl".to_string(), n(ttl.as_millis() as i64)),
                    (":one".to_string(), n(1)),
                ]
                .into_iter()
                .chain(verdict.into_iter().flat_map(|(beat, expires)| {
                    [
                        (":beat".to_string(), n(beat)),
                        (":seen".to_string(), n(expires)),
                    ]
                }))
                .collect(),
            ))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(o) => Ok(Some(Self::grant(group, owner, o.attributes(), 0))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // The SDK retries a request whose answer was lost: the first attempt may
                // have taken the lease and the retry then fails its condition. Ours
                // when the item carries the beat and the epoch our write set, and our
                // name (a late renew of an earlier term leaves the epoch as it was).
                let (beat, epoch) = seen.map_or((0, 0), |(b, _, e)| (b, e));
                let landed = self.get(group).await?.filter(|i| {
                    num(i, "beat") == beat + 1
                        && num(i, "epoch") == epoch + 1
                        && num(i, "expires_at_ms") != 0
                        && i.get("owner")
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                            == Some(owner)
                });
                Ok(landed.map(|i| Self::grant(group, owner, Some(&i), 0)))
            }
            Err(e) => Err(err(
                "acquiring the lease",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    async fn renew(&self, g: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        let now = self.now_ms();
        let item = self
            .update_own(
                g,
                "SET expires_at_ms = :exp, ttl_ms = :ttl ADD beat :one",
                None,
                vec![
                    (":exp", n(now + ttl.as_millis() as i64)),
                    (":ttl", n(ttl.as_millis() as i64)),
                    (":one", n(1)),
                ],
                "renewing the lease",
            )
            .await?;
        Ok(item.map(|attrs| Self::grant(&g.group, &g.owner, attrs.as_ref(), g.epoch)))
    }

    async fn release(&self, g: &Grant) -> Result<bool, LeaseError> {
        let item = self
            .update_own(
                g,
                "SET expires_at_ms = :zero ADD beat :one",
                None,
                vec![(":one", n(1))],
                "releasing the lease",
            )
            .await?;
        Ok(item.is_some())
    }

    async fn set_in_sync(
        &self,
        g: &Grant,
        expected: Option<&InSync>,
        record: &InSync,
    ) -> Result<bool, LeaseError> {
        let set = record.tokens();
        let (update, mut values) = if set.is_empty() {
            ("REMOVE in_sync", Vec::new())
        } else {
            (
                "SET in_sync = :isr",
                vec![(":isr", AttributeValue::Ss(set))],
            )
        };
        let extra = match expected.map(InSync::tokens) {
            None => None,
            Some(e) if e.is_empty() => Some("attribute_not_exists(in_sync)"),
            Some(e) => {
                values.push((":was", AttributeValue::Ss(e)));
                Some("in_sync = :was")
            }
        };
        let item = self
            .update_own(g, update, extra, values, "recording the in-sync set")
            .await?;
        Ok(item.is_some())
    }

    async fn clear_in_sync_at(&self, group: &str, epoch: u64) -> Result<bool, LeaseError> {
        self.remove_in_sync(group, Some(epoch)).await
    }

    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        self.remove_in_sync(group, None).await.map(|_| ())
    }

    async fn read(&self, group: &str) -> Result<Option<LeaseState>, LeaseError> {
        let item = self.get(group).await?;
        Ok(item.as_ref().map(|i| LeaseState {
            owner: i
                .get("owner")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            epoch: num(i, "epoch").max(0) as u64,
            expires_at_ms: num(i, "expires_at_ms"),
            now_ms: self.now_ms(),
            in_sync: i
                .get("in_sync")
                .and_then(|v| v.as_ss().ok())
                .and_then(|v| InSync::decode(v.iter().map(String::as_str))),
        }))
    }

    fn watch_ends(&self, group: &str) -> Option<std::time::Instant> {
        self.watcher.watch_ends(group)
    }

    fn backend(&self) -> &'static str {
        "dynamodb"
    }
}
