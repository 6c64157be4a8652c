//! Evaluating a [`Check`] against the running system: `Ok(())` when it holds, otherwise
//! why not (shown while waiting and in the error when the step times out).

use super::spec::Check;
use super::state::Facts;
use super::system::{session_path, Observed, System};
use fix_engine::admin::api::{ReplicationView, SessionState, StoredMessage};

/// Whether `check` holds now. May record facts (the RPO gate keeps the lag it saw; the
/// first time every session is logged on in the new region stops the RTO clock).
pub async fn evaluate(check: &Check, sys: &System, facts: &mut Facts) -> Result<(), String> {
    match check {
        Check::RegionHealthy { region } => region_healthy(sys, region).await,
        Check::RegionDown { region } => {
            sys.in_region(region)?;
            let up: Vec<String> = sys
                .observe(Some(region))
                .await
                .into_iter()
                .filter(|o| o.readiness.is_some())
                .map(|o| o.instance.name)
                .collect();
            if up.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} still answer(s) in region {region}: this is not a lost region (use the rotation runbook)",
                    up.join(", ")
                ))
            }
        }
        Check::LeaderInRegion { region } => {
            let l = leader_in(sys, region).await?;
            // After a move: the new leader and its epoch, for the report.
            if facts.epoch_before.is_some_and(|before| l.epoch() > before) {
                facts.leader_after = Some(l.instance.name.clone());
                facts.epoch_after = Some(l.epoch());
            }
            Ok(())
        }
        Check::ReplicationCaughtUp {
            region,
            max_lag_bytes,
        } => {
            let lag = lag_of(sys, region).await?;
            facts.lag_bytes_at_cutover = Some(lag);
            if lag <= *max_lag_bytes {
                Ok(())
            } else {
                Err(format!(
                    "region {region} lags the leader by {lag} journal byte(s) (at most {max_lag_bytes} allowed)"
                ))
            }
        }
        Check::SessionsLoggedOn { region } => {
            let leader = leader_in(sys, region).await?;
            let down: Vec<String> = leader
                .sessions()
                .iter()
                .filter(|s| s.state != SessionState::Active)
                .map(|s| format!("{} ({})", s.id, s.state))
                .collect();
            if !down.is_empty() {
                return Err(format!(
                    "on {}: not logged on: {}",
                    leader.instance.name,
                    down.join(", ")
                ));
            }
            if facts.restored_ms.is_none() {
                facts.restored_ms = Some(super::state::now_ms());
            }
            Ok(())
        }
        Check::SessionsLoggedOut { region } => {
            let on: Vec<String> = sys
                .observe(Some(region))
                .await
                .iter()
                .flat_map(|o| {
                    o.sessions()
                        .iter()
                        .filter(|s| s.state == SessionState::Active)
                        .map(|s| format!("{} on {}", s.id, o.instance.name))
                })
                .collect();
            if on.is_empty() {
                Ok(())
            } else {
                Err(format!("still logged on: {}", on.join(", ")))
            }
        }
        Check::RoutedTo { region } => routed_to(sys, region).await,
        Check::SequenceContinuity { region } => continuity(sys, region, facts).await,
        Check::MessageCountsReconciled { region } => reconcile(sys, region, facts).await,
    }
}

