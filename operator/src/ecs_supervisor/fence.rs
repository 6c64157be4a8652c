//! Fencing an engine on ECS: stopping the task of an old leader that still claims to
//! lead after traffic moved away from it.

use crate::config::FixctlConfig;
use crate::ecs::EcsEngines;
use crate::supervisor::FenceHook;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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

impl EcsFence {
    /// Maps every `[[engine]]` of `cfg` to its ECS service (`ecs_service`, or its name)
    /// in the `[[ecs]]` entry of its region (or the only one); an error names the engine
    /// that cannot be placed and what to add.
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
        for engine in &cfg.engines {
            let service = engine.ecs_service.clone().unwrap_or(engine.name.clone());
            let found = clusters.iter().find(|c| {
                engine
                    .region
                    .as_deref()
                    .is_none_or(|r| r == c.region() || cfg.ecs.len() == 1)
                    && c.services().contains(&service)
            });
            let Some(cluster) = found else {
                return Err(format!(
                    "engine {} has no ECS service: list \"{service}\" in the services of the [[ecs]] entry of its region{}, or set ecs_service on the [[engine]]",
                    engine.name,
                    engine.region.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ));
            };
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

    /// Stops the running tasks of `instance`'s service now and records what happened.
    pub async fn fence(&self, instance: &str) -> FenceRecord {
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let record = match self.targets.get(instance) {
            Some((cluster, service)) => {
                let (tasks, error) = match cluster.stop_tasks(service, STOP_REASON).await {
                    Ok(tasks) => (tasks, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                FenceRecord {
                    instance: instance.to_string(),
                    service: service.clone(),
                    region: cluster.region().to_string(),
                    tasks,
                    error,
                    at_unix_ms,
                }
            }
            None => FenceRecord {
                instance: instance.to_string(),
                service: String::new(),
                region: String::new(),
                tasks: Vec::new(),
                error: Some(format!("{instance} is not a configured engine")),
                at_unix_ms,
            },
        };
        match &record.error {
            None => {
                tracing::warn!(instance, service = %record.service, tasks = ?record.tasks, "fenced: stopped the old leader's ECS task")
            }
            Some(e) => {
                tracing::error!(instance, error = %e, "fencing the old leader failed: stop its task by hand (aws ecs stop-task)")
            }
        }
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(record.clone());
        record
    }

    /// The supervisor's fencing hook: fences in the background (the supervisor does not
    /// wait for ECS).
    pub fn hook(&self) -> FenceHook {
        let me = self.clone();
        Arc::new(move |instance: &str| {
            let me = me.clone();
            let instance = instance.to_string();
            tokio::spawn(async move {
                me.fence(&instance).await;
            });
        })
    }
}
