//! Carrying out an [`Action`]. Each one is idempotent: what is already so is left alone,
//! so a resumed run can do a step again.

use super::checks::{leader_anywhere, leader_in, stored_count};
use super::spec::{parse_duration, Action, Unreachable};
use super::state::{now_ms, Facts, SessionSeqs};
use super::system::{session_path, Observed, System};
use fix_engine::admin::api::SessionState;
use std::time::Duration;

/// Does `action`; `Err` says what failed.
pub async fn perform(action: &Action, sys: &System, facts: &mut Facts) -> Result<(), String> {
    match action {
        Action::RecordSessions { region } => record(sys, region, facts).await,
        Action::LogoutSessions { region } => logout(sys, region, facts).await,
        Action::ReleaseLogons { region } => {
            for i in sys.in_region(region)? {
                sys.post(i, "/logons/release", &[200]).await?;
            }
            Ok(())
        }
        Action::MoveLease { to, pause } => {
            let pause = parse_duration(pause).unwrap_or(Duration::from_secs(30));
            move_lease(sys, to, pause, facts).await
        }
        Action::FenceRegion {
            region,
            to,
            unreachable,
        } => fence(sys, region, to, *unreachable).await,
        Action::SetArcRouting { region } => {
            let Some(arc) = &sys.arc else {
                tracing::info!("no [[region_router]] with kind = \"arc\": ARC routing skipped");
                return Ok(());
            };
            arc.route_to(region).await.map_err(|e| e.to_string())
        }
        Action::SetTrafficDials { region } => {
            let Some(ga) = &sys.dials else {
                tracing::info!(
                    "no [[region_router]] with kind = \"global-accelerator\": traffic dials skipped"
                );
                return Ok(());
            };
            ga.route_to(region).await.map_err(|e| e.to_string())
        }
    }
}

/// Removes a recorded in-sync set that names no instance of `region` once the pin is
/// there: the pin's move clears it, but a run killed between the two writes finds the pin
/// moved (nothing to do) and the old region's set still recorded, which no instance of
/// `region` could ever acquire past.
async fn clear_foreign_in_sync(sys: &System, region: &str) -> Result<(), String> {
    let ours: Vec<&str> = sys
        .in_region(region)?
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let state = sys
        .lease
        .read(&sys.group)
        .await
        .map_err(|e| e.to_string())?;
    let Some(set) = state
        .and_then(|s| s.in_sync)
        .filter(|s| !s.members.is_empty())
    else {
        return Ok(());
    };
    // Members are lease owners; only names known as instances of other regions count as
    // foreign. Anything else (an owner that is not a configured name) is left alone.
    let elsewhere: Vec<&str> = sys
        .instances
        .iter()
        .filter(|i| i.region != region)
        .map(|i| i.name.as_str())
        .collect();
    let foreign = set
        .members
        .iter()
        .all(|m| elsewhere.contains(&m.as_str()) && !ours.contains(&m.as_str()));
    if foreign {
        tracing::warn!(%region, members = ?set.members, "the in-sync set still names only instances of another region: clearing it");
        sys.lease
            .clear_in_sync(&sys.group)
            .await
            .map_err(|e| e.to_string())?;
    } else if !set.members.iter().any(|m| ours.contains(&m.as_str())) {
        tracing::warn!(%region, members = ?set.members, "the in-sync set names no instance of the region, and some names are not configured instances: left as it is; no instance of the region can lead until it is cleared");
    }
    Ok(())
}

/// Routes ARC away from `region` and stops its ECS engines.
async fn fence(
    sys: &System,
    region: &str,
    to: &str,
    unreachable: Unreachable,
) -> Result<(), String> {
    sys.in_region(region)?;
    sys.in_region(to)?;
    match &sys.arc {
        Some(arc) => arc.route_to(to).await.map_err(|e| e.to_string())?,
        None => tracing::info!("no [[region_router]] with kind = \"arc\": ARC fencing skipped"),
    }
    let Some(ecs) = sys.ecs.get(region) else {
        tracing::info!(%region, "no [[ecs]] for the region: no ECS service to stop");
        return Ok(());
    };
    match ecs
        .stop(&format!("fixctl: region {region} fenced, {to} leads next"))
        .await
    {
        Ok(stopped) => {
            tracing::info!(%region, services = ?stopped.services, tasks = stopped.tasks.len(), "fenced");
            Ok(())
        }
        Err(e) if unreachable == Unreachable::Proceed && e.all_unreachable() => {
            tracing::warn!(%region, error = %e, "the region's ECS API does not answer: going on, the lease keeps its engines out");
            Ok(())
        }
        Err(e) if e.all_unreachable() => Err(format!(
            "{e} (the region's ECS API does not answer: set unreachable: proceed on the step to go on without it)"
        )),
        Err(e) => Err(format!(
            "{e} (ECS answered and refused: check the [[ecs]] cluster and service names and the ecs:UpdateService, ecs:ListTasks and ecs:StopTask permissions)"
        )),
    }
}

