//! Settings of the `ecr` provider (AWS ECR, private and Public). AWS credentials come from the standard
//! chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, IRSA web identity, EKS Pod Identity, profiles).
//! Compatible with upmc registry-creds' `awsregion`, `awsaccount` and `aws_assume_role`.

use std::sync::Arc;

use async_trait::async_trait;
use clap::Args;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source,
    check_token_file, first_set, non_blank, pick, split_list, timeout_seconds, unset_name, uses_compat,
};

use crate::{AssumeRole, DEFAULT_ROLE_ANNOTATION, DEFAULT_SECRET, EcrProvider, EcrSettings, Endpoint, Error};

const REGIONS: Source = Source::new("REGCREDS_ECR_REGIONS", "ecr-regions");
const COMPAT_REGION: Source = Source::compat("awsregion", "aws-region");
const ACCOUNTS: Source = Source::new("REGCREDS_ECR_ACCOUNTS", "ecr-accounts");
const COMPAT_ACCOUNT: Source = Source::compat("awsaccount", "aws-account");
const ROLE: Source = Source::new("REGCREDS_ECR_ASSUME_ROLE", "ecr-assume-role");
const COMPAT_ROLE: Source = Source::compat("aws_assume_role", "aws_assume_role");
const PUBLIC: Source = Source::new("REGCREDS_ECR_PUBLIC", "ecr-public");
const ENDPOINT: Source = Source::new("REGCREDS_ECR_ENDPOINT_URL", "ecr-endpoint-url");
const COMPAT_ENDPOINT: Source = Source::compat("AWS_ENDPOINT_URL_ECR", "aws-endpoint-url-ecr");
const PUBLIC_ENDPOINT: Source = Source::new("REGCREDS_ECR_PUBLIC_ENDPOINT_URL", "ecr-public-endpoint-url");
/// Read by the AWS SDK (IRSA); regcreds only checks its size at start-up.
const WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
const SCHEDULE: Source = Source::new("REGCREDS_ECR_SCHEDULE", "ecr-schedule");
const TIMEOUT: Source = Source::new("REGCREDS_ECR_TIMEOUT_SECONDS", "ecr-timeout-seconds");
const SECRET_NAME: Source = Source::new("REGCREDS_ECR_SECRET_NAME", "ecr-secret-name");

/// `ecr` provider: one GetAuthorizationToken per region (12-hour tokens), refreshed well before expiry.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: ecr (AWS; upmc awsregion/awsaccount/aws_assume_role accepted)")]
pub struct EcrArgs {
    /// Regions to mint tokens in, comma-separated (e.g. `eu-west-1,us-east-1`).
    #[arg(long = "ecr-regions", env = "REGCREDS_ECR_REGIONS")]
    ecr_regions: Option<String>,
    #[arg(long = "aws-region", env = "awsregion", hide = true)]
    ecr_compat_region: Option<String>,
    /// Account IDs whose registries get an entry (sent as registryIds); empty = the caller's account.
    #[arg(long = "ecr-accounts", env = "REGCREDS_ECR_ACCOUNTS")]
    ecr_accounts: Option<String>,
    #[arg(long = "aws-account", env = "awsaccount", hide = true)]
    ecr_compat_account: Option<String>,
    /// IAM role ARN to assume before minting.
    #[arg(long = "ecr-assume-role", env = "REGCREDS_ECR_ASSUME_ROLE")]
    ecr_assume_role: Option<String>,
    #[arg(long = "aws_assume_role", env = "aws_assume_role", hide = true)]
    ecr_compat_role: Option<String>,
    /// ExternalId for the assumed role, if its trust policy requires one.
    #[arg(
        long = "ecr-assume-role-external-id",
        env = "REGCREDS_ECR_ASSUME_ROLE_EXTERNAL_ID"
    )]
    ecr_external_id: Option<String>,
    /// Also mint an ECR Public token (`public.ecr.aws`).
    #[arg(long = "ecr-public", env = "REGCREDS_ECR_PUBLIC")]
    ecr_public: bool,
    /// ECR API endpoint override for every region (VPC endpoints; tests). `AWS_ENDPOINT_URL_ECR` works too.
    #[arg(long = "ecr-endpoint-url", env = "REGCREDS_ECR_ENDPOINT_URL")]
    ecr_endpoint_url: Option<String>,
    #[arg(long = "aws-endpoint-url-ecr", env = "AWS_ENDPOINT_URL_ECR", hide = true)]
    ecr_compat_endpoint_url: Option<String>,
    /// ECR Public API endpoint override.
    #[arg(long = "ecr-public-endpoint-url", env = "REGCREDS_ECR_PUBLIC_ENDPOINT_URL")]
    ecr_public_endpoint_url: Option<String>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "ecr-secret-name", env = "REGCREDS_ECR_SECRET_NAME", default_value = DEFAULT_SECRET, alias = "aws-secret-name")]
    ecr_secret_name: String,
    /// Refresh schedule (6-field cron); tokens are also refreshed halfway through their 12-hour life.
    #[arg(
        long = "ecr-schedule",
        env = "REGCREDS_ECR_SCHEDULE",
        default_value = "0 0 */6 * * *"
    )]
    ecr_schedule: String,
    /// Upper bound for one mint including retries, in seconds.
    #[arg(
        long = "ecr-timeout-seconds",
        env = "REGCREDS_ECR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    ecr_timeout_seconds: u64,
    /// Kubelet plugin, ServiceAccount token mode: the ServiceAccount annotation holding the IAM role each
    /// pod pulls with (assumed with the pod's own token).
    #[arg(long = "ecr-role-annotation", env = "REGCREDS_ECR_ROLE_ANNOTATION", default_value = DEFAULT_ROLE_ANNOTATION)]
    ecr_role_annotation: String,
}

