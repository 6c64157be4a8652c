//! Kill-and-promote cycles under load, and the report: RTO percentiles, loss,
//! duplicates, gaps.

use crate::backend::Servers;
use crate::cluster::{Cluster, ClusterError, GroupOptions};
use crate::in_place;
use crate::journals::JournalCheck;
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
    /// Cut the leader and a standby apart both ways for 3 s under load (network
    /// namespaces; the lease store stays reachable to both), `kill -9` the leader, heal:
    /// the standby, alive and contending all along, must not lead.
    PartitionStandby,
    /// As `partition-standby`, but only the standby's packets to the leader are dropped:
    /// its acknowledgements never arrive. Over TCP that stalls the leader's records too
    /// after one window (their ACKs are lost), and the standby's reconnects fail.
    Asymmetric,
    /// Instead of the kill, the leader's disk fills: its fsyncs fail with ENOSPC (the
    /// fault shim). It must step down at once and the standby take over; the failed
    /// instance is then restarted on a healed disk.
    DiskFull,
    /// Instead of the kill, the leader's fsyncs take 3 s longer, past the lease's TTL (the
    /// fault shim): it must declare its journal failed and step down, and the standby take
    /// over; the slow instance is then restarted on a healed disk.
    SlowDisk,
    /// For 3 s under load the standby's wall clock runs 10 s ahead and the leader's 10 s
    /// behind (the fault shim): the standby must not lead meanwhile (a lease judged by
    /// wall clocks would look expired to it). Then the clocks are set right and the
    /// leader is killed as usual.
    ClockStep,
    /// For 3 s under load a second counterparty (`SLOW`) logs on to the leader, sends
    /// orders and never reads the reports (its TCP window closes), while the leader's
    /// `/readyz` is probed every 100 ms: every probe must be answered within 1 s as
    /// leader, and no standby may lead. Then the leader is killed as usual.
    ZeroWindow,
    /// For 3 s under load the counterparty is cut from the leader only (network
    /// namespaces; the leader still reaches the standby and the lease): the leader keeps
    /// leading, no standby may lead, the counterparty gets back in once the link heals
    /// with nothing lost. Then the leader is killed as usual.
    CounterpartyCut,
}

/// How long each fsync takes under [`Fault::SlowDisk`].
const SLOW_DISK_MS: u64 = 3000;

/// How far [`Fault::ClockStep`] steps the clocks.
const CLOCK_STEP_MS: i64 = 10_000;

impl Fault {
    /// Whether the group must run in network namespaces for it.
    pub fn needs_netns(self) -> bool {
        matches!(
            self,
            Self::PartitionStandby | Self::Asymmetric | Self::CounterpartyCut
        )
    }

