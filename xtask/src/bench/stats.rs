//! Percentiles and human-readable numbers for the report.

use std::time::Duration;

/// p50, p90 and p99 of a set of samples (nearest-rank), the largest, and how many there were.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub count: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples`; all zero when there are none.
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Self {
            p50: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            p99: nearest_rank(&sorted, 99),
            max: sorted.last().copied().unwrap_or_default(),
            count: sorted.len(),
        }
    }

    /// `12 ms / 20 ms / 31 ms`.
    pub fn display(&self) -> String {
        format!("{} / {} / {}", dur(self.p50), dur(self.p90), dur(self.p99))
    }
}

/// The smallest sample with at least `pct` % of the samples at or below it.
fn nearest_rank(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `842 ms` below ten seconds (where milliseconds matter), `12.3 s` above.
pub fn dur(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `2.4 ms` below 100 ms (where a tenth of a millisecond matters: one process start), else as [`dur`].
pub fn fine(d: Duration) -> String {
    if d < Duration::from_millis(100) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        dur(d)
    }
}

/// `a / b` with two decimals, or `n/a` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples = ms(&(1..=100).rev().collect::<Vec<_>>());
        let p = Percentiles::of(&samples);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (ms(&[50])[0], ms(&[90])[0], ms(&[99])[0], ms(&[100])[0], 100)
        );
        let one = Percentiles::of(&ms(&[7]));
        assert_eq!(
            (one.p50, one.p99, one.max),
            (ms(&[7])[0], ms(&[7])[0], ms(&[7])[0])
        );
        assert_eq!(Percentiles::of(&[]).p99, Duration::ZERO);
        assert_eq!(Percentiles::of(&[]).max, Duration::ZERO);
    }

    #[test]
    fn fine_durations_keep_a_tenth_of_a_millisecond_below_100_ms() {
        assert_eq!(fine(Duration::from_micros(2_449)), "2.4 ms");
        assert_eq!(fine(Duration::from_micros(99_949)), "99.9 ms");
        assert_eq!(fine(Duration::from_millis(100)), "100 ms");
    }

    #[test]
    fn durations_switch_to_seconds_at_ten() {
        assert_eq!(dur(Duration::from_millis(9_999)), "9999 ms");
        assert_eq!(dur(Duration::from_millis(12_345)), "12.3 s");
    }
}