#[async_trait]
impl ProviderConfig for EcrArgs {
    fn name(&self) -> &'static str {
        "ecr"
    }

    /// Builds the provider if a region, account, role or ECR Public is configured.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let regions = pick(&[
            (REGIONS, &self.ecr_regions),
            (COMPAT_REGION, &self.ecr_compat_region),
        ]);
        let accounts = pick(&[
            (ACCOUNTS, &self.ecr_accounts),
            (COMPAT_ACCOUNT, &self.ecr_compat_account),
        ]);
        let role = pick(&[
            (ROLE, &self.ecr_assume_role),
            (COMPAT_ROLE, &self.ecr_compat_role),
        ]);
        let set = [
            (regions.as_ref().map_or(REGIONS, |r| r.1), regions.is_some()),
            (accounts.as_ref().map_or(ACCOUNTS, |a| a.1), accounts.is_some()),
            (role.as_ref().map_or(ROLE, |r| r.1), role.is_some()),
            (PUBLIC, self.ecr_public),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {} or {}", REGIONS.env, COMPAT_REGION.env));
        };
        let schedule = Schedule::parse(&self.ecr_schedule, SCHEDULE, problems);
        let timeout = timeout_seconds(self.ecr_timeout_seconds, TIMEOUT, problems);
        let secret_name = SecretName::read(&self.ecr_secret_name, SECRET_NAME.env, problems);
        if !check_token_file(WEB_IDENTITY_TOKEN_FILE, problems) {
            return Enablement::Invalid;
        }
        let region_list = regions
            .as_ref()
            .map(|(r, _)| split_list(r))
            .unwrap_or_else(ambient_region);
        if region_list.is_empty() && !self.ecr_public {
            let setting = match &regions {
                Some((_, source)) => source.to_string(),
                None => unset_name(&[REGIONS, COMPAT_REGION], uses_compat(&set)),
            };
            problems.add(
                setting,
                "is required: no region is configured (and AWS_REGION is not set)",
            );
            return Enablement::Invalid;
        }
        let endpoint = pick(&[
            (ENDPOINT, &self.ecr_endpoint_url),
            (COMPAT_ENDPOINT, &self.ecr_compat_endpoint_url),
        ]);
        let (Some(schedule), Some(timeout), Some(secret_name)) = (schedule, timeout, secret_name) else {
            return Enablement::Invalid;
        };
        let settings = EcrSettings {
            secret_name: secret_name.into(),
            regions: region_list,
            registry_ids: accounts.as_ref().map(|(a, _)| split_list(a)).unwrap_or_default(),
            assume_role: role
                .as_ref()
                .filter(|(r, _)| !r.trim().is_empty())
                .map(|(arn, _)| AssumeRole {
                    external_id: non_blank(&self.ecr_external_id),
                    ..AssumeRole::new(arn.trim())
                }),
            public: self.ecr_public,
            endpoint_url: endpoint.as_ref().map(|(url, _)| url.clone()),
            public_endpoint_url: non_blank(&self.ecr_public_endpoint_url),
            timeout,
            role_annotation: self.ecr_role_annotation.trim().to_string(),
        };
        match EcrProvider::new(settings).await {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set"),
            )),
            Err(error) => {
                let blamed = match &error {
                    Error::InvalidRegion(_) | Error::NothingToMint => regions.map_or(REGIONS, |r| r.1),
                    Error::InvalidRegistryId(_) | Error::TooManyRegistryIds(_) => {
                        accounts.map_or(ACCOUNTS, |a| a.1)
                    }
                    Error::InvalidRoleArn(_) | Error::InvalidSessionName(_) => role.map_or(ROLE, |r| r.1),
                    Error::InvalidEndpointUrl {
                        setting: Endpoint::Private,
                        ..
                    } => endpoint.map_or(ENDPOINT, |e| e.1),
                    Error::InvalidEndpointUrl {
                        setting: Endpoint::Public,
                        ..
                    } => PUBLIC_ENDPOINT,
                };
                problems.add(blamed, error);
                Enablement::Invalid
            }
        }
    }
}

