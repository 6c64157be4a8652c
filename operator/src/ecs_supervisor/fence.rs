//! Fencing an engine on ECS: stopping the task of an old leader that still claims to
//! lead after traffic moved away from it.

use crate::config::FixctlConfig;
use crate::ecs::EcsEngines;
use crate::supervisor::{look, FenceHook, FenceRequest, Gate};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One fence carried out (or tried).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FenceRecord {
    /// The engine fenced.
    pub instance: String,
    /// Its ECS service.
    pub service: String,
    /// The service's region.
    pub region: String,
    /// The tasks stopped.
    pub tasks: Vec<String>,
    /// Why stopping failed, when it did.
    pub error: Option<String>,
    /// When it was done, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Where each engine's task runs: instance name → (its region's ECS cluster, its
/// service).
#[derive(Clone)]
pub struct EcsFence {
    targets: BTreeMap<String, (Arc<EcsEngines>, String)>,
    records: Arc<Mutex<Vec<FenceRecord>>>,
}

/// The reason ECS shows on a task stopped by the fence.
const STOP_REASON: &str =
    "fix-operator ecs: fenced, this engine still claimed to lead after the lease moved on";

/// How many times a fence is tried when ECS fails (a second apart).
const FENCE_ATTEMPTS: u32 = 3;

impl EcsFence {
    /// Maps every `[[engine]]` of `cfg` to its ECS service (`ecs_service`, or its name)
    /// in the `[[ecs]]` entry of its region (or the only one); an error names the engine
    /// that cannot be placed, or the service two engines share, and what to change.
    pub async fn from_config(cfg: &FixctlConfig) -> Result<Self, String> {
        if cfg.ecs.is_empty() {
            return Err("no [[ecs]] entry: give the region, cluster and services of the engines' ECS tasks (the engines stack's ClusterName output)".into());
        }
        let mut clusters: Vec<Arc<EcsEngines>> = Vec::new();
        for e in &cfg.ecs {
            clusters.push(Arc::new(
                EcsEngines::new(
                    &e.region,
                    &e.cluster,
                    &e.services,
                    e.endpoint_url.as_deref(),
                )
                .await,
            ));
        }
        let mut targets = BTreeMap::new();
        let mut owners: BTreeMap<(String, String, String), String> = BTreeMap::new();
        for engine in &cfg.engines {
            let service = engine.ecs_service.clone().unwrap_or(engine.name.clone());
            if engine.region.is_none() && cfg.ecs.len() > 1 {
                return Err(format!(
                    "engine {} has no region, and there are {} [[ecs]] entries: set region = \"…\" on the [[engine]] so that its task is looked for in the right one",
                    engine.name,
                    cfg.ecs.len()
                ));
            }
            let found = clusters.iter().find(|c| {
                engine.region.as_deref().is_none_or(|r| r == c.region())
                    && c.services().contains(&service)
            });
            let Some(cluster) = found else {
                return Err(format!(
                    "engine {} has no ECS service: list \"{service}\" in the services of the [[ecs]] entry of its region{}, or set ecs_service on the [[engine]]",
                    engine.name,
                    engine.region.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ));
            };
            let key = (
                cluster.region().to_string(),
                cluster.cluster().to_string(),
                service.clone(),
            );
            if let Some(other) = owners.insert(key, engine.name.clone()) {
                return Err(format!(
                    "engines {other} and {} share the ECS service {service}: fencing one would stop the other; give each engine a service of its own (ecs_service)",
                    engine.name
                ));
            }
            targets.insert(engine.name.clone(), (Arc::clone(cluster), service));
        }
        Ok(Self {
            targets,
            records: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Every fence so far, oldest first.
    pub fn records(&self) -> Vec<FenceRecord> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(
        &self,
        request: &FenceRequest,
        service: &str,
        region: &str,
        outcome: Result<Vec<String>, String>,
    ) {
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (tasks, error) = match outcome {
            Ok(tasks) => {
                tracing::warn!(instance = %request.instance, service, ?tasks, "fenced: stopped the old leader's ECS task");
                (tasks, None)
            }
            Err(e) => {
                tracing::error!(instance = %request.instance, error = %e, "fencing the old leader failed: stop its task by hand (aws ecs stop-task)");
                (Vec::new(), Some(e))
            }
        };
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(FenceRecord {
                instance: request.instance.clone(),
                service: service.to_string(),
                region: region.to_string(),
                tasks,
                error,
                at_unix_ms,
            });
    }

    /// Stops the ECS task of `request.instance`, which still claimed to lead after
    /// traffic moved, and records what happened. Before each attempt (ECS failures are
    /// retried) this supervisor must still act (`gate`) and the instance, looked at
    /// again, must still claim; only tasks that had started before the claim was seen
    /// are stopped (not a replacement that is a fresh standby).
    pub async fn fence(&self, request: FenceRequest, gate: &Gate) {
        let Some((cluster, service)) = self.targets.get(&request.instance) else {
            self.record(
                &request,
                "",
                "",
                Err(format!("{} is not a configured engine", request.instance)),
            );
            return;
        };
        for attempt in 1..=FENCE_ATTEMPTS {
            if gate().is_none_or(|until| Instant::now() >= until) {
                tracing::warn!(instance = %request.instance, "no longer the acting supervisor: the fence is left to the one that acts");
                return;
            }
            let now = look(&request.admin).await;
            if !request.still_claims(&now) {
                tracing::info!(instance = %request.instance, "no longer claims to lead: not fenced");
                return;
            }
            match cluster
                .stop_tasks(service, STOP_REASON, Some(request.observed_wall))
                .await
            {
                Ok(tasks) => {
                    self.record(&request, service, cluster.region(), Ok(tasks));
                    return;
                }
                Err(e) if attempt < FENCE_ATTEMPTS => {
                    tracing::warn!(instance = %request.instance, error = %e, attempt, "stopping the old leader's task failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => self.record(&request, service, cluster.region(), Err(e.to_string())),
            }
        }
    }

    /// The supervisor's fencing hook for a term gated by `gate`: fences in the
    /// background (the supervisor does not wait for ECS).
    pub fn hook(&self, gate: Gate) -> FenceHook {
        let me = self.clone();
        Arc::new(move |request: FenceRequest| {
            let me = me.clone();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { me.fence(request, &gate).await });
        })
    }
}
