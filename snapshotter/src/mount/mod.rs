//! Mount descriptions and the guard that performs them.
//!
//! A snapshotter only *describes* mounts ([`Mount`], the same shape as containerd's `mount.Mount`: a type,
//! a source and options). [`mount_all`] performs a list of them at a target and returns a [`MountGuard`]
//! that unmounts them, last first, when dropped; an unmount refused with `EBUSY` falls back to a lazy
//! detach so a guard never leaves a mount behind.
//!
//! Overlay mounts with many layers do not fit in the one page of option data `mount(2)` accepts. They are
//! made with the new mount API instead (`fsopen`/`fsconfig`, one `lowerdir+` per layer, Linux >= 6.8), which
//! has no such limit; on older kernels the legacy `mount(2)` is used, with layer paths made relative to their
//! common directory from a thread with a private working directory. [`MountApi`] picks one explicitly.
//!
//! ```no_run
//! use kiln_snapshotter::{Backend, mount};
//!
//! let snapshotter = kiln_snapshotter::open("/var/lib/kiln/snapshots-v1", Backend::Auto)?;
//! let mounts = snapshotter.prepare("build-1", None)?;
//! let rootfs = std::path::Path::new("/run/kiln/build-1");
//! let guard = mount::mount_all(&mounts, rootfs)?;
//! std::fs::write(rootfs.join("hello"), "hi")?;
//! guard.unmount()?;
//! snapshotter.commit("layer-1", "build-1")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod overlay;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Error, Result};

/// The filesystem types a snapshotter describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MountKind {
    /// A bind mount of `source` (options `bind` or `rbind`, `ro`/`rw`, `nosuid`, `nodev`, `noexec`).
    Bind,
    /// An overlay mount (options `lowerdir=a:b`, `upperdir=`, `workdir=`, and overlay's own options).
    Overlay,
}

impl MountKind {
    /// The filesystem type name as `mount(8)` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Overlay => "overlay",
        }
    }
}

impl fmt::Display for MountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mount to perform; the snapshotter's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem type.
    pub kind: MountKind,
    /// The bind source, or `overlay` for overlay mounts.
    pub source: PathBuf,
    /// Where to mount, relative to the target given to [`mount_all`]; `None` is the target itself.
    pub target: Option<PathBuf>,
    /// Mount options, as `mount -o` takes them.
    pub options: Vec<String>,
}

impl Mount {
    /// A bind mount of `source`, read-only if `readonly`.
    pub fn bind(source: impl Into<PathBuf>, readonly: bool) -> Mount {
        let access = if readonly { "ro" } else { "rw" };
        Mount {
            kind: MountKind::Bind,
            source: source.into(),
            target: None,
            options: vec!["bind".to_owned(), access.to_owned()],
        }
    }

    /// Whether the mount is read-only (`ro` option, or an overlay without an upper directory).
    pub fn is_readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
            || (self.kind == MountKind::Overlay && !self.options.iter().any(|o| o.starts_with("upperdir=")))
    }
}

/// How overlay mounts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MountApi {
    /// The new mount API when the kernel has `lowerdir+`, the legacy call otherwise (decided once per
    /// process, on the first overlay mount).
    #[default]
    Auto,
    /// `fsopen`/`fsconfig` with one `lowerdir+` per layer: no limit on the number of layers but the kernel's.
    FsConfig,
    /// `mount(2)` with option data, paths made relative when absolute ones would not fit in a page.
    Legacy,
}

/// Performs `mounts` at `target` in order, with [`MountApi::Auto`]. See [`mount_all_with`].
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<MountGuard> {
    mount_all_with(mounts, target, MountApi::Auto)
}

/// Performs `mounts` at `target` (each at its own `target` below it) in order, and returns the guard that
/// unmounts them. If one fails, those already made are unmounted before the error is returned.
pub fn mount_all_with(mounts: &[Mount], target: &Path, api: MountApi) -> Result<MountGuard> {
    // The legacy overlay path changes its thread's working directory: every target must be absolute.
    let base = std::path::absolute(target).map_err(|e| Error::io("resolve", target, e))?;
    let mut guard = MountGuard {
        target: base.clone(),
        mounted: Vec::new(),
    };
    for mount in mounts {
        let at = mount
            .target
            .as_ref()
            .map_or_else(|| base.clone(), |sub| base.join(sub));
        match mount.kind {
            MountKind::Bind => mount_bind(mount, &at)?,
            MountKind::Overlay => overlay::mount(mount, &at, api)?,
        }
        guard.mounted.push(at);
    }
    Ok(guard)
}

fn mount_bind(mount: &Mount, at: &Path) -> Result<()> {
    let mut recursive = false;
    let mut flags = MountFlags::empty();
    for option in &mount.options {
        match option.as_str() {
            "bind" => recursive = false,
            "rbind" => recursive = true,
            "rw" => {}
            "ro" => flags |= MountFlags::RDONLY,
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            _ => {
                return Err(Error::InvalidMountOption {
                    kind: mount.kind.to_string(),
                    option: option.clone(),
                });
            }
        }
    }
    let failed = |source: rustix::io::Errno| Error::Mount {
        kind: mount.kind.to_string(),
        target: at.to_owned(),
        detail: None,
        source: source.into(),
    };
    if recursive {
        rustix::mount::mount_bind_recursive(&mount.source, at).map_err(failed)?;
    } else {
        rustix::mount::mount_bind(&mount.source, at).map_err(failed)?;
    }
    if !flags.is_empty() {
        // A bind mount takes its flags only on a second, remount call.
        if let Err(e) = rustix::mount::mount_remount(at, MountFlags::BIND | flags, "") {
            let _ = unmount(at);
            return Err(failed(e));
        }
    }
    Ok(())
}

/// Mounts made by [`mount_all`]; dropping it unmounts them, last first.
#[derive(Debug)]
#[must_use = "dropping the guard unmounts immediately"]
pub struct MountGuard {
    target: PathBuf,
    mounted: Vec<PathBuf>,
}

impl MountGuard {
    /// The (absolute) target the mounts were made at.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting the first failure (the remaining mounts are still detached).
    pub fn unmount(mut self) -> Result<()> {
        self.unmount_all()
    }

    fn unmount_all(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(at) = self.mounted.pop() {
            if let Err(e) = unmount(&at) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(error) = self.unmount_all() {
            tracing::warn!(%error, "could not unmount");
        }
    }
}

/// Unmounts `at`; if it is busy, detaches it lazily (the kernel finishes once the last user is gone).
fn unmount(at: &Path) -> Result<()> {
    let failed = |source: rustix::io::Errno| Error::Unmount {
        target: at.to_owned(),
        source: io::Error::from(source),
    };
    match rustix::mount::unmount(at, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(at, UnmountFlags::DETACH).map_err(failed),
        Err(e) => Err(failed(e)),
    }
}
