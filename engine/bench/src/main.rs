//! `fix-bench`: NewOrderSingle → ExecutionReport round trips against a FIX acceptor,
//! next to the raw TCP floor measured in the same run.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fix_bench::floor;
use fix_bench::load::{self, Wait};
use fix_bench::report::Row;
use fix_bench::sustain;
use fix_bench::target::{Store, Target, TargetOptions};
use std::net::SocketAddr;

/// Load generator for FIX engines: initiator sessions (CLIENT, CLIENT1, ... → EXEC,
/// FIX.4.4) sending NewOrderSingle open loop at a fixed rate (latency from each order's
/// scheduled send time, coordinated omission corrected, and from its actual send time)
/// or closed loop, timing the first ExecutionReport of each; the raw TCP ping-pong with
/// the same message sizes, in the same run, as the floor; and the search for the highest
/// sustainable rate.
#[derive(Debug, Parser)]
#[command(name = "fix-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to load and how.
#[derive(Debug, Args)]
struct Load {
    /// Store of the in-process engine.
    #[arg(long, value_enum, default_value = "memory")]
    store: Store,
    /// An acceptor to load instead of starting this engine (it must answer
    /// NewOrderSingle with an ExecutionReport, ExecType 0, echoing ClOrdID, and know the
    /// sessions CLIENT, CLIENT1, ... → EXEC).
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// How the tables name the acceptor given with --connect.
    #[arg(long, default_value = "acceptor")]
    label: String,
    /// Initiator sessions (connections); orders go round-robin.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// How the generator waits for replies.
    #[arg(long, value_enum, default_value = "spin")]
    client_wait: Wait,
    /// Worker threads of the in-process engine's runtime.
    #[arg(long, default_value_t = 1)]
    engine_threads: usize,
    /// Pin the engine's runtime threads to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    engine_cores: Vec<usize>,
    /// Busy-poll the engine's FIX sockets (`[engine.runtime] busy_poll`).
    #[arg(long)]
    busy_poll: bool,
    /// The application sees an order before its group commit (`[engine] delivery =
    /// "early"`): one fsync per round trip instead of two.
    #[arg(long)]
    early: bool,
    /// Pin the generator's thread to this core.
    #[arg(long)]
    client_core: Option<usize>,
    /// Send limit orders, which the `exec` simulator keeps resting (one ExecutionReport
    /// New each), instead of market orders (New and Fill).
    #[arg(long)]
    limit: bool,
    /// Orders sent first and not recorded.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// One more session beside the measured ones that floods orders (`flood`) or never
    /// reads its answers (`stalled`); the acceptor must know its CompID (CLIENT<n> for
    /// n measured sessions).
    #[arg(long, value_enum)]
    noise: Option<fix_bench::neighbour::Noise>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Round trips against this engine (started in-process) or any acceptor, after the
    /// TCP floor.
    Rtt {
        #[command(flatten)]
        load: Load,
        /// Orders per second over all sessions (open loop); without it, closed loop.
        #[arg(long)]
        rate: Option<u32>,
        /// Orders recorded.
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Skip the TCP floor.
        #[arg(long)]
        no_floor: bool,
    },
    /// The highest open-loop rate at which p99 stays below twice the unloaded p99
    /// (measured first, at --base-rate), found by doubling and then bisecting.
    MaxRate {
        #[command(flatten)]
        load: Load,
        /// The unloaded rate, orders per second.
        #[arg(long, default_value_t = 1_000)]
        base_rate: u32,
        /// The first loaded rate tried.
        #[arg(long, default_value_t = 10_000)]
        start_rate: u32,
        /// Seconds of load per step.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Bisection steps after the first failing rate.
        #[arg(long, default_value_t = 5)]
        steps: u32,
        /// The highest rate tried.
        #[arg(long, default_value_t = 1_000_000)]
        ceiling: u32,
        /// Runs at each rate (the unloaded one too); the run with the median p99 decides,
        /// so that one stall of the machine in one run does not.
        #[arg(long, default_value_t = 3)]
        trials: u32,
    },
    /// The machine's own stalls: a thread spinning on each core times every gap in its
    /// run (interrupts, other tasks, the hypervisor), all cores at once.
    Hiccups {
        /// Cores to measure (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// Seconds to spin.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Only the TCP floor.
    Floor {
        /// Round trips recorded.
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Round trips first and not recorded.
        #[arg(long, default_value_t = 2_000)]
        warmup: u64,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn print(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!("{}", r.json());
        }
    } else {
        println!("{}", Row::header());
        for r in rows {
            println!("{}", r.line());
        }
    }
}

fn floor_row(messages: u64, warmup: u64) -> anyhow::Result<Row> {
    let (request, reply) = load::sizes();
    let (histogram, per_second) =
        floor::run(request, reply, warmup, messages).context("the TCP floor")?;
    Ok(Row {
        name: format!("tcp floor ({request} B out, {reply} B back)"),
        histogram,
        per_second,
        logons: None,
    })
}

/// The acceptor to load: the one given, or this engine started in-process.
struct Subject {
    addr: SocketAddr,
    name: String,
    _target: Option<Target>,
}

impl Load {
    fn subject(&self) -> anyhow::Result<Subject> {
        if let Some(core) = self.client_core {
            fix_bench::check_cores(&[core], "--client-core")?;
        }
        if let Some(addr) = self.connect {
            return Ok(Subject {
                addr,
                name: self.label.clone(),
                _target: None,
            });
        }
        let runtime = fix_engine::config::RuntimeSection {
            worker_threads: Some(self.engine_threads),
            pin_cores: self.engine_cores.clone(),
            busy_poll: self.busy_poll,
        };
        let target = Target::start(&TargetOptions {
            store: self.store,
            sessions: self.sessions + usize::from(self.noise.is_some()),
            runtime,
            early: self.early,
        })
        .context("starting the engine under test")?;
        let mut name = format!("fix-engine, {}", self.store.describe());
        if self.early {
            name.push_str(", early delivery");
        }
        if self.busy_poll {
            name.push_str(", busy-poll");
        }
        if !self.engine_cores.is_empty() {
            name.push_str(&format!(", pinned {:?}", self.engine_cores));
        }
        Ok(Subject {
            addr: target.addr(),
            name,
            _target: Some(target),
        })
    }

