//! `fix-operator`: the Kubernetes operator. Reconciles every FixSession (in the cluster,
//! or in one namespace) into its StatefulSet, Services, ConfigMap and
//! PodDisruptionBudget, supervises each group's failover (routing follows the leader,
//! the status and events record each transition), and serves Prometheus metrics.

use anyhow::Context as _;
use axum::routing::get;
use clap::Parser;
use fix_operator::k8s::controller::{self, Context, Settings};
use fix_operator::k8s::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Runs the FixSession operator against the cluster of the in-cluster service account
/// (or of KUBECONFIG when run outside the cluster).
#[derive(Debug, Parser)]
#[command(name = "fix-operator", version)]
struct Cli {
    /// Watch FixSessions in this namespace only (default: every namespace; the chart's
    /// ClusterRole allows that).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where `/metrics` (Prometheus) and `/healthz` are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Milliseconds between the supervisors' polls of each pod's `/readyz`.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// Seconds between status refreshes of a running FixSession.
    #[arg(long, default_value_t = 2)]
    status_refresh_s: u64,
    /// Log as JSON lines (default: text).
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if cli.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API to talk to: run in a pod with a service account, or point KUBECONFIG at a cluster",
    )?;
    let metrics = Arc::new(Metrics::default());
    let settings = Settings {
        poll: Duration::from_millis(cli.poll_ms.max(10)),
        status_refresh: Duration::from_secs(cli.status_refresh_s.max(1)),
        ..Settings::default()
    };
    let ctx = Context::new(client, settings, Arc::clone(&metrics));
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listening on {} for /metrics (use --listen)", cli.listen))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&metrics);
                async move { m.encode() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    tracing::info!(namespace = ?cli.namespace, listen = %cli.listen, "fix-operator started");
    controller::run(ctx, cli.namespace.as_deref()).await;
    tracing::info!("fix-operator stopped");
    Ok(())
}
