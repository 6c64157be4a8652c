//! What a FixSession refers to and the controller reads from the API: the sessions'
//! configuration (inline, a ConfigMap's engine TOML, or a ConfigMap's QuickFIX settings
//! converted to engine TOML) and the Secrets' values (lease URL, admin token).

use super::crd::{ConfigMapKeyRef, FixSession, SecretKeyRef};
use super::error::ReconcileError;
use super::resources::{config_source, ConfigSource};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

/// The sessions' engine TOML (without the sections the operator writes).
pub async fn base_config(client: &Client, fs: &FixSession) -> Result<String, ReconcileError> {
    let name = fs.name_any();
    match config_source(&name, &fs.spec.config)? {
        ConfigSource::Inline(t) => Ok(t.to_string()),
        ConfigSource::ConfigMap(r) => config_map_value(client, fs, r, "config.configMap").await,
        ConfigSource::QuickfixSettings(r) => {
            let text = config_map_value(client, fs, r, "config.quickfixSettings").await?;
            let source = format!("ConfigMap {} key {}", r.name, r.key);
            let imported = fix_engine::quickfix_settings::import(&text, &source)
                .map_err(|e| ReconcileError::InvalidSpec(format!("FixSession {name}: {e}")))?;
            for w in &imported.warnings {
                tracing::warn!(fixsession = %name, "{w}");
            }
            imported
                .config
                .to_toml()
                .map_err(|e| ReconcileError::InvalidSpec(e.to_string()))
        }
    }
}

async fn config_map_value(
    client: &Client,
    fs: &FixSession,
    r: &ConfigMapKeyRef,
    field: &'static str,
) -> Result<String, ReconcileError> {
    let ns = fs.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let missing = || ReconcileError::ConfigMapNotFound {
        fixsession: fs.name_any(),
        field,
        name: r.name.clone(),
        key: r.key.clone(),
    };
    let cm = api
        .get_opt(&r.name)
        .await
        .map_err(ReconcileError::kube(format!(
            "reading ConfigMap {}",
            r.name
        )))?
        .ok_or_else(missing)?;
    cm.data
        .and_then(|d| d.get(&r.key).cloned())
        .ok_or_else(missing)
}

/// A Secret key's value (trimmed: a trailing newline from `--from-file` is not part of a
/// URL or token).
pub async fn secret_value(
    client: &Client,
    fs: &FixSession,
    r: &SecretKeyRef,
    field: &'static str,
) -> Result<String, ReconcileError> {
    let ns = fs.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let missing = || ReconcileError::SecretNotFound {
        fixsession: fs.name_any(),
        field,
        name: r.name.clone(),
        key: r.key.clone(),
    };
    let secret = api
        .get_opt(&r.name)
        .await
        .map_err(ReconcileError::kube(format!("reading Secret {}", r.name)))?
        .ok_or_else(missing)?;
    let bytes = secret
        .data
        .and_then(|d| d.get(&r.key).cloned())
        .ok_or_else(missing)?;
    String::from_utf8(bytes.0)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            ReconcileError::InvalidSpec(format!(
                "FixSession {}: spec.{field}: Secret {} key {} is not UTF-8 text",
                fs.name_any(),
                r.name,
                r.key
            ))
        })
}
