//! Token buckets bounding how fast pods are deleted: one for the whole cluster and one per namespace.
//! A deletion needs a token from both; without one, the pod is looked at again when the emptier bucket
//! has refilled. Time is passed in, so the arithmetic is tested without sleeping.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: deletions allowed at once after a quiet period.
    pub burst: u32,
}

/// One token bucket.
#[derive(Debug, Clone)]
struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        self.updated = now;
    }

    /// Zero if a token is available, else how long until one is.
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.limit.per_second)
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= f64::from(self.limit.burst)
    }
}

/// The cluster-wide bucket and one bucket per namespace.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    cluster: TokenBucket,
    namespace_limit: RateLimit,
    namespaces: HashMap<String, TokenBucket>,
}

impl RateLimiter {
    /// Full buckets.
    pub(crate) fn new(cluster: RateLimit, per_namespace: RateLimit, now: Instant) -> Self {
        Self {
            cluster: TokenBucket::full(cluster, now),
            namespace_limit: per_namespace,
            namespaces: HashMap::new(),
        }
    }

    /// Takes a token for a deletion in `namespace`, or says how long to wait for one.
    pub(crate) fn try_acquire(&mut self, namespace: &str, now: Instant) -> Result<(), Duration> {
        let limit = self.namespace_limit;
        let bucket = self
            .namespaces
            .entry(namespace.to_string())
            .or_insert_with(|| TokenBucket::full(limit, now));
        let wait = bucket.wait(now).max(self.cluster.wait(now));
        if !wait.is_zero() {
            return Err(wait);
        }
        bucket.take();
        self.cluster.take();
        Ok(())
    }

    /// Drops namespace buckets that are full again (a new one would be the same), bounding memory.
    pub(crate) fn forget_idle(&mut self, now: Instant) {
        self.namespaces.retain(|_, bucket| !bucket.is_full(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    /// Deletions granted when asking once per namespace every 10 ms for `seconds`.
    fn granted(limiter: &mut RateLimiter, start: Instant, namespaces: &[&str], seconds: u64) -> Vec<usize> {
        let mut counts = vec![0; namespaces.len()];
        for step in 0..seconds * 100 {
            let now = start + Duration::from_millis(step * 10);
            for (i, ns) in namespaces.iter().enumerate() {
                if limiter.try_acquire(ns, now).is_ok() {
                    counts[i] += 1;
                }
            }
        }
        counts
    }

    #[test]
    fn a_namespace_gets_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit(100.0, 100), limit(1.0, 5), start);
        // 5 at once, then one per second for the remaining 9.99 s.
        assert_eq!(granted(&mut limiter, start, &["a"], 10), vec![14]);
    }

    #[test]
    fn the_cluster_bucket_bounds_every_namespace_together() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit(2.0, 4), limit(10.0, 10), start);
        let counts = granted(&mut limiter, start, &["a", "b", "c"], 10);
        let total: usize = counts.iter().sum();
        assert!(
            (22..=24).contains(&total),
            "4 + 2/s over 10 s, got {total} ({counts:?})"
        );
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit(0.5, 1), limit(10.0, 10), start);
        assert_eq!(limiter.try_acquire("a", start), Ok(()));
        let wait = limiter.try_acquire("a", start).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(limiter.try_acquire("a", start + wait), Ok(()));
    }

    #[test]
    fn idle_namespace_buckets_are_forgotten() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit(10.0, 10), limit(1.0, 2), start);
        limiter.try_acquire("a", start).expect("token");
        limiter.forget_idle(start);
        assert_eq!(limiter.namespaces.len(), 1);
        limiter.forget_idle(start + Duration::from_secs(1));
        assert!(limiter.namespaces.is_empty());
    }
}
