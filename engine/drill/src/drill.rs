//! Kill-and-promote cycles under load, and the report: RTO percentiles, loss,
//! duplicates, gaps.

use crate::backend::Servers;
use crate::cluster::{Cluster, ClusterError, GroupOptions};
use crate::trader::{Tally, Trader};
use std::path::Path;
use std::time::{Duration, Instant};

/// One drill's settings.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The group.
    pub group: GroupOptions,
    /// Kill-and-promote cycles.
    pub cycles: u32,
    /// Orders per second from the counterparty.
    pub rate: u32,
    /// Load between the standby catching up and the kill.
    pub dwell: Duration,
    /// Kill only once the load is held back, every order answered and the standby has
    /// acknowledged everything (`local` durability loses what the standby lacked at the
    /// kill; this shows promotion itself loses nothing).
    pub quiesce: bool,
    /// A fault injected before each kill.
    pub fault: Fault,
}

/// A fault injected before each kill (`fix-drill run --fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Fault {
    /// None: the leader is killed with its standby streaming.
    #[default]
    None,
    /// SIGSTOP a standby for 3 s under load (the leader drops it from the in-sync set and
    /// goes on), `kill -9` the leader, SIGCONT the standby: it must not lead; the old
    /// leader, restarted, must, with everything it answered.
    StallStandby,
}

/// What one drill measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lease backend.
    pub backend: &'static str,
    /// Durability mode.
    pub durability: String,
    /// Kill → the standby reports leader, per cycle.
    pub to_leader: Vec<Duration>,
    /// Kill → the counterparty's next logon accepted, per cycle.
    pub to_logon: Vec<Duration>,
    /// The counterparty's counts.
    pub tally: Tally,
    /// Cycles in which an instance outside the in-sync set took the lease (must be 0).
    pub stale_takeovers: u32,
}

/// Nearest-rank percentile of `v` (sorted here).
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

impl Report {
    /// The header of [`Report::row`].
    pub fn header() -> String {
        format!(
            "{:<9} {:<10} {:>6} {:>26} {:>26} {:>6} {:>5} {:>9} {:>9} {:>5} {:>5}",
            "backend",
            "mode",
            "cycles",
            "kill→leader p50/p99/max ms",
            "kill→logon p50/p99/max ms",
            "orders",
            "lost",
            "dup-unflg",
            "dup-flag",
            "gaps",
            "stale"
        )
    }

    /// One table row.
    pub fn row(&self) -> String {
        let triple = |v: &[Duration]| {
            format!(
                "{}/{}/{}",
                ms(percentile(v, 50.0)),
                ms(percentile(v, 99.0)),
                ms(percentile(v, 100.0))
            )
        };
        format!(
            "{:<9} {:<10} {:>6} {:>26} {:>26} {:>6} {:>5} {:>9} {:>9} {:>5} {:>5}",
            self.backend,
            self.durability,
            self.to_leader.len(),
            triple(&self.to_leader),
            triple(&self.to_logon),
            self.tally.sent,
            self.tally.lost,
            self.tally.unflagged_duplicates,
            self.tally.flagged_duplicates,
            self.tally.gaps,
            self.stale_takeovers
        )
    }

    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        let stats = |v: &[Duration]| {
            serde_json::json!({
                "p50_ms": percentile(v, 50.0).as_secs_f64() * 1000.0,
                "p99_ms": percentile(v, 99.0).as_secs_f64() * 1000.0,
                "max_ms": percentile(v, 100.0).as_secs_f64() * 1000.0,
            })
        };
        serde_json::json!({
            "backend": self.backend,
            "durability": self.durability,
            "cycles": self.to_leader.len(),
            "kill_to_leader": stats(&self.to_leader),
            "kill_to_logon": stats(&self.to_logon),
            "orders": self.tally.sent,
            "lost": self.tally.lost,
            "unflagged_duplicates": self.tally.unflagged_duplicates,
            "flagged_duplicates": self.tally.flagged_duplicates,
            "gaps": self.tally.gaps,
            "send_errors": self.tally.send_errors,
            "stale_takeovers": self.stale_takeovers,
        })
    }
}

