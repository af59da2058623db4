//! The crate's error type: what is wrong with [`EcrSettings`](crate::EcrSettings).

/// Invalid ECR settings. Account IDs, regions, ARNs and URLs are not secret and may be echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Neither a region nor ECR Public is configured, so there is nothing to mint.
    #[error("no ECR region configured and ECR Public is off: nothing to mint")]
    NothingToMint,
    /// A region name is not of the form `eu-west-1`.
    #[error("region {0:?} is not an AWS region name like \"eu-west-1\"")]
    InvalidRegion(String),
    /// A registry (account) ID is not 12 digits.
    #[error("registry ID {0:?} is not a 12-digit AWS account ID")]
    InvalidRegistryId(String),
    /// ECR accepts at most 10 registry IDs per call.
    #[error("{0} registry IDs given; GetAuthorizationToken accepts at most 10")]
    TooManyRegistryIds(usize),
    /// The role to assume is not an IAM role ARN.
    #[error("role {0:?} is not an IAM role ARN like \"arn:aws:iam::123456789012:role/name\"")]
    InvalidRoleArn(String),
    /// The STS session name breaks STS's rules (2–64 of `[A-Za-z0-9+=,.@_-]`).
    #[error("role session name {0:?} must be 2-64 characters of A-Z a-z 0-9 + = , . @ _ -")]
    InvalidSessionName(String),
    /// An endpoint override is not an http(s) URL.
    #[error("{setting} {url:?} is not an http:// or https:// URL")]
    InvalidEndpointUrl {
        /// Which of the two endpoints.
        setting: crate::Endpoint,
        /// The value.
        url: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
