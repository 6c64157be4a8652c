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
    for field in ["config", "lease"] {
        assert!(
            required.contains(&field),
            "{field} is required: {required:?}"
        );
    }
    // The image defaults to what scripts/image.sh tags.
    assert!(!required.contains(&"image"), "{required:?}");
    assert_eq!(
        spec["properties"]["image"]["default"],
        format!("localhost/fix-engine:{}", env!("CARGO_PKG_VERSION"))
    );
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
        serde_json::json!(["local", "replicated", "replicated-written", "sql"])
    );
}

/// `runbooks/schema.json` is the schema of the runbook types, and every shipped runbook
/// reads as a runbook with its parameters.
#[test]
fn runbook_schema_is_current_and_runbooks_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schema.json")).expect("runbooks/schema.json"),
    )
    .expect("JSON");
    assert_eq!(
        committed,
        fix_operator::runbook::spec::schema(),
        "runbooks/schema.json is stale: run `cargo run -p fix-operator --bin fixctl -- runbook schema > runbooks/schema.json`"
    );
    let params = std::collections::BTreeMap::from([
        ("source".to_string(), "us-east-1".to_string()),
        ("target".to_string(), "us-west-2".to_string()),
    ]);
    for f in ["rotate-region.yaml", "dr-failover.yaml", "failback.yaml"] {
        let (book, _) = fix_operator::runbook::load::load(&root.join(f), &params)
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!book.steps.is_empty(), "{f}");
    }
    // Mistakes are named.
    let bad = |text: &str| {
        fix_operator::runbook::load::parse(text, "bad.yaml", &params)
            .expect_err("refused")
            .to_string()
    };
    let base = "name: x\nparameters: {source: {}, target: {}}\nsteps:\n";
    assert!(bad(&format!("{base}  - id: a\n    timeout: 5 minutes\n"))
        .contains("timeout \"5 minutes\" is not a duration"));
    assert!(bad(&format!("{base}  - id: a\n  - id: a\n")).contains("step id a is used twice"));
    assert!(bad(&format!(
        "{base}  - id: a\n    action: {{action: move-lease, to: \"{{{{tagret}}}}\"}}\n"
    ))
    .contains("uses {{tagret}}, which is not a declared parameter"));
    assert!(bad(&format!(
        "{base}  - id: a\n    action: {{action: reboot}}\n"
    ))
    .contains("unknown variant `reboot`"));
}
