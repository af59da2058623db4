//! `EcrProvider` against moto's ECR and STS (tests/fixtures/moto_ecr.py), started per test.

mod support;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use chrono::Utc;
use regcreds_core::{CredentialSet, Provider};
use regcreds_ecr::{AssumeRole, EcrProvider, EcrSettings};
use support::Moto;

const ACCESS_KEY: &str = "AKIDREGCREDSTEST";

/// A base configuration with fixed test credentials; `endpoint` also redirects STS.
async fn base_config(endpoint: Option<&str>) -> SdkConfig {
    let credentials = Credentials::new(ACCESS_KEY, "test-secret-key", None, None, "test");
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

fn settings(moto: &Moto, regions: &[&str]) -> EcrSettings {
    EcrSettings {
        regions: regions.iter().map(|r| r.to_string()).collect(),
        endpoint_url: Some(moto.url.clone()),
        ..EcrSettings::default()
    }
}

async fn mint(settings: EcrSettings, base: &SdkConfig) -> regcreds_core::Result<CredentialSet> {
    EcrProvider::with_sdk_config(settings, base)
        .await
        .expect("valid settings")
        .mint()
        .await
}

#[tokio::test]
async fn every_region_gets_its_own_token_keyed_by_its_proxy_endpoint() {
    let moto = Moto::start(&[]);
    let set = mint(
        settings(&moto, &["eu-west-1", "us-east-2"]),
        &base_config(None).await,
    )
    .await
    .expect("mint");

    assert_eq!(
        set.registries(),
        vec![
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "https://123456789012.dkr.ecr.us-east-2.amazonaws.com"
        ]
    );
    for credential in set.iter() {
        assert_eq!(credential.username, "AWS");
        assert_eq!(credential.password.expose(), "123456789012-auth-token");
    }
    let mut regions: Vec<_> = moto
        .ecr_token_requests()
        .into_iter()
        .filter_map(|r| r.region)
        .collect();
    regions.sort();
    assert_eq!(
        regions,
        vec!["eu-west-1", "us-east-2"],
        "one signed call per region"
    );
    assert!(
        moto.ecr_token_requests()
            .iter()
            .all(|r| r.access_key_id.as_deref() == Some(ACCESS_KEY))
    );
}

#[tokio::test]
async fn the_expiry_is_taken_from_expires_at() {
    let moto = Moto::start(&[("ECR_TOKEN_TTL", "600")]);
    let set = mint(settings(&moto, &["eu-west-1"]), &base_config(None).await)
        .await
        .expect("mint");

    let left = set.expires_at().expect("expiry") - Utc::now();
    assert!(
        (590..=600).contains(&left.num_seconds()),
        "token lives {left} instead of ~600 s"
    );
}

#[tokio::test]
async fn an_empty_account_list_sends_no_registry_ids() {
    let moto = Moto::start(&[]);
    let base = base_config(None).await;
    // [""] is what upmc built from an unset `awsaccount`; it must mean "none", like [].
    for registry_ids in [vec![], vec![String::new()]] {
        let settings = EcrSettings {
            registry_ids,
            ..settings(&moto, &["eu-west-1"])
        };
        mint(settings, &base).await.expect("mint");
    }

    let requests = moto.ecr_token_requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        let body: serde_json::Value = serde_json::from_str(&request.body).expect("json body");
        assert_eq!(
            body,
            serde_json::json!({}),
            "request must not carry registryIds: {}",
            request.body
        );
    }
}

#[tokio::test]
async fn each_configured_account_gets_an_entry_in_each_region() {
    let moto = Moto::start(&[]);
    let settings = EcrSettings {
        registry_ids: vec!["111111111111".into(), "222222222222".into()],
        ..settings(&moto, &["eu-west-1", "eu-central-1"])
    };
    let set = mint(settings, &base_config(None).await).await.expect("mint");

    assert_eq!(set.len(), 4);
    assert!(
        set.registries()
            .contains(&"https://222222222222.dkr.ecr.eu-central-1.amazonaws.com".to_string())
    );
    let body: serde_json::Value = serde_json::from_str(&moto.ecr_token_requests()[0].body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"registryIds": ["111111111111", "222222222222"]})
    );
}

