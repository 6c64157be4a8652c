//! `fixctl` configuration (TOML): the engines of a group and how traffic reaches them.
//!
//! ```toml
//! token_env = "FIX_ADMIN_TOKEN"      # where the engines' admin token is
//!
//! [[engine]]
//! name = "engine-a"
//! admin = "10.0.1.10:9100"
//!
//! [router]
//! kind = "global-accelerator"         # "none", "global-accelerator" or "arc"
//! endpoint_url = "http://127.0.0.1:4566"  # optional: an emulator instead of AWS
//! endpoint_group_arn = "arn:aws:globalaccelerator::…:endpoint-group/…"
//! endpoints = { engine-a = "arn:aws:elasticloadbalancing:…", engine-b = "…" }
//! # traffic dials instead: dial_groups = { engine-a = "arn:…east", engine-b = "arn:…west" }
//! # arc: cluster_endpoints = [{ url = "https://…", region = "us-east-1" }, …]
//! #      controls = { engine-a = "arn:…", engine-b = "arn:…" }
//! #      safety_rules_to_override = []
//!
//! [[ecs]]                             # runbooks: the region's engines, stopped by fence-region;
//! region = "us-east-1"                # fix-operator ecs: where an engine's task is stopped
//! cluster = "fix-engines"
//! services = ["engine-a", "engine-b"]
//!
//! [lease]                             # the engines' lease store and group
//! url = "dynamodb://fix-lease?region=us-east-1"
//! group = "fix"
//!
//! [supervisor]                        # fix-operator ecs only (all optional)
//! election_group = "fix-supervisor"   # default: the [lease] group + "-supervisor"
//! poll_ms = 100
//! ```

use crate::router::arc::{ArcRouter, ClusterEndpoint};
use crate::router::global_accelerator::{GlobalAcceleratorRouter, Layout};
use crate::router::none::NoRouter;
use crate::router::TrafficRouter;
use crate::supervisor::{AdminAddr, Instance};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// The configuration file is wrong.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML for this format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
    /// A router setting is missing or inconsistent.
    #[error("{path}: [router] {message}")]
    Router {
        /// The file.
        path: String,
        /// What to fix.
        message: String,
    },
}

/// One engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// Its name (the router's instance name).
    pub name: String,
    /// Its admin API address: `IP:PORT`, or `HOST:PORT` looked up at every call (a
    /// Cloud Map name on ECS follows the task when it is replaced).
    pub admin: AdminAddr,
    /// The region it runs in (multi-region groups; runbooks act per region).
    pub region: Option<String>,
    /// Its ECS service, where it differs from its name (`fix-operator ecs` stops this
    /// service's task to fence it).
    pub ecs_service: Option<String>,
}

impl<'de> Deserialize<'de> for AdminAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[supervisor]`: how `fix-operator ecs` elects the one supervisor that acts.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSection {
    /// The supervisors' own lease group, in the `[lease]` store (default: the engines'
    /// group followed by `-supervisor`).
    pub election_group: Option<String>,
    /// Milliseconds between polls of every engine's `/readyz` (default 100).
    pub poll_ms: Option<u64>,
    /// The supervisors' lease TTL in milliseconds (default: the engines' default).
    pub ttl_ms: Option<u64>,
    /// How often the acting supervisor renews, in milliseconds.
    pub renew_ms: Option<u64>,
    /// How long before the TTL it stops trusting its lease, in milliseconds.
    pub margin_ms: Option<u64>,
}

/// `[lease]`: the group's lease store, for runbooks that move the lease between regions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    /// The lease store URL, as in the engines' `[engine.lease] url`.
    pub url: String,
    /// The engine group.
    pub group: String,
}

/// `[[ecs]]`: a region's engine services on Amazon ECS, which a DR runbook's
/// `fence-region` step stops.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsEntry {
    /// The region.
    pub region: String,
    /// The ECS cluster (the engines stack's `ClusterName` output).
    pub cluster: String,
    /// The engine services (`engine-a`, `engine-b` in infra/engines.yaml).
    pub services: Vec<String>,
    /// An emulator's URL instead of AWS (test credentials are used).
    pub endpoint_url: Option<String>,
}

/// `[router]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouterSection {
    /// `none`, `global-accelerator` or `arc`.
    pub kind: String,
    /// An emulator's URL instead of AWS (test credentials are used).
    pub endpoint_url: Option<String>,
    /// Global Accelerator, weights: the endpoint group.
    pub endpoint_group_arn: Option<String>,
    /// Global Accelerator, weights: instance → endpoint id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Global Accelerator, dials: instance → endpoint group.
    #[serde(default)]
    pub dial_groups: BTreeMap<String, String>,
    /// ARC: the cluster's regional endpoints, tried in order.
    #[serde(default)]
    pub cluster_endpoints: Vec<ClusterEndpointEntry>,
    /// ARC: instance → routing control ARN.
    #[serde(default)]
    pub controls: BTreeMap<String, String>,
    /// ARC: safety rules to override (break glass).
    #[serde(default)]
    pub safety_rules_to_override: Vec<String>,
}

