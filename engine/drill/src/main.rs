//! `fix-drill`: kill-and-promote failover drills against real engine processes.

use anyhow::Context;
use clap::{Parser, Subcommand};
use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::GroupOptions;
use fix_drill::drill::{self, DrillOptions, Report};
use std::path::PathBuf;
use std::time::Duration;

/// Failover drills: repeatedly `kill -9` the leader of an engine pair under load and
/// measure how long the standby takes to lead and the counterparty to log on again, and
/// whether any order was lost, answered twice without PossDupFlag, or left a sequence gap.
///
/// PostgreSQL and MariaDB are reached with FIX_TEST_POSTGRES_URL / FIX_TEST_MYSQL_URL
/// (defaults: the local servers); DynamoDB needs a moto server (FIX_TEST_MOTO_URL or
/// --moto-url).
#[derive(Debug, Parser)]
#[command(name = "fix-drill", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run drills and print one row per backend and durability mode.
    Run(RunArgs),
    /// Run one engine from a configuration file (how the drill starts its engines).
    #[command(hide = true)]
    Engine {
        /// Engine configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Lease backends to drill (repeat, or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["sqlite"])]
    backend: Vec<Backend>,
    /// Durability modes to drill: local, replicated, sql (sql only with postgres or mysql).
    #[arg(long, value_delimiter = ',', default_values = ["replicated"])]
    durability: Vec<String>,
    /// Kill-and-promote cycles per backend and mode.
    #[arg(long, default_value_t = 10)]
    cycles: u32,
    /// Orders per second from the counterparty.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Milliseconds of load between catching up and each kill.
    #[arg(long, default_value_t = 500)]
    dwell_ms: u64,
    /// Lease TTL in milliseconds.
    #[arg(long, default_value_t = 1500)]
    ttl_ms: u64,
    /// Lease renew interval in milliseconds.
    #[arg(long, default_value_t = 300)]
    renew_ms: u64,
    /// Lease safety margin in milliseconds.
    #[arg(long, default_value_t = 300)]
    margin_ms: u64,
    /// moto endpoint for the dynamodb backend.
    #[arg(long, env = "FIX_TEST_MOTO_URL")]
    moto_url: Option<String>,
    /// Keep the engines' directories (journals, logs) here instead of a temporary one.
    #[arg(long)]
    keep_in: Option<PathBuf>,
    /// Hold the load back and let the standby catch up before each kill (isolates
    /// promotion from what `local` durability loses by design).
    #[arg(long)]
    quiesce: bool,
    /// A fault injected before each kill: `none`, or `stall-standby` (SIGSTOP a standby
    /// for 3 s under load, kill the leader, SIGCONT: the stale standby must not lead —
    /// counted in the `stale` column — and the restarted leader takes over).
    #[arg(long, value_enum, default_value = "none")]
    fault: fix_drill::drill::Fault,
    /// Print JSON lines instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Engine { config } => Ok(fix_drill::node::run_engine(&config)?),
        Command::Run(args) => run_drills(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_drills(args: RunArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program to start engines with")?;
    let mut servers = Servers::from_env();
    if args.moto_url.is_some() {
        servers.moto = args.moto_url.clone();
    }
    runtime()?.block_on(async move {
        if !args.json {
            println!("{}", Report::header());
        }
        for backend in &args.backend {
            for mode in &args.durability {
                if !["local", "replicated", "sql"].contains(&mode.as_str()) {
                    anyhow::bail!("--durability {mode}: use local, replicated or sql");
                }
                if mode == "sql" && !matches!(backend, Backend::Postgres | Backend::Mysql) {
                    eprintln!(
                        "skipping {} sql: sql durability needs a PostgreSQL or MySQL lease",
                        backend.name()
                    );
                    continue;
                }
                let tmp = tempfile::tempdir().context("creating a work directory")?;
                let dir = match &args.keep_in {
                    Some(d) => d.join(format!("{}-{mode}", backend.name())),
                    None => tmp.path().to_path_buf(),
                };
                let opts = DrillOptions {
                    group: GroupOptions {
                        exe: exe.clone(),
                        backend: *backend,
                        durability: mode.clone(),
                        lease_ms: (args.ttl_ms, args.renew_ms, args.margin_ms),
                        instances: 2,
                        names: Vec::new(),
                        regions: Vec::new(),
                        active_region: None,
                        cross_region_sync: false,
                        kafka: None,
                    },
                    cycles: args.cycles,
                    rate: args.rate,
                    dwell: Duration::from_millis(args.dwell_ms),
                    quiesce: args.quiesce,
                    fault: args.fault,
                };
                let quiet = args.json;
                let report = drill::run(&opts, &servers, &dir, |cycle, line| {
                    if !quiet {
                        eprintln!("  {} {mode} cycle {cycle}: {line}", backend.name());
                    }
                })
                .await
                .with_context(|| format!("drill {} {mode}", backend.name()))?;
                if args.json {
                    println!("{}", report.json());
                } else {
                    println!("{}", report.row());
                }
            }
        }
        Ok(())
    })
}
