//! kiln-snapshotter keeps the filesystem snapshots a build is made of, with containerd's lifecycle.
//!
//! Vocabulary (see [`Snapshotter`] for the full lifecycle): a *key* names an active snapshot (writable after
//! `prepare`, read-only after `view`); a *name* names a committed one; a snapshot's *parent* is the committed
//! snapshot it starts from. A snapshotter returns [`Mount`] descriptions and never mounts: the caller mounts
//! them with [`mount::mount_all`], whose [`MountGuard`] unmounts on drop.
//!
//! Two implementations sit behind the trait:
//! - [`OverlaySnapshotter`]: a snapshot stores only its changes; mounts stack the chain with overlayfs.
//! - [`CopySnapshotter`]: a snapshot is a full copy of its parent's tree plus its changes; mounts are binds.
//!
//! [`open`] picks one: [`Backend::Auto`] probes whether overlay works on the root's filesystem (by mounting
//! a tiny overlay under the root) and falls back to copy. A root remembers the backend that laid it out, and
//! the probe's outcome for the filesystem and kernel it ran on.
//!
//! Metadata (SQLite, `<root>/metadata.db`) is the truth: directories are staged under temp names and
//! renamed into place before the row naming them commits, and [`Snapshotter::cleanup`] sweeps what metadata
//! does not name. Several handles and processes may share a root. The crash-safety argument is in the
//! `store` module.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path().join("snapshots-v1");
//! use kiln_snapshotter::{Backend, Kind, Snapshotter};
//!
//! // The copy backend needs no privileges; `Backend::Auto` would pick overlay where it works.
//! let snapshotter = kiln_snapshotter::open(&root, Backend::Copy)?;
//! let mounts = snapshotter.prepare("step-1", None)?;
//! assert_eq!(mounts.len(), 1); // one bind mount, to be mounted by the caller
//! // ... mount, run the step, unmount ...
//! snapshotter.commit("layer-1", "step-1")?;
//! snapshotter.prepare("step-2", Some("layer-1"))?;
//!
//! assert_eq!(snapshotter.stat("layer-1")?.kind, Kind::Committed);
//! assert_eq!(snapshotter.stat("step-2")?.parent.as_deref(), Some("layer-1"));
//! assert!(snapshotter.remove("layer-1").is_err()); // it has a child
//! # Ok(())
//! # }
//! ```
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]

/// The lifecycle calls both backends answer the same way: from the metadata store, plus each
/// backend's own `create` (the tree a new snapshot starts with) and `mounts_for` (how it is mounted).
/// Expanded inside each backend's `impl Snapshotter`, so the two differ only where they really do.
macro_rules! store_lifecycle {
    () => {
        fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
            self.create(key, parent, Kind::Active)
        }

        fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
            self.create(key, parent, Kind::View)
        }

        fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
            Ok(self.mounts_for(&self.store.resolve(key, "mounts")?))
        }

        fn commit(&self, name: &str, key: &str) -> Result<()> {
            self.store.commit(name, key)
        }

        fn remove(&self, key: &str) -> Result<()> {
            self.store.remove(key)
        }

        fn stat(&self, key: &str) -> Result<Info> {
            self.store.stat(key)
        }

        fn set_labels(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info> {
            self.store.set_labels(key, &labels)
        }

        fn usage(&self, key: &str) -> Result<Usage> {
            self.store.usage(key, |record| self.store.fs_dir(record.id))
        }

        fn list(&self) -> Result<Vec<Info>> {
            self.store.list()
        }

        fn cleanup(&self) -> Result<CleanupReport> {
            self.store.cleanup()
        }
    };
}
pub(crate) use store_lifecycle;

mod copy;
mod copytree;
mod error;
mod fsutil;
mod metadata;
pub mod mount;
pub mod overlay;
mod snapshot;
mod store;

use std::path::Path;

pub use copy::CopySnapshotter;
pub use error::{Error, ErrorKind, Result};
pub use mount::{Mount, MountGuard, MountKind};
pub use overlay::OverlaySnapshotter;
pub use snapshot::{Backend, CleanupReport, Info, Kind, ParseBackendError, Snapshotter, Usage};

use store::Store;

/// Opens the snapshotter rooted at `root` (created if missing) with the given backend.
///
/// - [`Backend::Overlay`] fails with [`Error::OverlayUnsupported`] if the probe mount under `root` fails.
/// - [`Backend::Copy`] always works.
/// - [`Backend::Auto`] uses the backend the root already holds, else overlay if the probe succeeds, else copy.
///
/// Opening a root with a backend other than the one it holds fails with [`Error::BackendMismatch`].
pub fn open(root: impl AsRef<Path>, backend: Backend) -> Result<Box<dyn Snapshotter>> {
    let store = Store::open(root.as_ref())?;
    Ok(match (backend, store.stored_backend()?) {
        (Backend::Copy, _) | (Backend::Auto, Some(Backend::Copy)) => {
            Box::new(CopySnapshotter::with_store(store)?)
        }
        (Backend::Overlay, _) | (Backend::Auto, Some(_)) => Box::new(OverlaySnapshotter::with_store(store)?),
        (Backend::Auto, None) => match overlay::mount_options(&store) {
            Ok(options) => Box::new(OverlaySnapshotter::with_options(store, options)?),
            Err(error) => {
                tracing::debug!(%error, "overlay unavailable, using the copy snapshotter");
                Box::new(CopySnapshotter::with_store(store)?)
            }
        },
    })
}
