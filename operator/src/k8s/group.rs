//! One FixSession's running supervision: the failover [`Supervisor`] over its pods'
//! admin APIs, its router built from `spec.routing`, and the lease it watches. The
//! controller keeps one [`Group`] per FixSession and replaces it when what it was built
//! from changes (instances, routing, lease, ports, token).

use super::crd::{FixSessionSpec, RoutingBackend, RoutingSpec};
use super::resources::peers_service_name;
use crate::router::arc::{ArcRouter, ClusterEndpoint};
use crate::router::global_accelerator::{GlobalAcceleratorRouter, Layout};
use crate::router::none::NoRouter;
use crate::router::{missing_names, TrafficRouter};
use crate::supervisor::{AdminAddr, FenceHook, Instance, LeaseWatch, Options, Supervisor};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the operator reaches the pods' admin APIs.
#[derive(Debug, Clone, Default)]
pub enum Addressing {
    /// In the cluster: `POD.NAME-peers.NAMESPACE.svc:ADMIN`, the headless Service's DNS
    /// name, looked up at each poll (a recreated pod keeps its name, not its address).
    #[default]
    PodDns,
    /// A fixed address per pod name (an operator outside the cluster reaching the pods
    /// through port-forwards, or tests).
    Fixed(BTreeMap<String, SocketAddr>),
}

impl Addressing {
    /// Where pod `pod` of FixSession `name` in `namespace` serves its admin API.
    pub fn admin(&self, pod: &str, name: &str, namespace: &str, port: u16) -> AdminAddr {
        match self {
            Self::PodDns => AdminAddr::Host(format!(
                "{pod}.{}.{namespace}.svc:{port}",
                peers_service_name(name)
            )),
            Self::Fixed(map) => match map.get(pod) {
                Some(a) => AdminAddr::Socket(*a),
                None => AdminAddr::Host(format!("{pod}:{port}")),
            },
        }
    }
}

/// Everything a group is built from (the Secrets' values already read).
#[derive(Debug, Clone)]
pub struct GroupInputs {
    /// The FixSession's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The pods, in ordinal order.
    pub pods: Vec<String>,
    /// The spec.
    pub spec: FixSessionSpec,
    /// The lease store's URL (from `spec.lease.urlSecret`).
    pub lease_url: String,
    /// The admin token (from `spec.adminToken`).
    pub token: Option<String>,
}

impl GroupInputs {
    /// The lease group: `spec.lease.group`, or the FixSession's name.
    pub fn lease_group(&self) -> String {
        self.spec
            .lease
            .group
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }

    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.pods.hash(&mut h);
        serde_json::to_string(&self.spec.routing)
            .unwrap_or_default()
            .hash(&mut h);
        self.lease_url.hash(&mut h);
        self.lease_group().hash(&mut h);
        self.spec.ports.admin.hash(&mut h);
        self.token.hash(&mut h);
        h.finish()
    }
}

/// A group could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// `spec.routing` does not describe a router for these pods.
    #[error("spec.routing: {0}")]
    Routing(String),
    /// The lease store could not be reached.
    #[error("connecting to the lease store for group {group}: {source}")]
    Lease {
        /// The lease group.
        group: String,
        /// Why.
        source: fix_lease::LeaseError,
    },
}

