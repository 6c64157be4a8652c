//! The maximum sustainable throughput: the highest open-loop rate at which the
//! coordinated-omission-corrected p99 stays below twice the unloaded p99 (and the rate is
//! actually achieved). The unloaded p99 is measured first at a low rate; then the rate
//! doubles from `start_rate` until a step fails, and the interval between the last
//! passing and the first failing rate is bisected.
//!
//! Every rate, the unloaded one included, is run `trials` times and judged by the run
//! with the median p99. On a shared or virtual machine any one second of load can hold a
//! stall of the whole guest lasting milliseconds (`fix-bench hiccups` measures them);
//! one such stall in one run would otherwise decide the search.

use crate::report::Row;

/// How to search.
#[derive(Debug, Clone)]
pub struct Search {
    /// The unloaded rate (orders per second).
    pub base_rate: u32,
    /// The first loaded rate tried.
    pub start_rate: u32,
    /// Seconds of load per step.
    pub seconds: f64,
    /// Bisection steps after the first failing rate.
    pub steps: u32,
    /// The highest rate tried: the search stops there even if it passes.
    pub ceiling: u32,
    /// Runs per rate; the one with the median p99 counts.
    pub trials: u32,
}

/// One step of the search.
#[derive(Debug, Clone)]
pub struct Step {
    /// Orders per second offered.
    pub rate: u32,
    /// Corrected p99 of the median trial, µs.
    pub p99_us: f64,
    /// Corrected p99 of every trial, µs.
    pub trial_p99_us: Vec<f64>,
    /// Orders per second answered.
    pub achieved: f64,
    /// Whether it met the limit.
    pub passed: bool,
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Corrected p99 at the base rate, µs.
    pub base_p99_us: f64,
    /// The highest passing rate (0 when even `start_rate` failed).
    pub rate: u32,
    /// The row measured at that rate (the base run's when none passed).
    pub row: Row,
    /// Every step, in order.
    pub steps: Vec<Step>,
}

fn p99_us(row: &Row) -> f64 {
    row.histogram.value_at_quantile(0.99) as f64 / 1000.0
}

impl Search {
    fn messages(&self, rate: u32) -> u64 {
        ((f64::from(rate) * self.seconds) as u64).max(1_000)
    }

    /// Loads the acceptor `trials` times at `rate`; returns the run with the median p99
    /// and every run's p99.
    fn median_trial(
        &self,
        rate: u32,
        measure: &mut impl FnMut(u32, u64) -> std::io::Result<Row>,
    ) -> std::io::Result<(Row, Vec<f64>)> {
        let mut rows = Vec::new();
        for _ in 0..self.trials.max(1) {
            rows.push(measure(rate, self.messages(rate))?);
        }
        let p99s = rows.iter().map(p99_us).collect();
        rows.sort_by(|a, b| p99_us(a).total_cmp(&p99_us(b)));
        let median = rows.swap_remove(rows.len() / 2);
        Ok((median, p99s))
    }

    /// Runs the search; `measure(rate, messages)` loads the acceptor once.
    pub fn run(
        &self,
        mut measure: impl FnMut(u32, u64) -> std::io::Result<Row>,
    ) -> std::io::Result<Found> {
        let (base, _) = self.median_trial(self.base_rate, &mut measure)?;
        let base_p99_us = p99_us(&base);
        let limit = 2.0 * base_p99_us;
        let mut steps = Vec::new();
        let mut try_rate = |rate: u32, steps: &mut Vec<Step>| -> std::io::Result<(bool, Row)> {
            let (row, trial_p99_us) = self.median_trial(rate, &mut measure)?;
            let p99 = p99_us(&row);
            let passed = p99 < limit && row.per_second >= 0.95 * f64::from(rate);
            steps.push(Step {
                rate,
                p99_us: p99,
                trial_p99_us,
                achieved: row.per_second,
                passed,
            });
            Ok((passed, row))
        };
        let mut good: Option<(u32, Row)> = None;
        let mut bad = None;
        let mut rate = self.start_rate.max(1);
        while bad.is_none() {
            let (passed, row) = try_rate(rate, &mut steps)?;
            if passed {
                good = Some((rate, row));
                if rate >= self.ceiling {
                    break;
                }
                rate = rate.saturating_mul(2).min(self.ceiling);
            } else {
                bad = Some(rate);
            }
        }
        if let Some(mut hi) = bad {
            let mut lo = good.as_ref().map_or(0, |g| g.0);
            for _ in 0..self.steps {
                let mid = lo + (hi - lo) / 2;
                if mid <= lo || mid >= hi {
                    break;
                }
                let (passed, row) = try_rate(mid, &mut steps)?;
                if passed {
                    lo = mid;
                    good = Some((mid, row));
                } else {
                    hi = mid;
                }
            }
        }
        let (rate, row) = good.unwrap_or((0, base));
        Ok(Found {
            base_p99_us,
            rate,
            row,
            steps,
        })
    }
}

