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
