//! What a runbook acts on: the group's instances by region, its lease store, and the
//! routers between regions — built from a `fixctl` configuration file with `region` on
//! every engine, a `[lease]` section and `[[region_router]]` sections.

use crate::config::{build_router, FixctlConfig};
use crate::router::TrafficRouter;
use crate::supervisor::{admin_request, AdminAddr};
use fix_engine::admin::api::{Readiness, SessionView};
use fix_lease::LeaseStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long one admin call may take.
const ADMIN_LIMIT: Duration = Duration::from_secs(2);

/// One engine instance and its region.
#[derive(Debug, Clone)]
pub struct RegionalInstance {
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its admin API.
    pub admin: AdminAddr,
}

/// An instance as last read: its `/readyz` body, or `None` when it did not answer.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The instance.
    pub instance: RegionalInstance,
    /// Its readiness document.
    pub readiness: Option<Readiness>,
}

impl Observed {
    /// It answers and reports leader.
    pub fn leads(&self) -> bool {
        self.readiness.as_ref().is_some_and(Readiness::leads)
    }

    /// Its epoch, as reported.
    pub fn epoch(&self) -> u64 {
        self.readiness.as_ref().map_or(0, |r| r.epoch)
    }

    /// Its sessions.
    pub fn sessions(&self) -> &[SessionView] {
        self.readiness.as_ref().map_or(&[], |r| &r.sessions)
    }
}

/// The system a runbook runs against.
pub struct System {
    /// Every instance with its region.
    pub instances: Vec<RegionalInstance>,
    /// The admin token for actions.
    pub token: Option<String>,
    /// The lease store.
    pub lease: Arc<dyn LeaseStore>,
    /// The engine group.
    pub group: String,
    /// Route 53 ARC routing controls per region, if configured.
    pub arc: Option<Arc<dyn TrafficRouter>>,
    /// Global Accelerator traffic dials per region, if configured.
    pub dials: Option<Arc<dyn TrafficRouter>>,
    /// The engines' ECS services by region (`[[ecs]]`), if configured.
    pub ecs: std::collections::BTreeMap<String, crate::ecs::EcsEngines>,
}

/// The configuration cannot describe a multi-region system.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// Something a runbook needs is missing or wrong.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What to fix.
        message: String,
    },
}

impl System {
    /// The system `cfg` (read from `path`) describes.
    pub async fn from_config(cfg: &FixctlConfig, path: &Path) -> Result<Self, SystemError> {
        let bad = |message: String| SystemError::Config {
            path: path.display().to_string(),
            message,
        };
        let mut instances = Vec::new();
        for e in &cfg.engines {
            let region = e.region.clone().ok_or_else(|| {
                bad(format!(
                    "engine {} has no region: runbooks act per region, so set region = \"…\" on every [[engine]]",
                    e.name
                ))
            })?;
            instances.push(RegionalInstance {
                name: e.name.clone(),
                region,
                admin: e.admin.clone(),
            });
        }
        if instances.is_empty() {
            return Err(bad("no [[engine]] entries".into()));
        }
        let lease_ref = cfg.lease.as_ref().ok_or_else(|| {
            bad("no [lease] section: give the group's lease store (url, group) so the runbook can move the lease".into())
        })?;
        let lease = fix_lease::connect(&lease_ref.url)
            .await
            .map_err(|e| bad(format!("[lease] url: {e}")))?;
        let regions = cfg.regions();
        let names: Vec<&str> = regions.iter().map(String::as_str).collect();
        let (mut arc, mut dials) = (None, None);
        for r in &cfg.region_router {
            let router = build_router(r, &names, path)
                .await
                .map_err(|e| bad(format!("[[region_router]] {e}")))?;
            match r.kind.as_str() {
                "arc" => arc = Some(router),
                "global-accelerator" => dials = Some(router),
                other => {
                    return Err(bad(format!(
                    "[[region_router]] kind = \"{other}\": use \"arc\" or \"global-accelerator\""
                )))
                }
            }
        }
        let mut ecs = std::collections::BTreeMap::new();
        for e in &cfg.ecs {
            if !regions.contains(&e.region) {
                return Err(bad(format!(
                    "[[ecs]] region = \"{}\" names no engine's region ({})",
                    e.region,
                    regions.join(", ")
                )));
            }
            let engines = crate::ecs::EcsEngines::new(
                &e.region,
                &e.cluster,
                &e.services,
                e.endpoint_url.as_deref(),
            )
            .await;
            if ecs.insert(e.region.clone(), engines).is_some() {
                return Err(bad(format!(
                    "two [[ecs]] entries for region {}: list all its services in one",
                    e.region
                )));
            }
        }
        Ok(Self {
            instances,
            token: cfg.token(),
            lease,
            group: lease_ref.group.clone(),
            arc,
            dials,
            ecs,
        })
    }

