//! The DynamoDB lease backend: one item per group in a table keyed by `grp`, changed only
//! by conditional `UpdateItem` calls. The in-sync set is a string set `in_sync`; an
//! acquire requires the contender in it (`contains`) when it exists.
//!
//! DynamoDB has no server clock a condition can read, so `now` in the conditions is the
//! caller's clock. The holder's local deadline (request sent + TTL − margin) still keeps a
//! holder from trusting its lease past the TTL; what skew can do is let a contender whose
//! clock runs ahead take an expired-looking lease early. Keep instance clocks synchronised
//! (Amazon Time Sync) well within the safety margin (default 300 ms).

use crate::store::{Grant, InSync, LeaseError, LeaseState, LeaseStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A lease store in a DynamoDB table (a global table for multi-region).
#[derive(Debug, Clone)]
pub struct DynamoLeaseStore {
    client: Client,
    table: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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
        }
    }

    /// Credentials and region from the environment (the usual AWS provider chain).
    pub async fn from_env(table: &str) -> Self {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), table)
    }

    /// A store at an explicit endpoint with static credentials (local emulators, tests).
    pub fn with_endpoint(endpoint: &str, region: &str, table: &str) -> Self {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build();
        Self::new(Client::from_conf(config), table)
    }

    /// Creates the table (on-demand billing) unless it exists.
    pub async fn ensure_table(&self) -> Result<(), LeaseError> {
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

    /// An update allowed only while `g` is still the live lease (owner, epoch, unexpired).
    /// `Ok(None)` when the condition failed; otherwise the new item's attributes.
    async fn update_own(
        &self,
        g: &Grant,
        update: &str,
        extra_condition: Option<&str>,
        now: i64,
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
                Some(extra) => {
                    format!("#o = :owner AND epoch = :epoch AND expires_at_ms > :now AND ({extra})")
                }
                None => "#o = :owner AND epoch = :epoch AND expires_at_ms > :now".to_string(),
            })
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(&g.owner))
            .expression_attribute_values(":epoch", n(g.epoch as i64))
            .expression_attribute_values(":now", n(now))
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

#[async_trait]
impl LeaseStore for DynamoLeaseStore {
    async fn acquire(
        &self,
        group: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Grant>, LeaseError> {
        let now = now_ms();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("grp", s(group))
            .update_expression("SET #o = :owner, expires_at_ms = :exp ADD epoch :one")
            .condition_expression("(attribute_not_exists(grp) OR expires_at_ms <= :now) AND (attribute_not_exists(in_sync) OR contains(in_sync, :owner))")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":exp", n(now + ttl.as_millis() as i64))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(o) => Ok(Some(Self::grant(group, owner, o.attributes(), 0))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(err(
                "acquiring the lease",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    async fn renew(&self, g: &Grant, ttl: Duration) -> Result<Option<Grant>, LeaseError> {
        let now = now_ms();
        let item = self
            .update_own(
                g,
                "SET expires_at_ms = :exp",
                None,
                now,
                vec![(":exp", n(now + ttl.as_millis() as i64))],
                "renewing the lease",
            )
            .await?;
        Ok(item.map(|attrs| Self::grant(&g.group, &g.owner, attrs.as_ref(), g.epoch)))
    }

    async fn release(&self, g: &Grant) -> Result<bool, LeaseError> {
        let now = now_ms();
        let item = self
            .update_own(
                g,
                "SET expires_at_ms = :now",
                None,
                now,
                Vec::new(),
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
            .update_own(
                g,
                update,
                extra,
                now_ms(),
                values,
                "recording the in-sync set",
            )
            .await?;
        Ok(item.is_some())
    }

    async fn clear_in_sync(&self, group: &str) -> Result<(), LeaseError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("grp", s(group))
            .update_expression("REMOVE in_sync")
            // A group never leased has no item; creating a bare one would block acquires.
            .condition_expression("attribute_exists(grp)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(
                "clearing the in-sync set",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    async fn read(&self, group: &str) -> Result<Option<LeaseState>, LeaseError> {
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
        Ok(out.item().map(|i| LeaseState {
            owner: i
                .get("owner")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            epoch: num(i, "epoch").max(0) as u64,
            expires_at_ms: num(i, "expires_at_ms"),
            now_ms: now_ms(),
            in_sync: i
                .get("in_sync")
                .and_then(|v| v.as_ss().ok())
                .and_then(|v| InSync::decode(v.iter().map(String::as_str))),
        }))
    }

    fn backend(&self) -> &'static str {
        "dynamodb"
    }
}
