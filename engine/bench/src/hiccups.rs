//! The platform's own stalls, measured the way jHiccup does: one thread per core spins
//! reading the monotonic clock, and every gap between two consecutive readings is time
//! the thread did not run (an interrupt, another task, the hypervisor). Whatever the
//! engine under test does, a round trip that overlaps such a gap takes at least its
//! length, so the gaps are the floor of the open-loop tail on this machine.

use crate::report::histogram;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Gaps shorter than this are the clock read itself, not a stall.
const NOISE_NS: u64 = 2_000;

/// What one core's spinning thread saw.
#[derive(Debug, Clone)]
pub struct CoreHiccups {
    /// The core the thread was pinned to.
    pub core: usize,
    /// How long it spun.
    pub span: Duration,
    /// Every gap of at least 2 µs, in nanoseconds.
    pub gaps: Histogram<u64>,
    /// Sum of the gaps of at least 10 µs, in nanoseconds.
    pub lost_ns: u64,
}

impl CoreHiccups {
    /// The gaps of at least `ns` nanoseconds.
    pub fn count_at_least(&self, ns: u64) -> u64 {
        self.gaps
            .iter_recorded()
            .filter(|v| v.value_iterated_to() >= ns)
            .map(|v| v.count_at_value())
            .sum()
    }

    /// Share of the time lost to gaps of at least 10 µs, in percent.
    pub fn lost_percent(&self) -> f64 {
        self.lost_ns as f64 / self.span.as_nanos().max(1) as f64 * 100.0
    }

    /// As JSON (durations in µs).
    pub fn json(&self) -> serde_json::Value {
        let span = self.span.as_secs_f64();
        serde_json::json!({
            "core": self.core,
            "seconds": span,
            "lost_percent": self.lost_percent(),
            "per_second_over_100us": self.count_at_least(100_000) as f64 / span,
            "per_second_over_1ms": self.count_at_least(1_000_000) as f64 / span,
            "max_us": self.gaps.max() as f64 / 1000.0,
        })
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        let span = self.span.as_secs_f64();
        format!(
            "core {}: {:.2} % of {:.1} s lost to gaps ≥ 10 µs; {:.1}/s over 100 µs, {:.2}/s over 1 ms; longest {:.0} µs",
            self.core,
            self.lost_percent(),
            span,
            self.count_at_least(100_000) as f64 / span,
            self.count_at_least(1_000_000) as f64 / span,
            self.gaps.max() as f64 / 1000.0
        )
    }
}

/// Spins on one core for `span`.
fn spin(core: usize, span: Duration) -> CoreHiccups {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
    let mut gaps = histogram();
    let mut lost_ns = 0;
    let start = Instant::now();
    let mut last = start;
    loop {
        let now = Instant::now();
        let gap = now.duration_since(last).as_nanos() as u64;
        last = now;
        if gap >= NOISE_NS {
            let _ = gaps.record(gap);
            if gap >= 10_000 {
                lost_ns += gap;
            }
        }
        if now.duration_since(start) >= span {
            return CoreHiccups {
                core,
                span: now.duration_since(start),
                gaps,
                lost_ns,
            };
        }
    }
}

/// Spins on every core of `cores` at once for `span` (all cores busy, as in a benchmark
/// where the load generator and the engine each hold one).
/// A core this machine does not have is refused.
pub fn measure(cores: &[usize], span: Duration) -> std::io::Result<Vec<CoreHiccups>> {
    crate::check_cores(cores, "--cores")?;
    let threads: Vec<_> = cores
        .iter()
        .map(|&core| {
            std::thread::Builder::new()
                .name(format!("hiccups-{core}"))
                .spawn(move || spin(core, span))
        })
        .collect::<Result<_, _>>()?;
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| std::io::Error::other("a hiccup thread panicked"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_the_machine_lacks_is_refused() {
        let e = measure(&[usize::MAX], Duration::from_millis(1)).expect_err("no such core");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("--cores names core"), "{e}");
    }

    #[test]
    fn two_spinners_on_one_core_see_each_others_slices_as_gaps() {
        // Two spinners on core 0 take turns: each sees the other's time slices as gaps.
        let both = measure(&[0, 0], Duration::from_millis(300)).expect("threads start");
        assert_eq!(both.len(), 2);
        for c in &both {
            assert!(
                c.lost_percent() > 20.0,
                "sharing a core, each loses much of its time: {}",
                c.line()
            );
            assert!(c.gaps.max() >= 100_000, "{}", c.line());
        }
    }
}
