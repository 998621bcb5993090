//! The image store: named images over the content store, with their metadata in SQLite.
//!
//! An *image* is an OCI manifest (or an index of per-platform manifests, the *target*) whose
//! config and layers are blobs in the [`ContentStore`](crate::content::ContentStore). A *name*
//! is an [`ImageRef`](crate::reference::ImageRef) pointing at a target; an image's *ID* is the
//! digest of its config, as Docker shows it. Names live in the metadata database
//! ([`Db`], `<root>/metadata-v1.db`); an image with no name left is gone, and the blobs no image
//! reaches are reclaimed by the garbage collector ([`ImageStore::gc`]). There are no dangling
//! `<none>` images: like containerd, what keeps a blob alive is a name or a [`Lease`].
//!
//! # On disk
//!
//! ```text
//! <root>/blobs/sha256/<hex>   blobs, read-only, named by digest
//! <root>/ingest-v1/           blobs being written
//! <root>/metadata-v1.db       SQLite (WAL): image names, leases; later cache and snapshot records
//! ```
//!
//! The root is [`default_root`] unless the caller says otherwise (the CLI takes `--root` and
//! `KILN_ROOT`; this library reads no environment but `XDG_DATA_HOME`/`HOME` for the default).
//!
//! # Several processes, one root
//!
//! Every metadata change is one SQLite transaction; writers take the write lock up front
//! (`BEGIN IMMEDIATE`), readers never block. Blobs are only ever deleted by [`ImageStore::gc`],
//! and only inside a write transaction, after marking everything reachable from image names and
//! live leases. Hence the protocol:
//!
//! - **Writers** (build, pull) take a [`Lease`] and add each blob's digest to it *before*
//!   committing the blob's ingest ([`Ingest::digest`](crate::content::Ingest::digest) is known
//!   by then); then [`ImageStore::put_image`] names the image. The lease insert and the GC's
//!   sweep are serialised by the write lock, so either the GC sees the lease, or it finished
//!   before the blob was committed. `put_image` re-checks inside its transaction that every blob
//!   it names exists, so a name never points at a deleted blob.
//! - **A grace period** ([`GcOptions::grace`], one hour by default) is the net for writers
//!   without a lease: an unreferenced blob is kept while its file is younger than that, and
//!   re-ingesting an existing blob refreshes its mtime.
//! - **Readers** never see corruption: an open blob stays readable after it is unlinked, and
//!   every read is digest-verified. A reader that needs an image's blobs to stay available while
//!   another process may remove the image takes [`ImageStore::lease_image`] first.
//!
//! # Later tables
//!
//! Build-cache records (cache key -> snapshot and layer digests) and snapshot records will be
//! added as schema migrations in [`Db`]; the GC's mark phase will then root the blobs that cache
//! records name, next to image names and leases. No table exists before its code does.
//!
//! ```
//! use std::io::Write;
//! use kiln_builder::reference::ImageRef;
//! use kiln_builder::store::{GcOptions, ImageStore};
//!
//! let root = tempfile::tempdir()?;
//! let store = ImageStore::open(root.path())?;
//! let config = store.content().write_blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)?;
//! let manifest = format!(
//!     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!         "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},
//!         "layers":[]}}"#,
//!     config.digest, config.size
//! );
//! let name: ImageRef = "app:1".parse()?;
//! let image = store.put_image(&[name.clone()], manifest.as_bytes())?;
//! assert_eq!(image.id, config.digest);
//! assert_eq!(store.resolve("app:1")?.names, vec![name]);
//! assert_eq!(store.resolve(image.id.short())?.id, image.id);
//!
//! let removal = store.remove("app:1", false)?;
//! assert_eq!(removal.deleted, Some(image.id));
//! let report = store.gc(&GcOptions { grace: std::time::Duration::ZERO, ..GcOptions::default() })?;
//! assert_eq!(report.blobs_removed, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dangling;
mod db;
mod error;
mod gc;
mod image;
mod manifest;
mod variants;

use std::path::PathBuf;

pub use dangling::{dangling_name, is_dangling};
pub use db::Db;
pub use error::StoreError;
pub use gc::{GcOptions, GcReport, Lease};
pub use image::{Image, ImageStore, Removal};
pub(crate) use manifest::host_platform;

/// Where kiln keeps its state unless told otherwise: `/var/lib/kiln` for root, else
/// `$XDG_DATA_HOME/kiln`, else `~/.local/share/kiln` (the XDG default).
///
/// The CLI lets `--root` and then `KILN_ROOT` override this; the library itself does not look.
pub fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/kiln");
    }
    let absolute = |value: std::ffi::OsString| Some(PathBuf::from(value)).filter(|p| p.is_absolute());
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").and_then(absolute) {
        return data.join("kiln");
    }
    match std::env::var_os("HOME").and_then(absolute) {
        Some(home) => home.join(".local/share/kiln"),
        // No home to speak of: a per-user directory that at least does not collide.
        None => std::env::temp_dir().join(format!("kiln-{}", rustix::process::geteuid().as_raw())),
    }
}
