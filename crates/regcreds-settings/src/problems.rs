//! Collected configuration problems: reported together, one line each, before anything touches a cluster.

use std::fmt;

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable (and flag) the problem is about, e.g. `REGCREDS_STATIC_SERVER (--static-server)`.
    pub setting: String,
    /// What is wrong, never including a secret value.
    pub problem: String,
}

/// All problems found in the configuration. Non-empty means exit code 2.
#[derive(Debug, Default)]
pub struct ConfigProblems(Vec<ConfigProblem>);

impl ConfigProblems {
    /// Records a problem with `setting`.
    pub fn add(&mut self, setting: impl fmt::Display, problem: impl fmt::Display) {
        self.0.push(ConfigProblem {
            setting: setting.to_string(),
            problem: problem.to_string(),
        });
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the problems of another check.
    pub fn merge(&mut self, other: ConfigProblems) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` if no problem was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            writeln!(
                f,
                "invalid configuration: {}: {}",
                problem.setting, problem.problem
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}
