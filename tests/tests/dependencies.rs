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
