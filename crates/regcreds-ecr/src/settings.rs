//! What the binary configures, and the checks run on it before any AWS call.

use std::time::Duration;

use crate::{DEFAULT_SECRET, Error, Result};

/// ECR accepts at most this many `registryIds` in one GetAuthorizationToken call.
const MAX_REGISTRY_IDS: usize = 10;

/// Everything an [`EcrProvider`](crate::EcrProvider) needs. AWS credentials are not here: they come
/// from aws-config's standard chain (or the `SdkConfig` handed to
/// [`EcrProvider::with_sdk_config`](crate::EcrProvider::with_sdk_config)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrSettings {
    /// Secret written in every namespace (default `awsecr-cred`); callers check it is a valid Secret name
    /// (`regcreds_settings::SecretName` does, in the binary).
    pub secret_name: String,
    /// Regions to mint a private-registry token in, one call each (e.g. `eu-west-1`). Duplicates are
    /// ignored. May be empty only when [`EcrSettings::public`] is on.
    pub regions: Vec<String>,
    /// Account IDs sent as `registryIds`, giving one `auths` entry per account and region. Blank entries
    /// are dropped, and an empty list sends no `registryIds` at all (the caller's own account).
    pub registry_ids: Vec<String>,
    /// A role to assume (STS AssumeRole) on top of the base credentials.
    pub assume_role: Option<AssumeRole>,
    /// Also mint an ECR Public token (`public.ecr.aws`, always in us-east-1).
    pub public: bool,
    /// Private ECR endpoint for every region instead of `https://api.ecr.<region>.amazonaws.com` (VPC
    /// endpoints, tests). Without it the SDK still honours `AWS_ENDPOINT_URL_ECR` and `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// ECR Public endpoint override. Without it the SDK honours `AWS_ENDPOINT_URL_ECR_PUBLIC`.
    pub public_endpoint_url: Option<String>,
    /// Upper bound for one mint call including the SDK's retries (default 30 s). Must not be zero.
    pub timeout: Duration,
    /// In the kubelet plugin's ServiceAccount token mode: the ServiceAccount annotation holding the IAM
    /// role a pod pulls with (default `eks.amazonaws.com/role-arn`, IRSA's own).
    pub role_annotation: String,
}

/// Which endpoint override an [`Error::InvalidEndpointUrl`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// [`EcrSettings::endpoint_url`].
    Private,
    /// [`EcrSettings::public_endpoint_url`].
    Public,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Private => "endpoint_url",
            Self::Public => "public_endpoint_url",
        })
    }
}

/// STS AssumeRole settings (upmc's `aws_assume_role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// ARN of the role, e.g. `arn:aws:iam::123456789012:role/ecr-reader`.
    pub role_arn: String,
    /// `RoleSessionName` shown in CloudTrail (default `regcreds`).
    pub session_name: Option<String>,
    /// `ExternalId` if the role's trust policy requires one.
    pub external_id: Option<String>,
}

impl Default for EcrSettings {
    fn default() -> Self {
        Self {
            secret_name: DEFAULT_SECRET.to_string(),
            regions: Vec::new(),
            registry_ids: Vec::new(),
            assume_role: None,
            public: false,
            endpoint_url: None,
            public_endpoint_url: None,
            timeout: Duration::from_secs(30),
            role_annotation: DEFAULT_ROLE_ANNOTATION.to_string(),
        }
    }
}

/// IRSA's annotation: the role a ServiceAccount's pods act as.
pub const DEFAULT_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

impl AssumeRole {
    /// A role with the default session name and no external ID.
    pub fn new(role_arn: impl Into<String>) -> Self {
        Self {
            role_arn: role_arn.into(),
            session_name: None,
            external_id: None,
        }
    }
}

impl EcrSettings {
    /// Checks every setting and returns a copy with regions trimmed and de-duplicated and blank
    /// registry IDs removed.
    pub(crate) fn validated(&self) -> Result<Self> {
        let regions = validated_regions(&self.regions)?;
        if regions.is_empty() && !self.public {
            return Err(Error::NothingToMint);
        }
        if let Some(role) = &self.assume_role {
            validate_role(role)?;
        }
        validate_endpoint(Endpoint::Private, self.endpoint_url.as_deref())?;
        validate_endpoint(Endpoint::Public, self.public_endpoint_url.as_deref())?;
        Ok(Self {
            regions,
            registry_ids: validated_registry_ids(&self.registry_ids)?,
            ..self.clone()
        })
    }
}

