//! The kubelet plugin's ServiceAccount token mode: each pod pulls with the IAM role its ServiceAccount
//! names, as IRSA does for the pod's own AWS calls.
//!
//! ```text
//!  pod's token + role ARN (annotation, default eks.amazonaws.com/role-arn)
//!     ──STS AssumeRoleWithWebIdentity (unsigned)──▶ the role's temporary credentials
//!     ──GetAuthorizationToken per region, signed with them──▶ credentials expiring no later than the
//!                                                             role session
//! ```
//!
//! The call and its fields are STS's (`AssumeRoleWithWebIdentity`: RoleArn, RoleSessionName,
//! WebIdentityToken; AWS STS API reference), made with aws-sdk-sts. STS checks the token against the
//! role's trust policy (the cluster's OIDC provider, the ServiceAccount as `sub`); a pod whose
//! ServiceAccount has no role annotation gets no credential from regcreds at all.

use aws_config::SdkConfig;
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use chrono::{DateTime, Utc};
use regcreds_core::{CredentialSet, PodIdentity};

use crate::{AssumeRole, PROVIDER_NAME, failure, settings::validate_role};

/// The session name STS records (CloudTrail shows it next to the role).
const SESSION_NAME: &str = "regcreds-kubelet";

/// The role a pod's ServiceAccount names in `annotation`, checked like a configured role.
pub(crate) fn role_of(pod: &PodIdentity, annotation: &str) -> regcreds_core::Result<String> {
    let Some(role) = pod.annotations.get(annotation).map(|r| r.trim()) else {
        return Err(regcreds_core::Error::permanent(
            PROVIDER_NAME,
            format!(
                "the pod's ServiceAccount has no {annotation} annotation (or the CredentialProviderConfig's \
                 tokenAttributes do not pass it on): no role to pull with"
            ),
        ));
    };
    validate_role(&AssumeRole::new(role)).map_err(|error| {
        regcreds_core::Error::permanent(
            PROVIDER_NAME,
            format!("the ServiceAccount's {annotation} annotation: {error}"),
        )
    })?;
    Ok(role.to_string())
}

/// `base` signing as `role`, assumed with the pod's token, and when that session ends.
pub(crate) async fn assume(
    base: &SdkConfig,
    role: &str,
    pod: &PodIdentity,
) -> regcreds_core::Result<(SdkConfig, Option<DateTime<Utc>>)> {
    let output = aws_sdk_sts::Client::new(base)
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(SESSION_NAME)
        .web_identity_token(pod.token.expose())
        .send()
        .await
        .map_err(|error| {
            failure::classify_sts(&error).into_error(&format!("STS AssumeRoleWithWebIdentity for {role}"))
        })?;
    let Some(session) = output.credentials() else {
        return Err(regcreds_core::Error::transient(
            PROVIDER_NAME,
            format!("STS AssumeRoleWithWebIdentity for {role}: no credentials in the reply"),
        ));
    };
    let expires = std::time::SystemTime::try_from(*session.expiration()).ok();
    let credentials = Credentials::new(
        session.access_key_id(),
        session.secret_access_key(),
        Some(session.session_token().to_string()),
        expires,
        "sts-web-identity-of-the-pod",
    );
    let config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    Ok((config, expires.map(DateTime::<Utc>::from)))
}

/// Every credential of `minted`, expiring no later than the role session that minted it.
pub(crate) fn bounded_by(minted: CredentialSet, session_end: Option<DateTime<Utc>>) -> CredentialSet {
    let Some(end) = session_end else {
        return minted;
    };
    minted
        .iter()
        .cloned()
        .map(|credential| {
            let expires_at = credential.expires_at.map_or(end, |at| at.min(end));
            credential.expiring_at(expires_at)
        })
        .collect()
}