#[tokio::test]
async fn one_failing_region_fails_the_whole_mint_after_a_capped_number_of_attempts() {
    let moto = Moto::start(&[("ECR_FAIL_REGIONS", "us-west-2")]);
    let started = Instant::now();
    let err = mint(
        settings(&moto, &["eu-west-1", "us-west-2"]),
        &base_config(None).await,
    )
    .await
    .expect_err("a region failed, so no partial set");

    assert!(err.is_transient(), "a 500 is worth retrying later: {err}");
    let message = err.to_string();
    assert!(message.contains("region us-west-2"), "{message}");
    assert!(message.contains("HTTP 500 ServerException"), "{message}");
    assert!(
        !message.contains("injected failure"),
        "service messages are not echoed: {message}"
    );
    let attempts = moto
        .ecr_token_requests()
        .iter()
        .filter(|r| r.region.as_deref() == Some("us-west-2"))
        .count();
    assert_eq!(attempts, 3, "SDK retries are capped at 3 attempts");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ecr_public_is_minted_in_us_east_1_under_public_ecr_aws() {
    let moto = Moto::start(&[]);
    let settings = EcrSettings {
        public: true,
        public_endpoint_url: Some(moto.url.clone()),
        ..settings(&moto, &["eu-west-1"])
    };
    let set = mint(settings, &base_config(None).await).await.expect("mint");

    let public = set
        .iter()
        .find(|c| c.registry.as_str() == "public.ecr.aws")
        .expect("public entry");
    assert_eq!(public.username, "AWS");
    assert_eq!(public.password.expose(), "public-auth-token");
    assert!(public.expires_at.expect("expiry") > Utc::now() + chrono::Duration::hours(11));
    let call = moto
        .requests()
        .into_iter()
        .find(|r| r.target.starts_with("SpencerFrontendService."))
        .expect("call");
    assert_eq!(call.region.as_deref(), Some("us-east-1"));
    assert_eq!(set.len(), 2);
}

#[tokio::test]
async fn an_assumed_role_signs_the_ecr_calls_instead_of_the_base_credentials() {
    let moto = Moto::start(&[]);
    let settings = EcrSettings {
        assume_role: Some(AssumeRole {
            session_name: Some("regcreds-test".into()),
            external_id: Some("ext-123".into()),
            ..AssumeRole::new("arn:aws:iam::210987654321:role/ecr-reader")
        }),
        ..settings(&moto, &["eu-west-1"])
    };
    // The base endpoint sends STS to moto as well.
    let set = mint(settings, &base_config(Some(&moto.url)).await)
        .await
        .expect("mint");

    let requests = moto.requests();
    let assume = requests
        .iter()
        .find(|r| r.action.as_deref() == Some("AssumeRole"))
        .expect("STS AssumeRole call");
    assert!(
        assume.body.contains("RoleSessionName=regcreds-test"),
        "{}",
        assume.body
    );
    assert!(assume.body.contains("ExternalId=ext-123"), "{}", assume.body);
    assert_eq!(
        assume.access_key_id.as_deref(),
        Some(ACCESS_KEY),
        "AssumeRole is signed with the base keys"
    );
    let ecr = &moto.ecr_token_requests()[0];
    assert_ne!(
        ecr.access_key_id.as_deref(),
        Some(ACCESS_KEY),
        "ECR must be called as the role"
    );
    assert_eq!(
        set.registries(),
        vec!["https://210987654321.dkr.ecr.eu-west-1.amazonaws.com"]
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_and_quick() {
    let base = base_config(None).await;
    let settings = EcrSettings {
        regions: vec!["eu-west-1".into()],
        endpoint_url: Some("http://127.0.0.1:9".into()),
        ..EcrSettings::default()
    };
    let started = Instant::now();
    let err = mint(settings, &base).await.expect_err("nothing listens there");

    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("region eu-west-1 (endpoint http://127.0.0.1:9)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// The IRSA path end to end: aws-config reads AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE from the
/// environment, calls moto's STS AssumeRoleWithWebIdentity, and signs ECR with what STS returned.
/// Environment variables are process-global (and setting them needs `unsafe`), so the mint runs in a
/// child process: this test binary again, filtered to [`web_identity_child`].
#[test]
fn web_identity_from_the_environment_goes_through_sts() {
    let moto = Moto::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    // JWT-shaped; moto does not verify it.
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6eDp5In0.c2ln",
    )
    .expect("token file");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "web_identity_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_ROLE_ARN", "arn:aws:iam::210987654321:role/ecr-minter")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_SESSION_NAME", "regcreds-irsa")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
        .env("REGCREDS_ECR_WEB_IDENTITY_CHILD", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("minted https://210987654321.dkr.ecr.eu-west-1.amazonaws.com"),
        "{stdout}"
    );

    let requests = moto.requests();
    let sts = requests
        .iter()
        .find(|r| r.action.as_deref() == Some("AssumeRoleWithWebIdentity"))
        .expect("STS AssumeRoleWithWebIdentity call");
    assert!(sts.body.contains("RoleSessionName=regcreds-irsa"), "{}", sts.body);
    assert_eq!(sts.access_key_id, None, "AssumeRoleWithWebIdentity is unsigned");
    let ecr = &moto.ecr_token_requests()[0];
    assert!(
        ecr.access_key_id.is_some(),
        "ECR call must be signed with the STS credentials"
    );
}

/// Runs only as the child of [`web_identity_from_the_environment_goes_through_sts`].
#[tokio::test]
#[ignore = "child process of web_identity_from_the_environment_goes_through_sts"]
async fn web_identity_child() {
    if std::env::var_os("REGCREDS_ECR_WEB_IDENTITY_CHILD").is_none() {
        // NB: `--include-ignored` runs (cluster CI) reach here; the real assertions are in the parent.
        println!("only meaningful as the child of web_identity_from_the_environment_goes_through_sts");
        return;
    }
    let settings = EcrSettings {
        regions: vec!["eu-west-1".into()],
        ..EcrSettings::default()
    };
    let provider = EcrProvider::new(settings).await.expect("valid settings");
    let set = provider.mint().await.expect("mint through web identity");
    println!("minted {}", set.registries().join(","));
}

fn pod(token: &str, role: Option<&str>) -> regcreds_core::PodIdentity {
    regcreds_core::PodIdentity {
        token: token.into(),
        annotations: role
            .map(|role| {
                [(
                    regcreds_ecr::DEFAULT_ROLE_ANNOTATION.to_string(),
                    role.to_string(),
                )]
                .into()
            })
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn in_token_mode_each_pod_pulls_as_its_own_role_assumed_with_its_own_token() {
    let moto = Moto::start(&[]);
    let configured = EcrSettings {
        assume_role: Some(AssumeRole::new("arn:aws:iam::999999999999:role/regcreds-own")),
        ..settings(&moto, &["eu-west-1"])
    };
    let provider = EcrProvider::with_sdk_config(configured, &base_config(Some(&moto.url)).await)
        .await
        .expect("valid settings");
    let team_a = pod("pod-token-a", Some("arn:aws:iam::111111111111:role/team-a-pull"));
    let team_b = pod("pod-token-b", Some("arn:aws:iam::222222222222:role/team-b-pull"));

    let minted_a = provider
        .mint_for_pod(&team_a)
        .await
        .expect("pod mode")
        .expect("mint a");
    let minted_b = provider
        .mint_for_pod(&team_b)
        .await
        .expect("pod mode")
        .expect("mint b");

    assert_eq!(
        minted_a.registries(),
        ["https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"]
    );
    assert_eq!(
        minted_b.registries(),
        ["https://222222222222.dkr.ecr.eu-west-1.amazonaws.com"]
    );
    let passwords: Vec<String> = [&minted_a, &minted_b]
        .iter()
        .flat_map(|set| set.iter().map(|c| c.password.expose().to_string()))
        .collect();
    assert_eq!(
        passwords,
        ["111111111111-auth-token", "222222222222-auth-token"],
        "two identities"
    );
    let requests = moto.requests();
    let web: Vec<_> = requests
        .iter()
        .filter(|r| r.action.as_deref() == Some("AssumeRoleWithWebIdentity"))
        .collect();
    assert_eq!(web.len(), 2, "{requests:?}");
    assert!(web[0].body.contains("WebIdentityToken=pod-token-a") && web[0].body.contains("team-a-pull"));
    assert!(web[1].body.contains("WebIdentityToken=pod-token-b") && web[1].body.contains("team-b-pull"));
    assert!(
        web.iter().all(|r| r.access_key_id.is_none()),
        "unsigned, like the SDK's own web identity"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.action.as_deref() != Some("AssumeRole")
                && r.access_key_id.as_deref() != Some(ACCESS_KEY)),
        "neither regcreds' own role nor its keys serve a pod"
    );
    let session_end = minted_a.expires_at().expect("expiry");
    assert!(session_end <= Utc::now() + chrono::TimeDelta::hours(1) + chrono::TimeDelta::minutes(1));
}

#[tokio::test]
async fn a_pod_whose_service_account_names_no_role_gets_no_credential_and_no_call() {
    let moto = Moto::start(&[]);
    let provider = EcrProvider::with_sdk_config(
        settings(&moto, &["eu-west-1"]),
        &base_config(Some(&moto.url)).await,
    )
    .await
    .expect("valid settings");
    let error = provider
        .mint_for_pod(&pod("pod-token", None))
        .await
        .expect("pod mode")
        .expect_err("no role");
    assert!(!error.is_transient());
    assert!(
        error
            .to_string()
            .contains("no eks.amazonaws.com/role-arn annotation"),
        "{error}"
    );
    let error = provider
        .mint_for_pod(&pod("pod-token", Some("not-an-arn")))
        .await
        .expect("pod mode")
        .expect_err("bad role");
    assert!(
        error.to_string().contains("annotation: role \"not-an-arn\""),
        "{error}"
    );
    assert!(moto.requests().is_empty(), "nothing was sent for either pod");
}

/// The kubelet plugin skips providers for other registries' images without a call.
#[tokio::test]
async fn the_registries_ecr_serves_are_known_without_a_call_unless_an_endpoint_is_overridden() {
    let base = base_config(None).await;
    let settings = EcrSettings {
        regions: vec!["eu-west-1".into(), "cn-north-1".into()],
        registry_ids: vec!["111111111111".into()],
        public: true,
        ..EcrSettings::default()
    };
    let provider = EcrProvider::with_sdk_config(settings.clone(), &base)
        .await
        .expect("valid");
    for (image, served) in [
        ("111111111111.dkr.ecr.eu-west-1.amazonaws.com/app:1", true),
        ("111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1", true),
        ("public.ecr.aws/team/app:1", true),
        ("222222222222.dkr.ecr.eu-west-1.amazonaws.com/app:1", false),
        ("111111111111.dkr.ecr.us-east-1.amazonaws.com/app:1", false),
        ("registry.example.com/app:1", false),
        ("nginx:1", false),
    ] {
        assert_eq!(provider.serves(image), Some(served), "{image}");
    }
    let any_account = EcrSettings {
        registry_ids: Vec::new(),
        ..settings.clone()
    };
    let provider = EcrProvider::with_sdk_config(any_account, &base)
        .await
        .expect("valid");
    assert_eq!(
        provider.serves("222222222222.dkr.ecr.eu-west-1.amazonaws.com/app:1"),
        Some(true)
    );
    let overridden = EcrSettings {
        endpoint_url: Some("http://127.0.0.1:1".into()),
        ..settings
    };
    let provider = EcrProvider::with_sdk_config(overridden, &base)
        .await
        .expect("valid");
    assert_eq!(
        provider.serves("registry.example.com/app:1"),
        None,
        "only the reply can tell"
    );
}
