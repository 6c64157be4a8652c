//! Global Accelerator: the leader's endpoint gets weight 100 and the others 0 in one
//! endpoint group (`Weights`), or, with one endpoint group per instance (per region), the
//! leader's group gets traffic dial 100 and the others 0 (`Dials`). Every change is read
//! back. The API lives in us-west-2 whatever region the engines run in. Global
//! Accelerator does not move established connections: the old leader must be fenced
//! (the engines close their sockets when they lose the lease).

use super::{RouteError, TrafficRouter};
use async_trait::async_trait;
use aws_sdk_globalaccelerator::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_globalaccelerator::types::EndpointConfiguration;
use aws_sdk_globalaccelerator::Client;
use std::collections::BTreeMap;

/// The region Global Accelerator's API is called in.
pub const API_REGION: &str = "us-west-2";

/// How instances map onto Global Accelerator.
#[derive(Debug, Clone)]
pub enum Layout {
    /// One endpoint group; instance name → endpoint id (an NLB ARN, an EIP allocation…).
    Weights {
        /// The endpoint group.
        group_arn: String,
        /// Instance → endpoint id.
        endpoints: BTreeMap<String, String>,
    },
    /// Instance name → its own endpoint group (one per region), steered by traffic dials.
    Dials {
        /// Instance → endpoint group ARN.
        groups: BTreeMap<String, String>,
    },
}

/// The Global Accelerator router.
pub struct GlobalAcceleratorRouter {
    client: Client,
    layout: Layout,
}

const NAME: &str = "global-accelerator";

fn backend_err(to: &str, e: impl std::fmt::Display) -> RouteError {
    RouteError::Backend {
        backend: NAME,
        to: to.to_string(),
        detail: e.to_string(),
    }
}

fn sdk_err<E, R>(to: &str, e: aws_sdk_globalaccelerator::error::SdkError<E, R>) -> RouteError
where
    E: aws_sdk_globalaccelerator::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_globalaccelerator::error::ProvideErrorMetadata;
    let detail = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => format!(
            "{}",
            aws_sdk_globalaccelerator::error::DisplayErrorContext(&e)
        ),
    };
    backend_err(to, detail)
}

