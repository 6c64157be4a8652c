//! A soak: one group under steady load for a long time, with no fault injected. The lease
//! changing hands meanwhile is a spurious failover (the lease store's epoch counts every
//! takeover, however short); the engines' `fix_lease_renew_seconds` histograms say how
//! much of the trust window (TTL − margin) the lease store and the machine use under that
//! load, which is what a TTL is sized from.
//!
//! The journals are not compared at the end (a long soak writes gigabytes, and
//! [`crate::journals`] reads whole streams); the counterparty's book still counts every
//! order lost, duplicated or left in a gap.

use crate::backend::Servers;
use crate::cluster::{Cluster, ClusterError, GroupOptions, GROUP};
use crate::trader::Tally;
use std::path::Path;
use std::time::{Duration, Instant};

/// One soak's settings.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The group.
    pub group: GroupOptions,
    /// Orders per second from the counterparty.
    pub rate: u32,
    /// How long the load runs.
    pub duration: Duration,
    /// How often a progress line is given.
    pub every: Duration,
}

/// Renew latencies from the engines' `fix_lease_renew_seconds` histograms (every
/// successful acquire and renew of every instance), as bucket bounds: each figure is
/// the upper bound of the bucket the percentile falls in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenewLatency {
    /// Calls observed.
    pub count: u64,
    /// Median, seconds.
    pub p50: f64,
    /// 99th percentile, seconds.
    pub p99: f64,
    /// 99.9th percentile, seconds.
    pub p999: f64,
    /// The slowest call is at most this (seconds; infinite when above the last bucket).
    pub max: f64,
}

impl RenewLatency {
    /// From `(upper bound, cumulative count)` pairs summed over the instances.
    pub fn from_buckets(mut buckets: Vec<(f64, u64)>) -> Self {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let count = buckets.last().map_or(0, |b| b.1);
        let at = |q: f64| {
            let rank = (q * count as f64).ceil().max(1.0) as u64;
            buckets
                .iter()
                .find(|(_, c)| *c >= rank)
                .map_or(f64::INFINITY, |(le, _)| *le)
        };
        Self {
            count,
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }

    /// Reads the `fix_lease_renew_seconds` buckets of one `/metrics` text, added to
    /// `into` by bound.
    pub fn add_scrape(into: &mut Vec<(f64, u64)>, metrics: &str) {
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("fix_lease_renew_seconds_bucket{le=\"") else {
                continue;
            };
            let Some((le, count)) = rest.split_once("\"}") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            };
            let Ok(count) = count.trim().parse::<u64>() else {
                continue;
            };
            match into.iter_mut().find(|(b, _)| *b == le) {
                Some(slot) => slot.1 += count,
                None => into.push((le, count)),
            }
        }
    }
}

/// What one soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Lease backend.
    pub backend: &'static str,
    /// Durability mode.
    pub durability: String,
    /// Lease TTL, renew interval, safety margin (ms).
    pub lease_ms: (u64, u64, u64),
    /// Orders per second asked of the counterparty.
    pub rate: u32,
    /// How long the load ran.
    pub seconds: f64,
    /// Orders sent while it ran (the tally also counts the warm-up before).
    pub orders_in_load: u64,
    /// Takeovers during the load: the lease's epoch at the end minus at the start
    /// (must be 0).
    pub takeovers: u64,
    /// The counterparty's logons during the load (a takeover, or a dropped connection;
    /// must be 0).
    pub reconnects: usize,
    /// The counterparty's counts.
    pub tally: Tally,
    /// The lease calls' latencies.
    pub renew: RenewLatency,
}

fn ms(s: f64) -> String {
    if s.is_finite() {
        format!("{:.1}", s * 1000.0)
    } else {
        "∞".into()
    }
}

impl SoakReport {
    /// The table's header.
    pub fn header() -> String {
        "| backend | durability | ttl/renew/margin ms | orders/s asked / done | minutes | takeovers | reconnects | lost | renews | renew p50 / p99 / p99.9 / max ms (≤) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|".into()
    }

    /// One row.
    pub fn row(&self) -> String {
        let r = &self.renew;
        format!(
            "| {} | {} | {}/{}/{} | {} / {:.0} | {:.1} | {} | {} | {} | {} | {} / {} / {} / {} |",
            self.backend,
            self.durability,
            self.lease_ms.0,
            self.lease_ms.1,
            self.lease_ms.2,
            self.rate,
            self.orders_in_load as f64 / self.seconds.max(1e-9),
            self.seconds / 60.0,
            self.takeovers,
            self.reconnects,
            self.tally.lost,
            r.count,
            ms(r.p50),
            ms(r.p99),
            ms(r.p999),
            ms(r.max),
        )
    }