/// Builds the router `spec.routing` describes, checking it names every pod.
pub async fn router_for(
    routing: &RoutingSpec,
    pods: &[String],
) -> Result<Arc<dyn TrafficRouter>, GroupError> {
    let names: Vec<&str> = pods.iter().map(String::as_str).collect();
    let covers = |map: &BTreeMap<String, String>, field: &str| {
        let missing = missing_names(&names, map);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(GroupError::Routing(format!(
                "{field} has no entry for {} (every instance needs one)",
                missing.join(", ")
            )))
        }
    };
    let url = routing.endpoint_url.as_deref();
    match routing.backend {
        RoutingBackend::None => Ok(Arc::new(NoRouter::default())),
        RoutingBackend::GlobalAccelerator => {
            let ga = routing.global_accelerator.as_ref().ok_or_else(|| {
                GroupError::Routing(
                    "backend global-accelerator needs globalAccelerator (endpointGroupArn with endpoints, or dialGroups)".into(),
                )
            })?;
            let layout = match (&ga.endpoint_group_arn, ga.dial_groups.is_empty()) {
                (Some(arn), true) => {
                    covers(&ga.endpoints, "globalAccelerator.endpoints")?;
                    Layout::Weights {
                        group_arn: arn.clone(),
                        endpoints: ga.endpoints.clone(),
                    }
                }
                (None, false) => {
                    covers(&ga.dial_groups, "globalAccelerator.dialGroups")?;
                    Layout::Dials {
                        groups: ga.dial_groups.clone(),
                    }
                }
                _ => {
                    return Err(GroupError::Routing(
                        "globalAccelerator needs either endpointGroupArn with endpoints (weights) or dialGroups (traffic dials), not both".into(),
                    ))
                }
            };
            Ok(Arc::new(GlobalAcceleratorRouter::new(layout, url).await))
        }
        RoutingBackend::Arc => {
            let arc = routing.arc.as_ref().ok_or_else(|| {
                GroupError::Routing(
                    "backend arc needs arc (clusterEndpoints and routingControls)".into(),
                )
            })?;
            covers(&arc.routing_controls, "arc.routingControls")?;
            if arc.cluster_endpoints.is_empty() {
                return Err(GroupError::Routing(
                    "arc.clusterEndpoints is empty: list the cluster's regional endpoints (DescribeCluster)".into(),
                ));
            }
            let endpoints = arc
                .cluster_endpoints
                .iter()
                .map(|e| ClusterEndpoint {
                    url: e.url.clone(),
                    region: e.region.clone(),
                })
                .collect();
            Ok(Arc::new(
                ArcRouter::new(
                    endpoints,
                    arc.routing_controls.clone(),
                    arc.safety_rules_to_override.clone(),
                    url.is_some(),
                )
                .await,
            ))
        }
    }
}

/// A FixSession's running supervision.
pub struct Group {
    fingerprint: u64,
    /// The supervisor.
    pub supervisor: Arc<Supervisor>,
    /// The lease store it watches.
    pub lease: LeaseWatch,
    /// How many of the supervisor's transitions have been published as events.
    pub reported: usize,
    /// The routing failure last published as an event.
    pub reported_routing_error: Option<String>,
    /// The epoch a manual failover brought (its transition is reported as `Manual`).
    pub manual_epoch: Option<u64>,
}

impl Group {
    /// Starts supervising the pods of `inputs`, polling every `poll`.
    pub async fn start(
        inputs: &GroupInputs,
        addressing: &Addressing,
        poll: Duration,
        fence: Option<FenceHook>,
    ) -> Result<Self, GroupError> {
        let router = router_for(&inputs.spec.routing, &inputs.pods).await?;
        let group = inputs.lease_group();
        let store = fix_lease::connect(&inputs.lease_url)
            .await
            .map_err(|source| GroupError::Lease {
                group: group.clone(),
                source,
            })?;
        let lease = LeaseWatch { store, group };
        let instances = inputs
            .pods
            .iter()
            .map(|pod| Instance {
                name: pod.clone(),
                admin: addressing.admin(
                    pod,
                    &inputs.name,
                    &inputs.namespace,
                    inputs.spec.ports.admin,
                ),
            })
            .collect();
        let supervisor = Supervisor::spawn(
            instances,
            router,
            Options {
                poll,
                token: inputs.token.clone(),
                fence,
                lease: Some(lease.clone()),
                ..Options::default()
            },
        );
        Ok(Self {
            fingerprint: inputs.fingerprint(),
            supervisor: Arc::new(supervisor),
            lease,
            reported: 0,
            reported_routing_error: None,
            manual_epoch: None,
        })
    }

    /// Whether this group was built from `inputs` (otherwise it must be replaced).
    pub fn matches(&self, inputs: &GroupInputs) -> bool {
        self.fingerprint == inputs.fingerprint()
    }
}
