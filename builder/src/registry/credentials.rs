//! Registry credentials in Docker's `config.json`, and the credential helpers it names.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. For a registry host,
//! Docker looks in this order, and so does kiln:
//!
//! 1. `credHelpers[host]` names a helper for this host; else `credsStore` names one for all.
//!    A helper is the program `docker-credential-<name>`, spoken to as Docker does: `get` with
//!    the server URL on stdin answers `{"Username":…,"Secret":…}`; `store` and `erase` likewise.
//! 2. Otherwise `auths[host]`: `auth` is base64 of `user:password`; `identitytoken`, when set,
//!    is an OAuth refresh token used instead of the password.
//!
//! Docker Hub's entry is keyed `https://index.docker.io/v1/`; keys of other hosts may carry a
//! scheme or a path (`https://host:5000/v1/`), which lookups ignore.
//!
//! Writes keep every other field of the file, and are atomic: a temp file in the same directory,
//! mode 0600, fsynced, renamed over `config.json`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::reference::DEFAULT_DOMAIN;

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// What a helper prints when it has nothing for the server (the `credentials` package's text).
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token, exchanged at the token endpoint for access tokens.
    IdentityToken {
        /// The user name, if known.
        username: String,
        /// The refresh token.
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    // Secrets stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, <redacted>)")
            }
        }
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set, so there is no config directory.
    #[error("cannot find the Docker config directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
    /// Reading, writing or renaming a file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `config.json` is not the JSON object Docker writes.
    #[error("parse {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` field that is not base64 of `user:password`.
    #[error("invalid auth for {server} in {}", path.display())]
    InvalidAuth {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        server: String,
    },
    /// A credential helper could not be run.
    #[error("run credential helper docker-credential-{helper} {op}")]
    HelperSpawn {
        /// The helper's name (after `docker-credential-`).
        helper: String,
        /// `get`, `store` or `erase`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A credential helper exited with an error.
    #[error("credential helper docker-credential-{helper} {op} failed: {output}")]
    HelperFailed {
        /// The helper's name.
        helper: String,
        /// `get`, `store` or `erase`.
        op: &'static str,
        /// What it printed (stdout, else stderr), trimmed.
        output: String,
    },
    /// A credential helper's answer is not the JSON of the protocol.
    #[error("credential helper docker-credential-{helper} gave an invalid answer")]
    HelperOutput {
        /// The helper's name.
        helper: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Docker's credential configuration: a directory holding `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStore {
    dir: PathBuf,
}

/// The server key Docker files a registry host's credentials under.
///
/// ```
/// use kiln_builder::registry::credentials::server_key;
/// assert_eq!(server_key("docker.io"), "https://index.docker.io/v1/");
/// assert_eq!(server_key("localhost:5000"), "localhost:5000");
/// ```
pub fn server_key(host: &str) -> String {
    if host == DEFAULT_DOMAIN {
        DOCKER_HUB_SERVER.to_owned()
    } else {
        host.to_owned()
    }
}

/// A key reduced to its host, as Docker's `ConvertToHostname` does.
fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

impl CredentialStore {
    /// The store Docker would use: `$DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn from_env() -> Result<CredentialStore, CredentialsError> {
        let non_empty = |value: OsString| Some(value).filter(|v| !v.is_empty());
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").and_then(non_empty) {
            return Ok(CredentialStore::at(dir));
        }
        let home = std::env::var_os("HOME")
            .and_then(non_empty)
            .ok_or(CredentialsError::NoConfigDir)?;
        Ok(CredentialStore::at(PathBuf::from(home).join(".docker")))
    }

    /// The store in `dir` (which holds, or will hold, `config.json`).
    pub fn at(dir: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { dir: dir.into() }
    }

    /// The `config.json` path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The credentials for a registry host (`docker.io`, `localhost:5000`), if any are configured.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        let config = self.load()?;
        let server = server_key(host);
        if let Some(helper) = helper_for(&config, host) {
            return helper_get(&helper, &server);
        }
        let path = self.config_path();
        let Some((key, entry)) = find_auth(&config, host) else {
            return Ok(None);
        };
        let invalid = || CredentialsError::InvalidAuth {
            path: path.clone(),
            server: key.clone(),
        };
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (mut username, mut password) = (field("username"), field("password"));
        let auth = field("auth");
        if !auth.is_empty() {
            let decoded = STANDARD.decode(auth.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (user, pass) = decoded.split_once(':').ok_or_else(invalid)?;
            (username, password) = (user.to_owned(), pass.to_owned());
        }
        let token = field("identitytoken");
        Ok(if !token.is_empty() {
            Some(Credentials::IdentityToken { username, token })
        } else if username.is_empty() && password.is_empty() {
            None
        } else {
            Some(Credentials::Basic { username, password })
        })
    }

    /// Saves credentials for a host: in its helper if one is configured, else in `config.json`.
    pub fn store(&self, host: &str, credentials: &Credentials) -> Result<(), CredentialsError> {
        let mut config = self.load()?;
        let server = server_key(host);
        let helper = helper_for(&config, host);
        if let Some(helper) = &helper {
            let (username, secret) = match credentials {
                Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
                Credentials::IdentityToken { token, .. } => ("<token>", token.as_str()),
            };
            let input = json!({ "ServerURL": server, "Username": username, "Secret": secret });
            run_helper(helper, "store", input.to_string().as_bytes())?;
        }
        let auths = config.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("made an object above");
        auths.retain(|key, _| key_host(key) != key_host(&server));
        let entry = match (helper, credentials) {
            // The secret lives in the helper; the empty entry records the login, as Docker's does.
            (Some(_), _) => json!({}),
            (None, Credentials::Basic { username, password }) => {
                json!({ "auth": STANDARD.encode(format!("{username}:{password}")) })
            }
            (None, Credentials::IdentityToken { username, token }) => {
                json!({ "auth": STANDARD.encode(format!("{username}:")), "identitytoken": token })
            }
        };
        auths.insert(server, entry);
        self.save(&config)
    }

    /// Removes a host's credentials; `false` if there were none.
    pub fn erase(&self, host: &str) -> Result<bool, CredentialsError> {
        let mut config = self.load()?;
        let server = server_key(host);
        let mut found = false;
        if let Some(helper) = helper_for(&config, host) {
            found = helper_get(&helper, &server)?.is_some();
            if found {
                run_helper(&helper, "erase", server.as_bytes())?;
            }
        }
        if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|key, _| key_host(key) != key_host(&server));
            if auths.len() != before {
                found = true;
                self.save(&config)?;
            }
        }
        Ok(found)
    }

    fn load(&self) -> Result<Map<String, Value>, CredentialsError> {
        let path = self.config_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => {
                return Err(CredentialsError::Io {
                    op: "read",
                    path,
                    source: e,
                });
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        serde_json::from_slice(&bytes).map_err(|source| CredentialsError::Parse { path, source })
    }

    /// Replaces `config.json` atomically (following a symlink, as Docker does, so a linked
    /// config stays linked).
    fn save(&self, config: &Map<String, Value>) -> Result<(), CredentialsError> {
        let io_error = |op, path: &Path| {
            let path = path.to_owned();
            move |source| CredentialsError::Io { op, path, source }
        };
        let mut target = self.config_path();
        if let Ok(resolved) = fs::canonicalize(&target) {
            target = resolved;
        }
        let dir = target.parent().unwrap_or(&self.dir).to_owned();
        fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(&dir)
            .map_err(io_error("create temp file in", &dir))?;
        let temp_path = temp.path().to_owned();
        fs::set_permissions(&temp_path, fs::Permissions::from_mode(0o600))
            .map_err(io_error("chmod", &temp_path))?;
        let mut text = serde_json::to_vec_pretty(config).expect("a JSON map serialises");
        text.push(b'\n');
        temp.write_all(&text).map_err(io_error("write", &temp_path))?;
        temp.as_file().sync_all().map_err(io_error("fsync", &temp_path))?;
        temp.persist(&target).map_err(|e| CredentialsError::Io {
            op: "rename to",
            path: target.clone(),
            source: e.error,
        })?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync", &dir))
    }
}

