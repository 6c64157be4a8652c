//! The Kubernetes objects a FixSession becomes, as pure functions of it (the reconciler
//! applies them server-side): a StatefulSet (one pod per instance, a journal volume
//! each), a headless Service for replication (not-ready pods included: standbys follow
//! the leader before they are ready), a Service for the FIX port (its endpoints are the
//! ready pods, and only the leader is ready: `/readyz`), a ConfigMap with each instance's
//! engine TOML, and a PodDisruptionBudget. Every object carries the FixSession as its
//! controlling owner.

use super::crd::{FixSession, SessionConfig};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use std::collections::BTreeMap;

/// Where the journal volume is mounted in the pods.
pub const DATA_DIR: &str = "/var/lib/fix";
/// Where the ConfigMap is mounted in the pods.
pub const CONFIG_DIR: &str = "/etc/fix";
/// Where `spec.replicationTls`'s Secret is mounted in the pods.
pub const REPLICATION_TLS_DIR: &str = "/etc/fix-replication-tls";
/// The environment variable carrying the lease URL (from the Secret).
pub const LEASE_URL_ENV: &str = "FIX_LEASE_URL";
/// The environment variable carrying the admin token (from the Secret).
pub const ADMIN_TOKEN_ENV: &str = "FIX_ADMIN_TOKEN";
/// The environment variable carrying the replication key (from the Secret).
pub const REPLICATION_KEY_ENV: &str = "FIX_REPLICATION_KEY";
/// The key in the Secret the operator generates when `spec.replicationKey` is not given.
pub const GENERATED_KEY: &str = "key";

/// The Secret key holding the group's replication key: `spec.replicationKey`, or the
/// one the operator generates.
pub fn replication_key_ref(fs: &FixSession) -> Result<super::crd::SecretKeyRef, BuildError> {
    Ok(match &fs.spec.replication_key {
        Some(r) => r.clone(),
        None => super::crd::SecretKeyRef {
            name: generated_key_secret_name(&name_of(fs)?),
            key: GENERATED_KEY.into(),
        },
    })
}

/// The name of the Secret the operator generates for the replication key.
pub fn generated_key_secret_name(name: &str) -> String {
    format!("{name}-replication-key")
}

/// A new Secret with a random replication key (owned by the FixSession, so it goes with
/// it), for when `spec.replicationKey` is not given.
pub fn generated_key_secret(
    fs: &FixSession,
) -> Result<k8s_openapi::api::core::v1::Secret, BuildError> {
    use ring::rand::SecureRandom;
    let name = name_of(fs)?;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BuildError::Random)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(k8s_openapi::api::core::v1::Secret {
        metadata: meta(fs, generated_key_secret_name(&name))?,
        string_data: Some(BTreeMap::from([(GENERATED_KEY.to_string(), hex)])),
        ..Default::default()
    })
}

/// Why a FixSession cannot be turned into objects.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// The resource has no name or namespace (it was not read from the API).
    #[error("building objects for a FixSession without a name or namespace")]
    Metadata,
    /// `spec.config` names no source or several.
    #[error("FixSession {name}: spec.config needs exactly one of inline, configMap or quickfixSettings (it has {count})")]
    ConfigSource {
        /// The FixSession.
        name: String,
        /// How many it has.
        count: usize,
    },
    /// The engine TOML does not parse.
    #[error("FixSession {name}: the engine configuration is not valid TOML: {message}")]
    Toml {
        /// The FixSession.
        name: String,
        /// What the parser said.
        message: String,
    },
    /// The engine TOML sets a section the operator writes itself.
    #[error("FixSession {name}: the engine configuration sets [engine.{section}], which the operator builds from spec.{from}: remove it")]
    OperatorOwned {
        /// The FixSession.
        name: String,
        /// The section.
        section: String,
        /// The spec field it comes from.
        from: String,
    },
    /// The operating system gave no random bytes for a generated key.
    #[error("no random bytes from the operating system for the replication key")]
    Random,
}

/// Where the sessions' configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource<'a> {
    /// The engine TOML, inline.
    Inline(&'a str),
    /// The engine TOML in a ConfigMap key (the reconciler reads it).
    ConfigMap(&'a super::crd::ConfigMapKeyRef),
    /// A QuickFIX settings file in a ConfigMap key.
    QuickfixSettings(&'a super::crd::ConfigMapKeyRef),
}

/// The one source `spec.config` names.
pub fn config_source<'a>(
    name: &str,
    config: &'a SessionConfig,
) -> Result<ConfigSource<'a>, BuildError> {
    let mut found = Vec::new();
    if let Some(t) = &config.inline {
        found.push(ConfigSource::Inline(t));
    }
    if let Some(r) = &config.config_map {
        found.push(ConfigSource::ConfigMap(r));
    }
    if let Some(r) = &config.quickfix_settings {
        found.push(ConfigSource::QuickfixSettings(r));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        count => Err(BuildError::ConfigSource {
            name: name.to_string(),
            count,
        }),
    }
}

