//! `fixctl status`: every engine's `/readyz` as a table or JSON, the in-sync set and
//! where routing points.

use crate::{Group, Output};
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) async fn look(engines: &[(String, SocketAddr)]) -> Vec<serde_json::Value> {
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

pub(crate) async fn status(g: &Group, output: Output) -> anyhow::Result<()> {
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
        return Err(crate::fixctl_exit::Exit::Unreachable("no engine answered: check the addresses (each engine's [engine.admin] listen) and that the engines run".into()).into());
    }
    Ok(())
}

pub(crate) fn print_rows(rows: &[serde_json::Value], output: Output) {
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