async fn region_healthy(sys: &System, region: &str) -> Result<(), String> {
    sys.in_region(region)?;
    let mut problems = Vec::new();
    for o in sys.observe(Some(region)).await {
        let name = &o.instance.name;
        let Some(r) = &o.readiness else {
            problems.push(format!("{name} does not answer"));
            continue;
        };
        if o.leads() {
            continue;
        }
        let follower = r.replication.as_ref().and_then(|x| x.follower.as_ref());
        if follower.is_none_or(|f| f.leader.is_none()) {
            problems.push(format!("{name} follows no leader"));
        } else if !follower.is_some_and(|f| f.caught_up) {
            problems.push(format!("{name} has not caught up with its leader"));
        } else if r.in_sync == Some(false) {
            problems.push(format!(
                "{name} is not in the in-sync set recorded in the lease store (it may not lead until it has caught up)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("region {region}: {}", problems.join("; ")))
    }
}

/// The instance of `region` that leads (the newest epoch if several claim it).
pub async fn leader_in(sys: &System, region: &str) -> Result<Observed, String> {
    sys.in_region(region)?;
    sys.observe(Some(region))
        .await
        .into_iter()
        .filter(Observed::leads)
        .max_by_key(Observed::epoch)
        .ok_or_else(|| format!("no instance of region {region} leads"))
}

/// The group's leader, wherever it is.
pub async fn leader_anywhere(sys: &System) -> Option<Observed> {
    sys.observe(None)
        .await
        .into_iter()
        .filter(Observed::leads)
        .max_by_key(Observed::epoch)
}

/// How far the best-placed standby of `region` is behind the leader, in journal bytes.
async fn lag_of(sys: &System, region: &str) -> Result<u64, String> {
    let names: Vec<String> = sys
        .in_region(region)?
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let leader = leader_anywhere(sys)
        .await
        .ok_or_else(|| "no instance leads: the replication lag cannot be measured".to_string())?;
    if names.contains(&leader.instance.name) {
        return Ok(0);
    }
    let repl: ReplicationView = sys.get(&leader.instance, "/replication").await?;
    repl.standbys
        .iter()
        .filter(|s| names.contains(&s.standby.name))
        .map(|s| s.lag_bytes)
        .min()
        .ok_or_else(|| {
            format!(
                "no standby of region {region} is connected to the leader {}",
                leader.instance.name
            )
        })
}

async fn routed_to(sys: &System, region: &str) -> Result<(), String> {
    let routers: Vec<_> = sys.arc.iter().chain(sys.dials.iter()).collect();
    if routers.is_empty() {
        return Err(
            "no [[region_router]] is configured: traffic between regions cannot be checked".into(),
        );
    }
    for r in routers {
        let now = r.current().await.map_err(|e| e.to_string())?;
        if now.as_deref() != Some(region) {
            return Err(format!(
                "{} routes to {} instead of {region}",
                r.name(),
                now.as_deref().unwrap_or("(nothing)")
            ));
        }
    }
    Ok(())
}

async fn continuity(sys: &System, region: &str, facts: &Facts) -> Result<(), String> {
    if facts.sessions.is_empty() {
        return Err("no sequence numbers were recorded earlier in the run (add a record-sessions or logout-sessions step)".into());
    }
    let leader = leader_in(sys, region).await?;
    let now = leader.sessions();
    let mut problems = Vec::new();
    for (id, before) in &facts.sessions {
        match now.iter().find(|s| &s.id == id) {
            None => problems.push(format!("{id} is not served by {}", leader.instance.name)),
            Some(s) if s.state == fix_engine::admin::api::SessionState::Unresponsive => problems
                .push(format!(
                    "{id} does not report its sequence numbers on {} yet (busy or still taking over)",
                    leader.instance.name
                )),
            Some(s) => {
                let (sender, target) = (s.next_sender_seq, s.next_target_seq);
                if sender < before.next_sender_seq || target < before.next_target_seq {
                    problems.push(format!(
                        "{id}: next sender/target {sender}/{target} on {} went back from {}/{} (a reset or lost messages)",
                        leader.instance.name, before.next_sender_seq, before.next_target_seq
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Outbound messages stored by `i` for `session` with MsgSeqNum 1..=`upto`.
pub(crate) async fn stored_count(
    sys: &System,
    i: &super::system::RegionalInstance,
    session: &str,
    upto: u64,
) -> Result<u64, String> {
    let path = session_path(session).ok_or_else(|| format!("bad session id {session}"))?;
    let mut count = 0u64;
    let mut from = 1u64;
    while from <= upto {
        let list: Vec<StoredMessage> = sys
            .get(
                i,
                &format!("/sessions/{path}/messages?from={from}&to={upto}"),
            )
            .await?;
        let Some(last) = list.last().map(|m| m.seq) else {
            break;
        };
        count += list.len() as u64;
        from = last + 1;
    }
    Ok(count)
}

async fn reconcile(sys: &System, region: &str, facts: &mut Facts) -> Result<(), String> {
    if facts.sessions.is_empty() {
        return Err("no sequence numbers were recorded earlier in the run (add a record-sessions or logout-sessions step)".into());
    }
    let leader = leader_in(sys, region).await?;
    let reachable: Vec<Observed> = sys
        .observe(None)
        .await
        .into_iter()
        .filter(|o| o.readiness.is_some())
        .collect();
    let mut problems = Vec::new();
    for (id, seqs) in facts.sessions.clone() {
        let expected = seqs.stored_outbound;
        let upto = seqs.next_sender_seq.saturating_sub(1);
        let mut counts = std::collections::BTreeMap::new();
        counts.insert("recorded".to_string(), expected);
        for o in &reachable {
            let n = stored_count(sys, &o.instance, &id, upto).await?;
            counts.insert(o.instance.name.clone(), n);
            if n != expected && o.instance.name == leader.instance.name {
                problems.push(format!(
                    "{id}: {} stores {n} of the {expected} outbound message(s) recorded",
                    o.instance.name
                ));
            } else if n != expected {
                problems.push(format!(
                    "{id}: {} (region {}) stores {n} of {expected}",
                    o.instance.name, o.instance.region
                ));
            }
        }
        facts.reconciled.insert(id, counts);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
