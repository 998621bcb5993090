//! The HTTP side of the client: endpoints, authentication on 401, retries with backoff.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{Challenge, HostAuth, Lookup, fetch_token};
use super::credentials::CredentialStore;
use super::error::{RegistryError, ServerErrors};
use crate::reference::DEFAULT_DOMAIN;

/// Where Docker Hub's registry API is (references say `docker.io`).
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// A registry client: one per process is enough. Cheap to clone (clones share connections and
/// the token cache).
///
/// Made by [`Client::builder`]. See the [module docs](super) for what it does.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) settings: Settings,
    hosts: Mutex<HashMap<String, HostAuth>>,
}

/// The immutable configuration a [`ClientBuilder`] yields.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    insecure: Vec<String>,
    pub(crate) credentials: Option<CredentialStore>,
    pub(crate) retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) chunk_size: u64,
    pub(crate) concurrency: usize,
}

/// Configures a [`Client`].
///
/// ```
/// use std::time::Duration;
/// use kiln_builder::registry::Client;
///
/// let client = Client::builder()
///     .insecure_registry("registry.internal:5000")
///     .anonymous()
///     .retries(2, Duration::from_millis(100))
///     .build()?;
/// assert_eq!(client.base_url("registry.internal:5000").as_str(), "http://registry.internal:5000/");
/// assert_eq!(client.base_url("registry.internal").scheme(), "https"); // another port
/// assert_eq!(client.base_url("[::1]:5000").scheme(), "http");
/// assert_eq!(client.base_url("ghcr.io").as_str(), "https://ghcr.io/");
/// # Ok::<(), kiln_builder::registry::RegistryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    settings: Settings,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            settings: Settings {
                insecure: Vec::new(),
                credentials: CredentialStore::from_env().ok(),
                retries: 4,
                retry_delay: Duration::from_millis(250),
                chunk_size: 64 << 20,
                concurrency: 3,
            },
        }
    }
}

impl ClientBuilder {
    /// Talks plain HTTP to `host` (`host` or `host:port`, as references name it). Loopback
    /// registries (`localhost`, `127.0.0.0/8`, `::1`) always get plain HTTP.
    #[must_use]
    pub fn insecure_registry(mut self, host: &str) -> ClientBuilder {
        self.settings.insecure.push(host.to_owned());
        self
    }

    /// Reads credentials from `store` (the default is Docker's, see [`CredentialStore::from_env`]).
    #[must_use]
    pub fn credentials(mut self, store: CredentialStore) -> ClientBuilder {
        self.settings.credentials = Some(store);
        self
    }

    /// Uses no credentials at all (anonymous tokens are still fetched when a registry asks).
    #[must_use]
    pub fn anonymous(mut self) -> ClientBuilder {
        self.settings.credentials = None;
        self
    }

    /// Retries a failed request (connection error, 5xx, 429) up to `retries` times, pausing
    /// `delay`, then twice that, and so on. Default: 4 retries from 250 ms.
    #[must_use]
    pub fn retries(mut self, retries: u32, delay: Duration) -> ClientBuilder {
        self.settings.retries = retries;
        self.settings.retry_delay = delay;
        self
    }

    /// Uploads blobs larger than `bytes` in chunks of that size (`PATCH` with `Content-Range`);
    /// smaller ones in one `PUT`. Default: 64 MiB.
    #[must_use]
    pub fn chunk_size(mut self, bytes: u64) -> ClientBuilder {
        self.settings.chunk_size = bytes.max(1);
        self
    }