fn name_of(fs: &FixSession) -> Result<String, BuildError> {
    fs.metadata.name.clone().ok_or(BuildError::Metadata)
}

fn namespace_of(fs: &FixSession) -> Result<String, BuildError> {
    fs.metadata.namespace.clone().ok_or(BuildError::Metadata)
}

/// The headless Service standbys find the leader's replication port through.
pub fn peers_service_name(name: &str) -> String {
    format!("{name}-peers")
}

/// The ConfigMap with each instance's engine TOML.
pub fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}

/// The pods' names, in ordinal order.
pub fn pod_names(fs: &FixSession) -> Result<Vec<String>, BuildError> {
    let name = name_of(fs)?;
    Ok((0..fs.spec.instances)
        .map(|i| format!("{name}-{i}"))
        .collect())
}

/// The labels every object and pod of this FixSession carries.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "fix-engine".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "fix-operator".to_string(),
        ),
    ])
}

fn meta(fs: &FixSession, name: String) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace_of(fs)?),
        labels: Some(labels(&name_of(fs)?)),
        owner_references: fs.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    })
}

/// Instance `ordinal`'s engine TOML: the sessions' configuration plus the sections the
/// operator owns (store and data directory, lease, replication, admin).
pub fn engine_toml(fs: &FixSession, base: &str, ordinal: u32) -> Result<String, BuildError> {
    let name = name_of(fs)?;
    let namespace = namespace_of(fs)?;
    let toml_error = |message: String| BuildError::Toml {
        name: name.clone(),
        message,
    };
    let mut doc: toml::Table = base
        .parse()
        .map_err(|e: toml::de::Error| toml_error(e.to_string()))?;
    let engine = doc
        .entry("engine")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(engine) = engine.as_table_mut() else {
        return Err(toml_error("engine is not a table".into()));
    };
    for (section, from) in [
        ("lease", "lease"),
        ("replication", "durability"),
        ("admin", "ports.admin and adminToken"),
    ] {
        if engine.contains_key(section) {
            return Err(BuildError::OperatorOwned {
                name: name.clone(),
                section: section.into(),
                from: from.into(),
            });
        }
    }
    let spec = &fs.spec;
    let pod = format!("{name}-{ordinal}");
    engine.insert("store".into(), "journal".into());
    engine.insert("data_dir".into(), DATA_DIR.into());
    let mut lease = toml::Table::new();
    lease.insert("url_env".into(), LEASE_URL_ENV.into());
    lease.insert(
        "group".into(),
        spec.lease
            .group
            .clone()
            .unwrap_or_else(|| name.clone())
            .into(),
    );
    lease.insert("owner".into(), pod.clone().into());
    lease.insert("ttl_ms".into(), toml_int(spec.lease.ttl_ms));
    lease.insert(
        "renew_interval_ms".into(),
        toml_int(spec.lease.renew_interval_ms),
    );
    lease.insert(
        "safety_margin_ms".into(),
        toml_int(spec.lease.safety_margin_ms),
    );
    engine.insert("lease".into(), toml::Value::Table(lease));
    let peers: Vec<toml::Value> = (0..spec.instances)
        .filter(|&i| i != ordinal)
        .map(|i| {
            format!(
                "{name}-{i}.{}.{namespace}.svc:{}",
                peers_service_name(&name),
                spec.ports.replication
            )
            .into()
        })
        .collect();
    let mut replication = toml::Table::new();
    replication.insert(
        "listen".into(),
        format!("0.0.0.0:{}", spec.ports.replication).into(),
    );
    replication.insert("peers".into(), toml::Value::Array(peers));
    let durability = serde_json::to_value(spec.durability)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "replicated".into());
    replication.insert("durability".into(), durability.into());
    replication.insert("key_env".into(), REPLICATION_KEY_ENV.into());
    if spec.replication_tls.is_some() {
        let mut tls = toml::Table::new();
        for (key, file) in [("cert", "tls.crt"), ("key", "tls.key"), ("ca", "ca.crt")] {
            tls.insert(key.into(), format!("{REPLICATION_TLS_DIR}/{file}").into());
        }
        replication.insert("tls".into(), toml::Value::Table(tls));
    }
    engine.insert("replication".into(), toml::Value::Table(replication));
    let mut admin = toml::Table::new();
    admin.insert(
        "listen".into(),
        format!("0.0.0.0:{}", spec.ports.admin).into(),
    );
    if spec.admin_token.is_some() {
        admin.insert("token_env".into(), ADMIN_TOKEN_ENV.into());
    }
    engine.insert("admin".into(), toml::Value::Table(admin));
    toml::to_string(&doc).map_err(|e| toml_error(e.to_string()))
}

