//! Static ACR credentials (upmc's `ACR_URL` + `ACR_CLIENT_ID` + `ACR_PASSWORD`): no network at all.

use regcreds_acr::{AcrAuth, AcrProvider, AcrSettings};
use regcreds_core::Provider;

#[tokio::test]
async fn static_credentials_are_written_as_given_for_every_registry() {
    let auth = AcrAuth::Static {
        username: "sp-app-id".into(),
        password: "sp-secret".into(),
    };
    let settings = AcrSettings::new(vec!["https://a.azurecr.io".into(), "b.azurecr.io".into()], auth);
    let provider = AcrProvider::new(settings).await.expect("valid");
    let set = provider.mint().await.expect("mint");

    assert_eq!(set.registries(), vec!["a.azurecr.io", "b.azurecr.io"]);
    for credential in set.iter() {
        assert_eq!(credential.username, "sp-app-id");
        assert_eq!(credential.password.expose(), "sp-secret");
        assert_eq!(credential.expires_at, None);
    }
    assert_eq!(provider.secret_name(), "acr-secret");
    assert_eq!(
        provider.describe(),
        "ACR a.azurecr.io, b.azurecr.io with static credentials of sp-app-id"
    );
    assert!(!format!("{provider:?}").contains("sp-secret"));
}