    /// What the soak found broken (a takeover, a reconnect, lost or unflagged duplicate
    /// orders, gaps, send errors), or `None`.
    pub fn broken(&self) -> Option<String> {
        let t = &self.tally;
        let counts = [
            ("takeovers", self.takeovers),
            ("reconnects", self.reconnects as u64),
            ("lost", t.lost),
            ("unflagged duplicates", t.unflagged_duplicates),
            ("gaps", t.gaps),
            ("send errors", t.send_errors),
        ];
        let unmeasured = (self.renew.count == 0)
            .then(|| "no lease call latencies read from the engines' /metrics".to_string());
        let bad: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .chain(unmeasured)
            .collect();
        (!bad.is_empty()).then(|| bad.join("; "))
    }

    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        let finite = |s: f64| s.is_finite().then_some(s * 1000.0);
        serde_json::json!({
            "backend": self.backend,
            "durability": self.durability,
            "ttl_ms": self.lease_ms.0,
            "renew_ms": self.lease_ms.1,
            "margin_ms": self.lease_ms.2,
            "rate": self.rate,
            "seconds": self.seconds,
            "orders": self.orders_in_load,
            "orders_total": self.tally.sent,
            "takeovers": self.takeovers,
            "reconnects": self.reconnects,
            "lost": self.tally.lost,
            "unflagged_duplicates": self.tally.unflagged_duplicates,
            "gaps": self.tally.gaps,
            "send_errors": self.tally.send_errors,
            "renews": self.renew.count,
            "renew_p50_ms": finite(self.renew.p50),
            "renew_p99_ms": finite(self.renew.p99),
            "renew_p999_ms": finite(self.renew.p999),
            "renew_max_ms": finite(self.renew.max),
        })
    }
}

/// The lease's epoch now, as the store has it.
async fn epoch(cluster: &Cluster) -> Result<u64, ClusterError> {
    let unreachable = |detail: String| {
        ClusterError::Backend(crate::backend::BackendError::Unreachable {
            backend: "lease store",
            detail,
        })
    };
    let store = fix_lease::connect(&cluster.lease.url)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let state = store
        .read(GROUP)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(state.map_or(0, |s| s.epoch))
}

/// Every instance's renew latencies so far.
async fn renew_latency(cluster: &Cluster) -> RenewLatency {
    let mut buckets = Vec::new();
    for n in &cluster.nodes {
        let scraped = crate::http::request(
            n.admin_addr(),
            "GET",
            "/metrics",
            Some(crate::node::TOKEN),
            Duration::from_secs(5),
        )
        .await;
        if let Ok((200, text)) = scraped {
            RenewLatency::add_scrape(&mut buckets, &text);
        }
    }
    RenewLatency::from_buckets(buckets)
}

/// Runs the soak in `dir`; `progress` hears a line every `opts.every`.
pub async fn run(
    opts: &SoakOptions,
    servers: &Servers,
    dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<SoakReport, ClusterError> {
    let mut cluster = Cluster::start(&opts.group, servers, dir).await?;
    let (_, mut trader) = crate::drill::trading(&cluster, opts.rate).await?;
    let book = trader.book();
    let first = epoch(&cluster).await?;
    let started = Instant::now();
    let sent_before = book.tally().sent;
    let mut next = started + opts.every;
    while started.elapsed() < opts.duration {
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            next.min(started + opts.duration),
        ))
        .await;
        next += opts.every;
        let t = book.tally();
        let r = renew_latency(&cluster).await;
        progress(&format!(
            "{:>5.0} s: {} orders ({:.0}/s), {} unanswered, epoch {} (started at {first}), {} logons since, renew p99 ≤ {} ms, max ≤ {} ms",
            started.elapsed().as_secs_f64(),
            t.sent,
            (t.sent - sent_before) as f64 / started.elapsed().as_secs_f64(),
            book.unanswered(),
            epoch(&cluster).await?,
            book.logons_after(started),
            ms(r.p99),
            ms(r.max),
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    let orders_in_load = book.tally().sent - sent_before;
    let last = epoch(&cluster).await?;
    let reconnects = book.logons_after(started);
    let tally = trader.settle(Duration::from_secs(60)).await;
    let renew = renew_latency(&cluster).await;
    trader.shutdown().await;
    for n in &mut cluster.nodes {
        n.kill9();
    }
    Ok(SoakReport {
        backend: opts.group.backend.name(),
        durability: opts.group.durability.clone(),
        lease_ms: opts.group.lease_ms,
        rate: opts.rate,
        seconds,
        orders_in_load,
        takeovers: last.saturating_sub(first),
        reconnects,
        tally,
        renew,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_percentiles_come_from_the_summed_buckets_of_every_instance() {
        let a = "# TYPE fix_lease_renew_seconds histogram\nfix_lease_renew_seconds_sum 0.5\nfix_lease_renew_seconds_count 100\nfix_lease_renew_seconds_bucket{le=\"0.001\"} 90\nfix_lease_renew_seconds_bucket{le=\"0.002\"} 99\nfix_lease_renew_seconds_bucket{le=\"0.004\"} 100\nfix_lease_renew_seconds_bucket{le=\"+Inf\"} 100\n";
        let b = "fix_lease_renew_seconds_bucket{le=\"0.001\"} 0\nfix_lease_renew_seconds_bucket{le=\"0.002\"} 0\nfix_lease_renew_seconds_bucket{le=\"0.004\"} 0\nfix_lease_renew_seconds_bucket{le=\"+Inf\"} 0\n";
        let mut buckets = Vec::new();
        RenewLatency::add_scrape(&mut buckets, a);
        RenewLatency::add_scrape(&mut buckets, b);
        let r = RenewLatency::from_buckets(buckets);
        assert_eq!(r.count, 100);
        assert_eq!((r.p50, r.p99, r.max), (0.001, 0.002, 0.004));
        let none = RenewLatency::from_buckets(Vec::new());
        assert_eq!(none.count, 0);
    }
}
