//! Exponential backoff with jitter for failed mints: 2 s, 4 s, 8 s … capped at 5 min.

use std::time::Duration;

use rand::Rng;

const FIRST: Duration = Duration::from_secs(2);
const MAX: Duration = Duration::from_secs(300);

/// Retry delays after consecutive failures.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Delay before the next attempt; grows with each call until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let base = FIRST
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)))
            .min(MAX);
        self.failures = self.failures.saturating_add(1);
        // ±20% jitter so that replicas and providers do not retry in lockstep.
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        let second = backoff.next_delay();
        assert!(
            first >= Duration::from_millis(1600) && first <= Duration::from_millis(2400),
            "{first:?}"
        );
        assert!(second > first);
        let late = (0..20).map(|_| backoff.next_delay()).last().expect("some");
        assert!(late <= MAX.mul_f64(1.2));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(2400));
    }
}
