//! The cleanup half of a reconciliation, run while a deleted FixSession still carries the
//! finalizer. In order: the supervision stops (nothing re-routes); routing is drained
//! (traffic goes to no instance, rather than to engines about to stop); the StatefulSet
//! is deleted and cleanup waits until its pods are gone; then the lease is released so
//! nothing holds the group's lease (a FixSession created again under the same group
//! starts at once, with a higher epoch). Only then is the finalizer removed; the other
//! objects go with their owner.

use super::controller::{key_of, Context};
use super::crd::FixSession;
use super::error::ReconcileError;
use super::group::router_for;
use super::inputs::secret_value;
use super::resources::{labels, pod_names};
use crate::router::RouteError;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

/// Cleans up after a deleted FixSession; `Ok` lets the finalizer go.
pub async fn cleanup(fs: &FixSession, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = key_of(fs);
    if ctx.groups().await.remove(&key).is_some() {
        tracing::info!(fixsession = %key, "supervision stopped");
    }
    drain(fs, ctx).await?;
    stop_pods(fs, ctx).await?;
    release_lease(fs, ctx).await?;
    Ok(Action::await_change())
}

async fn drain(fs: &FixSession, ctx: &Context) -> Result<(), ReconcileError> {
    let pods = pod_names(fs)?;
    let router = match router_for(&fs.spec.routing, &pods).await {
        Ok(r) => r,
        Err(e) => {
            ctx.event(
                fs,
                EventType::Warning,
                "RoutingDrainSkipped",
                format!("{e}; routing was left as it is"),
            )
            .await;
            return Ok(());
        }
    };
    match router.drain().await {
        Ok(()) => {
            ctx.event(
                fs,
                EventType::Normal,
                "RoutingDrained",
                format!(
                    "{} sends traffic to no instance of the group",
                    router.name()
                ),
            )
            .await;
            Ok(())
        }
        Err(e @ RouteError::Refused { .. }) => {
            // A safety rule keeps some traffic flowing (for example "at least one
            // control On"): leaving it is the safe state the rule's owner chose.
            ctx.event(
                fs,
                EventType::Warning,
                "RoutingDrainRefused",
                format!("{e}; routing was left as it is"),
            )
            .await;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn stop_pods(fs: &FixSession, ctx: &Context) -> Result<(), ReconcileError> {
    let name = fs.name_any();
    let ns = fs.namespace().unwrap_or_default();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    match sets.delete(&name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(ReconcileError::kube(format!("deleting StatefulSet {name}"))(e)),
    }
    let selector: Vec<String> = labels(&name)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let left = pods
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(ReconcileError::kube(format!("listing the pods of {name}")))?
        .items
        .len();
    if left > 0 {
        return Err(ReconcileError::PodsStillRunning(left));
    }
    Ok(())
}

async fn release_lease(fs: &FixSession, ctx: &Context) -> Result<(), ReconcileError> {
    let group = fs.spec.lease.group.clone().unwrap_or_else(|| fs.name_any());
    let url = match secret_value(
        &ctx.client,
        fs,
        &fs.spec.lease.url_secret,
        "lease.urlSecret",
    )
    .await
    {
        Ok(u) => u,
        Err(e) if e.spec_reason().is_some() => {
            ctx.event(
                fs,
                EventType::Warning,
                "LeaseNotReleased",
                format!("{e}; the lease of group {group} expires by its TTL instead"),
            )
            .await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let lease_err = |action: &str| {
        let action = format!("{action} the lease of group {group}");
        move |source| ReconcileError::Lease { action, source }
    };
    let store = fix_lease::connect(&url)
        .await
        .map_err(lease_err("connecting to release"))?;
    let Some(state) = store.read(&group).await.map_err(lease_err("reading"))? else {
        return Ok(());
    };
    // Released already (expiry 0), or never held. A lease that only looks expired by
    // the clock is still released: contenders take a lease by watching it, not by the
    // clock, so an unreleased one would keep the next group waiting a TTL.
    if state.expires_at_ms == 0 || state.owner.is_empty() {
        return Ok(());
    }
    let grant = fix_lease::Grant {
        group: group.clone(),
        owner: state.owner.clone(),
        epoch: state.epoch,
        expires_at_ms: state.expires_at_ms,
    };
    let released = store
        .release(&grant)
        .await
        .map_err(lease_err("releasing"))?;
    if released {
        ctx.event(
            fs,
            EventType::Normal,
            "LeaseReleased",
            format!(
                "released the lease of group {group} (held by {} at epoch {})",
                state.owner, state.epoch
            ),
        )
        .await;
    }
    Ok(())
}