    /// Whether the engines must run under the fault shim ([`crate::shim`]).
    pub fn needs_shim(self) -> bool {
        matches!(self, Self::DiskFull | Self::SlowDisk | Self::ClockStep)
    }
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
    /// Kill → the counterparty's next logon accepted (of its last session to log on
    /// again, with several), per cycle.
    pub to_logon: Vec<Duration>,
    /// The counterparty's counts.
    pub tally: Tally,
    /// Cycles in which an instance outside the in-sync set took the lease (must be 0).
    pub stale_takeovers: u32,
    /// Cycles in which the left-behind standby led, but legitimately: the killed leader
    /// had not recorded it out of the in-sync set in the lease store (as read after the
    /// kill; for example its lease was lost to a frozen contender holding the SQLite
    /// file), so it could acknowledge nothing without it. Only `replicated` and
    /// `replicated-written` record a set; in the other modes such a lead is stale.
    pub led_while_in_sync: u32,
    /// Zero-window probes of the leader's `/readyz` not answered within 1 s as leader
    /// (must be 0).
    pub stuck_probes: u32,
    /// The journals read after the drill ([`crate::journals`]; no violation may show).
    pub journals: JournalCheck,
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
            "{:<9} {:<10} {:>6} {:>26} {:>26} {:>6} {:>5} {:>9} {:>9} {:>5} {:>5} {:>5} {:>7}",
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
            "stale",
            "stuck",
            "journal"
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
            "{:<9} {:<10} {:>6} {:>26} {:>26} {:>6} {:>5} {:>9} {:>9} {:>5} {:>5} {:>5} {:>7}",
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
            self.stale_takeovers,
            self.stuck_probes,
            self.journals.violations.len()
        )
    }

    /// What the drill found broken (lost or unflagged duplicate orders, gaps, stale
    /// leaders, stuck probes, journal violations), or `None`.
    pub fn broken(&self) -> Option<String> {
        let t = &self.tally;
        let j = &self.journals;
        let counts = [
            ("lost", t.lost),
            ("unflagged duplicates", t.unflagged_duplicates),
            ("gaps", t.gaps),
            ("send errors", t.send_errors),
            ("stale leaders", u64::from(self.stale_takeovers)),
            ("stuck probes", u64::from(self.stuck_probes)),
            ("journal violations", j.violations.len() as u64),
        ];
        let bad: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .chain(j.violations.iter().take(5).cloned())
            .collect();
        (!bad.is_empty()).then(|| bad.join("; "))
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
            "led_while_in_sync": self.led_while_in_sync,
            "stuck_probes": self.stuck_probes,
            "journals": {
                "read": self.journals.journals,
                "stream_bytes": self.journals.stream_bytes,
                "cut_tails": self.journals.cut_tails,
                "violations": self.journals.violations,
            },
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
            v.replication.is_some_and(|r| {
                !r.standbys.is_empty() && r.standbys.iter().all(|s| s.standby.acked == r.appended)
            })
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

/// Starts the counterparty against every instance of `cluster`.
async fn start_trader(
    cluster: &Cluster,
    rate: u32,
    limit: Duration,
) -> Result<Trader, ClusterError> {
    let sessions = cluster.nodes.first().map_or(1, |n| n.spec.sessions);
    Trader::start_sessions(&cluster.fix_addrs(), rate, sessions)
        .await
        .map_err(|e| ClusterError::Timeout {
            what: format!("starting the counterparty: {e}"),
            limit,
            logs: String::new(),
        })
}

/// A group at rest under load: one leader, every other instance caught up, and a
/// counterparty logged on and sending `rate` orders a second for half a second. Returns
/// the leader and the counterparty.
pub async fn trading(cluster: &Cluster, rate: u32) -> Result<(usize, Trader), ClusterError> {
    let limit = Duration::from_secs(20);
    let leader = cluster.wait_settled(limit).await?;
    let trader = start_trader(cluster, rate, limit).await?;
    if !trader.wait_logged_on(limit).await {
        return Err(ClusterError::Timeout {
            what: "the counterparty logging on".into(),
            limit,
            logs: cluster.logs(),
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((leader, trader))
}

/// Separates standby `s` from `leader` as `fault` says (nothing for `none`).
pub fn isolate(
    cluster: &Cluster,
    fault: Fault,
    leader: usize,
    s: usize,
) -> Result<(), ClusterError> {
    let net = || cluster.network.as_ref().ok_or(ClusterError::NoNetwork);
    match fault {
        Fault::None
        | Fault::DiskFull
        | Fault::SlowDisk
        | Fault::ClockStep
        | Fault::ZeroWindow
        | Fault::CounterpartyCut => Ok(()),
        Fault::StallStandby => pause(cluster, s),
        Fault::PartitionStandby => {
            net()?.cut(leader, s)?;
            Ok(net()?.cut(s, leader)?)
        }
        Fault::Asymmetric => Ok(net()?.cut(s, leader)?),
    }
}

/// Steps the standby's wall clock ahead and the leader's behind (`on`), or sets both
/// right.
fn step_clocks(cluster: &Cluster, leader: usize, s: usize, on: bool) -> Result<(), ClusterError> {
    for (i, ms) in [(s, CLOCK_STEP_MS), (leader, -CLOCK_STEP_MS)] {
        cluster.nodes[i]
            .step_clock(on.then_some(ms))
            .map_err(|source| ClusterError::Signal {
                name: cluster.nodes[i].spec.name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Makes instance `i`'s fsyncs fail or slow (`on`, as `fault` says) or work again.
fn fail_disk(cluster: &Cluster, i: usize, fault: Fault, on: bool) -> Result<(), ClusterError> {
    let node = &cluster.nodes[i];
    let done = if fault == Fault::SlowDisk {
        node.slow_fsync(on.then_some(SLOW_DISK_MS))
    } else {
        node.fail_fsync(on)
    };
    done.map_err(|source| ClusterError::Signal {
        name: cluster.nodes[i].spec.name.clone(),
        source,
    })
}

/// Undoes [`isolate`].
pub fn reconnect(cluster: &Cluster, fault: Fault, s: usize) -> Result<(), ClusterError> {
    match (fault, &cluster.network) {
        (Fault::StallStandby, _) => resume(cluster, s),
        (_, Some(net)) => Ok(net.heal()?),
        _ => Ok(()),
    }
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

/// Whether instance `s` is still in the in-sync set recorded in the lease store, or none
/// is recorded: then the leader could acknowledge nothing without it, and `s` may lead.
/// `None` when the store did not answer within a second.
async fn recorded_in_sync(cluster: &Cluster, s: usize) -> Option<bool> {
    let look = async {
        let store = fix_lease::connect(&cluster.lease.url).await.ok()?;
        store.read(crate::cluster::GROUP).await.ok()?
    };
    let state = tokio::time::timeout(Duration::from_secs(1), look)
        .await
        .ok()??;
    let name = &cluster.nodes[s].spec.name;
    Some(
        state
            .in_sync
            .is_none_or(|r| r.members.is_empty() || r.members.contains(name)),
    )
}

/// Runs the drill in `dir`; `progress` hears about each cycle.
pub async fn run(
    opts: &DrillOptions,
    servers: &Servers,
    dir: &Path,
    mut progress: impl FnMut(u32, &str),
) -> Result<Report, ClusterError> {
    let mut group = opts.group.clone();
    group.stalled_reader |= opts.fault == Fault::ZeroWindow;
    let mut cluster = Cluster::start(&group, servers, dir).await?;
    let limit = Duration::from_secs(20);
    cluster.wait_leader(limit).await?;
    let mut trader = start_trader(&cluster, opts.rate, limit).await?;
    let mut report = Report {
        backend: opts.group.backend.name(),
        durability: opts.group.durability.clone(),
        to_leader: Vec::new(),
        to_logon: Vec::new(),
        tally: Tally::default(),
        stale_takeovers: 0,
        led_while_in_sync: 0,
        stuck_probes: 0,
        journals: JournalCheck::default(),
    };
    for cycle in 1..=opts.cycles {
        let leader = cluster.wait_settled(limit).await?;
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
            Fault::None | Fault::DiskFull | Fault::SlowDisk => None,
            Fault::ZeroWindow => {
                let (stuck, led) = in_place::zero_window(&cluster, leader).await?;
                report.stuck_probes += stuck;
                if led {
                    report.stale_takeovers += 1;
                }
                None
            }
            Fault::CounterpartyCut => {
                if in_place::counterparty_cut(&cluster, &trader, leader, cycle).await? {
                    report.stale_takeovers += 1;
                }
                None
            }
            Fault::ClockStep => {
                if let Some(s) = (0..cluster.nodes.len()).find(|i| *i != leader) {
                    step_clocks(&cluster, leader, s, true)?;
                    let led = stale_leads(&cluster, s, Duration::from_secs(3)).await;
                    step_clocks(&cluster, leader, s, false)?;
                    if led {
                        report.stale_takeovers += 1;
                    }
                }
                None
            }
            fault => {
                let s = (0..cluster.nodes.len()).find(|i| *i != leader);
                if let Some(s) = s {
                    isolate(&cluster, fault, leader, s)?;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                s
            }
        };
        let killed = Instant::now();
        match opts.fault {
            Fault::DiskFull | Fault::SlowDisk => fail_disk(&cluster, leader, opts.fault, true)?,
            _ => cluster.nodes[leader].kill9(),
        }
        if let Some(s) = stalled {
            // Read once the leader is gone, before the standby is back: the record is
            // final then (nobody else can write it). Only the modes that keep an in-sync
            // set record one; in the others a left-behind standby that leads is stale.
            let records_a_set = matches!(
                opts.group.durability.as_str(),
                "replicated" | "replicated-written"
            );
            let may_lead = if records_a_set {
                recorded_in_sync(&cluster, s).await
            } else {
                Some(false)
            };
            reconnect(&cluster, opts.fault, s)?;
            if stale_leads(&cluster, s, Duration::from_secs(2)).await {
                if may_lead == Some(true) {
                    report.led_while_in_sync += 1;
                    progress(
                        cycle,
                        "the left-behind standby led: it was still recorded in sync",
                    );
                } else {
                    report.stale_takeovers += 1;
                    progress(
                        cycle,
                        &format!(
                            "STALE: the left-behind standby led (recorded in sync: {may_lead:?})"
                        ),
                    );
                }
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
            if let Some(t) = book.all_logged_on_after(killed, trader.sessions()) {
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
        if matches!(opts.fault, Fault::DiskFull | Fault::SlowDisk) {
            // The failed instance stays out until restarted on a healed disk.
            fail_disk(&cluster, leader, opts.fault, false)?;
            cluster.nodes[leader].kill9();
        }
        if stalled.is_none() {
            restart(&mut cluster, leader)?;
        }
    }
    report.tally = trader.settle(Duration::from_secs(20)).await;
    trader.shutdown().await;
    // Every instance caught up with the last leader (the restarted one too) before the
    // journals are compared.
    report.journals = cluster.stop_and_check_journals(limit).await?;
    Ok(report)
}
