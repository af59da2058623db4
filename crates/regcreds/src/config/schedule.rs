//! Refresh schedules: 6-field cron expressions (with seconds), as tokio-cron-scheduler parses them.

use std::fmt;

use croner::{Cron, parser::CronParser};

use super::{ConfigProblems, setting::Source};

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
}

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
}
