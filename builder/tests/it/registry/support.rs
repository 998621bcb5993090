//! Test support: a real registry (Debian's `docker-registry`) on a free loopback port, test
//! images built as OCI blobs in a content store, and a reporter that records events.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_builder::content::{BlobInfo, ContentStore, Digest};
use kiln_builder::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use kiln_builder::registry::{Client, CredentialStore, Descriptor, Event, Reporter};
use serde_json::json;

/// A `docker-registry serve` process with its storage in a temp dir; killed on drop.
pub(crate) struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The user and password of registries started with [`Registry::with_basic_auth`].
pub(crate) const USER: &str = "kiln";
pub(crate) const PASSWORD: &str = "s3cret-pass";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/registry")
        .join(name)
}

impl Registry {
    /// A registry without authentication.
    pub(crate) fn start() -> Registry {
        Registry::spawn("plain.yml", &[], &[])
    }

    /// A registry that requires HTTP Basic auth as [`USER`] / [`PASSWORD`].
    pub(crate) fn with_basic_auth() -> Registry {
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        Registry::spawn("htpasswd.yml", &[("htpasswd", format!("{USER}:{hash}\n"))], &[])
    }

    /// A registry that requires bearer tokens from the token server at `realm`, signed by the
    /// key of the certificate at `root_cert`.
    pub(crate) fn with_token_auth(realm: &str, root_cert: &Path) -> Registry {
        Registry::spawn(
            "token.yml",
            &[],
            &[
                ("REGISTRY_AUTH_TOKEN_REALM", realm.to_owned()),
                (
                    "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE",
                    root_cert.display().to_string(),
                ),
            ],
        )
    }

