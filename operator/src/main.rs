//! `fixctl`: the operator's command line for a FIX engine group.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fix_operator::local::{self, LocalGroup, LocalOptions, RouterKind};
use fix_operator::router::none::NoRouter;
use fix_operator::router::TrafficRouter;
use fix_operator::supervisor::{Instance, Options, Supervisor};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fixctl_runbook;

/// Operate a group of FIX engines: run one locally, drill its failover, see who leads,
/// and move the lead.
///
/// Start here: `fixctl local drill` runs a leader, a standby, the lease (SQLite) and a
/// local proxy on this machine, sends orders through the proxy, kills the leader and
/// prints the failover report. No AWS account or cluster needed.
#[derive(Debug, Parser)]
#[command(name = "fixctl", version)]
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
        engines: Vec<(String, SocketAddr)>,
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
        engines: Vec<(String, SocketAddr)>,
    },
    /// Run one engine from a configuration file (how fixctl starts local engines).
    #[command(hide = true)]
    Engine {
        /// Engine configuration (TOML).
        #[arg(long)]
        config: PathBuf,
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
    /// status view; Ctrl-C stops everything (sessions are logged out).
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

fn parse_engine(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=IP:PORT, e.g. a=127.0.0.1:9100"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not IP:PORT (the engine's admin listen address)"))?;
    Ok((name.to_string(), addr))
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: write NAME=VALUE, e.g. target=us-west-2"))
}