fn validated_regions(regions: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for region in regions.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        if !is_region_name(region) {
            return Err(Error::InvalidRegion(region.to_string()));
        }
        if !out.iter().any(|r| r == region) {
            out.push(region.to_string());
        }
    }
    Ok(out)
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`: lowercase words joined by '-', ending
/// in a number. A typo like `eu-west` or `EU-WEST-1` would otherwise only fail at the first mint.
fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

fn validated_registry_ids(ids: &[String]) -> Result<Vec<String>> {
    // NB: upmc split an unset `awsaccount` into [""] and sent it (#88); blanks mean "none" here.
    let ids: Vec<String> = ids
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = ids
        .iter()
        .find(|id| id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(Error::InvalidRegistryId(bad.clone()));
    }
    if ids.len() > MAX_REGISTRY_IDS {
        return Err(Error::TooManyRegistryIds(ids.len()));
    }
    Ok(ids)
}

pub(crate) fn validate_role(role: &AssumeRole) -> Result<()> {
    // arn:<partition>:iam::<account>:role/<path/name>
    let parts: Vec<&str> = role.role_arn.trim().splitn(6, ':').collect();
    let valid = matches!(parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()));
    if !valid {
        return Err(Error::InvalidRoleArn(role.role_arn.clone()));
    }
    if let Some(name) = &role.session_name {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if !(2..=64).contains(&name.len()) || !name.chars().all(allowed) {
            return Err(Error::InvalidSessionName(name.clone()));
        }
    }
    Ok(())
}

fn validate_endpoint(setting: Endpoint, url: Option<&str>) -> Result<()> {
    match url {
        Some(url) if !regcreds_core::is_http_url(url) => Err(Error::InvalidEndpointUrl {
            setting,
            url: regcreds_core::redact_registry(url),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_regions(regions: &[&str]) -> EcrSettings {
        EcrSettings {
            regions: regions.iter().map(|r| r.to_string()).collect(),
            ..EcrSettings::default()
        }
    }

    #[test]
    fn regions_are_trimmed_and_deduplicated() {
        let valid = with_regions(&[" eu-west-1", "us-gov-west-1", "eu-west-1", ""])
            .validated()
            .expect("valid");
        assert_eq!(valid.regions, vec!["eu-west-1", "us-gov-west-1"]);
    }

    #[test]
    fn a_malformed_region_is_rejected_by_name() {
        for bad in ["eu-west", "EU-WEST-1", "euwest1", "eu--1", "-west-1"] {
            assert_eq!(
                with_regions(&[bad]).validated(),
                Err(Error::InvalidRegion(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_region_and_no_public_is_nothing_to_mint() {
        assert_eq!(with_regions(&[]).validated(), Err(Error::NothingToMint));
        let public_only = EcrSettings {
            public: true,
            ..with_regions(&[])
        };
        assert!(public_only.validated().is_ok());
    }

    #[test]
    fn blank_registry_ids_mean_no_registry_ids() {
        let settings = EcrSettings {
            registry_ids: vec![String::new(), " ".into()],
            ..with_regions(&["eu-west-1"])
        };
        assert!(settings.validated().expect("valid").registry_ids.is_empty());
    }

    #[test]
    fn registry_ids_must_be_twelve_digits_and_at_most_ten() {
        let ids = |ids: Vec<String>| {
            EcrSettings {
                registry_ids: ids,
                ..with_regions(&["eu-west-1"])
            }
            .validated()
        };
        assert_eq!(
            ids(vec!["12345".into()]),
            Err(Error::InvalidRegistryId("12345".into()))
        );
        assert_eq!(
            ids(vec!["12345678901a".into()]),
            Err(Error::InvalidRegistryId("12345678901a".into()))
        );
        assert_eq!(
            ids(vec!["123456789012".into(); 11]),
            Err(Error::TooManyRegistryIds(11))
        );
        assert_eq!(
            ids(vec![" 123456789012 ".into()]).expect("valid").registry_ids,
            vec!["123456789012"]
        );
    }

    #[test]
    fn the_role_to_assume_must_be_an_iam_role_arn() {
        let role = |arn: &str| {
            EcrSettings {
                assume_role: Some(AssumeRole::new(arn)),
                ..with_regions(&["eu-west-1"])
            }
            .validated()
        };
        assert!(role("arn:aws:iam::123456789012:role/ecr-reader").is_ok());
        assert!(role("arn:aws-cn:iam::123456789012:role/path/ecr-reader").is_ok());
        for bad in [
            "ecr-reader",
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::1234:role/x",
            "arn:aws:s3:::b",
        ] {
            assert_eq!(role(bad), Err(Error::InvalidRoleArn(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn a_session_name_outside_sts_rules_is_rejected() {
        let role = AssumeRole {
            session_name: Some("has space".into()),
            ..AssumeRole::new("arn:aws:iam::123456789012:role/r")
        };
        let settings = EcrSettings {
            assume_role: Some(role),
            ..with_regions(&["eu-west-1"])
        };
        assert_eq!(
            settings.validated(),
            Err(Error::InvalidSessionName("has space".into()))
        );
    }

    #[test]
    fn endpoint_overrides_must_be_http_urls() {
        let settings = EcrSettings {
            endpoint_url: Some("127.0.0.1:5000".into()),
            ..with_regions(&["eu-west-1"])
        };
        assert!(matches!(
            settings.validated(),
            Err(Error::InvalidEndpointUrl {
                setting: Endpoint::Private,
                ..
            })
        ));
        let settings = EcrSettings {
            public_endpoint_url: Some("https://".into()),
            public: true,
            ..with_regions(&[])
        };
        assert!(matches!(
            settings.validated(),
            Err(Error::InvalidEndpointUrl {
                setting: Endpoint::Public,
                ..
            })
        ));
        let settings = EcrSettings {
            endpoint_url: Some("http://127.0.0.1:5000".into()),
            ..with_regions(&["eu-west-1"])
        };
        assert!(settings.validated().is_ok());
    }
}