/// One ARC cluster endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEndpointEntry {
    /// Its URL.
    pub url: String,
    /// Its region.
    pub region: String,
}

/// A `fixctl` configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixctlConfig {
    /// Environment variable holding the admin token.
    pub token_env: Option<String>,
    /// The engines.
    #[serde(default, rename = "engine")]
    pub engines: Vec<EngineEntry>,
    /// How traffic reaches them (none when absent).
    pub router: Option<RouterSection>,
    /// The group's lease store (runbooks).
    pub lease: Option<LeaseRef>,
    /// Routing between regions (runbooks): ARC routing controls and/or Global
    /// Accelerator traffic dials keyed by region name instead of instance name.
    #[serde(default)]
    pub region_router: Vec<RouterSection>,
    /// The engines' ECS services per region (runbooks: `fence-region`; `fix-operator
    /// ecs`: fencing one engine).
    #[serde(default)]
    pub ecs: Vec<EcsEntry>,
    /// `fix-operator ecs`: the supervisors' election.
    pub supervisor: Option<SupervisorSection>,
}

impl FixctlConfig {
    /// Reads and parses `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses `text`; `origin` names where it came from in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// The engines as the supervisor takes them.
    pub fn instances(&self) -> Vec<Instance> {
        self.engines
            .iter()
            .map(|e| Instance {
                name: e.name.clone(),
                admin: e.admin.clone(),
            })
            .collect()
    }

    /// The admin token from `token_env`, if set there.
    pub fn token(&self) -> Option<String> {
        self.token_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty())
    }

    /// Builds the configured router (`none` without a `[router]`), checking it names
    /// every engine.
    pub async fn router(&self, path: &Path) -> Result<Arc<dyn TrafficRouter>, ConfigError> {
        let Some(r) = &self.router else {
            return Ok(Arc::new(NoRouter::default()));
        };
        let names: Vec<&str> = self.engines.iter().map(|e| e.name.as_str()).collect();
        build_router(r, &names, path).await
    }

    /// The regions the engines name, in order of first appearance.
    pub fn regions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.engines.iter().filter_map(|e| e.region.clone()) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

/// Builds the router `r` describes over the endpoint `names` (instances, or regions for a
/// `[[region_router]]`), checking it names every one.
pub async fn build_router(
    r: &RouterSection,
    names: &[&str],
    path: &Path,
) -> Result<Arc<dyn TrafficRouter>, ConfigError> {
    let bad = |message: String| ConfigError::Router {
        path: path.display().to_string(),
        message,
    };
    let covers = |map: &BTreeMap<String, String>, key: &str| {
        let missing = crate::router::missing_names(names, map);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(bad(format!(
                "{key} has no entry for {}",
                missing.join(", ")
            )))
        }
    };
    let url = r.endpoint_url.as_deref();
    match r.kind.as_str() {
        "none" => Ok(Arc::new(NoRouter::default())),
        "global-accelerator" => {
            let layout = match (&r.endpoint_group_arn, r.dial_groups.is_empty()) {
                    (Some(group_arn), true) => {
                        covers(&r.endpoints, "endpoints")?;
                        Layout::Weights {
                            group_arn: group_arn.clone(),
                            endpoints: r.endpoints.clone(),
                        }
                    }
                    (None, false) => {
                        covers(&r.dial_groups, "dial_groups")?;
                        Layout::Dials {
                            groups: r.dial_groups.clone(),
                        }
                    }
                    _ => {
                        return Err(bad(
                            "set either endpoint_group_arn with endpoints (weights) or dial_groups (traffic dials)".into(),
                        ))
                    }
                };
            Ok(Arc::new(GlobalAcceleratorRouter::new(layout, url).await))
        }
        "arc" => {
            covers(&r.controls, "controls")?;
            if r.cluster_endpoints.is_empty() {
                return Err(bad(
                        "cluster_endpoints is empty: list the cluster's regional endpoints (DescribeCluster)".into(),
                    ));
            }
            let endpoints = r
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
                    r.controls.clone(),
                    r.safety_rules_to_override.clone(),
                    url.is_some(),
                )
                .await,
            ))
        }
        other => Err(bad(format!(
            "kind = \"{other}\": use \"none\", \"global-accelerator\" or \"arc\""
        ))),
    }
}
