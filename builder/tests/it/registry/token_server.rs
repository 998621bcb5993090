//! Test support: a bearer-token server for `docker-registry`'s token auth, the scheme Docker
//! Hub uses. It signs RS256 JWTs with openssl (the key's self-signed certificate is the
//! registry's root bundle, and travels in the token's `x5c` header), grants every requested
//! action to [`USER`] / [`PASSWORD`] sent as Basic auth and nothing to anyone else, and records
//! the scopes it was asked for.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::support::{PASSWORD, USER};

/// The `service` and `issuer` of testdata/registry/token.yml.
const SERVICE: &str = "kiln-registry";
const ISSUER: &str = "kiln-token-issuer";

/// A token server on a loopback port; stops when dropped.
pub(crate) struct TokenServer {
    port: u16,
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One token request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRequest {
    /// The `scope` parameters, in order.
    pub(crate) scopes: Vec<String>,
    /// Whether the right Basic credentials came with it.
    pub(crate) authenticated: bool,
}

impl TokenServer {
    pub(crate) async fn start() -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=kiln-token",
            ])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(status.success());
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.path().join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let signer = Signer {
            key: dir.path().join("key.pem"),
            x5c: STANDARD.encode(der),
        };
        let task = tokio::spawn({
            let requests = Arc::clone(&requests);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, signer.clone(), Arc::clone(&requests)));
                }
            }
        });
        TokenServer {
            port,
            dir,
            requests,
            task,
        }
    }

    /// The realm URL registries send clients to.
    pub(crate) fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate registries must trust.
    pub(crate) fn root_cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub(crate) fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Signer {
    key: PathBuf,
    x5c: String,
}

impl Signer {
    /// A JWT granting `access`, signed RS256 by openssl.
    fn token(&self, access: &serde_json::Value) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let header = json!({ "typ": "JWT", "alg": "RS256", "x5c": [self.x5c] });
        let claims = json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("kiln-{now}-{}", rand_suffix()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sign(&self.key, signing_input.as_bytes()))
        )
    }
}

fn rand_suffix() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

/// Answers one HTTP request for a token.
async fn serve(mut stream: tokio::net::TcpStream, signer: Signer, requests: Arc<Mutex<Vec<TokenRequest>>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let url = reqwest::Url::parse(&format!("http://token{target}")).unwrap();
    let scopes: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .collect();
    let expected = format!(
        "authorization: basic {}",
        STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
    .to_ascii_lowercase();
    let sent_basic = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization: basic"));
    let authenticated = head.lines().any(|l| l.to_ascii_lowercase() == expected);
    requests.lock().unwrap().push(TokenRequest {
        scopes: scopes.clone(),
        authenticated,
    });
    let response = if sent_basic && !authenticated {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#;
        format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        // Anonymous callers get a valid token that grants nothing, as Docker Hub does for
        // private repositories.
        let access: Vec<serde_json::Value> = if authenticated {
            scopes.iter().filter_map(|scope| grant(scope)).collect()
        } else {
            Vec::new()
        };
        let body = json!({ "token": signer.token(&json!(access)), "expires_in": 300 }).to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(response.as_bytes()).await;
}

/// `repository:name:pull,push` as a JWT access entry.
fn grant(scope: &str) -> Option<serde_json::Value> {
    let mut parts = scope.rsplitn(2, ':');
    let actions = parts.next()?;
    let (kind, name) = parts.next()?.split_once(':')?;
    Some(json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
}
