//! Checks every provider makes the same way: timeouts, and token files its SDK reads on its own.

use std::time::Duration;

use crate::{ConfigProblems, Source};

/// A timeout given in whole seconds; zero would fail every request at once, so it is refused.
pub fn timeout_seconds(seconds: u64, source: Source, problems: &mut ConfigProblems) -> Option<Duration> {
    if seconds == 0 {
        problems.add(source, "must be at least 1");
        return None;
    }
    Some(Duration::from_secs(seconds))
}

/// A token file an SDK reads on its own (web identity, `AZURE_FEDERATED_TOKEN_FILE`): checked once here,
/// so that a path aimed at `/dev/zero` or a huge file fails at start-up with a clear message.
/// Returns whether it is usable (or not set).
pub fn check_token_file(variable: &'static str, problems: &mut ConfigProblems) -> bool {
    let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) else {
        return true;
    };
    match regcreds_core::read_bounded(std::path::Path::new(&path)) {
        Ok(_) => true,
        Err(error) => {
            problems.add(variable, error);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_timeout_names_its_variable() {
        let source = Source::new("REGCREDS_ECR_TIMEOUT_SECONDS", "ecr-timeout-seconds");
        let mut problems = ConfigProblems::default();
        assert_eq!(timeout_seconds(0, source, &mut problems), None);
        assert_eq!(
            problems.to_string(),
            "invalid configuration: REGCREDS_ECR_TIMEOUT_SECONDS (--ecr-timeout-seconds): must be at least 1\n"
        );
        assert_eq!(
            timeout_seconds(30, source, &mut problems),
            Some(Duration::from_secs(30))
        );
    }
}
