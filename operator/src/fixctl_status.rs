//! `fixctl status`: every engine's `/readyz` as a table or JSON, the in-sync set and
//! where routing points.

use crate::{Group, Output};
use fix_engine::admin::api::{Readiness, RoleName};
use fix_operator::supervisor::{admin_request, AdminAddr};
use serde::Serialize;
use std::time::Duration;

/// One engine as `fixctl status` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EngineRow {
    /// Its name.
    pub name: String,
    /// Its admin address.
    pub admin: String,
    /// It answered `/readyz`.
    pub reachable: bool,
    /// What it answered.
    pub readiness: Option<Readiness>,
}

impl EngineRow {
    /// It reports itself leader.
    pub fn leads(&self) -> bool {
        self.readiness
            .as_ref()
            .is_some_and(|r| r.role == RoleName::Leader)
    }
}

pub(crate) async fn look(engines: &[(String, AdminAddr)]) -> Vec<EngineRow> {
    let mut rows = Vec::new();
    for (name, addr) in engines {
        let readiness = admin_request(addr, "GET", "/readyz", None, Duration::from_secs(2))
            .await
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Readiness>(&body).ok());
        rows.push(EngineRow {
            name: name.clone(),
            admin: addr.to_string(),
            reachable: readiness.is_some(),
            readiness,
        });
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
            if let Some(set) = rows.iter().find_map(|r| {
                r.readiness
                    .as_ref()
                    .and_then(|v| v.replication.as_ref())
                    .and_then(|x| x.in_sync.as_ref())
                    .and_then(|s| s.recorded.as_ref())
            }) {
                println!("in-sync set (lease store): {}", set.join(", "));
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
    if rows.iter().all(|r| !r.reachable) {
        return Err(crate::fixctl_exit::Exit::Unreachable("no engine answered: check the addresses (each engine's [engine.admin] listen) and that the engines run".into()).into());
    }
    Ok(())
}

pub(crate) fn print_rows(rows: &[EngineRow], output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Output::Human => {
            println!(
                "{:<12} {:<22} {:<11} {:>6} {:<14} {:>10} {:<8} sessions",
                "engine", "admin", "role", "epoch", "lease holder", "expires ms", "in-sync"
            );
            for r in rows {
                let v = r.readiness.clone().unwrap_or_default();
                let sessions: Vec<String> = v
                    .sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} out={} in={}",
                            s.id, s.state, s.next_sender_seq, s.next_target_seq
                        )
                    })
                    .collect();
                let in_sync = match v.in_sync {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                };
                let role = match (r.reachable, v.role) {
                    (false, _) => "unreachable",
                    (true, RoleName::Leader) => "leader",
                    (true, RoleName::Standby) => "standby",
                    (true, RoleName::Unknown) => "?",
                };
                println!(
                    "{:<12} {:<22} {:<11} {:>6} {:<14} {:>10} {:<8} {}",
                    r.name,
                    r.admin,
                    role,
                    v.epoch,
                    v.lease_owner.as_deref().unwrap_or("-"),
                    v.lease_expires_in_ms
                        .map_or_else(|| "-".to_string(), |ms| ms.to_string()),
                    in_sync,
                    sessions.join("; ")
                );
            }
        }
    }
}
