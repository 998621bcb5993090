//! Errors of the registry client, worded as Docker prints them where Docker has a wording.

use std::fmt;

use crate::content::{ContentError, Digest};

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake), after retries.
    #[error("cannot connect to registry {host}: {reason}")]
    Connect {
        /// The registry host as the reference names it (`127.0.0.1:5000`, `docker.io`).
        host: String,
        /// A short reason, such as "connection refused".
        reason: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be set up (TLS roots, for one).
    #[error("set up the registry HTTP client")]
    Init {
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// A request failed after it was sent (the connection dropped, a body could not be read).
    #[error("{method} {url}")]
    Transfer {
        /// The HTTP method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry refused to serve a repository (401/403, or a 404 for the repository).
    #[error("pull access denied for {repository}, repository does not exist or may require 'docker login'")]
    PullDenied {
        /// The repository, in familiar form (`app`, `localhost:5000/app`).
        repository: String,
        /// What the registry said.
        #[source]
        source: ServerErrors,
    },
    /// The registry refused a push to a repository.
    #[error("push access denied for {repository}: requested access to the resource is denied")]
    PushDenied {
        /// The repository, in familiar form.
        repository: String,
        /// What the registry said.
        #[source]
        source: ServerErrors,
    },
    /// Credentials were rejected by `login`.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The `/v2/` URL tried.
        url: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
    },
    /// No manifest has this tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown {
        /// The reference asked for, in familiar form.
        reference: String,
    },
    /// A blob the manifest names is not in the repository.
    #[error("blob {digest} not found in {repository}")]
    BlobUnknown {
        /// The repository, in familiar form.
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// Any other unexpected answer.
    #[error("{method} {url}: unexpected status {status}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The status received.
        status: reqwest::StatusCode,
        /// What the registry said, if anything.
        #[source]
        source: ServerErrors,
    },
    /// A manifest (declared or served) over the size kiln accepts.
    #[error("manifest {reference} is {size} bytes, more than the {limit} bytes allowed")]
    ManifestTooLarge {
        /// The reference or digest of the manifest.
        reference: String,
        /// Its declared or served size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Manifest bytes that are not a valid manifest or index.
    #[error("invalid manifest {reference}")]
    InvalidManifest {
        /// The reference or digest of the manifest.
        reference: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest of a kind kiln does not handle (Docker schema 1, an artifact, ...).
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedMediaType {
        /// The reference or digest of the manifest.
        reference: String,
        /// The media type served or declared.
        media_type: String,
    },
    /// A descriptor in a manifest names a digest kiln cannot verify.
    #[error("manifest {reference} names blob {digest:?}, which is not a sha256 digest")]
    UnsupportedDigest {
        /// The reference or digest of the manifest.
        reference: String,
        /// The digest as written.
        digest: String,
    },
    /// The registry served a manifest whose digest is not the one asked for or announced.
    #[error("manifest {reference}: digest mismatch: expected {expected}, got {actual}")]
    ManifestDigestMismatch {
        /// The reference asked for.
        reference: String,
        /// The digest expected.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// An index with no manifest for the wanted platform.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted.
        platform: super::Platform,
    },
    /// Reading or writing the local content store failed, or a blob did not verify.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The caller's lease could not protect a blob from garbage collection.
    #[error("protect blob {digest} from garbage collection")]
    Retain {
        /// The blob.
        digest: Digest,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Credentials could not be read or written.
    #[error(transparent)]
    Credentials(#[from] super::CredentialsError),
    /// A `WWW-Authenticate` challenge kiln cannot answer, or a token endpoint that failed.
    #[error("authenticate to {host}")]
    Auth {
        /// The registry host.
        host: String,
        /// What failed.
        #[source]
        source: AuthError,
    },
    /// The registry answered an upload with a `Location` that is not a URL.
    #[error("registry {host} returned an invalid upload location {location:?}")]
    InvalidLocation {
        /// The registry host.
        host: String,
        /// The header's value.
        location: String,
    },
    /// A background task of the client (a [`BlobSource`](crate::content::BlobSource) read) died.
    #[error("registry client task ended unexpectedly")]
    TaskLost,
}

/// Why authenticating failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The challenge's scheme is neither `Basic` nor `Bearer`, or it has no realm.
    #[error("unsupported authentication challenge {challenge:?}")]
    UnsupportedChallenge {
        /// The `WWW-Authenticate` header.
        challenge: String,
    },
    /// The token endpoint refused or failed.
    #[error("token request to {realm} failed with status {status}")]
    TokenStatus {
        /// The realm URL.
        realm: String,
        /// The status received.
        status: reqwest::StatusCode,
        /// What the server said.
        #[source]
        source: ServerErrors,
    },
    /// The token endpoint could not be reached or its answer not read.
    #[error("token request to {realm}")]
    TokenTransport {
        /// The realm URL.
        realm: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint's answer has no `token` nor `access_token`.
    #[error("token response from {realm} has no token")]
    NoToken {
        /// The realm URL.
        realm: String,
    },
}

/// The `errors` array of a registry's error body, as Docker formats it: `code: message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerErrors {
    /// `(code, message)` pairs, such as `("DENIED", "requested access to the resource is denied")`.
    pub errors: Vec<(String, String)>,
}

impl ServerErrors {
    /// Parses a registry error body; anything else yields no entries.
    pub(crate) fn parse(body: &[u8]) -> ServerErrors {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let errors = serde_json::from_slice::<Body>(body)
            .map(|body| body.errors.into_iter().map(|e| (e.code, e.message)).collect())
            .unwrap_or_default();
        ServerErrors { errors }
    }

    /// Whether any entry has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|(c, _)| c == code)
    }
}

impl fmt::Display for ServerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return f.write_str("no details from the registry");
        }
        for (i, (code, message)) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // Docker's errcode formatting: `MANIFEST_UNKNOWN` reads "manifest unknown".
            write!(f, "{}: {message}", code.to_ascii_lowercase().replace('_', " "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerErrors {}
