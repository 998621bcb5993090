//! The overlay snapshotter: each snapshot stores only its own changes; a mount stacks the chain.
//!
//! A snapshot `<id>` owns `snapshots/<id>/fs` (overlay's upper directory: new and changed files, whiteouts
//! for deleted ones) and `snapshots/<id>/work` (overlay's scratch directory). Mounts, as containerd's
//! overlay snapshotter makes them:
//!
//! | snapshot | parents | mount |
//! |---|---|---|
//! | active | none | rw bind of its `fs` |
//! | active | some | overlay: `lowerdir` = parents' `fs`, nearest first; `upperdir`/`workdir` its own |
//! | view | none | ro bind of its (empty) `fs` |
//! | view | one | ro bind of the parent's `fs` |
//! | view | several | overlay with `lowerdir` only (read-only by construction) |
//!
//! Whether overlay works is probed, not assumed ([`OverlaySnapshotter::open`]): a small overlay is mounted in a
//! staging directory under the root and exercised (whiteout, opaque directory, copy-up). The probe also finds
//! the options the mount needs here: `index=off` where the kernel accepts it (layers are shared between
//! many mounts, which overlay's inode index would refuse) and `userxattr` when overlay's `trusted.*` xattrs
//! are not available (inside a user namespace). A root remembers what the probe found, for the filesystem and
//! kernel it ran on ([`mount_options`]): opening the root again on the same ones mounts nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::Staging;
use crate::mount::{self, Mount, MountKind};
use crate::snapshot::{Backend, CleanupReport, Info, Kind, Snapshotter, Usage};
use crate::store::{Resolved, Store};

/// The most lower layers one overlay mount can stack (the kernel's `OVL_MAX_STACK`).
pub const MAX_LOWER_LAYERS: usize = 500;

/// The setting holding the last probe's outcome: `<identity>\n<options, comma-separated>`.
const PROBE_SETTING: &str = "overlay_probe";

/// Extra option sets tried by the probe, best first.
const PROBE_CANDIDATES: [&[&str]; 4] = [&["index=off"], &["index=off", "userxattr"], &[], &["userxattr"]];

/// Snapshots as overlayfs layers. See the module docs for the mounts it returns.
pub struct OverlaySnapshotter {
    store: Store,
    /// Options every overlay mount gets, found by the probe.
    options: Vec<String>,
}

impl OverlaySnapshotter {
    /// Opens the snapshotter rooted at `root` (created if missing), after probing that overlay works there (or
    /// recalling such a probe on the same filesystem and kernel: see [`mount_options`]).
    pub fn open(root: impl AsRef<Path>) -> Result<OverlaySnapshotter> {
        Self::with_store(Store::open(root.as_ref())?)
    }

    pub(crate) fn with_store(store: Store) -> Result<OverlaySnapshotter> {
        let options = mount_options(&store)?;
        Self::with_options(store, options)
    }

    pub(crate) fn with_options(store: Store, options: Vec<String>) -> Result<OverlaySnapshotter> {
        store.claim_backend(Backend::Overlay)?;
        Ok(OverlaySnapshotter { store, options })
    }

    /// The options the probe chose for this root, added to every overlay mount (e.g. `index=off`).
    pub fn mount_options(&self) -> &[String] {
        &self.options
    }

    fn mounts_for(&self, resolved: &Resolved) -> Vec<Mount> {
        let id = resolved.record.id;
        let lowers: Vec<PathBuf> = resolved.ancestors.iter().map(|a| self.store.fs_dir(*a)).collect();
        match (resolved.record.kind, lowers.as_slice()) {
            (Kind::View, []) => vec![Mount::bind(self.store.fs_dir(id), true)],
            (Kind::View, [only]) => vec![Mount::bind(only, true)],
            (_, []) => vec![Mount::bind(self.store.fs_dir(id), false)],
            (kind, lowers) => {
                let upper = (kind != Kind::View).then(|| (self.store.fs_dir(id), self.store.work_dir(id)));
                vec![overlay_mount(&self.options, lowers, upper)]
            }
        }
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let resolved = self
            .store
            .create(key, parent, kind, MAX_LOWER_LAYERS, |staging, parent| {
                for dir in ["fs", "work"] {
                    let path = staging.join(dir);
                    fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
                }
                match parent {
                    Some(parent) => {
                        inherit_root_attributes(&self.store.fs_dir(parent.id), &staging.join("fs"))
                    }
                    None => Ok(()),
                }
            })?;
        Ok(self.mounts_for(&resolved))
    }
}

