//! Where an engine group's pods run and what they may use: never two instances of a
//! group on one node (a node failure must not take a leader and its standby together),
//! spread over zones where the cluster has several, the resources the spec asks for, and
//! the image's non-root user owning the journal volume.

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, ResourceRequirements,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The node label anti-affinity keeps instances apart on.
pub const HOST_KEY: &str = "kubernetes.io/hostname";
/// The node label instances are spread over.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    }
}

/// Required anti-affinity between the pods carrying `labels` on one node: a second
/// instance waits for a node of its own rather than share one.
pub fn anti_affinity(labels: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(selector(labels)),
                topology_key: HOST_KEY.into(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// Spread over zones, one apart at most, where the cluster can (a cluster in one zone
/// still schedules).
pub fn zone_spread(labels: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: ZONE_KEY.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector(labels)),
        ..TopologySpreadConstraint::default()
    }]
}

/// The user the engine image runs as (`images/engine.Containerfile`).
pub const ENGINE_USER: i64 = 65532;

/// The engine pods run as the image's non-root user, and their volumes (the journal)
/// belong to its group, so the engine can write its journal on a fresh volume.
pub fn security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(ENGINE_USER),
        run_as_group: Some(ENGINE_USER),
        fs_group: Some(ENGINE_USER),
        ..PodSecurityContext::default()
    }
}

/// The engine container's resources: the spec's, else a default that reserves a core
/// and keeps a bound on memory.
pub fn resources(spec: Option<&ResourceRequirements>) -> ResourceRequirements {
    spec.cloned().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("1".into())),
            ("memory".to_string(), Quantity("512Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("2Gi".into()),
        )])),
        ..ResourceRequirements::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::k8s::crd::{FixSession, FixSessionSpec};
    use crate::k8s::resources::stateful_set;

    fn group(resources: Option<serde_json::Value>) -> FixSession {
        let mut spec = serde_json::json!({
            "config": {"inline": "[engine]\napp = 'exec'\n"},
            "lease": {"backend": "postgres", "urlSecret": {"name": "lease", "key": "url"}},
        });
        if let Some(r) = resources {
            spec["resources"] = r;
        }
        let spec: FixSessionSpec = serde_json::from_value(spec).expect("a valid spec");
        let mut fs = FixSession::new("orders", spec);
        fs.metadata.namespace = Some("trading".into());
        fs
    }

    #[test]
    fn instances_never_share_a_node_spread_over_zones_and_have_resources() {
        let fs = group(None);
        assert_eq!(
            fs.spec.image,
            format!("localhost/fix-engine:{}", env!("CARGO_PKG_VERSION"))
        );
        let sts = stateful_set(&fs).expect("builds");
        let pod = sts
            .spec
            .and_then(|s| s.template.spec)
            .expect("a pod template");
        let v = serde_json::to_value(&pod).expect("JSON");
        let term =
            &v["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(term["topologyKey"], super::HOST_KEY, "{v}");
        assert_eq!(
            term["labelSelector"]["matchLabels"],
            v["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
        );
        assert!(term["labelSelector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(
            v["topologySpreadConstraints"][0]["topologyKey"],
            super::ZONE_KEY
        );
        assert_eq!(v["securityContext"]["runAsUser"], super::ENGINE_USER);
        assert_eq!(v["securityContext"]["fsGroup"], super::ENGINE_USER);
        assert_eq!(v["securityContext"]["runAsNonRoot"], true);
        assert_eq!(v["containers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(v["containers"][0]["resources"]["limits"]["memory"], "2Gi");

        let fs = group(Some(serde_json::json!({"requests": {"cpu": "4"}})));
        let sts = stateful_set(&fs).expect("builds");
        let v = serde_json::to_value(sts.spec.and_then(|s| s.template.spec)).expect("JSON");
        assert_eq!(
            v["containers"][0]["resources"],
            serde_json::json!({"requests": {"cpu": "4"}})
        );
    }
}
