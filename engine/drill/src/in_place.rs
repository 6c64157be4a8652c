//! Faults the leader must ride out in place, with no standby leading meanwhile:
//! [`Fault::ZeroWindow`] (a counterparty that stops reading) and
//! [`Fault::CounterpartyCut`] (the counterparty cut from the leader only).

use crate::cluster::{Cluster, ClusterError};
#[cfg(doc)]
use crate::drill::Fault;
use crate::stalled_reader::StalledReader;
use crate::trader::Trader;
use std::time::{Duration, Instant};

/// Runs [`Fault::ZeroWindow`] against `leader`: returns how many `/readyz` probes went
/// unanswered within 1 s or did not say leader, and whether another instance led
/// meanwhile.
pub(crate) async fn zero_window(
    cluster: &Cluster,
    leader: usize,
) -> Result<(u32, bool), ClusterError> {
    let period = Duration::from_secs(3);
    let mut slow = StalledReader::log_on(cluster.nodes[leader].fix_addr())
        .await
        .map_err(|e| ClusterError::Timeout {
            what: format!("the zero-window counterparty logging on: {e}"),
            limit: Duration::from_secs(5),
            logs: cluster.logs(),
        })?;
    let admin = cluster.nodes[leader].admin_addr();
    let probes = async {
        let mut stuck = 0;
        let end = Instant::now() + period;
        while Instant::now() < end {
            let answer =
                crate::http::request(admin, "GET", "/readyz", None, Duration::from_secs(1))
                    .await
                    .ok()
                    .and_then(|(_, body)| {
                        serde_json::from_str::<fix_engine::admin::api::Readiness>(&body).ok()
                    });
            if !answer.is_some_and(|v| v.role == fix_engine::admin::api::RoleName::Leader) {
                stuck += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stuck
    };
    let standby_led = another_leads(cluster, leader, period);
    let (sent, stuck, led) = tokio::join!(slow.flood(period), probes, standby_led);
    tracing::info!(sent, stuck, led, "zero-window counterparty done");
    Ok((stuck, led))
}

/// Runs [`Fault::CounterpartyCut`]: cuts the counterparty from `leader` for 3 s, heals,
/// and waits until the counterparty, whose session the cut took down, has logged on
/// again. Returns whether the lease moved: a standby led during the cut, or `leader` no
/// longer leads after it.
pub(crate) async fn counterparty_cut(
    cluster: &Cluster,
    trader: &Trader,
    leader: usize,
    cycle: u32,
) -> Result<bool, ClusterError> {
    let limit = Duration::from_secs(20);
    let net = cluster.network.as_ref().ok_or(ClusterError::NoNetwork)?;
    let cut = Instant::now();
    net.cut_from_root(leader)?;
    let standby_led = another_leads(cluster, leader, Duration::from_secs(3)).await;
    net.heal()?;
    // 3 s is past the counterparty's heartbeat time-out: its session went down, and
    // it must log on again before the kill.
    let book = trader.book();
    while book.first_logon_after(cut).is_none() {
        if cut.elapsed() > limit {
            return Err(ClusterError::Timeout {
                what: format!("the counterparty logging on again after the cut (cycle {cycle})"),
                limit,
                logs: cluster.logs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(standby_led || cluster.leader().await != Some(leader))
}

/// Whether any instance but `leader` reports leader at any point within `period`.
async fn another_leads(cluster: &Cluster, leader: usize, period: Duration) -> bool {
    let until = Instant::now() + period;
    while Instant::now() < until {
        for i in (0..cluster.nodes.len()).filter(|i| *i != leader) {
            if cluster.nodes[i].is_leader().await {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
