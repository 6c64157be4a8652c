//! The dependency tree users check first: the AWS SDK runs on its current HTTPS client
//! (hyper 1 and rustls 0.23), not the legacy one (hyper 0.14, rustls 0.21), which would put
//! two HTTP stacks and two TLS stacks in every binary.

fn locked_versions(name: &str) -> Vec<String> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock");
    let mut versions = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                versions.push(v.trim_matches('"').to_string());
            }
        }
    }
    versions
}

#[test]
fn one_http_stack_and_one_tls_stack() {
    let hyper = locked_versions("hyper");
    assert!(
        hyper.iter().all(|v| v.starts_with("1.")),
        "hyper {hyper:?}: an AWS SDK crate uses its legacy client (use the `default-https-client` feature, not `rustls`)"
    );
    let rustls = locked_versions("rustls");
    assert!(
        rustls.iter().all(|v| v.starts_with("0.23")),
        "rustls {rustls:?}: a second TLS stack is in the tree"
    );
    assert!(!hyper.is_empty() && !rustls.is_empty(), "Cargo.lock read");
}

/// An engine-only build (`--no-default-features`) links neither the AWS SDK nor
/// librdkafka nor kube: the Kafka bridge and DynamoDB leases are features.
#[test]
fn an_engine_only_build_has_no_aws_sdk_kafka_or_kubernetes() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "fix-engine",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("fix-engine"), "{tree}");
    let heavy: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("aws-") || l.starts_with("rdkafka") || l.starts_with("kube"))
        .collect();
    assert!(heavy.is_empty(), "an engine-only build pulls in {heavy:?}");
    // And the default build has them (so the check above can fail).
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "--offline",
            "-p",
            "fix-engine",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("rdkafka")), "{tree}");
}