/// The instance of `region` that knows the sessions best: its leader, or else the
/// answering instance with the longest journal.
async fn best_informed(sys: &System, region: &str) -> Result<Observed, String> {
    if let Ok(l) = leader_in(sys, region).await {
        return Ok(l);
    }
    let position = |o: &Observed| {
        o.readiness
            .as_ref()
            .and_then(|r| r.replication.as_ref())
            .and_then(|r| r.follower.as_ref())
            .map_or(0, |f| f.position)
    };
    sys.observe(Some(region))
        .await
        .into_iter()
        .filter(|o| o.readiness.is_some())
        .max_by_key(position)
        .ok_or_else(|| format!("no instance of region {region} answers"))
}

/// How long `record` waits for a session that does not report its numbers (busy, or
/// still taking over).
const RECORD_WAIT: Duration = Duration::from_secs(5);

async fn record(sys: &System, region: &str, facts: &mut Facts) -> Result<(), String> {
    let deadline = std::time::Instant::now() + RECORD_WAIT;
    let o = loop {
        let o = best_informed(sys, region).await?;
        // A session shown without its numbers would be recorded as 0/0, and every later
        // comparison would pass or fail for nothing.
        let silent = o
            .sessions()
            .iter()
            .find(|s| s.state == SessionState::Unresponsive)
            .map(|s| s.id.clone());
        match silent {
            None => break o,
            Some(id) if std::time::Instant::now() >= deadline => {
                return Err(format!(
                    "{}: session {id} does not report its sequence numbers (busy or still taking over) after {RECORD_WAIT:?}",
                    o.instance.name
                ))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut sessions = std::collections::BTreeMap::new();
    for s in o.sessions() {
        let (sender, target) = (s.next_sender_seq, s.next_target_seq);
        let stored = stored_count(sys, &o.instance, &s.id, sender.saturating_sub(1)).await?;
        sessions.insert(
            s.id.clone(),
            SessionSeqs {
                next_sender_seq: sender,
                next_target_seq: target,
                stored_outbound: stored,
            },
        );
    }
    if sessions.is_empty() {
        return Err(format!("{} serves no sessions", o.instance.name));
    }
    facts.sessions = sessions;
    facts.recorded_on = Some(o.instance.name.clone());
    Ok(())
}

async fn logout(sys: &System, region: &str, facts: &mut Facts) -> Result<(), String> {
    let leader = match leader_in(sys, region).await {
        Ok(l) => l,
        // Already moved on (a resumed run): nothing is logged on there to log out.
        Err(_) if facts.disruption_started_ms.is_some() => return Ok(()),
        Err(e) => return Err(e),
    };
    sys.post(&leader.instance, "/logons/hold", &[200]).await?;
    record(sys, region, facts).await?;
    facts.disruption_started_ms.get_or_insert_with(now_ms);
    for s in leader.sessions() {
        if s.state != SessionState::Active {
            continue;
        }
        let id = &s.id;
        let path = session_path(id).ok_or_else(|| format!("bad session id {id}"))?;
        // 404/409-style answers mean it logged out meanwhile: that is the goal.
        sys.post(
            &leader.instance,
            &format!("/sessions/{path}/logout"),
            &[200, 202, 404, 409],
        )
        .await?;
    }
    Ok(())
}

async fn move_lease(
    sys: &System,
    to: &str,
    pause: Duration,
    facts: &mut Facts,
) -> Result<(), String> {
    sys.in_region(to)?;
    let leader = leader_anywhere(sys).await;
    if let Some(l) = &leader {
        if l.instance.region == to {
            // Done already (or the region led from the start).
            return Ok(());
        }
        facts.leader_before.get_or_insert(l.instance.name.clone());
        facts.epoch_before.get_or_insert(l.epoch());
    } else if facts.epoch_before.is_none() {
        // The source is dark (DR): the lease row still says who led last.
        if let Ok(Some(state)) = sys.lease.read(&sys.group).await {
            facts.epoch_before = Some(state.epoch);
            facts.leader_before = Some(state.owner);
        }
    }
    fix_lease::region::set_active_region(sys.lease.as_ref(), &sys.group, to)
        .await
        .map_err(|e| e.to_string())?;
    clear_foreign_in_sync(sys, to).await?;
    facts.disruption_started_ms.get_or_insert_with(now_ms);
    if let Some(l) = leader {
        sys.post(
            &l.instance,
            &format!("/step-down?pause_ms={}", pause.as_millis()),
            &[200, 202],
        )
        .await?;
    }
    Ok(())
}
