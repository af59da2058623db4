//! Values as imagepullsecret-patcher (Go) parsed them, so its variables keep their meaning here:
//! `strconv.ParseBool` and `time.ParseDuration`.

use std::time::Duration;

use crate::{ConfigProblems, Source};

/// Parses a Go duration (`time.ParseDuration`, as imagepullsecret-patcher read `CONFIG_LOOP_DURATION`):
/// a sequence of decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, like `1m30s` or `1.5h`.
/// Negative durations are not accepted.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim().strip_prefix('+').unwrap_or(value.trim());
    match rest {
        "" => return None,
        "0" => return Some(Duration::ZERO),
        _ => {}
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// Parses booleans the way imagepullsecret-patcher (Go's strconv.ParseBool) did.
pub fn parse_go_bool(value: Option<&str>, source: Source, problems: &mut ConfigProblems) -> Option<bool> {
    match value? {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        other => {
            problems.add(source, format!("{other:?} is not a boolean (true or false)"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        for (text, seconds) in [
            ("10s", 10.0),
            ("1m30s", 90.0),
            ("1.5h", 5400.0),
            ("2h45m", 9900.0),
            ("300ms", 0.3),
            ("0", 0.0),
        ] {
            assert_eq!(
                parse_go_duration(text),
                Some(Duration::from_secs_f64(seconds)),
                "{text}"
            );
        }
        for bad in ["", "10", "s", "1x", "-5s", "1m30", "ten seconds"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
