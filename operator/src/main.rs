//! `fixctl`: the operator's command line for a FIX engine group.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fix_operator::local::RouterKind;
use fix_operator::router::none::NoRouter;
use fix_operator::router::TrafficRouter;
use fix_operator::supervisor::{AdminAddr, Instance, Options, Supervisor};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fixctl_deploy;
mod fixctl_exit;
mod fixctl_in_sync;
mod fixctl_local;
mod fixctl_runbook;
mod fixctl_status;

use fixctl_status::{look, print_rows, status};

/// Operate a group of FIX engines: run one locally, drill its failover, see who leads,
/// and move the lead.
///
/// Start here: `fixctl local drill` runs a leader, a standby, the lease (SQLite) and a
/// local proxy on this machine, sends orders through the proxy, kills the leader and
/// prints the failover report. No AWS account or cluster needed.
#[derive(Debug, Parser)]
#[command(
    name = "fixctl",
    version,
    after_help = "Exit codes: 0 done; 1 the operation failed; 2 a bad argument; 3 `status` or `failover`: no engine answered; 4 a drill lost, repeated or skipped messages."
)]
struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value = "human", global = true)]
    output: Output,
    /// The group's engines and router (TOML; see fix_operator::config). `--engine` flags
    /// replace its engine list.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// A table for people.
    Human,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system on this machine.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Move the lead to another instance: the leader steps down through its admin API
    /// and this waits until a standby leads. With --fixsession, the operator in the
    /// cluster (KUBECONFIG) does it and reports the result.
    Failover {
        /// A FixSession in the cluster: ask its operator for the failover (annotations
        /// fix.fixengine.dev/failover and failover-id) and wait for its report.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["engines", "region"])]
        fixsession: Option<String>,
        /// The FixSession's namespace (default: the kubeconfig context's).
        #[arg(long, requires = "fixsession")]
        namespace: Option<String>,
        /// An engine as NAME=ADMIN_ADDRESS; repeat for each instance of the group.
        #[arg(long = "engine", value_name = "NAME=ADDR", value_parser = parse_engine)]
        engines: Vec<(String, AdminAddr)>,
        /// The instance to take over (default: whichever standby wins the lease).
        #[arg(long)]
        to: Option<String>,
        /// Show what would be done and stop.
        #[arg(long)]
        dry_run: bool,
        /// Move the lead to another region: runs the built-in rotation runbook
        /// (runbooks/rotate-region.yaml) from the region that leads now. Needs --config
        /// with a region on every engine, [lease] and [[region_router]].
        #[arg(long)]
        region: Option<String>,
        /// With --region: the leading region is lost; run the DR runbook
        /// (runbooks/dr-failover.yaml) instead.
        #[arg(long, requires = "region")]
        force: bool,
        /// With --region: where the run's progress is kept (a killed run resumes from it).
        #[arg(long, requires = "region", value_name = "FILE")]
        state: Option<PathBuf>,
        /// Admin bearer token of the engines.
        #[arg(long, env = "FIX_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// How long the old leader stays out of the lease contest, in seconds.
        #[arg(long, default_value_t = 30)]
        pause_s: u64,
    },
    /// Create or update the deployment's CloudFormation stacks through change sets
    /// (each printed first; --dry-run stops there) and write the engines' configuration
    /// to SSM parameters.
    Deploy {
        /// The deployment file (YAML: region, stacks with template and parameters,
        /// engineConfig; see fix_operator::deploy::plan).
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
        /// Print the change sets and stop (they are deleted; nothing changes).
        #[arg(long)]
        dry_run: bool,
    },
    /// Multi-region runbooks: run one, or print the format's JSON schema.
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// Show every engine's role, epoch, lease holder and sessions.
    Status {
        /// An engine as NAME=ADMIN_ADDRESS (its [engine.admin] listen address); repeat
        /// for each instance of the group.
        #[arg(long = "engine", value_name = "NAME=ADDR", value_parser = parse_engine)]
        engines: Vec<(String, AdminAddr)>,
    },
    /// The group's recorded in-sync set: which instances may take a free lease
    /// (`replicated` durability). Needs --config with a [lease] section.
    #[command(subcommand)]
    InSync(InSyncCommand),
    /// Run one engine from a configuration file (how fixctl starts local engines).
    #[command(hide = true)]
    Engine {
        /// Engine configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum InSyncCommand {
    /// Print the lease's holder and epoch and the recorded in-sync set.
    Show,
    /// Remove the recorded set so that any instance may take the free lease: the way
    /// out when every instance it names is gone for good (scaled down, volume lost).
    /// Refused while the lease is held. An instance that lacks records the last leader
    /// acknowledged may then lead, and those records are lost: hence --yes.
    Clear {
        /// Confirm that every instance the set names is gone for good.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RunbookCommand {
    /// Run a runbook against the system in --config (engines with their regions,
    /// [lease], [[region_router]]). Progress is saved after every step; run the same
    /// command again to resume a run that was stopped. Prints the RTO / RPO report.
    Run {
        /// The runbook (YAML; see runbooks/ and `fixctl runbook schema`).
        file: PathBuf,
        /// A parameter as NAME=VALUE; repeat for each.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Where progress is kept (default: RUNBOOK-NAME.state.json here).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print the plan (and whether the run's preconditions hold now) and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the runbook format's JSON schema (runbooks/schema.json).
    Schema,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Run a leader, a standby, the lease on SQLite and the local proxy; show a live
    /// status view (with `--output json`, one JSON line per snapshot); an engine that
    /// exits is started again; Ctrl-C stops everything (sessions are logged out).
    Up(LocalArgs),
    /// The same plus a FIX counterparty sending orders; kill the leader CYCLES times and
    /// print the failover report: each phase of the recovery time, orders sent, answered
    /// and lost, duplicates, sequence gaps.
    Drill {
        #[command(flatten)]
        local: LocalArgs,
        /// Kill-and-takeover cycles.
        #[arg(long, default_value_t = 3)]
        cycles: u32,
        /// Orders per second from the counterparty.
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
}

#[derive(Debug, clap::Args)]
struct LocalArgs {
    /// Where counterparties connect (FIX.4.4, TargetCompID EXEC, SenderCompID CLIENT).
    #[arg(long, default_value = "127.0.0.1:9878")]
    listen: SocketAddr,
    /// Durability: local or replicated.
    #[arg(long, default_value = "replicated")]
    durability: String,
    /// What moves the traffic: the local proxy, or Global Accelerator or Route 53 ARC on
    /// the built-in emulator of their APIs.
    #[arg(long, value_enum, default_value = "proxy")]
    router: RouterKind,
    /// Keep journals, configurations and logs under this directory (default: a
    /// temporary one, removed at exit).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn parse_engine(s: &str) -> Result<(String, AdminAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=IP:PORT, e.g. a=127.0.0.1:9100"))?;
    Ok((name.to_string(), addr.parse()?))
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: write NAME=VALUE, e.g. target=us-west-2"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("Error: {e:?}");
        std::process::exit(fixctl_exit::code(&e));
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Engine { config } = &cli.command {
        return Ok(fix_drill::node::run_engine(config)?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Engine { .. } => Ok(()),
            Command::InSync(InSyncCommand::Show) => {
                fixctl_in_sync::show(cli.config.as_deref(), cli.output).await
            }
            Command::InSync(InSyncCommand::Clear { yes }) => {
                fixctl_in_sync::clear(cli.config.as_deref(), yes, cli.output).await
            }
            Command::Status { engines } => {
                let g = Group::load(cli.config.as_deref(), engines).await?;
                status(&g, cli.output).await
            }
            Command::Local(LocalCommand::Up(args)) => {
                fixctl_local::local_up(args, cli.output).await
            }
            Command::Deploy { file, dry_run } => {
                fixctl_deploy::deploy(&file, dry_run, cli.output).await
            }
            Command::Local(LocalCommand::Drill {
                local,
                cycles,
                rate,
            }) => fixctl_local::local_drill(local, cycles, rate, cli.output).await,
            Command::Failover {
                fixsession: Some(name),
                namespace,
                to,
                dry_run,
                ..
            } => {
                cluster_failover(
                    &name,
                    namespace.as_deref(),
                    to.as_deref(),
                    dry_run,
                    cli.output,
                )
                .await
            }
            Command::Runbook(RunbookCommand::Schema) => {
                let schema = fix_operator::runbook::spec::schema();
                println!("{}", serde_json::to_string_pretty(&schema)?);
                Ok(())
            }
            Command::Runbook(RunbookCommand::Run {
                file,
                params,
                state,
                dry_run,
            }) => {
                let params = params.into_iter().collect();
                let (book, params) = fix_operator::runbook::load::load(&file, &params)?;
                fixctl_runbook::run(
                    &book,
                    &params,
                    cli.config.as_deref(),
                    state,
                    dry_run,
                    cli.output,
                )
                .await
            }
            Command::Failover {
                fixsession: None,
                region: Some(region),
                force,
                state,
                dry_run,
                ..
            } => {
                fixctl_runbook::region_failover(
                    &region,
                    force,
                    cli.config.as_deref(),
                    state,
                    dry_run,
                    cli.output,
                )
                .await
            }
            Command::Failover {
                fixsession: None,
                namespace: _,
                engines,
                to,
                dry_run,
                token,
                pause_s,
                ..
            } => {
                let group = Group::load(cli.config.as_deref(), engines).await?;
                failover(FailoverArgs {
                    group,
                    to,
                    dry_run,
                    token,
                    pause: Duration::from_secs(pause_s),
                    output: cli.output,
                })
                .await
            }
        }
    })
}

/// The engines and router a command works on.
struct Group {
    engines: Vec<(String, AdminAddr)>,
    router: Arc<dyn TrafficRouter>,
    token: Option<String>,
}

impl Group {
    async fn load(
        config: Option<&std::path::Path>,
        engines: Vec<(String, AdminAddr)>,
    ) -> anyhow::Result<Self> {
        let file = match config {
            Some(p) => Some(fix_operator::config::FixctlConfig::from_file(p)?),
            None => None,
        };
        let engines = if engines.is_empty() {
            file.as_ref()
                .map(|f| {
                    f.engines
                        .iter()
                        .map(|e| (e.name.clone(), e.admin.clone()))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            engines
        };
        if engines.is_empty() {
            anyhow::bail!("no engines: pass --engine NAME=ADMIN_ADDR for each instance, or --config FILE with [[engine]] entries");
        }
        let router: Arc<dyn TrafficRouter> = match (&file, config) {
            (Some(f), Some(p)) => f.router(p).await?,
            _ => Arc::new(NoRouter::default()),
        };
        let token = file.as_ref().and_then(|f| f.token());
        Ok(Self {
            engines,
            router,
            token,
        })
    }
}

struct FailoverArgs {
    group: Group,
    to: Option<String>,
    dry_run: bool,
    token: Option<String>,
    pause: Duration,
    output: Output,
}

/// `fixctl failover --fixsession NAME`: through the operator in the cluster.
async fn cluster_failover(
    name: &str,
    namespace: Option<&str>,
    to: Option<&str>,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<()> {
    let target = to.unwrap_or("any");
    if dry_run {
        println!(
            "plan: annotate FixSession {name} with fix.fixengine.dev/failover={target} and a new failover-id; the operator steps the leader down and reports in status.manualFailover. Nothing was changed (--dry-run)."
        );
        return Ok(());
    }
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes API to talk to: set KUBECONFIG (or run in a pod)")?;
    let ns = namespace.map_or_else(|| client.default_namespace().to_string(), str::to_string);
    let m =
        fix_operator::k8s::failover::request(client, &ns, name, target, Duration::from_secs(60))
            .await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&m)?),
        Output::Human => println!("{ns}/{name}: {} ({})", m.message, m.id),
    }
    Ok(())
}

async fn failover(a: FailoverArgs) -> anyhow::Result<()> {
    let names: Vec<&str> = a.group.engines.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(to) = &a.to {
        if !names.contains(&to.as_str()) {
            anyhow::bail!(
                "--to {to}: no such engine; the engines given are {}",
                names.join(", ")
            );
        }
    }
    let rows = look(&a.group.engines).await;
    if rows.iter().all(|r| !r.reachable) {
        return Err(fixctl_exit::Exit::Unreachable(format!(
            "no engine answered ({}): check the addresses (each engine's [engine.admin] listen) and that the engines run",
            names.join(", ")
        ))
        .into());
    }
    let leader = rows
        .iter()
        .find(|r| r.leads())
        .map(|r| r.name.clone())
        .context("no engine leads now: nothing to fail over (see `fixctl status`)")?;
    if a.to.as_deref() == Some(leader.as_str()) {
        anyhow::bail!("--to {leader}: it already leads");
    }
    let plan = serde_json::json!({
        "leader": leader,
        "step_down": leader,
        "keep_out": a.to.as_ref().map(|t| names.iter().filter(|n| **n != t && **n != leader).collect::<Vec<_>>()),
        "take_over": a.to.clone().unwrap_or_else(|| "any standby".into()),
        "pause_s": a.pause.as_secs(),
    });
    if a.dry_run {
        match a.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            Output::Human => println!(
                "plan: {leader} steps down (stays out {} s){}; {} takes over. Nothing was changed (--dry-run).",
                a.pause.as_secs(),
                a.to.as_ref().map_or(String::new(), |t| format!(", the other standbys stay out so that {t} wins")),
                plan["take_over"].as_str().unwrap_or("a standby")
            ),
        }
        return Ok(());
    }
    let token = a.token.clone().or_else(|| a.group.token.clone());
    if token.is_none() {
        anyhow::bail!(
            "step-down needs the engines' admin token: pass --token or set FIX_ADMIN_TOKEN (or token_env in the --config file)"
        );
    }
    let instances = a
        .group
        .engines
        .iter()
        .map(|(name, admin)| Instance {
            name: name.clone(),
            admin: admin.clone(),
        })
        .collect();
    let supervisor = Supervisor::spawn(
        instances,
        Arc::clone(&a.group.router),
        Options {
            token,
            ..Options::default()
        },
    );
    let started = Instant::now();
    while supervisor.transitions().is_empty() {
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!(
                "the engines did not show a single leader within 10 s (see `fixctl status`)"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = supervisor
        .failover(a.to.as_deref(), a.pause, Duration::from_secs(30))
        .await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&t)?),
        Output::Human => println!(
            "{} → {} (epoch {}): new leader ready {:.0} ms after the old one stepped down",
            t.from.as_deref().unwrap_or("-"),
            t.to,
            t.epoch,
            t.lease_granted_ms
        ),
    }
    Ok(())
}