    /// How many blobs move at once in a pull or push. Default: 3, as Docker.
    #[must_use]
    pub fn concurrency(mut self, blobs: usize) -> ClientBuilder {
        self.settings.concurrency = blobs.max(1);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|source| RegistryError::Init { source })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings: self.settings,
                hosts: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(inner) = host.strip_prefix('[') {
        inner.split(']').next().unwrap_or(inner)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The body of a [`Call`].
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes in memory (manifests).
    Bytes(&'a [u8]),
    /// A stream, made afresh for every attempt.
    Stream(&'a (dyn Fn() -> Result<reqwest::Body, RegistryError> + Send + Sync)),
}

/// One request, described so it can be rebuilt for a retry or after authenticating.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The registry host as the reference names it (for credentials and error messages).
    pub(crate) host: &'a str,
    /// The token scopes the request needs.
    pub(crate) scopes: &'a [String],
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body<'a>,
    /// Whether transport errors and 5xx answers may be retried (uploads restart whole instead).
    pub(crate) retry: bool,
}

impl Client {
    /// A builder with Docker's defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The base URL of a registry host's API: `http://` for loopback and insecure registries,
    /// `https://` otherwise; `docker.io` is served by [`DOCKER_HUB_REGISTRY`].
    pub fn base_url(&self, host: &str) -> Url {
        let insecure =
            is_loopback(host)
                || self.inner.settings.insecure.iter().any(|entry| {
                    entry == host || host.rsplit_once(':').is_some_and(|(name, _)| entry == name)
                });
        let scheme = if insecure { "http" } else { "https" };
        let authority = if host == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            host
        };
        Url::parse(&format!("{scheme}://{authority}/")).expect("a reference's domain is a valid authority")
    }

    /// `<base>/v2/<repository>/<rest>`.
    pub(crate) fn repository_url(&self, host: &str, repository: &str, rest: &str) -> Url {
        self.base_url(host)
            .join(&format!("v2/{repository}/{rest}"))
            .expect("repository paths and digests are URL-safe")
    }

    /// Sends a call: authenticates on a 401 challenge (once) and retries transient failures.
    ///
    /// Returns the final response whatever its status; only transport failures are errors.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, RegistryError> {
        let settings = &self.inner.settings;
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if let Some(header) = self.authorization(call.host, call.scopes) {
                request = request.header(AUTHORIZATION, header);
            }
            request = match call.body {
                Body::Empty => request,
                Body::Bytes(bytes) => request.body(bytes.to_vec()),
                Body::Stream(make) => request.body(make()?),
            };
            let retry_allowed = call.retry && attempt < settings.retries;
            match request.send().await {
                Err(error) if retry_allowed && is_transient(&error) => {}
                Err(error) => return Err(Client::transport_error(call, error)),
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match challenge {
                        Some(challenge) if self.authenticate(call.host, call.scopes, &challenge).await? => {
                            continue;
                        }
                        _ => return Ok(response),
                    }
                }
                Ok(response) if retry_allowed && is_retryable(response.status()) => {}
                Ok(response) => return Ok(response),
            }
            tokio::time::sleep(settings.retry_delay * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
        }
    }

    /// The header to send up front for `host`, if its scheme is known.
    fn authorization(&self, host: &str, scopes: &[String]) -> Option<reqwest::header::HeaderValue> {
        let hosts = self.inner.hosts.lock().expect("auth cache lock");
        hosts.get(host)?.header(scopes)
    }

    /// Answers a challenge: remembers the scheme and gets a token if it is Bearer. `false` when
    /// there is nothing better to send than what was sent (Basic without credentials).
    async fn authenticate(&self, host: &str, scopes: &[String], header: &str) -> Result<bool, RegistryError> {
        let auth_error = |source| RegistryError::Auth {
            host: host.to_owned(),
            source,
        };
        let challenge = Challenge::parse(header).map_err(auth_error)?;
        let credentials = self.credentials(host)?;
        self.inner
            .hosts
            .lock()
            .expect("auth cache lock")
            .entry(host.to_owned())
            .or_default()
            .challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic => Ok(matches!(credentials, Some(super::Credentials::Basic { .. }))),
            Challenge::Bearer { realm, service } => {
                let token = fetch_token(
                    &self.inner.http,
                    &realm,
                    service.as_deref(),
                    scopes,
                    credentials.as_ref(),
                )
                .await
                .map_err(auth_error)?;
                let mut hosts = self.inner.hosts.lock().expect("auth cache lock");
                hosts
                    .entry(host.to_owned())
                    .or_default()
                    .insert_token(scopes, &token);
                Ok(true)
            }
        }
    }

    /// The configured credentials for `host`, looked up once per client.
    fn credentials(&self, host: &str) -> Result<Option<super::Credentials>, RegistryError> {
        if let Some(Lookup::Done(known)) = self
            .inner
            .hosts
            .lock()
            .expect("auth cache lock")
            .get(host)
            .map(|h| h.credentials.clone())
        {
            return Ok(known);
        }
        let found = match &self.inner.settings.credentials {
            Some(store) => store.get(host)?,
            None => None,
        };
        self.inner
            .hosts
            .lock()
            .expect("auth cache lock")
            .entry(host.to_owned())
            .or_default()
            .credentials = Lookup::Done(found.clone());
        Ok(found)
    }

    pub(crate) fn transport_error(call: &Call<'_>, source: reqwest::Error) -> RegistryError {
        if source.is_connect() || (source.is_timeout() && !source.is_body()) {
            RegistryError::Connect {
                host: call.host.to_owned(),
                reason: connect_reason(&source),
                source,
            }
        } else {
            RegistryError::Transfer {
                method: method_name(&call.method),
                url: call.url.to_string(),
                source,
            }
        }
    }

    /// Reads the error body of an unexpected response (bounded) into [`ServerErrors`].
    pub(crate) async fn server_errors(response: Response) -> ServerErrors {
        let mut response = response;
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        ServerErrors::parse(&body)
    }

    /// A [`RegistryError::Status`] for an unexpected response.
    pub(crate) async fn unexpected(call: &Call<'_>, response: Response) -> RegistryError {
        let status = response.status();
        RegistryError::Status {
            method: method_name(&call.method),
            url: call.url.to_string(),
            status,
            source: Client::server_errors(response).await,
        }
    }
}

/// The method as a static string, for error messages.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// Failures worth trying again: the connection could not be made or dropped, or timed out.
pub(crate) fn is_transient(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// Statuses worth trying again: the server or a proxy is overloaded or restarting.
pub(crate) fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A short reason for a connection failure, from the OS error underneath.
pub(crate) fn connect_reason(error: &reqwest::Error) -> &'static str {
    let mut cause = error.source();
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused",
                io::ErrorKind::ConnectionReset => "connection reset",
                io::ErrorKind::TimedOut => "timed out",
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "no route to host",
                _ => "connection failed",
            };
        }
        cause = inner.source();
    }
    if error.is_timeout() {
        "timed out"
    } else {
        "connection failed"
    }
}