/// Waits until every order is answered and every standby acknowledged all the leader has.
async fn quiesce(
    cluster: &Cluster,
    leader: usize,
    trader: &Trader,
    limit: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + limit;
    loop {
        let answered = trader.book().unanswered() == 0;
        let replicated = cluster.nodes[leader].readiness().await.is_some_and(|v| {
            let r = &v["replication"];
            let standbys = r["standbys"].as_array().cloned().unwrap_or_default();
            !standbys.is_empty()
                && standbys
                    .iter()
                    .all(|s| s["acked"].as_u64() == r["appended"].as_u64())
        });
        if answered && replicated {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout {
                what: "the group quiescing (orders answered, standby caught up)".into(),
                limit,
                logs: cluster.logs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn restart(cluster: &mut Cluster, i: usize) -> Result<(), ClusterError> {
    cluster.nodes[i]
        .start()
        .map_err(|source| ClusterError::Spawn {
            name: cluster.nodes[i].spec.name.clone(),
            source,
        })
}

fn pause(cluster: &Cluster, i: usize) -> Result<(), ClusterError> {
    cluster.nodes[i]
        .pause()
        .map_err(|source| ClusterError::Signal {
            name: cluster.nodes[i].spec.name.clone(),
            source,
        })
}

fn resume(cluster: &Cluster, i: usize) -> Result<(), ClusterError> {
    cluster.nodes[i]
        .resume()
        .map_err(|source| ClusterError::Signal {
            name: cluster.nodes[i].spec.name.clone(),
            source,
        })
}

/// Whether instance `i` reports leader at any point within `period`.
async fn stale_leads(cluster: &Cluster, i: usize, period: Duration) -> bool {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if cluster.nodes[i].is_leader().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Runs the drill in `dir`; `progress` hears about each cycle.
pub async fn run(
    opts: &DrillOptions,
    servers: &Servers,
    dir: &Path,
    mut progress: impl FnMut(u32, &str),
) -> Result<Report, ClusterError> {
    let mut cluster = Cluster::start(&opts.group, servers, dir).await?;
    let limit = Duration::from_secs(20);
    cluster.wait_leader(limit).await?;
    let mut trader = Trader::start(&cluster.fix_addrs(), opts.rate)
        .await
        .map_err(|e| ClusterError::Timeout {
            what: format!("starting the counterparty: {e}"),
            limit,
            logs: String::new(),
        })?;
    let mut report = Report {
        backend: opts.group.backend.name(),
        durability: opts.group.durability.clone(),
        to_leader: Vec::new(),
        to_logon: Vec::new(),
        tally: Tally::default(),
        stale_takeovers: 0,
    };
    for cycle in 1..=opts.cycles {
        let leader = cluster.wait_leader(limit).await?;
        for i in (0..cluster.nodes.len()).filter(|i| *i != leader) {
            cluster.wait_caught_up(i, limit).await?;
        }
        if !trader.wait_logged_on(limit).await {
            return Err(ClusterError::Timeout {
                what: "the counterparty logging on".into(),
                limit,
                logs: cluster.logs(),
            });
        }
        tokio::time::sleep(opts.dwell).await;
        if opts.quiesce {
            trader.hold_orders(true);
            quiesce(&cluster, leader, &trader, limit).await?;
        }
        let stalled = match opts.fault {
            Fault::None => None,
            Fault::StallStandby => {
                let s = (0..cluster.nodes.len()).find(|i| *i != leader);
                if let Some(s) = s {
                    pause(&cluster, s)?;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                s
            }
        };
        let killed = Instant::now();
        cluster.nodes[leader].kill9();
        if let Some(s) = stalled {
            resume(&cluster, s)?;
            if stale_leads(&cluster, s, Duration::from_secs(2)).await {
                report.stale_takeovers += 1;
            }
            restart(&mut cluster, leader)?;
        }
        // Any instance may win (the restarted one after a stall); watch them all.
        let promoted = loop {
            if let Some(i) = cluster.leader().await {
                if i != leader || stalled.is_some() {
                    break Instant::now();
                }
            }
            if killed.elapsed() > limit {
                return Err(ClusterError::Timeout {
                    what: format!("a standby taking over (cycle {cycle})"),
                    limit,
                    logs: cluster.logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let book = trader.book();
        let logon = loop {
            if let Some(t) = book.first_logon_after(killed) {
                break t;
            }
            if killed.elapsed() > limit {
                return Err(ClusterError::Timeout {
                    what: format!("the counterparty logging on to the new leader (cycle {cycle})"),
                    limit,
                    logs: cluster.logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        report.to_leader.push(promoted - killed);
        report.to_logon.push(logon - killed);
        progress(
            cycle,
            &format!(
                "kill→leader {} ms, kill→logon {} ms",
                ms(promoted - killed),
                ms(logon - killed)
            ),
        );
        trader.hold_orders(false);
        if stalled.is_none() {
            restart(&mut cluster, leader)?;
        }
    }
    report.tally = trader.settle(Duration::from_secs(20)).await;
    trader.shutdown().await;
    for n in &mut cluster.nodes {
        n.kill9();
    }
    Ok(report)
}
