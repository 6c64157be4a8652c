//! The CRD the chart installs is exactly what the Rust types generate (`crdgen`), and it
//! describes the resource as documented.

use kube::CustomResourceExt;

const COMMITTED: &str = include_str!("../../charts/fix-operator/crds/fixsessions.yaml");

#[test]
fn the_charts_crd_is_what_crdgen_prints() {
    let generated = fix_operator::k8s::crd_yaml().expect("the CRD serializes");
    assert!(
        generated == COMMITTED,
        "charts/fix-operator/crds/fixsessions.yaml is stale: run\n  cargo run -p fix-operator --bin crdgen > charts/fix-operator/crds/fixsessions.yaml"
    );
}

#[test]
fn the_crd_names_group_version_and_status() {
    let crd = fix_operator::k8s::FixSession::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("fixsessions.fix.fixengine.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(
        v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
        "status is a subresource"
    );
    let schema = serde_json::to_value(&v.schema).expect("schema as JSON");
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for field in ["image", "config", "lease"] {
        assert!(
            required.contains(&field),
            "{field} is required: {required:?}"
        );
    }
    let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "conditions",
        "leader",
        "epoch",
        "lastFailover",
        "observedGeneration",
    ] {
        assert!(status.get(field).is_some(), "status.{field}: {status}");
    }
    assert_eq!(
        spec["properties"]["durability"]["enum"],
        serde_json::json!(["local", "replicated", "sql"])
    );
}