fn toml_int(v: u64) -> toml::Value {
    toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The ConfigMap: `<pod>.toml` for every instance.
pub fn config_map(fs: &FixSession, base: &str) -> Result<ConfigMap, BuildError> {
    let name = name_of(fs)?;
    let mut data = BTreeMap::new();
    for i in 0..fs.spec.instances {
        data.insert(format!("{name}-{i}.toml"), engine_toml(fs, base, i)?);
    }
    Ok(ConfigMap {
        metadata: meta(fs, config_map_name(&name))?,
        data: Some(data),
        ..ConfigMap::default()
    })
}

fn port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.into())),
        ..ServicePort::default()
    }
}

/// The headless Service for replication: every pod, ready or not.
pub fn peers_service(fs: &FixSession) -> Result<Service, BuildError> {
    let name = name_of(fs)?;
    Ok(Service {
        metadata: meta(fs, peers_service_name(&name))?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels(&name)),
            ports: Some(vec![port("replication", fs.spec.ports.replication)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The Service counterparties connect to: only ready pods, and only the leader is ready.
pub fn fix_service(fs: &FixSession) -> Result<Service, BuildError> {
    let name = name_of(fs)?;
    Ok(Service {
        metadata: meta(fs, name.clone())?,
        spec: Some(ServiceSpec {
            selector: Some(labels(&name)),
            ports: Some(vec![port("fix", fs.spec.ports.fix)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// At most one instance disrupted at a time.
pub fn pod_disruption_budget(fs: &FixSession) -> Result<PodDisruptionBudget, BuildError> {
    let name = name_of(fs)?;
    Ok(PodDisruptionBudget {
        metadata: meta(fs, name.clone())?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(&name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

fn env_from_secret(name: &str, r: &super::crd::SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn engine_container(fs: &FixSession) -> Container {
    let spec = &fs.spec;
    let mut env = vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env_from_secret(LEASE_URL_ENV, &spec.lease.url_secret),
    ];
    if let Some(t) = &spec.admin_token {
        env.push(env_from_secret(ADMIN_TOKEN_ENV, t));
    }
    if let Ok(k) = replication_key_ref(fs) {
        env.push(env_from_secret(REPLICATION_KEY_ENV, &k));
    }
    let container_port = |name: &str, p: u16| ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(p),
        ..ContainerPort::default()
    };
    let probe = |path: &str, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Container {
        name: "engine".into(),
        image: Some(spec.image.clone()),
        args: Some(vec![
            "--config".into(),
            format!("{CONFIG_DIR}/$(POD_NAME).toml"),
        ]),
        env: Some(env),
        ports: Some(vec![
            container_port("fix", spec.ports.fix),
            container_port("replication", spec.ports.replication),
            container_port("admin", spec.ports.admin),
        ]),
        resources: Some(super::placement::resources(spec.resources.as_ref())),
        // Ready = leading: the FIX Service's only endpoint is the leader.
        readiness_probe: Some(probe("/readyz", 1)),
        liveness_probe: Some(probe("/healthz", 10)),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: "config".into(),
                    mount_path: CONFIG_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "journal".into(),
                    mount_path: DATA_DIR.into(),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(spec.replication_tls.as_ref().map(|_| VolumeMount {
                name: "replication-tls".into(),
                mount_path: REPLICATION_TLS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        ..Container::default()
    }
}

/// The pods' volumes: the ConfigMap, and `spec.replicationTls`'s Secret.
fn pod_volumes(fs: &FixSession, name: &str) -> Vec<Volume> {
    let config = Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let tls = fs.spec.replication_tls.as_ref().map(|t| Volume {
        name: "replication-tls".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(t.secret_name.clone()),
            // Readable through the pod's fsGroup (the engine's group), by no one else.
            default_mode: Some(0o440),
            optional: Some(false),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    std::iter::once(config).chain(tls).collect()
}

/// The StatefulSet: stable pod names, a journal volume per pod, all pods started at once
/// (a standby must not wait for the leader to be ready: it never will be, as a standby).
pub fn stateful_set(fs: &FixSession) -> Result<StatefulSet, BuildError> {
    let name = name_of(fs)?;
    let spec = &fs.spec;
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("journal".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    Ok(StatefulSet {
        metadata: meta(fs, name.clone())?,
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(spec.instances).unwrap_or(i32::MAX)),
            service_name: Some(peers_service_name(&name)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![engine_container(fs)],
                    affinity: Some(super::placement::anti_affinity(&labels(&name))),
                    security_context: Some(super::placement::security_context()),
                    topology_spread_constraints: Some(super::placement::zone_spread(&labels(
                        &name,
                    ))),
                    volumes: Some(pod_volumes(fs, &name)),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

#[cfg(test)]
mod tests;
