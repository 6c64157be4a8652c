//! The apply half of a reconciliation: the objects applied server-side, the group's
//! supervision started (or replaced when its inputs changed), a manual failover carried
//! out when the annotation asks for one, the supervisor's transitions published as
//! events, and the status written.

use super::conditions;
use super::controller::{key_of, Context, MANAGER};
use super::crd::FixSession;
use super::error::ReconcileError;
use super::group::{Group, GroupInputs};
use super::inputs::{base_config, secret_value};
use super::resources;
use super::status;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// Applies `fs`; a failure the spec's author must fix is also reported as a Warning event
/// and in the `Ready` condition.
pub async fn apply(fs: &FixSession, ctx: &Context) -> Result<Action, ReconcileError> {
    match apply_spec(fs, ctx).await {
        Ok(action) => Ok(action),
        Err(e) => {
            if let Some(reason) = e.spec_reason() {
                let message = e.to_string();
                ctx.event(fs, EventType::Warning, reason, message.clone())
                    .await;
                let blocked = conditions::blocked(reason, &message);
                if let Err(w) = status::write(ctx, fs, blocked, None).await {
                    tracing::warn!(fixsession = %key_of(fs), error = %w, "writing the status failed");
                }
            }
            Err(e)
        }
    }
}

async fn apply_spec(fs: &FixSession, ctx: &Context) -> Result<Action, ReconcileError> {
    let base = base_config(&ctx.client, fs).await?;
    check_engine_config(fs, &base)?;
    ensure_replication_key(fs, ctx).await?;
    apply_object(ctx, &resources::config_map(fs, &base)?).await?;
    apply_object(ctx, &resources::peers_service(fs)?).await?;
    apply_object(ctx, &resources::fix_service(fs)?).await?;
    apply_object(ctx, &resources::pod_disruption_budget(fs)?).await?;
    apply_object(ctx, &resources::stateful_set(fs)?).await?;
    let inputs = GroupInputs {
        name: fs.name_any(),
        namespace: fs.namespace().unwrap_or_default(),
        pods: resources::pod_names(fs)?,
        spec: fs.spec.clone(),
        lease_url: secret_value(
            &ctx.client,
            fs,
            &fs.spec.lease.url_secret,
            "lease.urlSecret",
        )
        .await?,
        token: match &fs.spec.admin_token {
            Some(r) => Some(secret_value(&ctx.client, fs, r, "adminToken").await?),
            None => None,
        },
    };
    let supervisor = ensure_group(fs, ctx, &inputs).await?;
    let manual = super::failover::carry_out(fs, ctx, &supervisor).await;
    let last_failover = status::publish_transitions(fs, ctx).await;
    let snapshot = supervisor.snapshot();
    let observed = conditions::observe(&snapshot, inputs.pods.len());
    status::write(
        ctx,
        fs,
        observed,
        Some(status::Running {
            snapshot: &snapshot,
            last_failover,
            manual,
        }),
    )
    .await?;
    Ok(Action::requeue(ctx.settings.status_refresh))
}

/// Checks the first instance's engine TOML reads as the engine would read it, so a bad
/// configuration is reported here rather than as crash-looping pods.
fn check_engine_config(fs: &FixSession, base: &str) -> Result<(), ReconcileError> {
    let text = resources::engine_toml(fs, base, 0)?;
    let config: fix_engine::config::EngineConfig = toml::from_str(&text).map_err(|e| {
        ReconcileError::InvalidSpec(format!(
            "FixSession {}: the engine configuration is not valid: {e}",
            fs.name_any()
        ))
    })?;
    config
        .plans()
        .map_err(|e| ReconcileError::InvalidSpec(format!("FixSession {}: {e}", fs.name_any())))?;
    Ok(())
}

/// Makes sure the replication key the pods read exists: `spec.replicationKey` is checked
/// (present, long enough); without it a random key is generated once into
/// `<name>-replication-key` and kept (created, never overwritten).
async fn ensure_replication_key(fs: &FixSession, ctx: &Context) -> Result<(), ReconcileError> {
    if let Some(r) = &fs.spec.replication_key {
        let key = secret_value(&ctx.client, fs, r, "replicationKey").await?;
        if key.len() < fix_engine::replication::peer_auth::MIN_KEY_LEN {
            return Err(ReconcileError::InvalidSpec(format!(
                "FixSession {}: spec.replicationKey: Secret {} key {} holds {} bytes; use at least {} (e.g. openssl rand -hex 32)",
                fs.name_any(),
                r.name,
                r.key,
                key.len(),
                fix_engine::replication::peer_auth::MIN_KEY_LEN
            )));
        }
        return Ok(());
    }
    let secret = resources::generated_key_secret(fs)?;
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &fs.namespace().unwrap_or_default());
    let exists = api
        .get_opt(&name)
        .await
        .map_err(ReconcileError::kube(format!("reading Secret {name}")))?
        .is_some();
    if exists {
        return Ok(());
    }
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(fixsession = %key_of(fs), secret = %name, "generated the group's replication key");
            Ok(())
        }
        // Created meanwhile by another reconciliation: keep that one.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(ReconcileError::kube(format!("creating Secret {name}"))(e)),
    }
}

/// Applies one object server-side as `fix-operator`, taking over fields others set.
async fn apply_object<K>(ctx: &Context, obj: &K) -> Result<(), ReconcileError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(ReconcileError::kube(format!(
        "applying {} {name}",
        K::kind(&())
    )))?;
    Ok(())
}

/// The group's supervisor, started now if there was none or its inputs changed.
async fn ensure_group(
    fs: &FixSession,
    ctx: &Context,
    inputs: &GroupInputs,
) -> Result<Arc<crate::supervisor::Supervisor>, ReconcileError> {
    let key = key_of(fs);
    let mut groups = ctx.groups().await;
    if let Some(g) = groups.get(&key) {
        if g.matches(inputs) {
            return Ok(Arc::clone(&g.supervisor));
        }
        tracing::info!(fixsession = %key, "the group's instances, routing or lease changed: restarting its supervision");
    }
    let group = Group::start(
        inputs,
        &ctx.settings.addressing,
        ctx.settings.poll,
        Some(fence_hook(ctx, &inputs.namespace)),
    )
    .await?;
    let supervisor = Arc::clone(&group.supervisor);
    groups.insert(key, group);
    Ok(supervisor)
}

/// Fencing on Kubernetes: an old leader that still claims to lead after traffic moved
/// has its pod deleted at once (the StatefulSet recreates it; it comes back a standby).
fn fence_hook(ctx: &Context, namespace: &str) -> crate::supervisor::FenceHook {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    Arc::new(move |request: crate::supervisor::FenceRequest| {
        let pods = pods.clone();
        let pod = request.instance;
        tokio::spawn(async move {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            match pods.delete(&pod, &params).await {
                Ok(_) => tracing::warn!(%pod, "fenced: deleted the old leader's pod"),
                Err(e) => tracing::error!(%pod, error = %e, "fencing the old leader failed"),
            }
        });
    })
}