    /// The regions, in order of first appearance.
    pub fn regions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for i in &self.instances {
            if !out.contains(&i.region) {
                out.push(i.region.clone());
            }
        }
        out
    }

    /// The instances of `region`; an error naming the known regions when it has none.
    pub fn in_region(&self, region: &str) -> Result<Vec<&RegionalInstance>, String> {
        let v: Vec<&RegionalInstance> = self
            .instances
            .iter()
            .filter(|i| i.region == region)
            .collect();
        if v.is_empty() {
            return Err(format!(
                "no instance is in region {region} (known regions: {})",
                self.regions().join(", ")
            ));
        }
        Ok(v)
    }

    /// Reads every instance of `region` (or all, with `None`).
    pub async fn observe(&self, region: Option<&str>) -> Vec<Observed> {
        let mut out = Vec::new();
        for i in &self.instances {
            if region.is_some_and(|r| r != i.region) {
                continue;
            }
            let readiness = match admin_request(&i.admin, "GET", "/readyz", None, ADMIN_LIMIT).await
            {
                Ok((_, body)) => serde_json::from_str(&body).ok(),
                Err(_) => None,
            };
            out.push(Observed {
                instance: i.clone(),
                readiness,
            });
        }
        out
    }

    /// A GET on an instance's admin API, read as `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        i: &RegionalInstance,
        path: &str,
    ) -> Result<T, String> {
        let (code, body) = admin_request(&i.admin, "GET", path, self.token.as_deref(), ADMIN_LIMIT)
            .await
            .map_err(|e| format!("{} ({}) GET {path}: {e}", i.name, i.admin))?;
        if code != 200 {
            return Err(format!(
                "{} GET {path}: HTTP {code}: {}",
                i.name,
                body.trim()
            ));
        }
        serde_json::from_str(&body).map_err(|e| format!("{} GET {path}: {e}", i.name))
    }

    /// A token-protected POST on an instance's admin API; `ok` lists the codes that mean
    /// success.
    pub async fn post(&self, i: &RegionalInstance, path: &str, ok: &[u16]) -> Result<(), String> {
        let (code, body) =
            admin_request(&i.admin, "POST", path, self.token.as_deref(), ADMIN_LIMIT)
                .await
                .map_err(|e| format!("{} ({}) POST {path}: {e}", i.name, i.admin))?;
        if ok.contains(&code) {
            Ok(())
        } else if code == 401 || code == 403 {
            Err(format!(
                "{} refused POST {path} (HTTP {code}): set the engines' admin token in the variable named by token_env",
                i.name
            ))
        } else {
            Err(format!(
                "{} POST {path}: HTTP {code}: {}",
                i.name,
                body.trim()
            ))
        }
    }
}

/// `FIX.4.4:EXEC->CLIENT` as the admin API's path: `FIX.4.4/EXEC/CLIENT`.
pub fn session_path(id: &str) -> Option<String> {
    let (begin, rest) = id.split_once(':')?;
    let (sender, target) = rest.split_once("->")?;
    Some(format!("{begin}/{sender}/{target}"))
}
