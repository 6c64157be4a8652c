//! Route 53 ARC: one routing control per instance; the leader's is turned On and the
//! others Off in a single `UpdateRoutingControlStates` call (so an assertion rule such as
//! "at least one On" holds throughout), through the cluster data plane. A cluster has
//! several regional endpoints: each call tries them in turn until one answers. A safety
//! rule's refusal is reported as such, with what to do; states are read back.

use super::{RouteError, TrafficRouter};
use async_trait::async_trait;
use aws_sdk_route53recoverycluster::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53recoverycluster::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use aws_sdk_route53recoverycluster::Client;
use std::collections::BTreeMap;

const NAME: &str = "route53-arc";

/// One regional endpoint of an ARC cluster.
#[derive(Debug, Clone)]
pub struct ClusterEndpoint {
    /// Its URL (`DescribeCluster`'s `ClusterEndpoints[].Endpoint`).
    pub url: String,
    /// Its region.
    pub region: String,
}

/// The ARC router.
pub struct ArcRouter {
    clients: Vec<(ClusterEndpoint, Client)>,
    controls: BTreeMap<String, String>,
    overrides: Vec<String>,
}

/// How a call through one endpoint ended.
enum Attempt<T> {
    Done(T),
    /// The endpoint did not answer usefully: try the next.
    Next(String),
    /// The service answered with a refusal: stop.
    Refused(RouteError),
}

fn classify<T, E, R>(to: &str, r: Result<T, SdkError<E, R>>) -> Attempt<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match r {
        Ok(v) => Attempt::Done(v),
        Err(SdkError::ServiceError(e)) => {
            let err = e.err();
            let code = err.code().unwrap_or("UnknownError").to_string();
            let msg = err.message().unwrap_or_default().to_string();
            match code.as_str() {
                "ThrottlingException" | "EndpointTemporarilyUnavailableException" | "InternalServerException" => {
                    Attempt::Next(format!("{code}: {msg}"))
                }
                "ConflictException" => Attempt::Refused(RouteError::Refused {
                    backend: NAME,
                    to: to.to_string(),
                    detail: format!("refused by a safety rule ({msg}); check the control panel's rules, or list the rule in the router's safety-rule overrides for a break-glass failover"),
                }),
                _ => Attempt::Refused(RouteError::Backend {
                    backend: NAME,
                    to: to.to_string(),
                    detail: format!("{code}: {msg}"),
                }),
            }
        }
        Err(other) => Attempt::Next(format!(
            "{}",
            aws_sdk_route53recoverycluster::error::DisplayErrorContext(&other)
        )),
    }
}

impl ArcRouter {
    /// A router over the cluster's `endpoints` (tried in order), with instance name →
    /// routing control ARN. `test_credentials` uses fixed dummy credentials (the local
    /// emulator); otherwise the usual AWS chain provides them.
    pub async fn new(
        endpoints: Vec<ClusterEndpoint>,
        controls: BTreeMap<String, String>,
        overrides: Vec<String>,
        test_credentials: bool,
    ) -> Self {
        let shared = if test_credentials {
            None
        } else {
            Some(aws_config::defaults(BehaviorVersion::latest()).load().await)
        };
        let clients = endpoints
            .into_iter()
            .map(|e| {
                let mut b = match &shared {
                    Some(s) => aws_sdk_route53recoverycluster::config::Builder::from(s),
                    None => aws_sdk_route53recoverycluster::Config::builder()
                        .behavior_version(BehaviorVersion::latest())
                        .credentials_provider(Credentials::new(
                            "test", "test", None, None, "static",
                        )),
                };
                b = b
                    .region(Region::new(e.region.clone()))
                    .endpoint_url(&e.url)
                    .retry_config(
                        aws_sdk_route53recoverycluster::config::retry::RetryConfig::disabled(),
                    )
                    .timeout_config(
                        aws_sdk_route53recoverycluster::config::timeout::TimeoutConfig::builder()
                            .operation_attempt_timeout(std::time::Duration::from_secs(2))
                            .connect_timeout(std::time::Duration::from_secs(1))
                            .build(),
                    );
                let client = Client::from_conf(b.build());
                (e, client)
            })
            .collect();
        Self {
            clients,
            controls,
            overrides,
        }
    }

    fn all_failed(&self, to: &str, tried: Vec<String>) -> RouteError {
        RouteError::Backend {
            backend: NAME,
            to: to.to_string(),
            detail: format!(
                "no cluster endpoint answered ({}); check the cluster's endpoints and network access",
                tried.join("; ")
            ),
        }
    }
}

impl ArcRouter {
    /// Turns `on`'s routing control On and every other Off (all Off when `on` is `None`)
    /// in one call, trying the cluster endpoints in turn.
    async fn set_states(&self, on: Option<&str>) -> Result<(), RouteError> {
        let label = on.unwrap_or("(none: draining)");
        if let Some(instance) = on {
            if !self.controls.contains_key(instance) {
                let known: Vec<&str> = self.controls.keys().map(String::as_str).collect();
                return Err(RouteError::UnknownEndpoint(
                    instance.to_string(),
                    known.join(", "),
                ));
            }
        }
        let entries: Vec<UpdateRoutingControlStateEntry> = self
            .controls
            .iter()
            .map(|(name, arn)| {
                UpdateRoutingControlStateEntry::builder()
                    .routing_control_arn(arn)
                    .routing_control_state(if Some(name.as_str()) == on {
                        RoutingControlState::On
                    } else {
                        RoutingControlState::Off
                    })
                    .build()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| RouteError::Backend {
                backend: NAME,
                to: label.to_string(),
                detail: e.to_string(),
            })?;
        let mut tried = Vec::new();
        for (endpoint, client) in &self.clients {
            let r = client
                .update_routing_control_states()
                .set_update_routing_control_state_entries(Some(entries.clone()))
                .set_safety_rules_to_override(Some(self.overrides.clone()))
                .send()
                .await;
            match classify(label, r) {
                Attempt::Done(_) => return Ok(()),
                Attempt::Refused(e) => return Err(e),
                Attempt::Next(why) => {
                    tracing::warn!(endpoint = %endpoint.url, region = %endpoint.region, %why, "ARC cluster endpoint did not answer; trying the next");
                    tried.push(format!("{} ({}): {why}", endpoint.url, endpoint.region));
                }
            }
        }
        Err(self.all_failed(label, tried))
    }
}

#[async_trait]
impl TrafficRouter for ArcRouter {
    async fn route_to(&self, instance: &str) -> Result<(), RouteError> {
        self.set_states(Some(instance)).await
    }

    async fn drain(&self) -> Result<(), RouteError> {
        self.set_states(None).await
    }

    async fn current(&self) -> Result<Option<String>, RouteError> {
        let mut tried = Vec::new();
        'endpoints: for (endpoint, client) in &self.clients {
            let mut on = Vec::new();
            for (name, arn) in &self.controls {
                let r = client
                    .get_routing_control_state()
                    .routing_control_arn(arn)
                    .send()
                    .await;
                match classify("(read back)", r) {
                    Attempt::Done(out) => {
                        if out.routing_control_state() == &RoutingControlState::On {
                            on.push(name.clone());
                        }
                    }
                    Attempt::Refused(e) => return Err(e),
                    Attempt::Next(why) => {
                        tried.push(format!("{} ({}): {why}", endpoint.url, endpoint.region));
                        continue 'endpoints;
                    }
                }
            }
            return Ok((on.len() == 1).then(|| on.remove(0)));
        }
        Err(self.all_failed("(read back)", tried))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}
