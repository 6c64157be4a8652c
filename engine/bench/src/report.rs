//! Percentile rows.

use hdrhistogram::Histogram;

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Round-trip times in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Round trips per second achieved.
    pub per_second: f64,
    /// How long every session took to log on, all at once (load rows only).
    pub logons: Option<std::time::Duration>,
}

/// A histogram for round-trip times in nanoseconds (1 ns to 60 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant, valid bounds")
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The latency distribution for plotting: `[percentile, µs]` pairs, denser towards the
/// tail (HdrHistogram's quantile iteration, 5 steps per halving of the distance to 100%).
pub fn distribution(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    let mut points: Vec<[f64; 2]> = h
        .iter_quantiles(5)
        .map(|v| [v.quantile_iterated_to() * 100.0, us(v.value_iterated_to())])
        .collect();
    points.dedup_by(|a, b| a[0] == b[0]);
    points
}

impl Row {
    /// The header of [`Row::line`].
    pub fn header() -> String {
        format!(
            "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
            "scenario", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "msg/s", "count"
        )
    }

    /// One table line.
    pub fn line(&self) -> String {
        let h = &self.histogram;
        format!(
            "{:<40} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>8}",
            self.name,
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.9)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            self.per_second,
            h.len()
        )
    }

    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        let h = &self.histogram;
        serde_json::json!({
            "scenario": self.name,
            "p50_us": us(h.value_at_quantile(0.5)),
            "p90_us": us(h.value_at_quantile(0.9)),
            "p99_us": us(h.value_at_quantile(0.99)),
            "p999_us": us(h.value_at_quantile(0.999)),
            "max_us": us(h.max()),
            "mean_us": h.mean() / 1000.0,
            "per_second": self.per_second,
            "count": h.len(),
            "distribution": distribution(h),
            // This process's peak resident memory: the engine's and the generator's
            // when the engine runs in-process (the generator's alone is a few MiB).
            "process_peak_rss_kb": peak_rss_kb(),
            "logons_ms": self.logons.map(|d| d.as_secs_f64() * 1000.0),
        })
    }
}

/// The peak resident set size of this process (VmHWM), KiB; `None` where /proc does not
/// tell it.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