fn main() -> anyhow::Result<()> {
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
            Command::Status { engines } => {
                let g = Group::load(cli.config.as_deref(), engines).await?;
                status(&g, cli.output).await
            }
            Command::Local(LocalCommand::Up(args)) => local_up(args, cli.output).await,
            Command::Deploy { file, dry_run } => deploy(&file, dry_run, cli.output).await,
            Command::Local(LocalCommand::Drill {
                local,
                cycles,
                rate,
            }) => local_drill(local, cycles, rate, cli.output).await,
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

fn local_options(args: &LocalArgs, dir: &std::path::Path) -> anyhow::Result<LocalOptions> {
    if !["local", "replicated"].contains(&args.durability.as_str()) {
        anyhow::bail!(
            "--durability {}: use local or replicated (sql needs PostgreSQL or MySQL; run engines with your own configuration for that)",
            args.durability
        );
    }
    Ok(LocalOptions {
        exe: std::env::current_exe().context("finding fixctl to start engines with")?,
        dir: dir.to_path_buf(),
        listen: args.listen,
        durability: args.durability.clone(),
        router: args.router,
    })
}

async fn local_up(args: LocalArgs, output: Output) -> anyhow::Result<()> {
    let tmp = local::work_dir(args.dir.as_deref()).context("creating the work directory")?;
    let opts = local_options(&args, tmp.path())?;
    let mut group = LocalGroup::start(&opts).await?;
    let entry: Vec<String> = group.entry.iter().map(ToString::to_string).collect();
    eprintln!(
        "fixctl local: leader and standby running, routed by {}; counterparties connect to {} (FIX.4.4, TargetCompID EXEC, SenderCompID CLIENT). Journals and logs in {}. An engine that exits is started again. Ctrl-C stops.",
        group.router.name(),
        entry.join(" or "),
        tmp.path().display()
    );
    let mut last: Option<(Instant, u64)> = None;
    // One listener for the whole run: a Ctrl-C that arrives while a snapshot is being
    // taken must not be missed (a new listener per turn would not see it).
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            r = &mut ctrl_c => { r.context("waiting for Ctrl-C")?; break; }
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        for name in group.restart_exited() {
            eprintln!("fixctl local: engine {name} had exited; started it again (as Kubernetes or ECS would)");
        }
        let engines: Vec<(String, SocketAddr)> = group
            .cluster
            .nodes
            .iter()
            .map(|n| (n.spec.name.clone(), n.admin_addr()))
            .collect();
        let rows = look(&engines).await;
        let total: u64 = rows
            .iter()
            .filter(|r| r["readiness"]["role"] == "leader")
            .flat_map(|r| {
                r["readiness"]["sessions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|s| {
                s["next_sender_seq"].as_u64().unwrap_or(0)
                    + s["next_target_seq"].as_u64().unwrap_or(0)
            })
            .sum();
        let now = Instant::now();
        let rate = last.map_or(0.0, |(t, n)| {
            total.saturating_sub(n) as f64 / (now - t).as_secs_f64()
        });
        last = Some((now, total));
        print_rows(&rows, output);
        if matches!(output, Output::Human) {
            println!(
                "routed to: {}   messages/s: {rate:.0}\n",
                group
                    .router
                    .current()
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    eprintln!("stopping: logging sessions out");
    group.stop();
    Ok(())
}

async fn local_drill(
    args: LocalArgs,
    cycles: u32,
    rate: u32,
    output: Output,
) -> anyhow::Result<()> {
    let tmp = local::work_dir(args.dir.as_deref()).context("creating the work directory")?;
    let opts = local_options(&args, tmp.path())?;
    let bar = indicatif::ProgressBar::new(u64::from(cycles));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} failover {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("starting a leader, a standby, the lease and the proxy…");
    bar.enable_steady_tick(Duration::from_millis(120));
    let report = local::drill(&opts, cycles, rate, |done, line| {
        bar.set_position(u64::from(done));
        if bar.is_hidden() {
            eprintln!("cycle {done}: {line}");
        } else {
            bar.println(format!("cycle {done}: {line}"));
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report.with_context(|| {
        format!(
            "the drill failed; engine logs are in {}",
            tmp.path().display()
        )
    })?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => print_report(&report),
    }
    if report.tally.lost > 0 || report.tally.unflagged_duplicates > 0 || report.tally.gaps > 0 {
        anyhow::bail!("the failover lost, repeated or skipped messages (see the report)");
    }
    Ok(())
}

fn print_report(r: &local::DrillReport) {
    println!(
        "failover report, routed by {} (kill -9 of the leader under load; times in ms after the kill)",
        r.router
    );
    println!(
        "{:>5}  {:<20} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "cycle", "takeover", "epoch", "detected", "lease", "routed", "logon"
    );
    for (i, c) in r.cycles.iter().enumerate() {
        println!(
            "{:>5}  {:<20} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            i + 1,
            format!("{} → {}", c.killed, c.new_leader),
            c.epoch,
            c.detected_ms,
            c.lease_granted_ms,
            c.routed_ms,
            c.first_logon_ms
        );
    }
    println!(
        "orders sent {}, answered {}, lost {}; duplicates without PossDupFlag {}, flagged {}; sequence gaps {}",
        r.sent, r.answered, r.tally.lost, r.tally.unflagged_duplicates, r.tally.flagged_duplicates, r.tally.gaps
    );
}

/// The engines and router a command works on.
struct Group {
    engines: Vec<(String, SocketAddr)>,
    router: Arc<dyn TrafficRouter>,
    token: Option<String>,
}

impl Group {
    async fn load(
        config: Option<&std::path::Path>,
        engines: Vec<(String, SocketAddr)>,
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
                        .map(|e| (e.name.clone(), e.admin))
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

/// `fixctl deploy`.
async fn deploy(file: &std::path::Path, dry_run: bool, output: Output) -> anyhow::Result<()> {
    let plan = fix_operator::deploy::plan::DeployPlan::from_file(file)?;
    let bar = indicatif::ProgressBar::new_spinner();
    if matches!(output, Output::Json) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let report =
        fix_operator::deploy::run(&plan, dry_run, &|m: &str| bar.set_message(m.to_string())).await;
    bar.finish_and_clear();
    let report = report?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => {
            for s in &report.stacks {
                println!(
                    "stack {} ({}), change set {}: {:?}",
                    s.stack, s.region, s.change_set, s.outcome
                );
                for c in &s.changes {
                    let replace = c
                        .replacement
                        .as_deref()
                        .map_or(String::new(), |r| format!(" (replacement: {r})"));
                    println!(
                        "  {:<8} {:<32} {}{replace}",
                        c.action, c.logical_id, c.resource_type
                    );
                }
            }
            for p in &report.parameters {
                println!(
                    "SSM {p}{}",
                    if dry_run {
                        " (would be written)"
                    } else {
                        " written"
                    }
                );
            }
            if let Some(r) = &report.rollout {
                print_rollout(r, dry_run);
            }
            if dry_run {
                println!("Nothing was changed (--dry-run).");
            }
        }
    }
    Ok(())
}

/// The rolling upgrade's phases (or, in a dry run, the plan).
fn print_rollout(r: &fix_operator::deploy::rollout::RolloutReport, dry_run: bool) {
    println!(
        "rolling upgrade {} -> {}{}: leader {} before, {} after",
        r.from_image,
        r.to_image,
        if dry_run { " (plan)" } else { "" },
        r.leader_before,
        r.leader_after
    );
    for (i, p) in r.phases.iter().enumerate() {
        let params: Vec<String> = p
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={}", if v.is_empty() { "\"\"" } else { v }))
            .collect();
        let took = if dry_run {
            String::new()
        } else {
            format!(" in {} ms", p.ms)
        };
        println!(
            "  {}. {:<18} {:<12} leader {}{took}  {}",
            i + 1,
            p.kind,
            p.engine,
            p.leader,
            params.join(" ")
        );
    }
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
    let leader = rows
        .iter()
        .find(|r| r["readiness"]["role"] == "leader")
        .and_then(|r| r["name"].as_str())
        .map(str::to_string)
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
            admin: (*admin).into(),
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

async fn look(engines: &[(String, SocketAddr)]) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for (name, addr) in engines {
        let v = fix_drill::http::request(*addr, "GET", "/readyz", None, Duration::from_secs(2))
            .await
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        rows.push(serde_json::json!({
            "name": name,
            "admin": addr.to_string(),
            "reachable": v.is_some(),
            "readiness": v,
        }));
    }
    rows
}

async fn status(g: &Group, output: Output) -> anyhow::Result<()> {
    let rows = look(&g.engines).await;
    let routed = g.router.current().await;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "engines": rows,
                "routing": {
                    "router": g.router.name(),
                    "routed_to": routed.as_ref().ok().cloned().flatten(),
                    "error": routed.as_ref().err().map(ToString::to_string),
                },
            }))?
        ),
        Output::Human => {
            print_rows(&rows, output);
            if let Some(set) = rows
                .iter()
                .find_map(|r| r["readiness"]["replication"]["in_sync"]["recorded"].as_array())
            {
                let names: Vec<&str> = set.iter().filter_map(|n| n.as_str()).collect();
                println!("in-sync set (lease store): {}", names.join(", "));
            }
            match &routed {
                Ok(to) => println!(
                    "routing ({}): {}",
                    g.router.name(),
                    to.as_deref().unwrap_or("-")
                ),
                Err(e) => println!("routing ({}): cannot read: {e}", g.router.name()),
            }
        }
    }
    if rows.iter().all(|r| r["reachable"] != true) {
        anyhow::bail!("no engine answered: check the addresses (each engine's [engine.admin] listen) and that the engines run");
    }
    Ok(())
}

