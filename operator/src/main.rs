//! `fixctl`: the operator's command line for a FIX engine group.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Operate a group of FIX engines: see who leads, with which epoch and sessions.
///
/// More commands (local mode, drills, failover) are being built; this version has
/// `status`.
#[derive(Debug, Parser)]
#[command(name = "fixctl", version)]
struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value = "human", global = true)]
    output: Output,
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
    /// Show every engine's role, epoch, lease holder and sessions.
    Status {
        /// An engine as NAME=ADMIN_ADDRESS (its [engine.admin] listen address); repeat
        /// for each instance of the group.
        #[arg(long = "engine", value_name = "NAME=ADDR", required = true, value_parser = parse_engine)]
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

fn parse_engine(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=IP:PORT, e.g. a=127.0.0.1:9100"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not IP:PORT (the engine's admin listen address)"))?;
    Ok((name.to_string(), addr))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Engine { config } => Ok(fix_drill::node::run_engine(&config)?),
        Command::Status { engines } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(status(&engines, cli.output))
        }
    }
}

async fn status(engines: &[(String, SocketAddr)], output: Output) -> anyhow::Result<()> {
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
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Human => {
            println!(
                "{:<12} {:<22} {:<8} {:>6} {:<14} sessions",
                "engine", "admin", "role", "epoch", "lease holder"
            );
            for r in &rows {
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
                println!(
                    "{:<12} {:<22} {:<8} {:>6} {:<14} {}",
                    r["name"].as_str().unwrap_or("?"),
                    r["admin"].as_str().unwrap_or("?"),
                    if r["reachable"] == true {
                        v["role"].as_str().unwrap_or("?")
                    } else {
                        "unreachable"
                    },
                    v["epoch"],
                    v["lease_owner"].as_str().unwrap_or("-"),
                    sessions.join("; ")
                );
            }
        }
    }
    if rows.iter().all(|r| r["reachable"] != true) {
        anyhow::bail!("no engine answered: check the addresses (each engine's [engine.admin] listen) and that the engines run");
    }
    Ok(())
}
