//! When to refresh an expiring token: halfway through its remaining life (as kubelet's ECR credential
//! provider caches), with jitter, never sooner than 10 s and never later than 5 min before expiry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

const MIN_DELAY: Duration = Duration::from_secs(10);
const SAFETY_MARGIN: Duration = Duration::from_secs(300);

/// Delay from `now` until the refresh of a token expiring at `expiry`.
pub fn refresh_delay(now: DateTime<Utc>, expiry: DateTime<Utc>) -> Duration {
    let remaining = (expiry - now).to_std().unwrap_or_default();
    let jitter = rand::rng().random_range(0.9..1.1);
    let halfway = remaining.mul_f64(0.5 * jitter);
    let latest = remaining.saturating_sub(SAFETY_MARGIN);
    halfway.min(latest.max(MIN_DELAY)).max(MIN_DELAY)
}

#[cfg(test)]
mod tests {
    use chrono::Duration as ChronoDuration;

    use super::*;

    #[test]
    fn a_twelve_hour_token_is_refreshed_after_about_six_hours() {
        let now = Utc::now();
        let delay = refresh_delay(now, now + ChronoDuration::hours(12));
        assert!(
            delay >= Duration::from_secs(5 * 3600) && delay <= Duration::from_secs(7 * 3600),
            "{delay:?}"
        );
    }

    #[test]
    fn a_token_near_expiry_is_refreshed_soon_but_not_in_a_loop() {
        let now = Utc::now();
        assert_eq!(refresh_delay(now, now + ChronoDuration::seconds(5)), MIN_DELAY);
        assert_eq!(refresh_delay(now, now - ChronoDuration::hours(1)), MIN_DELAY);
    }

    #[test]
    fn a_short_token_is_refreshed_before_its_safety_margin() {
        let now = Utc::now();
        let delay = refresh_delay(now, now + ChronoDuration::minutes(8));
        assert!(delay <= Duration::from_secs(4 * 60 + 30), "{delay:?}");
    }
}
