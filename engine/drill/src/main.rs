//! `fix-drill`: kill-and-promote failover drills against real engine processes.

use anyhow::Context;
use clap::{Parser, Subcommand};
use fix_drill::backend::{Backend, Servers};
use fix_drill::cluster::GroupOptions;
use fix_drill::drill::{self, DrillOptions, Report};
use fix_drill::soak::{self, SoakOptions, SoakReport};
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
    /// Run one group under steady load for a long time, with no fault, and count the
    /// takeovers (spurious failovers; must be 0) and the lease calls' latencies (what a
    /// TTL is sized from). One row per backend and durability mode.
    Soak(SoakArgs),
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
    /// Durability modes to drill: local, replicated, replicated-written, sql (sql only
    /// with postgres or mysql).
    #[arg(long, value_delimiter = ',', default_values = ["replicated"])]
    durability: Vec<String>,
    /// Kill-and-promote cycles per backend and mode.
    #[arg(long, default_value_t = 10)]
    cycles: u32,
    /// Instances in the group (2 to 7): one leader, the rest standbys. Faults hit the
    /// first standby; any in-sync instance may win each election.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=7))]
    instances: u32,
    /// Orders per second from the counterparty (over all its sessions).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// FIX sessions between the counterparty and the group (orders go round-robin);
    /// kill→logon is then until the last of them logged on again.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5000))]
    sessions: u32,
    /// Milliseconds of load between catching up and each kill.
    #[arg(long, default_value_t = 500)]
    dwell_ms: u64,
    #[command(flatten)]
    lease: LeaseArgs,
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
    /// A fault injected before each kill: `none`; `stall-standby` (SIGSTOP a standby
    /// for 3 s under load, kill the leader, SIGCONT: the stale standby must not lead —
    /// counted in the `stale` column — and the restarted leader takes over);
    /// `partition-standby` (the same with the leader and standby cut apart in network
    /// namespaces) or `asymmetric` (only the standby's packets to the leader dropped).
    /// The last two need root, nftables and the sqlite backend. `disk-full` (instead of
    /// the kill, the leader's fsyncs fail with ENOSPC), `slow-disk` (instead of the kill,
    /// its fsyncs take 3 s, past the lease's TTL) and `clock-step` (3 s with the
    /// standby's wall clock 10 s ahead and the leader's 10 s behind, then the kill) run
    /// the engines under the fault shim, built with `cc`. `zero-window` (3 s of a second
    /// counterparty that never reads while the leader's /readyz is probed; unanswered
    /// probes in the `stuck` column), then the kill. `counterparty-cut` (3 s with the
    /// counterparty cut from the leader only, in network namespaces: the lease must not
    /// move, the counterparty logs on to the same leader again), then the kill. After every drill the journals are
    /// compared (the `journal` column: violations of one stream, one writer per epoch,
    /// no sequence number reused).
    #[arg(long, value_enum, default_value = "none")]
    fault: fix_drill::drill::Fault,
    /// Print JSON lines instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// Lease backends to soak (repeat, or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["postgres"])]
    backend: Vec<Backend>,
    /// Durability modes: local, replicated, replicated-written, sql.
    #[arg(long, value_delimiter = ',', default_values = ["replicated"])]
    durability: Vec<String>,
    /// Minutes of load per backend and mode.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Orders per second from the counterparty.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds between progress lines (on stderr).
    #[arg(long, default_value_t = 60)]
    every: u64,
    #[command(flatten)]
    lease: LeaseArgs,
    /// moto endpoint for the dynamodb backend.
    #[arg(long, env = "FIX_TEST_MOTO_URL")]
    moto_url: Option<String>,
    /// Print JSON lines instead of the table.
    #[arg(long)]
    json: bool,
}

/// The lease settings every engine of the group gets.
#[derive(Debug, Clone, Copy, clap::Args)]
struct LeaseArgs {
    /// Lease TTL in milliseconds.
    #[arg(long, default_value_t = fix_lease::DEFAULT_TTL.as_millis() as u64)]
    ttl_ms: u64,
    /// Lease renew interval in milliseconds.
    #[arg(long, default_value_t = fix_lease::DEFAULT_RENEW_INTERVAL.as_millis() as u64)]
    renew_ms: u64,
    /// Lease safety margin in milliseconds.
    #[arg(long, default_value_t = fix_lease::DEFAULT_SAFETY_MARGIN.as_millis() as u64)]
    margin_ms: u64,
}

