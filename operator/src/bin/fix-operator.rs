//! `fix-operator`: the Kubernetes operator. Reconciles every FixSession (in the cluster,
//! or in one namespace) into its StatefulSet, Services, ConfigMap and
//! PodDisruptionBudget, supervises each group's failover (routing follows the leader,
//! the status and events record each transition), and serves Prometheus metrics.
//!
//! `fix-operator ecs --config FILE`: the same supervision outside Kubernetes, as an ECS
//! service of several tasks of which one acts (`fix_operator::ecs_supervisor`).

use anyhow::Context as _;
use axum::routing::get;
use clap::{Parser, Subcommand};
use fix_operator::k8s::controller::{self, Context, Settings};
use fix_operator::k8s::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Runs the FixSession operator against the cluster of the in-cluster service account
/// (or of KUBECONFIG when run outside the cluster); `fix-operator ecs` runs the failover
/// supervisor on Amazon ECS instead.
#[derive(Debug, Parser)]
#[command(name = "fix-operator", version)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
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
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Supervise an engine group outside Kubernetes (an ECS service of two or more tasks):
    /// the supervisors elect one through the engines' lease store; it moves routing
    /// (Global Accelerator or ARC) to the engines' leader and stops the ECS task of an old
    /// leader that still claims to lead.
    Ecs {
        /// The group (fixctl's configuration format: [lease], [[engine]], [router],
        /// [[ecs]], and optionally [supervisor]).
        #[arg(long, value_name = "FILE", required_unless_present = "config_env")]
        config: Option<std::path::PathBuf>,
        /// Take the configuration (TOML) from this environment variable instead of a
        /// file (on ECS, a secret filled from an SSM parameter; the image has no shell).
        #[arg(long, value_name = "VAR", conflicts_with = "config")]
        config_env: Option<String>,
        /// Where `/healthz` and `/status` are served.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// This supervisor's id in the election (default: host name and process id,
        /// unique per ECS task).
        #[arg(long)]
        owner: Option<String>,
    },
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
        .block_on(async move {
            match cli.mode {
                Some(Mode::Ecs {
                    config,
                    config_env,
                    listen,
                    owner,
                }) => run_ecs(config, config_env, listen, owner).await,
                None => run(cli).await,
            }
        })
}

async fn run_ecs(
    config: Option<std::path::PathBuf>,
    config_env: Option<String>,
    listen: SocketAddr,
    owner: Option<String>,
) -> anyhow::Result<()> {
    use fix_operator::ecs_supervisor::{default_owner, EcsSupervisor};
    let owner = owner.unwrap_or_else(default_owner);
    let supervisor = match (config, config_env) {
        (Some(path), _) => EcsSupervisor::from_file(&path, &owner).await?,
        (None, Some(var)) => EcsSupervisor::from_env(&var, &owner).await?,
        (None, None) => anyhow::bail!("give --config FILE or --config-env VAR"),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("listening on {listen} for /healthz and /status (use --listen)")
        })?;
    tracing::info!(%owner, listen = %listener.local_addr()?, "fix-operator ecs started");
    supervisor.run(listener).await?;
    Ok(())
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