fn print_rows(rows: &[serde_json::Value], output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Output::Human => {
            println!(
                "{:<12} {:<22} {:<11} {:>6} {:<14} {:>10} {:<8} sessions",
                "engine", "admin", "role", "epoch", "lease holder", "expires ms", "in-sync"
            );
            for r in rows {
                let v = &r["readiness"];
                let sessions: Vec<String> = v["sessions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} out={} in={}",
                            s["id"].as_str().unwrap_or("?"),
                            s["state"].as_str().unwrap_or("?"),
                            s["next_sender_seq"],
                            s["next_target_seq"]
                        )
                    })
                    .collect();
                let in_sync = match v["in_sync"].as_bool() {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                };
                println!(
                    "{:<12} {:<22} {:<11} {:>6} {:<14} {:>10} {:<8} {}",
                    r["name"].as_str().unwrap_or("?"),
                    r["admin"].as_str().unwrap_or("?"),
                    if r["reachable"] == true {
                        v["role"].as_str().unwrap_or("?")
                    } else {
                        "unreachable"
                    },
                    v["epoch"],
                    v["lease_owner"].as_str().unwrap_or("-"),
                    v["lease_expires_in_ms"]
                        .as_i64()
                        .map_or_else(|| "-".to_string(), |ms| ms.to_string()),
                    in_sync,
                    sessions.join("; ")
                );
            }
        }
    }
}