impl LeaseArgs {
    fn ms(self) -> (u64, u64, u64) {
        (self.ttl_ms, self.renew_ms, self.margin_ms)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Engine { config } => Ok(fix_drill::node::run_engine(&config)?),
        Command::Run(args) => run_drills(args),
        Command::Soak(args) => run_soaks(args),
    }
}

/// The lease stores from the environment, moto at `moto_url` when given.
fn servers(moto_url: Option<&String>) -> Servers {
    let mut servers = Servers::from_env();
    if let Some(url) = moto_url {
        servers.moto = Some(url.clone());
    }
    servers
}

/// Refuses a durability mode the engine does not have.
fn check_mode(mode: &str) -> anyhow::Result<()> {
    if !["local", "replicated", "replicated-written", "sql"].contains(&mode) {
        anyhow::bail!("--durability {mode}: use local, replicated, replicated-written or sql");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_drills(args: RunArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program to start engines with")?;
    let shim_dir = tempfile::tempdir().context("creating a directory for the fault shim")?;
    if args.fault.needs_shim() {
        let shim = fix_drill::shim::build(shim_dir.path())?;
        // Before any thread starts: the engines inherit these (fix_drill::node).
        std::env::set_var("FIX_DRILL_ENGINE_PRELOAD", shim);
        std::env::set_var("FIX_FAULT_ERRNO", "28"); // ENOSPC
    }
    let servers = servers(args.moto_url.as_ref());
    runtime()?.block_on(async move {
        if !args.json {
            println!("{}", Report::header());
        }
        let mut broken = Vec::new();
        for backend in &args.backend {
            for mode in &args.durability {
                check_mode(mode)?;
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
                        lease_ms: args.lease.ms(),
                        instances: args.instances as usize,
                        names: Vec::new(),
                        regions: Vec::new(),
                        active_region: None,
                        cross_region_sync: false,
                        kafka: None,
                        netns: args.fault.needs_netns(),
                        stalled_reader: args.fault == fix_drill::drill::Fault::ZeroWindow,
                        sessions: args.sessions as usize,
                    },
                    cycles: args.cycles,
                    rate: args.rate,
                    dwell: Duration::from_millis(args.dwell_ms),
                    quiesce: args.quiesce,
                    fault: args.fault,
                };
                // Progress goes to stderr with --json too: the JSON line is on stdout.
                let report = drill::run(&opts, &servers, &dir, |cycle, line| {
                    eprintln!("  {} {mode} cycle {cycle}: {line}", backend.name());
                })
                .await
                .with_context(|| format!("drill {} {mode}", backend.name()))?;
                if args.json {
                    println!("{}", report.json());
                } else {
                    println!("{}", report.row());
                }
                if let Some(why) = report.broken() {
                    broken.push(format!("{} {mode}: {why}", backend.name()));
                }
            }
        }
        if !broken.is_empty() {
            anyhow::bail!("invariants broken:\n  {}", broken.join("\n  "));
        }
        Ok(())
    })
}

fn run_soaks(args: SoakArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program to start engines with")?;
    if args.minutes.is_nan() || args.minutes <= 0.0 {
        anyhow::bail!(
            "--minutes {}: give a positive number of minutes",
            args.minutes
        );
    }
    let servers = servers(args.moto_url.as_ref());
    runtime()?.block_on(async move {
        if !args.json {
            println!("{}", SoakReport::header());
        }
        let mut broken = Vec::new();
        for backend in &args.backend {
            for mode in &args.durability {
                check_mode(mode)?;
                let tmp = tempfile::tempdir().context("creating a work directory")?;
                let opts = SoakOptions {
                    group: GroupOptions {
                        lease_ms: args.lease.ms(),
                        ..GroupOptions::new(exe.clone(), *backend, mode, 2)
                    },
                    rate: args.rate,
                    duration: Duration::from_secs_f64(args.minutes * 60.0),
                    every: Duration::from_secs(args.every.max(1)),
                };
                let report = soak::run(&opts, &servers, tmp.path(), |line| {
                    eprintln!("  {} {mode} {line}", backend.name());
                })
                .await
                .with_context(|| format!("soak {} {mode}", backend.name()))?;
                if args.json {
                    println!("{}", report.json());
                } else {
                    println!("{}", report.row());
                }
                if let Some(why) = report.broken() {
                    broken.push(format!("{} {mode}: {why}", backend.name()));
                }
            }
        }
        if !broken.is_empty() {
            anyhow::bail!("the soak found:\n  {}", broken.join("\n  "));
        }
        Ok(())
    })
}
