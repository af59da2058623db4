//! `regcreds check`: mint once per provider and prove every credential authenticates at its registry.
//!
//! ```text
//!  env / flags ──▶ providers + Checker ──(config problem: exit 2)
//!  each provider: mint() ──CredentialSet──▶ Checker::check (GET /v2/, challenge, token, HEAD probe)
//!                 ──▶ one line per registry: `ok` / `unauthorized` / `unreachable` / `error` + reason
//!  any mint or check failed ──▶ exit 1
//! ```
//!
//! Lines go to stdout, so the output can be grepped or diffed; nothing printed contains a password or
//! token (reasons name the step and the HTTP status only).

use std::process::ExitCode;

use regcreds_core::{CredentialSet, RegistryHost};
use regcreds_verify::{CheckArgs, CheckResult, Checker, Outcome, require_probes};

use crate::{
    commands::config_failure,
    config::{ConfigProblems, ConfiguredProvider, ProviderArgs},
};

/// Arguments of `regcreds check`.
#[derive(clap::Args, Debug)]
pub struct RegistryCheckArgs {
    /// Check only this provider (static, dockerconfigjson, dockerhub, ...).
    #[arg(long, env = "REGCREDS_CHECK_PROVIDER")]
    pub provider: Option<String>,
    /// How to check.
    #[command(flatten)]
    pub check: CheckArgs,
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Tally of one run, for the summary line and the exit code.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
}

/// Runs `regcreds check`.
pub async fn check(args: RegistryCheckArgs) -> ExitCode {
    let (providers, checker) = match validate(&args).await {
        Ok(valid) => valid,
        Err(problems) => return config_failure(&problems),
    };
    let mut tally = Tally::default();
    let mut checked: Vec<RegistryHost> = Vec::new();
    for configured in &providers {
        if let Some(credentials) = mint(configured, &mut tally).await {
            for result in checker.check(&credentials).await {
                print_result(configured.provider.name(), &result, &mut tally);
            }
            checked.extend(credentials.iter().map(|c| c.registry.clone()));
        }
    }
    for probe in checker.unmatched_probes(&checked) {
        eprintln!(
            "warning: no credential for the registry of probe image {probe}; check REGCREDS_CHECK_IMAGES"
        );
    }
    summarise(&tally)
}

async fn validate(args: &RegistryCheckArgs) -> Result<(Vec<ConfiguredProvider>, Checker), ConfigProblems> {
    let mut problems = ConfigProblems::default();
    let checker = args.check.build(&mut problems);
    let providers = select(args, &mut problems).await;
    if let Some(checker) = &checker {
        require_probes(&providers, checker, &mut problems);
    }
    match checker {
        Some(checker) if problems.is_empty() => Ok((providers, checker)),
        _ => Err(problems),
    }
}

/// All enabled providers, or the one named by `--provider`; problems are recorded.
async fn select(args: &RegistryCheckArgs, problems: &mut ConfigProblems) -> Vec<ConfiguredProvider> {
    const SETTING: &str = "REGCREDS_CHECK_PROVIDER (--provider)";
    if let Some(name) = &args.provider
        && !args.providers.knows(name, SETTING, problems)
    {
        return Vec::new();
    }
    let enabled = match args.providers.build().await {
        Ok(enabled) => enabled,
        Err(provider_problems) => {
            problems.merge(provider_problems);
            return Vec::new();
        }
    };
    let wanted = |p: &ConfiguredProvider| args.provider.as_deref().is_none_or(|n| p.provider.name() == n);
    let selected: Vec<_> = enabled.into_iter().filter(wanted).collect();
    if selected.is_empty() {
        let what = args
            .provider
            .as_deref()
            .map_or("no provider is".to_string(), |n| format!("provider {n:?} is not"));
        problems.add(
            "providers",
            format!("{what} configured; see `regcreds config check`"),
        );
    }
    selected
}

/// Mints once; a failure or an empty result is printed and counted.
async fn mint(configured: &ConfiguredProvider, tally: &mut Tally) -> Option<CredentialSet> {
    let name = configured.provider.name();
    match configured.provider.mint().await {
        Ok(credentials) if credentials.is_empty() => {
            println!("{:<13} {name:<17} minted no credentials", "error");
            tally.failed += 1;
            None
        }
        Ok(credentials) => Some(credentials),
        Err(error) => {
            println!("{:<13} {name:<17} mint failed: {error}", "error");
            tally.failed += 1;
            None
        }
    }
}

/// `ok            static            127.0.0.1:5443  via Basic auth, may pull demo/hello:v1 (12 ms)`
fn print_result(provider: &str, result: &CheckResult, tally: &mut Tally) {
    let detail = match &result.outcome {
        Outcome::Ok => {
            tally.ok += 1;
            ok_detail(result)
        }
        failed => {
            tally.failed += 1;
            failed.reason().unwrap_or_default().to_string()
        }
    };
    println!(
        "{:<13} {provider:<17} {}  {detail} ({} ms)",
        result.outcome.label(),
        result.registry,
        result.elapsed.as_millis()
    );
}

fn ok_detail(result: &CheckResult) -> String {
    let mut detail = match result.auth {
        Some(scheme) => format!("via {scheme}"),
        None => "anonymous access allowed; the credential was not needed".to_string(),
    };
    if let Some(probe) = &result.probe {
        detail += &format!(", may pull {probe}");
    }
    detail
}

fn summarise(tally: &Tally) -> ExitCode {
    let total = tally.ok + tally.failed;
    if tally.failed == 0 {
        println!("ok: {total} of {total} credentials authenticate");
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED: {} of {total} checks failed; pulls with those credentials will fail",
            tally.failed
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use regcreds_verify::{AuthScheme, ImageRef};

    use super::*;

    fn result(outcome: Outcome, auth: Option<AuthScheme>, probe: Option<&str>) -> CheckResult {
        CheckResult {
            registry: RegistryHost::parse("127.0.0.1:5443").expect("valid"),
            outcome,
            auth,
            probe: probe.map(|p| ImageRef::parse(p).expect("valid")),
            elapsed: Duration::from_millis(3),
        }
    }

    #[test]
    fn ok_names_the_scheme_and_the_probe() {
        let ok = result(Outcome::Ok, Some(AuthScheme::Basic), Some("demo/hello:v1"));
        assert_eq!(ok_detail(&ok), "via Basic auth, may pull demo/hello:v1");
        let anonymous = result(Outcome::Ok, None, None);
        assert!(ok_detail(&anonymous).starts_with("anonymous access allowed"));
    }

    #[test]
    fn failures_are_counted_and_fail_the_run() {
        let mut tally = Tally::default();
        let refused = Outcome::Unauthorized {
            reason: "GET /v2/ with Basic auth answered 401".into(),
            code: None,
        };
        print_result(
            "static",
            &result(Outcome::Ok, Some(AuthScheme::Basic), None),
            &mut tally,
        );
        print_result("static", &result(refused, None, None), &mut tally);
        assert_eq!((tally.ok, tally.failed), (1, 1));
        assert_eq!(summarise(&tally), ExitCode::FAILURE);
        assert_eq!(summarise(&Tally { ok: 2, failed: 0 }), ExitCode::SUCCESS);
    }
}
