//! `regcreds credential-provider`: the kubelet's image credential provider exec plugin. No Secret, no
//! cluster access: the kubelet writes a request on stdin at pull time and reads the answer on stdout.
//!
//! ```text
//!  stdin ──Request::parse──▶ image ──▶ enabled providers (same variables as `regcreds run`, from the
//!                                        CredentialProviderConfig's env list)
//!        serves(image) == Some(false) ──▶ skipped without a call
//!        the rest ──mint() at once──▶ CredentialSet ──Response::answer──▶ stdout
//!                   (with a ServiceAccount token: mint_for_pod, the pod's own identity, where the
//!                    provider has one; a token never becomes regcreds' own credential)
//! ```
//!
//! Exit codes: 0 with an answer (possibly empty, when no provider serves the image); 1 when every
//! provider that could serve the image failed to mint (the errors on stderr name provider and
//! registry); 2 for a malformed request or invalid settings (naming the variable). The kubelet shows
//! stderr in its log and the pod's event only on failure; a credential never reaches stderr.

use std::{io::Read, process::ExitCode};

use chrono::Utc;
use futures::future::join_all;
use regcreds_core::{CredentialSet, MAX_INPUT_FILE_BYTES, PodIdentity};
use regcreds_kubelet_plugin::{Request, Response};

use crate::{
    EXIT_CONFIG,
    commands::config_failure,
    config::{ConfiguredProvider, ProviderArgs},
};

/// Arguments of `regcreds credential-provider`.
#[derive(clap::Args, Debug)]
pub struct CredentialProviderArgs {
    /// Provider settings: the same variables as `regcreds run`, set in the CredentialProviderConfig's
    /// `env` list.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Runs `regcreds credential-provider`.
pub async fn credential_provider(args: CredentialProviderArgs) -> ExitCode {
    let request = match read_request() {
        Ok(request) => request,
        Err(error) => {
            eprintln!("regcreds credential-provider: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let pod = request.service_account_token.clone().map(|token| PodIdentity {
        token,
        annotations: request.service_account_annotations.clone(),
    });
    let built = match pod {
        Some(_) => args.providers.build_for_pods().await,
        None => args.providers.build().await,
    };
    let providers = match built {
        Ok(providers) => providers,
        Err(problems) => return config_failure(&problems),
    };
    let candidates: Vec<&ConfiguredProvider> = providers
        .iter()
        .filter(|configured| configured.provider.serves(&request.image) != Some(false))
        .collect();
    let (minted, failures) = mint_all(&candidates, pod.as_ref()).await;
    let response = Response::answer(&request, &minted, Utc::now());
    if response.auth.is_empty() && !failures.is_empty() {
        for failure in &failures {
            eprintln!("regcreds credential-provider: image {}: {failure}", request.image);
        }
        return ExitCode::FAILURE;
    }
    println!("{}", response.to_json());
    ExitCode::SUCCESS
}

/// The request on stdin, read up to the same bound as every other input regcreds reads.
fn read_request() -> Result<Request, String> {
    let mut json = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT_FILE_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|error| format!("cannot read the request on stdin: {error}"))?;
    if json.len() as u64 > MAX_INPUT_FILE_BYTES {
        return Err(format!(
            "the request on stdin is larger than {MAX_INPUT_FILE_BYTES} bytes"
        ));
    }
    Request::parse(&json).map_err(|error| error.to_string())
}

/// Every candidate's credentials in one set, minted concurrently (for `pod`, with its identity where the
/// provider has a pod mode), and the failures (no secrets).
async fn mint_all(
    candidates: &[&ConfiguredProvider],
    pod: Option<&PodIdentity>,
) -> (CredentialSet, Vec<String>) {
    let results = join_all(candidates.iter().map(|configured| async move {
        let provider = &configured.provider;
        match pod {
            Some(pod) => match provider.mint_for_pod(pod).await {
                Some(minted) => minted,
                None => provider.mint().await,
            },
            None => provider.mint().await,
        }
    }))
    .await;
    let mut minted = CredentialSet::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(credentials) => credentials.iter().cloned().for_each(|c| minted.insert(c)),
            Err(error) => failures.push(error.to_string()),
        }
    }
    (minted, failures)
}
