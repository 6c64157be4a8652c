//! `fix-bench`: NewOrderSingle → ExecutionReport round trips against a FIX acceptor,
//! next to the raw TCP floor measured in the same run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use fix_bench::report::Row;
use fix_bench::target::{Store, Target};
use fix_bench::{floor, load};
use std::net::SocketAddr;

/// Load generator for FIX engines: one initiator session (CLIENT → EXEC, FIX.4.4)
/// sending NewOrderSingle open loop at a fixed rate (latency from each order's scheduled
/// send time, coordinated omission corrected, and from its actual send time) or closed
/// loop, timing the first ExecutionReport of each; and the raw TCP ping-pong with the
/// same message sizes, in the same run, as the floor.
#[derive(Debug, Parser)]
#[command(name = "fix-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Round trips against this engine (started in-process) or any acceptor, after the
    /// TCP floor.
    Rtt {
        /// Store of the in-process engine.
        #[arg(long, value_enum, default_value = "memory")]
        store: Store,
        /// An acceptor to load instead of starting this engine (it must answer
        /// NewOrderSingle with an ExecutionReport, ExecType 0, echoing ClOrdID).
        #[arg(long)]
        connect: Option<SocketAddr>,
        /// Orders per second (open loop); without it, closed loop.
        #[arg(long)]
        rate: Option<u32>,
        /// Worker threads of the in-process engine's runtime.
        #[arg(long, default_value_t = 1)]
        engine_threads: usize,
        /// Pin the engine's runtime threads to these cores (comma-separated).
        #[arg(long, value_delimiter = ',')]
        engine_cores: Vec<usize>,
        /// Pin the generator's writer and reader threads to these cores.
        #[arg(long, value_delimiter = ',')]
        client_cores: Vec<usize>,
        /// Orders recorded.
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Orders sent first and not recorded.
        #[arg(long, default_value_t = 2_000)]
        warmup: u64,
        /// Print JSON lines instead of a table.
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
    })
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Floor {
            messages,
            warmup,
            json,
        } => print(&[floor_row(messages, warmup)?], json),
        Command::Rtt {
            store,
            connect,
            rate,
            engine_threads,
            engine_cores,
            client_cores,
            messages,
            warmup,
            json,
        } => {
            let floor = floor_row(messages, warmup)?;
            let runtime = fix_engine::config::RuntimeSection {
                worker_threads: Some(engine_threads),
                pin_cores: engine_cores.clone(),
            };
            let target = match connect {
                Some(_) => None,
                None => {
                    Some(Target::start(store, runtime).context("starting the engine under test")?)
                }
            };
            let addr = connect
                .or_else(|| target.as_ref().map(Target::addr))
                .context("no acceptor to load")?;
            let result = load::run(&load::LoadOptions {
                addr,
                rate,
                messages,
                warmup,
                cores: client_cores.clone(),
            })
            .with_context(|| format!("loading {addr}"))?;
            let what = match (connect, store) {
                (Some(a), _) => format!("acceptor at {a}"),
                (None, Store::Memory) => "fix-engine, memory store".into(),
                (None, Store::Journal) => "fix-engine, journal (fsync)".into(),
            };
            let mut mode = rate.map_or_else(|| "closed loop".to_string(), |r| format!("{r}/s"));
            if !engine_cores.is_empty() || !client_cores.is_empty() {
                mode.push_str(&format!(
                    ", engine on {engine_cores:?}, client on {client_cores:?}"
                ));
            }
            let rows = [
                floor,
                Row {
                    name: format!("{what}, {mode}"),
                    histogram: result.corrected,
                    per_second: result.per_second,
                },
                Row {
                    name: format!("{what}, {mode}, uncorrected"),
                    histogram: result.uncorrected,
                    per_second: result.per_second,
                },
            ];
            print(&rows, json);
        }
    }
    Ok(())
}