impl Found {
    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "max sustainable rate {} orders/s (p99 {:.1} µs ≤ 2 × unloaded p99 {:.1} µs); {} steps",
            self.rate,
            p99_us(&self.row),
            self.base_p99_us,
            self.steps.len()
        )
    }

    /// As JSON: the row at the found rate plus the search.
    pub fn json(&self) -> serde_json::Value {
        let mut v = self.row.json();
        v["max_rate"] = self.rate.into();
        v["base_p99_us"] = self.base_p99_us.into();
        v["steps"] = self
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "rate": s.rate, "p99_us": s.p99_us, "trial_p99_us": s.trial_p99_us,
                    "achieved": s.achieved, "passed": s.passed,
                })
            })
            .collect();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram;

    /// A fake acceptor whose p99 is 10 µs up to `knee` orders/s and 1 ms beyond.
    fn acceptor(knee: u32) -> impl FnMut(u32, u64) -> std::io::Result<Row> {
        move |rate, _| {
            let mut h = histogram();
            let v = if rate <= knee { 10_000 } else { 1_000_000 };
            for _ in 0..100 {
                h.record(v).map_err(std::io::Error::other)?;
            }
            Ok(Row {
                name: format!("{rate}"),
                histogram: h,
                per_second: f64::from(rate),
                logons: None,
            })
        }
    }

    /// A search from 10k/s in 1-s runs, unloaded at 1k/s, with up to 8 steps.
    fn search(ceiling: u32, trials: u32) -> Search {
        Search {
            base_rate: 1_000,
            start_rate: 10_000,
            seconds: 1.0,
            steps: 8,
            ceiling,
            trials,
        }
    }

    #[test]
    fn doubles_then_bisects_to_the_knee() {
        let s = search(1_000_000, 1);
        let found = s.run(acceptor(57_000)).expect("fake runs");
        assert!(
            found.rate <= 57_000 && found.rate > 55_000,
            "{}",
            found.rate
        );
        let rates: Vec<u32> = found.steps.iter().map(|s| s.rate).collect();
        assert_eq!(&rates[..4], &[10_000, 20_000, 40_000, 80_000], "{rates:?}");
        assert!(found.steps[3].passed.eq(&false));
    }

    #[test]
    fn stops_at_the_ceiling() {
        let s = search(30_000, 1);
        let found = s.run(acceptor(1_000_000)).expect("fake runs");
        assert_eq!(found.rate, 30_000);
        let rates: Vec<u32> = found.steps.iter().map(|s| s.rate).collect();
        assert_eq!(rates, [10_000, 20_000, 30_000]);
    }

    #[test]
    fn reports_zero_when_even_the_first_loaded_rate_fails() {
        let s = Search {
            base_rate: 100,
            steps: 3,
            ..search(1_000_000, 1)
        };
        let found = s.run(acceptor(1_000)).expect("fake runs");
        assert_eq!(found.rate, 0, "{:?}", found.steps);
        assert_eq!(
            found.steps.len(),
            4,
            "10k, then 5k, 2.5k, 1.25k: {:?}",
            found.steps
        );
    }

    #[test]
    fn one_stalled_trial_does_not_decide_a_step() {
        // Every third run at every rate (the unloaded one too) hits a 5 ms stall; the
        // knee is at 57k. With three trials per rate the median run is a clean one.
        let mut runs = 0u32;
        let mut clean = acceptor(57_000);
        let stalled = move |rate: u32, messages: u64| {
            runs += 1;
            let mut row = clean(rate, messages)?;
            if runs.is_multiple_of(3) {
                row.histogram
                    .record_n(5_000_000, 10)
                    .map_err(std::io::Error::other)?;
            }
            Ok(row)
        };
        let s = search(1_000_000, 3);
        let found = s.run(stalled).expect("fake runs");
        assert!(
            (10.0..10.1).contains(&found.base_p99_us),
            "{}",
            found.base_p99_us
        );
        assert!(
            found.rate > 55_000 && found.rate <= 57_000,
            "{:?}",
            found.steps
        );
        assert!(found.steps.iter().all(|s| s.trial_p99_us.len() == 3));
        assert!(
            found
                .steps
                .iter()
                .any(|s| s.trial_p99_us.iter().any(|&p| p > 1_000.0) && s.passed),
            "some passing step had a stalled trial: {:?}",
            found.steps
        );
    }
}
