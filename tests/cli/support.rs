//! What every end-to-end test needs: the binary, and the shared conformance corpus.

use std::path::PathBuf;

use assert_cmd::Command;

/// The `kiln` binary under test.
pub(crate) fn kiln() -> Command {
    Command::cargo_bin("kiln").expect("the kiln binary is built")
}

/// The conformance folder `sub`, or `None` (after saying so) when it is missing outside CI.
pub(crate) fn corpus(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("KILN_CONFORMANCE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"),
        PathBuf::from,
    );
    let dir = root.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance corpus missing at {} (CI=true requires it; set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    eprintln!("skipped: conformance corpus not found at {}", dir.display());
    None
}

/// A kiln root of its own for one test, deleted when dropped.
pub(crate) struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    /// A fresh, empty root.
    pub(crate) fn new() -> Root {
        Root {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// The root directory.
    pub(crate) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `kiln --root <this root>`.
    pub(crate) fn kiln(&self) -> Command {
        let mut cmd = kiln();
        cmd.arg("--root").arg(self.dir.path());
        cmd
    }

    /// Runs kiln with `args`, asserts success and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "kiln {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Imports the busybox root filesystem as `name` with a CMD and an ENV, as a base image
    /// would have them; returns the image ID (`sha256:…`).
    pub(crate) fn import_busybox(&self, name: &str) -> String {
        let rootfs = busybox_rootfs();
        let out = self.ok(&[
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            r#"CMD ["sh"]"#,
            rootfs.to_str().unwrap(),
            name,
        ]);
        out.trim().to_owned()
    }

    /// Every blob file in the root's content store, sorted.
    pub(crate) fn blobs(&self) -> Vec<String> {
        let mut blobs: Vec<String> = std::fs::read_dir(self.dir.path().join("blobs/sha256"))
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        blobs.sort();
        blobs
    }
}

/// The busybox root filesystem tarball (`testdata/images/busybox-rootfs.sh`), made once per test
/// run. Needs Debian's busybox-static (CI installs it).
pub(crate) fn busybox_rootfs() -> PathBuf {
    static ROOTFS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join("busybox-rootfs.tar");
            let temp = dir.join(format!("busybox-rootfs.{}.tar", std::process::id()));
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/images/busybox-rootfs.sh");
            let status = std::process::Command::new("bash")
                .arg(script)
                .arg(&temp)
                .status()
                .expect("bash runs");
            assert!(
                status.success(),
                "busybox-rootfs.sh failed (is busybox-static installed?)"
            );
            std::fs::rename(&temp, &path).unwrap();
            path
        })
        .clone()
}

/// A build context in a temp dir, from `(path, content)` pairs (parents created).
pub(crate) fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// What one `kiln build` printed.
pub(crate) struct Built {
    /// Whether it succeeded.
    pub(crate) success: bool,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Its stderr (the progress).
    pub(crate) stderr: String,
}