    fn options(&self, addr: SocketAddr, rate: Option<u32>, messages: u64) -> load::LoadOptions {
        load::LoadOptions {
            addr,
            rate,
            messages,
            warmup: self.warmup,
            sessions: self.sessions,
            wait: self.client_wait,
            core: self.client_core,
            limit: self.limit,
        }
    }

    fn mode(&self, rate: Option<u32>) -> String {
        let mut mode = rate.map_or_else(|| "closed loop".to_string(), |r| format!("{r}/s"));
        if self.sessions > 1 {
            mode.push_str(&format!(", {} sessions", self.sessions));
        }
        if self.limit {
            mode.push_str(", resting limit orders");
        }
        if let Some(noise) = self.noise {
            mode.push_str(&format!(", beside a {noise:?} session").to_lowercase());
        }
        mode
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Floor {
            messages,
            warmup,
            json,
        } => print(&[floor_row(messages, warmup)?], json),
        Command::Rtt {
            load,
            rate,
            messages,
            no_floor,
        } => {
            let mut rows = Vec::new();
            if !no_floor {
                rows.push(floor_row(messages, load.warmup)?);
            }
            let subject = load.subject()?;
            let neighbour = match load.noise {
                Some(noise) => Some(
                    fix_bench::neighbour::start(
                        subject.addr,
                        load.sessions,
                        noise,
                        load.client_core,
                    )
                    .context("starting the noisy neighbour session")?,
                ),
                None => None,
            };
            let result = load::run(&load.options(subject.addr, rate, messages))
                .with_context(|| format!("loading {} at {}", subject.name, subject.addr))?;
            if let Some(n) = neighbour {
                let sent = n.stop();
                if !load.json {
                    println!("the neighbour session sent {sent} orders");
                }
            }
            let what = format!("{}, {}", subject.name, load.mode(rate));
            if load.sessions > 1 && !load.json {
                println!(
                    "{} sessions logged on, all at once, in {:.1} ms",
                    load.sessions,
                    result.logons.as_secs_f64() * 1000.0
                );
            }
            rows.push(Row {
                name: what.clone(),
                histogram: result.corrected,
                per_second: result.per_second,
                logons: Some(result.logons),
            });
            rows.push(Row {
                name: format!("{what}, uncorrected"),
                histogram: result.uncorrected,
                per_second: result.per_second,
                logons: Some(result.logons),
            });
            print(&rows, load.json);
        }
        Command::MaxRate {
            load,
            base_rate,
            start_rate,
            seconds,
            steps,
            ceiling,
            trials,
        } => {
            let subject = load.subject()?;
            let search = sustain::Search {
                base_rate,
                start_rate,
                seconds,
                steps,
                ceiling,
                trials,
            };
            let found = search
                .run(|rate, messages| {
                    let r = load::run(&load.options(subject.addr, Some(rate), messages))?;
                    let row = Row {
                        name: format!("{}, {}", subject.name, load.mode(Some(rate))),
                        histogram: r.corrected,
                        per_second: r.per_second,
                        logons: Some(r.logons),
                    };
                    if !load.json {
                        eprintln!("{}", row.line());
                    }
                    Ok(row)
                })
                .with_context(|| format!("searching the highest rate of {}", subject.name))?;
            if load.json {
                println!("{}", found.json());
            } else {
                println!("{}", found.line());
            }
        }
        Command::Hiccups {
            cores,
            seconds,
            json,
        } => {
            let cores = if cores.is_empty() {
                (0..std::thread::available_parallelism().map_or(1, usize::from)).collect()
            } else {
                cores
            };
            if !seconds.is_finite() || seconds <= 0.0 {
                anyhow::bail!("--seconds must be a positive number of seconds, not {seconds}");
            }
            let span = std::time::Duration::from_secs_f64(seconds);
            for c in fix_bench::hiccups::measure(&cores, span).context("measuring hiccups")? {
                if json {
                    println!("{}", c.json());
                } else {
                    println!("{}", c.line());
                }
            }
        }
    }
    Ok(())
}
