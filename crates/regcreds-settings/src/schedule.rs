//! Refresh schedules: 6-field cron expressions (with seconds), as tokio-cron-scheduler parses them.

use std::fmt;

use croner::{Cron, parser::CronParser};

use crate::{ConfigProblems, Source};

/// A validated cron schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    expression: String,
}

impl Schedule {
    /// Parses `expression` with the same parser settings tokio-cron-scheduler uses, recording a problem
    /// against `source` if it is invalid.
    pub fn parse(expression: &str, source: Source, problems: &mut ConfigProblems) -> Option<Self> {
        match parse_cron(expression) {
            Ok(_) => Some(Self {
                expression: expression.trim().to_string(),
            }),
            Err(reason) => {
                problems.add(source, format!("invalid cron expression {expression:?}: {reason} (6 fields with seconds, e.g. \"0 0 */6 * * *\")"));
                None
            }
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The longest gap between two of its next few ticks: how long a healthy provider may go without a
    /// mint (`regcreds_provider_refresh_period_seconds`, which the mint-failing alert compares against).
    pub fn period(&self) -> Option<std::time::Duration> {
        let cron = parse_cron(&self.expression).ok()?;
        let mut previous = cron.find_next_occurrence(&chrono::Utc::now(), false).ok()?;
        let mut longest = chrono::TimeDelta::zero();
        for _ in 0..PERIOD_SAMPLES {
            let Ok(next) = cron.find_next_occurrence(&previous, false) else {
                break;
            };
            longest = longest.max(next - previous);
            previous = next;
        }
        longest.to_std().ok().filter(|d| !d.is_zero())
    }
}

/// Ticks looked at by [`Schedule::period`]: a week of hourly office-hours ticks.
const PERIOD_SAMPLES: usize = 64;

fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "has {fields} fields, expected 6 (sec min hour day-of-month month day-of-week)"
        ));
    }
    let cron = CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression.trim())
        .map_err(|e| e.to_string())?;
    // NB: a valid expression may still match no date at all (`0 0 0 30 2 *`, February 30th): the
    // provider would then never refresh on schedule, silently.
    cron.find_next_occurrence(&chrono::Utc::now(), false)
        .map_err(|_| "never fires: no date matches it".to_string())?;
    Ok(cron)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_that_never_fires_is_rejected_and_a_rare_one_is_not() {
        let mut problems = ConfigProblems::default();
        let source = Source::new("REGCREDS_STATIC_SCHEDULE", "static-schedule");
        assert!(Schedule::parse("0 0 0 30 2 *", source, &mut problems).is_none());
        assert!(problems.to_string().contains("never fires"), "{problems}");
        let mut problems = ConfigProblems::default();
        assert!(
            Schedule::parse("0 0 0 29 2 *", source, &mut problems).is_some(),
            "{problems}"
        );
    }

    #[test]
    fn the_period_is_the_longest_gap_between_ticks() {
        let period = |expression: &str| {
            let mut problems = ConfigProblems::default();
            let source = Source::new("REGCREDS_STATIC_SCHEDULE", "static-schedule");
            Schedule::parse(expression, source, &mut problems)
                .and_then(|s| s.period())
                .map(|d| d.as_secs())
        };
        assert_eq!(period("*/10 * * * * *"), Some(10));
        assert_eq!(period("0 */30 * * * *"), Some(1800));
        assert_eq!(period("0 0 */6 * * *"), Some(6 * 3600));
        // Office hours: the weekend is the longest gap.
        assert_eq!(period("0 0 9-17 * * MON-FRI"), Some((2 * 24 + 16) * 3600));
    }
}