/// The SDK's own region variables, used when no ECR region is configured.
fn ambient_region() -> Vec<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .map(|r| split_list(&r))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use regcreds_settings::{ConfigProblems, Enablement, ProviderConfig};

    use super::EcrArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ecr: EcrArgs,
    }

    async fn problems_of(argv: &[&str]) -> String {
        let cli = Cli::try_parse_from([&["regcreds"], argv].concat()).expect("arguments parse");
        let mut problems = ConfigProblems::default();
        let enablement = cli.ecr.build(&mut problems).await;
        assert!(matches!(enablement, Enablement::Invalid), "{problems}");
        problems.to_string()
    }

    #[tokio::test]
    async fn a_bad_secret_name_is_blamed_on_the_secret_name_not_the_schedule() {
        let problems = problems_of(&["--ecr-regions", "eu-west-1", "--ecr-secret-name", "Bad_Name"]).await;
        assert_eq!(
            problems,
            "invalid configuration: REGCREDS_ECR_SECRET_NAME: \"Bad_Name\" is not a valid Secret name \
             (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most \
             253 characters)\n"
        );
    }

    #[tokio::test]
    async fn every_problem_is_reported_once_against_the_variable_the_user_set() {
        let problems = problems_of(&[
            "--aws-region",
            "eu-west",
            "--ecr-timeout-seconds",
            "0",
            "--ecr-public-endpoint-url",
            "ftp://x",
        ])
        .await;
        assert_eq!(
            problems.lines().collect::<Vec<_>>(),
            [
                "invalid configuration: REGCREDS_ECR_TIMEOUT_SECONDS (--ecr-timeout-seconds): must be at least 1",
            ],
            "the timeout stops the build before the provider checks the rest"
        );
        let problems =
            problems_of(&["--aws-region", "eu-west", "--ecr-public-endpoint-url", "ftp://x"]).await;
        assert!(
            problems.starts_with("invalid configuration: awsregion (--aws-region): region \"eu-west\""),
            "{problems}"
        );
        let problems = problems_of(&[
            "--ecr-regions",
            "eu-west-1",
            "--ecr-public-endpoint-url",
            "ftp://x",
        ])
        .await;
        assert!(
            problems.starts_with(
                "invalid configuration: REGCREDS_ECR_PUBLIC_ENDPOINT_URL (--ecr-public-endpoint-url): \
                 public_endpoint_url \"ftp://x\" is not"
            ),
            "{problems}"
        );
    }
}