/// Gives a new upper directory the owner and mode of the parent's. Overlay shows the upper directory's
/// attributes for the root of the mount, so without this every layer would reset `/` to root:root 0755.
fn inherit_root_attributes(parent_fs: &Path, upper: &Path) -> Result<()> {
    let meta = fs::metadata(parent_fs).map_err(|e| Error::io("stat", parent_fs, e))?;
    std::os::unix::fs::chown(upper, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io("chown", upper, e))?;
    fs::set_permissions(upper, meta.permissions()).map_err(|e| Error::io("chmod", upper, e))
}

/// An overlay mount of `lowers` (nearest first), writable into `upper` = (upperdir, workdir) if given.
fn overlay_mount(extra: &[String], lowers: &[PathBuf], upper: Option<(PathBuf, PathBuf)>) -> Mount {
    let mut options = extra.to_vec();
    let lowers: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    options.push(format!("lowerdir={}", lowers.join(":")));
    if let Some((upper, work)) = upper {
        options.push(format!("upperdir={}", upper.display()));
        options.push(format!("workdir={}", work.display()));
    }
    Mount {
        kind: MountKind::Overlay,
        source: PathBuf::from("overlay"),
        target: None,
        options,
    }
}

/// The extra options overlay mounts under the store's root need: what an earlier probe found, if it ran on
/// the same filesystem and kernel, else what a new probe finds (then remembered).
///
/// Probing mounts and unmounts an overlay, and an unmount waits for an RCU grace period (milliseconds to a
/// tenth of a second on a busy machine): too slow for every start of a short command. What the probe finds
/// depends on the kernel (its overlay features), the filesystem holding the root (its xattr support) and the
/// user namespace, so that is what the remembered result is keyed by ([`probe_identity`]): a root moved to
/// another filesystem, a kernel upgrade or a run in another user namespace probes again. Without an identity
/// (no `/proc`, a `statfs` that fails), it probes every time.
pub(crate) fn mount_options(store: &Store) -> Result<Vec<String>> {
    check_root_path(store.root())?;
    let identity = probe_identity(store.snapshots_dir());
    if let Some(identity) = &identity {
        let remembered = store.setting(PROBE_SETTING)?;
        let found = remembered.as_deref().and_then(|value| value.split_once('\n'));
        if let Some((_, options)) = found.filter(|(id, _)| id == identity) {
            return Ok(options
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect());
        }
    }
    let options = probe_store(store)?;
    if let Some(identity) = identity {
        store.set_setting(PROBE_SETTING, &format!("{identity}\n{}", options.join(",")))?;
    }
    Ok(options)
}

/// What a probe's outcome depends on: the kernel release, the type and device of the filesystem holding
/// `dir`, and the user namespace (inside one, overlay's `trusted.*` xattrs are out of reach).
fn probe_identity(dir: &Path) -> Option<String> {
    let fs = rustix::fs::statfs(dir).ok()?;
    let dev = fs::metadata(dir).ok()?.dev();
    let userns = fs::metadata("/proc/self/ns/user").ok()?.ino();
    let kernel = rustix::system::uname();
    Some(format!(
        "kernel={} fstype={:#x} dev={dev} userns={userns}",
        kernel.release().to_string_lossy(),
        fs.f_type
    ))
}

/// Fails for a root whose path overlay's mount options cannot carry.
fn check_root_path(root: &Path) -> Result<()> {
    let text = root.to_str().ok_or_else(|| Error::InvalidRoot {
        path: root.to_owned(),
        reason: "not UTF-8",
    })?;
    if text.contains([',', ':', '\\']) {
        return Err(Error::InvalidRoot {
            path: root.to_owned(),
            reason: "contains ',', ':' or '\\', which overlay mount options cannot carry",
        });
    }
    Ok(())
}

/// Probes overlay under the store's root; returns the extra options that made it work.
fn probe_store(store: &Store) -> Result<Vec<String>> {
    let root = store.root().to_owned();
    let unsupported = |source: Error| Error::OverlayUnsupported {
        root: root.clone(),
        source: Box::new(source),
    };
    check_root_path(&root)?;
    let staging =
        Staging::create(store.snapshots_dir()).map_err(|e| Error::io("create", store.snapshots_dir(), e))?;
    let probe = || {
        let mut last_error = None;
        for candidate in PROBE_CANDIDATES {
            let options: Vec<String> = candidate.iter().map(|o| (*o).to_owned()).collect();
            match probe_once(staging.path(), &options) {
                Ok(()) => return Ok(options),
                Err(error) => last_error = Some(error),
            }
        }
        Err(unsupported(last_error.expect("at least one candidate was tried")))
    };
    in_private_mount_namespace(probe)
}