impl From<std::process::Output> for Built {
    fn from(out: std::process::Output) -> Built {
        Built {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Built {
    /// How many vertices were cache hits.
    pub(crate) fn cached(&self) -> usize {
        self.stderr.lines().filter(|l| l.ends_with(" CACHED")).count()
    }

    /// The names of the vertices that ran (not cached), in order.
    pub(crate) fn ran(&self) -> Vec<String> {
        let mut names = std::collections::HashMap::new();
        let mut ran = Vec::new();
        for line in self.stderr.lines() {
            let Some(rest) = line.strip_prefix('#') else {
                continue;
            };
            let Some((id, text)) = rest.split_once(' ') else {
                continue;
            };
            if (text.starts_with('[') && !text.starts_with("[internal]")) || text == "exporting to image" {
                names.insert(id.to_owned(), text.to_owned());
            } else if text.starts_with("DONE") {
                if let Some(name) = names.get(id) {
                    ran.push(name.clone());
                }
            }
        }
        ran
    }
}

impl Root {
    /// `kiln build --progress=plain ARGS... CONTEXT`.
    pub(crate) fn build(&self, context: &std::path::Path, args: &[&str]) -> Built {
        let out = self
            .kiln()
            .arg("build")
            .arg("--progress=plain")
            .args(args)
            .arg(context)
            .output()
            .unwrap();
        Built::from(out)
    }

    /// Like [`Root::build`], asserting success.
    pub(crate) fn build_ok(&self, context: &std::path::Path, args: &[&str]) -> Built {
        let built = self.build(context, args);
        assert!(built.success, "kiln build failed:\n{}", built.stderr);
        built
    }

    /// The image config of `image`, as JSON.
    pub(crate) fn config(&self, image: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", image]);
        let inspect: serde_json::Value = serde_json::from_str(&out).unwrap();
        inspect[0].clone()
    }

    /// The ids of the build-cache entries `kiln builder du` lists.
    pub(crate) fn cache_entries(&self) -> Vec<String> {
        self.ok(&["builder", "du"])
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("Reclaimable:"))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    }

    /// Mounts still referring to this root (a finished build leaves none).
    pub(crate) fn leftover_mounts(&self) -> Vec<String> {
        let root = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_owned)
            .collect()
    }

    /// The mounts of a running step: its rootfs (mounted outside the root, made of the root's
    /// snapshots), leaving out any mount inside the root itself.
    pub(crate) fn step_mounts(&self) -> Vec<String> {
        let root = self.dir.path().to_string_lossy().into_owned();
        self.leftover_mounts()
            .into_iter()
            .filter(|l| l.split(' ').nth(4).is_some_and(|point| !point.starts_with(&root)))
            .collect()
    }
}

/// A throwaway registry: Debian's `docker-registry serve` on a free loopback port, its storage
/// in a temp dir; killed on drop. (The same idea as kiln-builder's registry test support.)
pub(crate) struct Registry {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The user of registries started with [`Registry::with_basic_auth`].
pub(crate) const REGISTRY_USER: &str = "kiln";
/// That user's password.
pub(crate) const REGISTRY_PASSWORD: &str = "s3cret-pass";

impl Registry {
    /// A registry without authentication.
    pub(crate) fn start() -> Registry {
        Registry::spawn("plain.yml", None)
    }

    /// A registry that requires HTTP Basic auth as [`REGISTRY_USER`] / [`REGISTRY_PASSWORD`].
    pub(crate) fn with_basic_auth() -> Registry {
        let hash = bcrypt::hash(REGISTRY_PASSWORD, 4).unwrap();
        Registry::spawn("htpasswd.yml", Some(format!("{REGISTRY_USER}:{hash}\n")))
    }

    fn spawn(config: &str, htpasswd: Option<String>) -> Registry {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        // Bind-and-release finds a free port; the registry takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/registry")
            .join(config);
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(config)
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("storage"),
            );
        if let Some(htpasswd) = htpasswd {
            std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
            command.env("REGISTRY_AUTH_HTPASSWD_PATH", dir.path().join("htpasswd"));
        }
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// What the registry logged (errors only).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:<port>`, the registry's domain in image names.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// An image name in this registry: `name("app:1")` is `127.0.0.1:<port>/app:1`.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs skopeo with `args`, panicking with its output if it fails; returns stdout.
pub(crate) fn skopeo(args: &[&str]) -> String {
    let output = std::process::Command::new("skopeo")
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

/// What one kiln run printed.
#[derive(Debug)]
pub(crate) struct Run {
    /// Whether it exited 0.
    pub(crate) ok: bool,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Its stderr.
    pub(crate) stderr: String,
}

impl Root {
    /// Runs `kiln --root <root> args` with Docker's config in `docker_config` (so no test reads
    /// or writes the user's logins), whatever its exit status.
    pub(crate) fn run_with_config(&self, docker_config: &std::path::Path, args: &[&str]) -> Run {
        let out = self
            .kiln()
            .env("DOCKER_CONFIG", docker_config)
            .env_remove("NO_COLOR")
            .args(args)
            .output()
            .unwrap();
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// The layers of the (first) image in a `kiln save` / `-o type=docker|oci` tarball, as its OCI
/// index and manifest list them: (media type, digest), bottom first.
pub(crate) fn archive_layers(tarball: &std::path::Path) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    let mut files = std::collections::HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        // Manifests and index are small; layers are not read.
        if entry.header().size().unwrap() < 64 * 1024 {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.insert(path, bytes);
        }
    }
    let json = |path: &str| -> serde_json::Value { serde_json::from_slice(&files[path]).unwrap() };
    let index = json("index.json");
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(&format!("blobs/sha256/{}", &digest["sha256:".len()..]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                l["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
