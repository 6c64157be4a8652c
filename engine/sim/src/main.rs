//! `fix-sim`: runs the deterministic simulation for many seeds and reports violations.

use clap::Parser;
use fix_cluster::in_sync::OnStandbyLoss;
use fix_sim::{run, Options};
use std::process::ExitCode;

/// Runs a simulated fix-engine group under random faults, seed after seed, and checks
/// the safety invariants after every step. Exit status 1 when a seed violates one (its
/// trace is printed; `--seed N` replays it exactly).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of the run.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run this one seed and print its trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Instances in the group (2–5; by default 2 to 5 by seed).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=5))]
    instances: Option<u64>,
    /// Simulated seconds per seed.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// `on_standby_loss`: shrink or halt.
    #[arg(long, default_value = "shrink")]
    on_standby_loss: String,
    /// How far each instance's clock rate may be from real time's (0.02: ±2 %).
    #[arg(long, default_value_t = 0.02)]
    clock_drift: f64,
    /// Inject no faults.
    #[arg(long)]
    no_faults: bool,
    /// Run without the lease store's in-sync check (shows what the rule prevents).
    #[arg(long)]
    without_in_sync_check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let policy = match cli.on_standby_loss.as_str() {
        "shrink" => OnStandbyLoss::Shrink,
        "halt" => OnStandbyLoss::Halt,
        other => {
            eprintln!("--on-standby-loss {other}: expected shrink or halt");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = match cli.seed {
        Some(s) => vec![s],
        None => (cli.start..cli.start + cli.seeds).collect(),
    };
    let (mut answers, mut failovers, mut bad) = (0u64, 0u64, 0u64);
    for &seed in &seeds {
        let opts = Options {
            instances: cli
                .instances
                .map_or(2 + (seed % 4) as usize, |n| n as usize),
            duration_ms: cli.seconds * 1000,
            on_standby_loss: policy,
            lease_checks_in_sync: !cli.without_in_sync_check,
            faults: !cli.no_faults,
            clock_drift: cli.clock_drift,
            ..Options::default()
        };
        let out = run(seed, &opts);
        answers += out.answers;
        failovers += out.failovers;
        if cli.seed.is_some() {
            for line in &out.trace {
                println!("{line}");
            }
        }
        if let Some(v) = out.violation {
            bad += 1;
            println!("seed {seed} ({} instances): {v}", opts.instances);
            if cli.seed.is_none() {
                println!("  replay: cargo run -p fix-sim -- --seed {seed}");
            }
        }
    }
    println!(
        "{} seeds, {bad} with a violation; {answers} orders answered, {failovers} leases taken",
        seeds.len()
    );
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
