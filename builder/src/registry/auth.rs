//! Registry authentication: `WWW-Authenticate` challenges, Basic credentials, bearer tokens.
//!
//! A registry that wants credentials answers `401` with a challenge. `Basic` means: send the
//! user's credentials with every request. `Bearer realm=…,service=…` means: ask the token server
//! at `realm` for a token covering the *scopes* the request needs (`repository:app:pull`,
//! `repository:app:pull,push`), presenting the user's credentials as Basic auth if there are
//! any (anonymous tokens are how public images are pulled), then send `Authorization: Bearer`.
//! Tokens are cached per host and scope set until they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;

use super::credentials::Credentials;
use super::error::{AuthError, ServerErrors};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send credentials as HTTP Basic auth.
    Basic,
    /// Get a token from `realm`.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses `Scheme k="v", k2=v2` (the first challenge if several are listed).
    pub(crate) fn parse(header: &str) -> Result<Challenge, AuthError> {
        let unsupported = || AuthError::UnsupportedChallenge {
            challenge: header.to_owned(),
        };
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic),
            "bearer" => Ok(Challenge::Bearer {
                realm: params.get("realm").cloned().ok_or_else(unsupported)?,
                service: params.get("service").cloned(),
            }),
            _ => Err(unsupported()),
        }
    }
}

/// `k="v", k2=v2` into a map (keys lowercased, quoted values unescaped).
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            rest[..end].trim().clone_into(&mut value);
            rest = &rest[end..];
        }
        params.insert(key, value);
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// What a host wants, learnt from its last challenge, and the tokens it gave.
#[derive(Debug, Default)]
pub(crate) struct HostAuth {
    /// The host's challenge, once one was seen.
    pub(crate) challenge: Option<Challenge>,
    /// The credentials configured for the host, once looked up.
    pub(crate) credentials: Lookup,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, Token>,
}

/// Credentials of a host: not looked up yet, or the lookup's answer (perhaps none).
#[derive(Debug, Clone, Default)]
pub(crate) enum Lookup {
    /// Not looked up yet.
    #[default]
    Pending,
    /// Looked up; `None` if the host has no credentials configured.
    Done(Option<Credentials>),
}

impl Lookup {
    /// The credentials found, if looked up and found.
    fn found(&self) -> Option<&Credentials> {
        match self {
            Lookup::Done(found) => found.as_ref(),
            Lookup::Pending => None,
        }
    }
}

#[derive(Debug)]
struct Token {
    value: String,
    expires: Instant,
}

/// The key tokens are cached under: the scopes, in a canonical order.
pub(crate) fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.join(" ")
}

impl HostAuth {
    /// The `Authorization` header to send up front, if the host's scheme is known and what it
    /// needs is at hand.
    pub(crate) fn header(&self, scopes: &[String]) -> Option<HeaderValue> {
        match self.challenge.as_ref()? {
            Challenge::Basic => match self.credentials.found()? {
                Credentials::Basic { username, password } => Some(basic_header(username, password)),
                Credentials::IdentityToken { .. } => None,
            },
            Challenge::Bearer { .. } => {
                let token = self.tokens.get(&scope_key(scopes))?;
                (token.expires > Instant::now()).then(|| bearer_header(&token.value))
            }
        }
    }

    /// Remembers a token for `scopes`.
    pub(crate) fn insert_token(&mut self, scopes: &[String], token: &TokenResponse) {
        let value = token.token().to_owned();
        // Docker's default lifetime is 60 s; keep a margin so a token does not expire in flight.
        let lifetime = token.expires_in.unwrap_or(60).max(60);
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(10));
        self.tokens.insert(scope_key(scopes), Token { value, expires });
    }
}

/// `Authorization: Basic base64(user:password)`.
pub(crate) fn basic_header(username: &str, password: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    ))
    .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// `Authorization: Bearer <token>`; a token with bytes no header allows yields a header the
/// registry will refuse, which reports the problem where it belongs.
pub(crate) fn bearer_header(token: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    value.set_sensitive(true);
    value
}

/// A token server's answer: Docker's `token`, or OAuth2's `access_token`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, whichever field carried it.
    pub(crate) fn token(&self) -> &str {
        if self.token.is_empty() {
            &self.access_token
        } else {
            &self.token
        }
    }
}

/// Asks the token server for a token covering `scopes`.
///
/// Basic credentials go along as Basic auth on a GET; an identity (refresh) token is exchanged
/// with an OAuth2 POST, as Docker does.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<TokenResponse, AuthError> {
    let transport = |source| AuthError::TokenTransport {
        realm: realm.to_owned(),
        source,
    };
    let request = match credentials {
        Some(Credentials::IdentityToken { token, .. }) => {
            let mut form = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
            {
                let mut pairs = form.query_pairs_mut();
                pairs
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token)
                    .append_pair("client_id", "kiln")
                    .append_pair("scope", &scopes.join(" "));
                if let Some(service) = service {
                    pairs.append_pair("service", service);
                }
            }
            http.post(realm)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.query().unwrap_or_default().to_owned())
        }
        other => {
            let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
            if let Some(service) = service {
                query.push(("service", service));
            }
            let mut url = reqwest::Url::parse(realm).map_err(|_| AuthError::UnsupportedChallenge {
                challenge: format!("realm={realm:?}"),
            })?;
            url.query_pairs_mut().extend_pairs(query);
            let mut request = http.get(url);
            if let Some(Credentials::Basic { username, password }) = other {
                request = request.header(reqwest::header::AUTHORIZATION, basic_header(username, password));
            }
            request
        }
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let body = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(AuthError::TokenStatus {
            realm: realm.to_owned(),
            status,
            source: ServerErrors::parse(&body),
        });
    }
    let token: TokenResponse = serde_json::from_slice(&body).map_err(|_| AuthError::NoToken {
        realm: realm.to_owned(),
    })?;
    if token.token().is_empty() {
        return Err(AuthError::NoToken {
            realm: realm.to_owned(),
        });
    }
    Ok(token)
}
