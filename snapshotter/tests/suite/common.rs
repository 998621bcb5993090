//! Fixtures: a snapshotter root in a fresh temp dir, mount points, and small helpers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_snapshotter::mount::{self, MountApi};
use kiln_snapshotter::{Backend, ErrorKind, Mount, MountGuard, Snapshotter};

const TMPFS_MAGIC: i64 = 0x0102_1994;
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// A temp dir holding a snapshotter root and mount points. Declare it before any guard so guards
/// (dropped first) unmount before the directory is removed.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) backend: Backend,
}

impl Fixture {
    pub(crate) fn new(backend: Backend) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("snap-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir under the target dir");
        let statfs = rustix::fs::statfs(dir.path()).expect("statfs");
        let magic = statfs.f_type;
        assert!(
            magic != TMPFS_MAGIC && magic != OVERLAYFS_MAGIC,
            "tests need a real filesystem, {} is tmpfs or overlay",
            dir.path().display()
        );
        let root = dir.path().join("snapshots-v1");
        Fixture { dir, root, backend }
    }

    /// A new handle on the root.
    pub(crate) fn open(&self) -> Box<dyn Snapshotter> {
        let snapshotter = kiln_snapshotter::open(&self.root, self.backend).expect("open snapshotter");
        assert_eq!(snapshotter.backend(), self.backend);
        snapshotter
    }

    /// A fresh, empty mount point.
    pub(crate) fn mountpoint(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("mnt").join(name);
        std::fs::create_dir_all(&path).expect("create mount point");
        path
    }

    /// Mounts `mounts` at a fresh mount point named `name`.
    pub(crate) fn mount(&self, mounts: &[Mount], name: &str) -> MountGuard {
        self.mount_with(mounts, name, MountApi::Auto)
    }

    pub(crate) fn mount_with(&self, mounts: &[Mount], name: &str, api: MountApi) -> MountGuard {
        let at = self.mountpoint(name);
        mount::mount_all_with(mounts, &at, api).unwrap_or_else(|e| panic!("mount {mounts:?}: {e}"))
    }
}

/// Prepares `key` on `parent`, lets `write` change the mounted tree, and commits it as `name`.
pub(crate) fn commit_layer(
    fx: &Fixture,
    snapshotter: &dyn Snapshotter,
    name: &str,
    parent: Option<&str>,
    write: impl FnOnce(&Path),
) {
    let key = format!("{name}-active");
    let mounts = snapshotter.prepare(&key, parent).expect("prepare");
    let guard = fx.mount(&mounts, &key);
    write(guard.target());
    guard.unmount().expect("unmount");
    snapshotter.commit(name, &key).expect("commit");
}

/// Asserts that `result` failed with `kind`.
#[track_caller]
pub(crate) fn assert_kind<T: std::fmt::Debug>(result: kiln_snapshotter::Result<T>, kind: ErrorKind) {
    match result {
        Ok(value) => panic!("expected a {kind:?} error, got Ok({value:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "unexpected error: {e}"),
    }
}

/// (uid, gid, mode) of `path`, not following symlinks.
pub(crate) fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// The names of the directories under `<root>/snapshots`.
pub(crate) fn snapshot_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("snapshots"))
        .expect("read snapshots dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
