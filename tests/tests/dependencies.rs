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

/// The crates `cargo tree` lists for `fix-engine` with `extra` arguments, one per line.
fn engine_tree(extra: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
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
        .args(extra)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An engine-only build (`--no-default-features`) links neither the AWS SDK nor
/// librdkafka nor kube: the Kafka bridge and DynamoDB leases are features.
#[test]
fn an_engine_only_build_has_no_aws_sdk_kafka_or_kubernetes() {
    let tree = engine_tree(&["--no-default-features"]);
    assert!(tree.contains("fix-engine"), "{tree}");
    let heavy: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("aws-") || l.starts_with("rdkafka") || l.starts_with("kube"))
        .collect();
    assert!(heavy.is_empty(), "an engine-only build pulls in {heavy:?}");
    // And the default build has them (so the check above can fail).
    let tree = engine_tree(&[]);
    assert!(tree.lines().any(|l| l.starts_with("rdkafka")), "{tree}");
}

/// The top-level modules of fix-engine use one another without cycles (a module
/// that needs another's type is above it, never also below it).
#[test]
fn no_module_cycles_in_the_engine_runtime() {
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/engine/src"));
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let top = rel
                .components()
                .next()
                .map(|c| {
                    c.as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_string()
                })
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).expect("readable");
            for (i, _) in text.match_indices("crate::") {
                let used: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != top {
                    edges.entry(top.clone()).or_default().insert(used);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    assert!(edges.len() > 10, "read the modules: {edges:?}");
    let mut done = Default::default();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("module cycle in fix-engine: {}", cycle.join(" -> "));
        }
    }
}
