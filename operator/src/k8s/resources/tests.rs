use super::*;
use crate::k8s::crd::{FixSessionSpec, LeaseBackend, LeaseSpec, SecretKeyRef};

const SESSIONS: &str = "[engine]\napp = 'exec'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '0.0.0.0:9878'\n";

fn fix_session(instances: u32) -> FixSession {
    let spec: FixSessionSpec = serde_json::from_value(serde_json::json!({
        "image": "registry.local/fix-engine:1",
        "instances": instances,
        "config": {"inline": SESSIONS},
        "lease": {"backend": "postgres", "urlSecret": {"name": "lease", "key": "url"}},
        "adminToken": {"name": "admin", "key": "token"},
    }))
    .expect("a valid spec");
    let mut fs = FixSession::new("orders", spec);
    fs.metadata.namespace = Some("trading".into());
    fs.metadata.uid = Some("uid-1".into());
    fs
}

#[test]
fn spec_defaults_are_a_replicated_pair() {
    let fs = fix_session(2);
    assert_eq!(fs.spec.durability, crate::k8s::crd::Durability::Replicated);
    assert_eq!(
        fs.spec.lease,
        LeaseSpec {
            backend: LeaseBackend::Postgres,
            url_secret: SecretKeyRef {
                name: "lease".into(),
                key: "url".into()
            },
            group: None,
            ttl_ms: 800,
            renew_interval_ms: 150,
            safety_margin_ms: 150,
        }
    );
    // The engine's own defaults: a FixSession that says nothing runs like `fix-engine`.
    assert_eq!(
        std::time::Duration::from_millis(fs.spec.lease.ttl_ms),
        fix_lease::DEFAULT_TTL
    );
}

#[test]
fn each_instance_gets_an_engine_config_the_engine_accepts() {
    let fs = fix_session(3);
    std::env::set_var(LEASE_URL_ENV, "postgres://u@db/fix");
    let cm = config_map(&fs, SESSIONS).expect("config map");
    let data = cm.data.expect("data");
    assert_eq!(data.len(), 3);
    let text = &data["orders-1.toml"];
    let parsed = fix_engine::EngineConfig::from_toml(text, "orders-1.toml")
        .expect("the engine parses what the operator writes");
    parsed.plans().expect("and accepts it");
    let lease = parsed.engine.lease.expect("lease");
    assert_eq!(lease.owner.as_deref(), Some("orders-1"));
    assert_eq!(lease.group, "orders");
    assert_eq!(lease.url, "postgres://u@db/fix");
    let r = parsed.engine.replication.expect("replication");
    assert_eq!(
        r.peers,
        [
            "orders-0.orders-peers.trading.svc:9901",
            "orders-2.orders-peers.trading.svc:9901"
        ],
        "the other instances, never itself"
    );
    assert_eq!(
        parsed.engine.admin.expect("admin").token_env.as_deref(),
        Some(ADMIN_TOKEN_ENV)
    );
}

#[test]
fn operator_owned_sections_and_bad_sources_are_refused_by_name() {
    let fs = fix_session(2);
    let e = engine_toml(&fs, "[engine.lease]\nurl = 'sqlite://x'\n", 0).expect_err("owned");
    assert!(
        e.to_string().contains("[engine.lease]") && e.to_string().contains("spec.lease"),
        "{e}"
    );
    let e = engine_toml(&fs, "[[session]\n", 0).expect_err("bad TOML");
    assert!(e.to_string().contains("not valid TOML"), "{e}");
    let none = SessionConfig::default();
    let e = config_source("orders", &none).expect_err("no source");
    assert_eq!(
        e,
        BuildError::ConfigSource {
            name: "orders".into(),
            count: 0
        }
    );
    assert_eq!(
        config_source("orders", &fs.spec.config),
        Ok(ConfigSource::Inline(SESSIONS))
    );
}

#[test]
fn only_the_leader_serves_fix_and_standbys_are_reachable_for_replication() {
    let fs = fix_session(2);
    let peers = peers_service(&fs).expect("peers").spec.expect("spec");
    assert_eq!(peers.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peers.publish_not_ready_addresses, Some(true));
    let fix = fix_service(&fs).expect("fix").spec.expect("spec");
    assert_ne!(fix.publish_not_ready_addresses, Some(true));
    let sts = stateful_set(&fs).expect("sts");
    let owner = &sts.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("FixSession", Some(true))
    );
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.service_name.as_deref(), Some("orders-peers"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let pod = spec.template.spec.expect("pod");
    let c = &pod.containers[0];
    let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref());
    assert_eq!(ready.and_then(|g| g.path.as_deref()), Some("/readyz"));
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "--config".to_string(),
                "/etc/fix/$(POD_NAME).toml".to_string()
            ][..]
        )
    );
    let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(
        env,
        [
            "POD_NAME",
            LEASE_URL_ENV,
            ADMIN_TOKEN_ENV,
            REPLICATION_KEY_ENV
        ]
    );
    let key = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == REPLICATION_KEY_ENV);
    let from = key
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("the replication key comes from a Secret");
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("orders-replication-key", GENERATED_KEY),
        "without spec.replicationKey, the Secret the operator generates"
    );
    let pdb = pod_disruption_budget(&fs).expect("pdb").spec.expect("spec");
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pod_names(&fs).expect("names"), ["orders-0", "orders-1"]);
}

#[test]
fn a_replication_tls_secret_is_mounted_and_named_in_every_instances_config() {
    let mut fs = fix_session(2);
    fs.spec.replication_tls = Some(crate::k8s::crd::ReplicationTls {
        secret_name: "orders-replication-tls".into(),
    });
    std::env::set_var(LEASE_URL_ENV, "postgres://u@db/fix");
    let text = engine_toml(&fs, SESSIONS, 0).expect("toml");
    let parsed = fix_engine::EngineConfig::from_toml(&text, "orders-0.toml").expect("parses");
    let tls = parsed
        .engine
        .replication
        .and_then(|r| r.tls)
        .expect("[engine.replication.tls]");
    let at = |file: &str| {
        Some(std::path::PathBuf::from(format!(
            "{REPLICATION_TLS_DIR}/{file}"
        )))
    };
    assert_eq!(
        (tls.cert, tls.key, tls.ca, tls.server_name),
        (at("tls.crt"), at("tls.key"), at("ca.crt"), None),
        "the files of a kubernetes.io/tls Secret; each peer verified by its own name"
    );
    let set = stateful_set(&fs).expect("stateful set");
    let pod = set.spec.and_then(|s| s.template.spec).expect("pod spec");
    let volume = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "replication-tls")
        .and_then(|v| v.secret)
        .expect("the Secret as a volume");
    assert_eq!(
        volume.secret_name.as_deref(),
        Some("orders-replication-tls")
    );
    assert_eq!(volume.default_mode, Some(0o440), "not world-readable");
    let mount = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.name == "replication-tls")
        .expect("mounted");
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        (REPLICATION_TLS_DIR, Some(true))
    );

    fs.spec.replication_tls = None;
    let plain = engine_toml(&fs, SESSIONS, 0).expect("toml");
    assert!(
        !plain.contains("tls"),
        "no TLS section without the Secret: {plain}"
    );
}