/// The helper configured for `host`: `credHelpers[host]`, else `credsStore`.
fn helper_for(config: &Map<String, Value>, host: &str) -> Option<String> {
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let server = server_key(host);
    config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(key, _)| key_host(key) == key_host(&server))
                .and_then(|(_, v)| non_empty(v))
        })
        .or_else(|| config.get("credsStore").and_then(non_empty))
}

/// The `auths` entry for `host`, with its key.
fn find_auth<'a>(config: &'a Map<String, Value>, host: &str) -> Option<(String, &'a Map<String, Value>)> {
    let server = server_key(host);
    let auths = config.get("auths")?.as_object()?;
    // An exact key first; then any key naming the same host (with scheme or path).
    auths
        .get(&server)
        .map(|v| (server.clone(), v))
        .or_else(|| {
            auths
                .iter()
                .find(|(key, _)| key_host(key) == key_host(&server))
                .map(|(k, v)| (k.clone(), v))
        })
        .and_then(|(key, value)| Some((key, value.as_object()?)))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>, CredentialsError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        #[serde(default)]
        username: String,
        #[serde(default)]
        secret: String,
    }
    let output = match run_helper(helper, "get", server.as_bytes()) {
        Ok(output) => output,
        Err(CredentialsError::HelperFailed { output, .. }) if output.contains(HELPER_NOT_FOUND) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let answer: Answer =
        serde_json::from_slice(&output).map_err(|source| CredentialsError::HelperOutput {
            helper: helper.to_owned(),
            source,
        })?;
    Ok(match (answer.username.as_str(), answer.secret) {
        (_, secret) if secret.is_empty() => None,
        ("<token>", token) => Some(Credentials::IdentityToken {
            username: String::new(),
            token,
        }),
        (username, password) => Some(Credentials::Basic {
            username: username.to_owned(),
            password,
        }),
    })
}

/// Runs `docker-credential-<helper> <op>` with `input` on stdin; returns its stdout.
fn run_helper(helper: &str, op: &'static str, input: &[u8]) -> Result<Vec<u8>, CredentialsError> {
    let spawn_error = |source| CredentialsError::HelperSpawn {
        helper: helper.to_owned(),
        op,
        source,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(op)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    // The input is a line or a small JSON object: it fits the pipe, so writing before reading
    // cannot deadlock.
    let mut stdin = child.stdin.take().expect("stdin was piped");
    stdin.write_all(input).map_err(spawn_error)?;
    drop(stdin);
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        let text = if output.stdout.iter().all(u8::is_ascii_whitespace) {
            &output.stderr
        } else {
            &output.stdout
        };
        return Err(CredentialsError::HelperFailed {
            helper: helper.to_owned(),
            op,
            output: String::from_utf8_lossy(text).trim().to_owned(),
        });
    }
    Ok(output.stdout)
}
