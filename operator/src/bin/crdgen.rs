//! `crdgen`: prints the FixSession CustomResourceDefinition as YAML, generated from the
//! Rust types. The chart's copy (`charts/fix-operator/crds/fixsessions.yaml`) is this
//! output; a test fails when they drift.
//!
//! ```sh
//! cargo run -p fix-operator --bin crdgen > charts/fix-operator/crds/fixsessions.yaml
//! ```

use clap::Parser;

/// Prints the FixSession CRD (fixsessions.fix.fixengine.dev) as YAML on stdout.
#[derive(Debug, Parser)]
#[command(name = "crdgen", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    print!("{}", fix_operator::k8s::crd_yaml()?);
    Ok(())
}