    fn spawn(config: &str, files: &[(&str, String)], env: &[(&str, String)]) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        // Bind-and-release finds a free port; the registry takes it a moment later.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(testdata(config))
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("storage"),
            );
        // Setting this on a config without `auth.htpasswd` would add one, without a realm.
        if files.iter().any(|(name, _)| *name == "htpasswd") {
            command.env("REGISTRY_AUTH_HTPASSWD_PATH", dir.path().join("htpasswd"));
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed (.ci/apt-packages)");
        let mut registry = Registry { child, port, dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the registry logged (errors only).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:<port>`, the registry's domain in references.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A reference in this registry: `reference("app:1")`.
    pub(crate) fn reference(&self, name: &str) -> kiln_builder::reference::ImageRef {
        format!("{}/{name}", self.host()).parse().unwrap()
    }

    /// Where the registry keeps a blob's bytes (distribution's filesystem layout).
    pub(crate) fn blob_data(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client for tests: no credentials unless given, quick retries.
pub(crate) fn client(credentials: Option<CredentialStore>) -> Client {
    let builder = Client::builder().retries(2, Duration::from_millis(20));
    match credentials {
        Some(store) => builder.credentials(store),
        None => builder.anonymous(),
    }
    .build()
    .unwrap()
}

/// A credential store in a temp dir holding [`USER`]'s login for `host`.
pub(crate) fn logged_in(host: &str) -> (tempfile::TempDir, CredentialStore) {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({ "auths": { host: { "auth": base64_of(&format!("{USER}:{PASSWORD}")) } } });
    fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let store = CredentialStore::at(dir.path());
    (dir, store)
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An image built into a content store.
#[derive(Debug, Clone)]
pub(crate) struct TestImage {
    /// The manifest (or index) descriptor.
    pub(crate) target: Descriptor,
    pub(crate) config: BlobInfo,
    pub(crate) layers: Vec<BlobInfo>,
}

impl TestImage {
    /// Config and layers, as a pull must fetch them.
    pub(crate) fn blobs(&self) -> Vec<Digest> {
        std::iter::once(self.config.digest.clone())
            .chain(self.layers.iter().map(|l| l.digest.clone()))
            .collect()
    }
}

/// A gzip layer holding `files` (path, bytes); returns the blob and the uncompressed digest.
pub(crate) fn layer(content: &ContentStore, files: &[(&str, &[u8])]) -> (BlobInfo, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    // Stored (level 0) gzip: still a gzip layer, and fast in debug builds; noise would not shrink.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(&tar).unwrap();
    let blob = content.write_blob(&gz.finish().unwrap()).unwrap();
    (blob, Digest::of(&tar))
}

/// An image for `platform` (`linux/amd64`) with one small layer and, if `big` > 0, a second
/// layer of `big` incompressible bytes; `seed` makes it unique.
pub(crate) fn image(content: &ContentStore, seed: &str, platform: &str, big: usize) -> TestImage {
    let mut layers = vec![layer(content, &[("hello.txt", seed.as_bytes())])];
    if big > 0 {
        layers.push(layer(content, &[("big.bin", &noise(seed, big))]));
    }
    let (os, rest) = platform.split_once('/').unwrap();
    let (architecture, variant) = rest.split_once('/').map_or((rest, None), |(a, v)| (a, Some(v)));
    let mut config = json!({
        "architecture": architecture,
        "os": os,
        "config": { "Env": ["SEED=".to_owned() + seed] },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>() },
    });
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    let config = content.write_blob(config.to_string().as_bytes()).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size },
        "layers": layers.iter().map(|(blob, _)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob.digest, "size": blob.size,
        })).collect::<Vec<_>>(),
    });
    let blob = content.write_blob(manifest.to_string().as_bytes()).unwrap();
    TestImage {
        target: descriptor(OCI_MANIFEST, &blob),
        config,
        layers: layers.into_iter().map(|(blob, _)| blob).collect(),
    }
}

/// An index of `images` with the given platforms.
pub(crate) fn index(content: &ContentStore, images: &[(&TestImage, &str)]) -> Descriptor {
    let manifests: Vec<_> = images
        .iter()
        .map(|(image, platform)| {
            let parts: Vec<&str> = platform.split('/').collect();
            let mut platform = json!({ "os": parts[0], "architecture": parts[1] });
            if let Some(variant) = parts.get(2) {
                platform["variant"] = json!(variant);
            }
            json!({ "mediaType": OCI_MANIFEST, "digest": image.target.digest, "size": image.target.size, "platform": platform })
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    descriptor(
        OCI_INDEX,
        &content.write_blob(index.to_string().as_bytes()).unwrap(),
    )
}

pub(crate) fn descriptor(media_type: &str, blob: &BlobInfo) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: blob.digest.clone(),
        size: blob.size,
        platform: None,
    }
}

/// Deterministic bytes gzip cannot shrink (an xorshift stream), so a layer is really `len` big.
pub(crate) fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |s, b| {
        (s ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Makes the content store's root an OCI layout holding `target` as `tag`, for skopeo.
pub(crate) fn oci_layout(content: &ContentStore, target: &Descriptor, tag: &str) -> String {
    let root = content.root();
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": target.media_type, "digest": target.digest, "size": target.size,
                        "annotations": { "org.opencontainers.image.ref.name": tag } }],
    });
    fs::write(root.join("index.json"), index.to_string()).unwrap();
    format!("oci:{}:{tag}", root.display())
}

/// Runs skopeo with `args`, panicking with its output if it fails; returns stdout.
pub(crate) fn skopeo(args: &[&str]) -> String {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (.ci/apt-packages)");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Records events as owned strings, for assertions.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) events: Mutex<Vec<Recorded>>,
}

/// An [`Event`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    Start(Digest),
    Progress(Digest, u64),
    Done(Digest),
    Exists(Digest),
    Mounted(Digest, String),
    Retrying,
    ManifestPushed(String, Digest),
    Resolving(String),
    Resolved(String, Digest),
    /// A manifest's config and layers.
    Manifest(Digest, Vec<Digest>),
}

impl Reporter for Recorder {
    fn report(&self, event: Event<'_>) {
        let recorded = match event {
            Event::Resolving { reference } => Recorded::Resolving(reference.to_owned()),
            Event::Resolved { reference, digest } => Recorded::Resolved(reference.to_owned(), digest.clone()),
            Event::Manifest { config, layers, .. } => {
                Recorded::Manifest(config.clone(), layers.iter().map(|l| l.digest.clone()).collect())
            }
            Event::BlobStart { digest, .. } => Recorded::Start(digest.clone()),
            Event::BlobProgress { digest, done, .. } => Recorded::Progress(digest.clone(), done),
            Event::BlobDone { digest } => Recorded::Done(digest.clone()),
            Event::BlobExists { digest } => Recorded::Exists(digest.clone()),
            Event::BlobMounted { digest, from } => Recorded::Mounted(digest.clone(), from.to_owned()),
            Event::Retrying { .. } => Recorded::Retrying,
            Event::ManifestPushed { reference, digest } => {
                Recorded::ManifestPushed(reference.to_owned(), digest.clone())
            }
        };
        self.events.lock().unwrap().push(recorded);
    }
}

impl Recorder {
    pub(crate) fn events(&self) -> Vec<Recorded> {
        self.events.lock().unwrap().clone()
    }

    /// Digests with an event matching `pick`, sorted.
    pub(crate) fn digests(&self, pick: impl Fn(&Recorded) -> Option<Digest>) -> Vec<Digest> {
        let mut digests: Vec<Digest> = self.events().iter().filter_map(pick).collect();
        digests.sort();
        digests.dedup();
        digests
    }
}

/// Sorted copy, for set-like comparisons.
pub(crate) fn sorted(mut digests: Vec<Digest>) -> Vec<Digest> {
    digests.sort();
    digests
}

/// A TCP proxy in front of a registry that injects network faults: the first `unavailable`
/// connections get a `503` without reaching the registry, and once, a connection is cut after
/// `cut_after` response bytes (mid-blob). It also notes whether any request asked for a range.
pub(crate) struct FaultyProxy {
    pub(crate) port: u16,
    state: std::sync::Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    unavailable_left: std::sync::atomic::AtomicUsize,
    cut_after: std::sync::atomic::AtomicU64,
    served_503: std::sync::atomic::AtomicUsize,
    cuts: std::sync::atomic::AtomicUsize,
    saw_range: std::sync::atomic::AtomicBool,
}

impl FaultyProxy {
    /// Proxies to `registry`; `cut_after` of 0 cuts nothing.
    pub(crate) async fn start(registry: &Registry, unavailable: usize, cut_after: u64) -> FaultyProxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        state.unavailable_left.store(unavailable, SeqCst);
        state.cut_after.store(cut_after, SeqCst);
        let upstream = registry.port;
        let task = tokio::spawn({
            let state = std::sync::Arc::clone(&state);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(proxy_connection(client, upstream, std::sync::Arc::clone(&state)));
                }
            }
        });
        FaultyProxy { port, state, task }
    }

    /// A reference through the proxy.
    pub(crate) fn reference(&self, name: &str) -> kiln_builder::reference::ImageRef {
        format!("127.0.0.1:{}/{name}", self.port).parse().unwrap()
    }

    /// How many 503s were served, connections cut, and whether a `Range` request came.
    pub(crate) fn faults(&self) -> (usize, usize, bool) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.state.served_503.load(SeqCst),
            self.state.cuts.load(SeqCst),
            self.state.saw_range.load(SeqCst),
        )
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    state: std::sync::Arc<ProxyState>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let take_503 = state
        .unavailable_left
        .fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1))
        .is_ok();
    if take_503 {
        let mut request = [0u8; 4096];
        let _ = client.read(&mut request).await;
        state.served_503.fetch_add(1, SeqCst);
        let _ = client
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = {
        let state = std::sync::Arc::clone(&state);
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                if String::from_utf8_lossy(&buffer[..n])
                    .to_ascii_lowercase()
                    .contains("\r\nrange: bytes=")
                {
                    state.saw_range.store(true, SeqCst);
                }
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    };
    let responses = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut forwarded = 0u64;
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let limit = state.cut_after.load(SeqCst);
            if limit > 0 && forwarded + n as u64 > limit {
                // Cut once: forward up to the limit, then drop the connection.
                if state.cut_after.compare_exchange(limit, 0, SeqCst, SeqCst).is_ok() {
                    let keep = usize::try_from(limit - forwarded).unwrap();
                    let _ = client_write.write_all(&buffer[..keep]).await;
                    state.cuts.fetch_add(1, SeqCst);
                    return;
                }
            }
            forwarded += n as u64;
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    // Either side ending ends the connection (dropping the halves closes both sockets).
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}
