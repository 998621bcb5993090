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
        Built {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
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
}