/// Runs `f` on a thread of its own with a mount namespace of its own, whose mounts propagate nowhere:
/// what `f` mounts goes away with the thread, even if the process is killed meanwhile (the kernel
/// drops a namespace with its last task). The probe runs in one, so Ctrl-C during a first start leaves
/// no test overlay mounted. Where a namespace cannot be had, `f` runs on the calling thread.
fn in_private_mount_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = scope.spawn(move || {
            // SAFETY: NEWNS (with FS, which it implies) gives this thread its own mount namespace, cwd,
            // root and umask; it does not touch the file descriptor table other threads share (the
            // hazard `unshare_unsafe` warns about).
            let own = unsafe {
                rustix::thread::unshare_unsafe(
                    rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::FS,
                )
            }
            .and_then(|()| {
                rustix::mount::mount_change(
                    "/",
                    rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
                )
            });
            if own.is_err() {
                // Hand `f` back: it runs where it was called.
                let _ = tx.send(f);
                return None;
            }
            Some(f())
        });
        match worker.join() {
            Ok(Some(result)) => result,
            Ok(None) => rx.recv().expect("the thread handed the work back")(),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Mounts a two-layer overlay in a fresh subdirectory of `dir` and checks what the snapshotter relies on.
fn probe_once(dir: &Path, options: &[String]) -> Result<()> {
    let base = dir.join(format!("try-{}", options.join("-")));
    let [lower1, lower2, upper, work, merged] =
        ["lower1", "lower2", "upper", "work", "merged"].map(|name| base.join(name));
    let io = |operation: &'static str, path: &Path| {
        let path = path.to_owned();
        move |e| Error::io(operation, path, e)
    };
    for dir in [&lower1.join("dir"), &lower2, &upper, &work, &merged] {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    fs::write(lower1.join("dir/old"), "1").map_err(io("create", &lower1))?;
    fs::write(lower2.join("file"), "2").map_err(io("create", &lower2))?;
    let mount = overlay_mount(options, &[lower1, lower2], Some((upper.clone(), work)));
    let guard = mount::mount_all(&[mount], &merged)?;
    let check = |ok: bool, what: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(Error::OverlayProbe {
                path: merged.clone(),
                check: what,
            })
        }
    };
    check(
        merged.join("file").exists() && merged.join("dir/old").exists(),
        "lower layers visible",
    )?;
    // A deleted lower file needs a whiteout in the upper dir.
    fs::remove_file(merged.join("file")).map_err(io("remove", &merged))?;
    check(!merged.join("file").exists(), "whiteout hides a lower file")?;
    // A directory deleted and made again needs the opaque xattr (trusted.* or, with userxattr, user.*).
    fs::remove_dir_all(merged.join("dir")).map_err(io("remove", &merged))?;
    fs::create_dir(merged.join("dir")).map_err(io("create", &merged))?;
    check(
        !merged.join("dir/old").exists(),
        "opaque directory hides lower entries",
    )?;
    fs::write(merged.join("new"), "3").map_err(io("create", &merged))?;
    guard.unmount()?;
    check(upper.join("new").exists(), "writes land in the upper directory")
}

impl Snapshotter for OverlaySnapshotter {
    fn backend(&self) -> Backend {
        Backend::Overlay
    }

    crate::store_lifecycle!();

    fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        Ok(self.store.fs_dir(self.store.record(key)?.id))
    }
}

#[cfg(test)]
mod tests {
    use super::in_private_mount_namespace;

    fn mounted(mountinfo: &str, path: &std::path::Path) -> bool {
        let path = path.to_str().unwrap();
        std::fs::read_to_string(mountinfo)
            .unwrap()
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(path))
    }

    #[test]
    fn mounts_in_a_private_namespace_vanish_with_it_unseen() {
        // Tests run as root: mounting is the point.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_owned();
        let inside = in_private_mount_namespace(|| {
            rustix::mount::mount(
                "tmpfs",
                &target,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .unwrap();
            // Left mounted on purpose, as by a process killed before it could unmount.
            mounted("/proc/thread-self/mountinfo", &target)
        });
        assert!(inside, "the thread saw its mount");
        assert!(!mounted("/proc/self/mountinfo", &target), "nothing left behind");
    }
}