impl GlobalAcceleratorRouter {
    /// A router with credentials from the environment (the usual AWS chain), calling the
    /// API in us-west-2, or at `endpoint_url` (the local emulator) with test credentials.
    pub async fn new(layout: Layout, endpoint_url: Option<&str>) -> Self {
        let conf = match endpoint_url {
            Some(url) => aws_sdk_globalaccelerator::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(API_REGION))
                .endpoint_url(url)
                .credentials_provider(Credentials::new("test", "test", None, None, "static"))
                .build(),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(API_REGION))
                    .load()
                    .await;
                aws_sdk_globalaccelerator::config::Builder::from(&shared).build()
            }
        };
        Self {
            client: Client::from_conf(conf),
            layout,
        }
    }

    async fn describe(
        &self,
        arn: &str,
        to: &str,
    ) -> Result<aws_sdk_globalaccelerator::types::EndpointGroup, RouteError> {
        self.client
            .describe_endpoint_group()
            .endpoint_group_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_err(to, e))?
            .endpoint_group
            .ok_or_else(|| backend_err(to, "DescribeEndpointGroup returned no group"))
    }

    fn names(&self) -> Vec<&str> {
        match &self.layout {
            Layout::Weights { endpoints, .. } => endpoints.keys().map(String::as_str).collect(),
            Layout::Dials { groups } => groups.keys().map(String::as_str).collect(),
        }
    }

    /// Gives `to`'s endpoint weight 100 and every other endpoint of the group 0 (all 0
    /// when `to` is `None`: drained), keeping each endpoint's other settings.
    async fn set_weights(
        &self,
        to: Option<&str>,
        group_arn: &str,
        endpoints: &BTreeMap<String, String>,
    ) -> Result<(), RouteError> {
        let label = to.unwrap_or(DRAINED);
        let leader = match to {
            Some(to) => Some(endpoints.get(to).ok_or_else(|| unknown(to, self.names()))?),
            None => None,
        };
        let group = self.describe(group_arn, label).await?;
        let mut configs = Vec::new();
        for d in group.endpoint_descriptions() {
            let id = d.endpoint_id().unwrap_or_default();
            configs.push(
                EndpointConfiguration::builder()
                    .endpoint_id(id)
                    .weight(if leader.is_some_and(|l| l == id) {
                        100
                    } else {
                        0
                    })
                    .set_client_ip_preservation_enabled(d.client_ip_preservation_enabled())
                    .build(),
            );
        }
        if let Some(leader) = leader {
            if !configs
                .iter()
                .any(|c| c.endpoint_id() == Some(leader.as_str()))
            {
                return Err(backend_err(
                    label,
                    format!(
                        "endpoint {leader} is not in endpoint group {group_arn}: add it there first"
                    ),
                ));
            }
        }
        self.client
            .update_endpoint_group()
            .endpoint_group_arn(group_arn)
            .set_endpoint_configurations(Some(configs))
            .send()
            .await
            .map_err(|e| sdk_err(label, e))?;
        Ok(())
    }

    /// Dial 100 for `to`'s group, 0 for the others (all 0 when `to` is `None`).
    async fn set_dials(
        &self,
        to: Option<&str>,
        groups: &BTreeMap<String, String>,
    ) -> Result<(), RouteError> {
        let label = to.unwrap_or(DRAINED);
        if let Some(to) = to {
            if !groups.contains_key(to) {
                return Err(unknown(to, self.names()));
            }
        }
        // Raise the new leader's dial first, then lower the others: never all at zero
        // unless draining.
        let mut order: Vec<(&String, &String)> = groups
            .iter()
            .filter(|(n, _)| Some(n.as_str()) == to)
            .collect();
        order.extend(groups.iter().filter(|(n, _)| Some(n.as_str()) != to));
        for (name, arn) in order {
            self.client
                .update_endpoint_group()
                .endpoint_group_arn(arn)
                .traffic_dial_percentage(if Some(name.as_str()) == to {
                    100.0
                } else {
                    0.0
                })
                .send()
                .await
                .map_err(|e| sdk_err(label, e))?;
        }
        Ok(())
    }

    async fn set(&self, to: Option<&str>) -> Result<(), RouteError> {
        match &self.layout {
            Layout::Weights {
                group_arn,
                endpoints,
            } => self.set_weights(to, group_arn, endpoints).await,
            Layout::Dials { groups } => self.set_dials(to, groups).await,
        }
    }
}

/// How a drain is named in errors.
const DRAINED: &str = "(none: draining)";

fn unknown(to: &str, names: Vec<&str>) -> RouteError {
    RouteError::UnknownEndpoint(to.to_string(), names.join(", "))
}

#[async_trait]
impl TrafficRouter for GlobalAcceleratorRouter {
    async fn route_to(&self, instance: &str) -> Result<(), RouteError> {
        self.set(Some(instance)).await
    }

    async fn drain(&self) -> Result<(), RouteError> {
        self.set(None).await
    }

    async fn current(&self) -> Result<Option<String>, RouteError> {
        match &self.layout {
            Layout::Weights {
                group_arn,
                endpoints,
            } => {
                let group = self.describe(group_arn, "(read back)").await?;
                let weighted: Vec<&str> = group
                    .endpoint_descriptions()
                    .iter()
                    .filter(|d| d.weight().unwrap_or(0) > 0)
                    .filter_map(|d| d.endpoint_id())
                    .collect();
                Ok(match weighted.as_slice() {
                    [one] => endpoints
                        .iter()
                        .find(|(_, id)| id.as_str() == *one)
                        .map(|(n, _)| n.clone()),
                    _ => None,
                })
            }
            Layout::Dials { groups } => {
                let mut on = Vec::new();
                for (name, arn) in groups {
                    let dial = self
                        .describe(arn, "(read back)")
                        .await?
                        .traffic_dial_percentage
                        .unwrap_or(0.0);
                    if dial > 0.0 {
                        on.push(name.clone());
                    }
                }
                Ok((on.len() == 1).then(|| on.remove(0)))
            }
        }
    }

    fn name(&self) -> &'static str {
        NAME
    }
}
