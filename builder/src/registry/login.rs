//! `login` and `logout`: check credentials against a registry, then save or forget them.

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use super::auth::{Challenge, basic_header, bearer_header, fetch_token};
use super::client::connect_reason;
use super::credentials::{CredentialStore, Credentials};
use super::{Client, RegistryError};

impl Client {
    /// Checks `credentials` against the registry at `host` (`docker.io`, `localhost:5000`) and,
    /// if it accepts them, saves them in `store` (its credential helper if it names one, else
    /// `config.json`), as `docker login` does.
    ///
    /// The check is a `GET /v2/` carrying the credentials (Basic), or the token request a Bearer
    /// challenge asks for followed by that `GET` with the token. A registry that asks for no
    /// credentials at all accepts any, as Docker's login then does.
    pub async fn login(
        &self,
        host: &str,
        credentials: &Credentials,
        store: &CredentialStore,
    ) -> Result<(), RegistryError> {
        self.verify(host, credentials).await?;
        store.store(host, credentials)?;
        Ok(())
    }

    /// Forgets the credentials for `host` in `store`; `false` if none were saved ("Not logged
    /// in", which Docker does not treat as an error).
    pub fn logout(&self, host: &str, store: &CredentialStore) -> Result<bool, RegistryError> {
        Ok(store.erase(host)?)
    }

    async fn verify(&self, host: &str, credentials: &Credentials) -> Result<(), RegistryError> {
        let url = self.base_url(host).join("v2/").expect("a valid path");
        let http = &self.inner.http;
        let transport = |source: reqwest::Error| RegistryError::Connect {
            host: host.to_owned(),
            reason: connect_reason(&source),
            source,
        };
        let failed = |status| RegistryError::LoginFailed {
            url: url.to_string(),
            status,
        };
        let response = http.get(url.clone()).send().await.map_err(transport)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return if response.status().is_success() {
                Ok(())
            } else {
                Err(failed(response.status()))
            };
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let auth_error = |source| RegistryError::Auth {
            host: host.to_owned(),
            source,
        };
        let authorization = match Challenge::parse(&header).map_err(auth_error)? {
            Challenge::Basic => match credentials {
                Credentials::Basic { username, password } => basic_header(username, password),
                Credentials::IdentityToken { .. } => return Err(failed(StatusCode::UNAUTHORIZED)),
            },
            Challenge::Bearer { realm, service } => {
                // No scope: the token server checks the credentials, no repository is named.
                let token = fetch_token(http, &realm, service.as_deref(), &[], Some(credentials)).await;
                match token {
                    Ok(token) => bearer_header(token.token()),
                    Err(super::AuthError::TokenStatus { status, .. }) => return Err(failed(status)),
                    Err(error) => return Err(auth_error(error)),
                }
            }
        };
        let response = http
            .get(url.clone())
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(transport)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(failed(response.status()))
        }
    }
}
