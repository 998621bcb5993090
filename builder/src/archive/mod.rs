//! Images in and out of the store as files: `docker save` tarballs, OCI archives, root filesystems.
//!
//! Three ways across the store's edge, one function each:
//!
//! - [`save`] writes images as one tarball in the layout Docker writes since version 25: an OCI
//!   image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) that also carries Docker's
//!   `manifest.json` and `repositories`, pointing into `blobs/`. `docker load` (any version),
//!   `skopeo` (`docker-archive:` and `oci-archive:`), containerd and podman all read it. Blobs are
//!   streamed from the store as they are, verified on the way.
//! - [`load`] reads any of those back: `docker save` output old (`<id>/layer.tar`, `<id>.json`) or
//!   new, skopeo's docker archives, and OCI archives, plain or gzip/zstd compressed. The whole
//!   archive is staged and verified (every blob against its digest, every Docker layer against the
//!   config's diff_id) before anything is committed, so a bad archive leaves the store unchanged.
//!   Names come from `index.json` annotations and `manifest.json`'s `RepoTags`.
//! - [`import`] turns a root filesystem tarball into a one-layer image, with `--change`
//!   instructions applied to its config, as `docker import` does.
//!
//! [`save`] and [`load`] report their layers' bytes to a [`Reporter`] as [`Event`]s ([`NoProgress`] ignores them),
//! for the caller to draw.
//!
//! An image without a name (a save by ID, an unnamed import) is stored under a dangling name
//! ([`crate::store::dangling_name`]).
//!
//! ```
//! use kiln_builder::archive::{self, ImportOptions, NoProgress, SaveRequest};
//! use kiln_builder::store::ImageStore;
//!
//! // A root filesystem with one file, as a tarball.
//! let mut rootfs = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_ustar();
//! header.set_size(3);
//! header.set_mode(0o644);
//! rootfs.append_data(&mut header, "hello", &b"hi\n"[..])?;
//! let rootfs = rootfs.into_inner()?;
//!
//! let root = tempfile::tempdir()?;
//! let store = ImageStore::open(root.path())?;
//! let options = ImportOptions { changes: vec!["CMD [\"cat\", \"/hello\"]".into()], ..ImportOptions::default() };
//! let image = archive::import(&store, &rootfs[..], &["hello:1".parse()?], &options)?;
//!
//! // Save it, and load the archive into another store: same image ID.
//! let request = SaveRequest { image: image.clone(), names: image.names.clone() };
//! let tarball = archive::save(&store, &[request], Vec::new(), &NoProgress)?;
//! let other_root = tempfile::tempdir()?;
//! let other = ImageStore::open(other_root.path())?;
//! // A reporter sees each layer start, move and finish.
//! let events = std::sync::Mutex::new(Vec::new());
//! let record = |event: archive::Event<'_>| {
//!     if let archive::Event::LayerDone { id } = event {
//!         events.lock().unwrap().push(id.to_owned());
//!     }
//! };
//! let loaded = archive::load(&other, &tarball[..], &record)?;
//! assert_eq!(events.into_inner()?.len(), 1);
//! assert_eq!(loaded[0].image.id, image.id);
//! assert_eq!(loaded[0].names[0].familiar_string(), "hello:1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod change;
mod compress;
mod error;
mod import;
mod layout;
mod load;
mod progress;
mod save;
mod stage;
#[cfg(test)]
mod tests;

pub use error::ArchiveError;
pub use import::{ImportOptions, import};
pub use load::{Loaded, load};
pub use progress::{Event, NoProgress, Reporter};
pub use save::{SaveRequest, save};

use crate::content::ContentError;

/// Takes the [`ContentError`] out of an I/O error that carries one (a verifying reader's or an
/// ingest's), or gives the error back.
fn content_error(error: std::io::Error) -> Result<ContentError, std::io::Error> {
    if !error
        .get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<ContentError>)
    {
        return Err(error);
    }
    match error
        .into_inner()
        .map(<dyn std::error::Error + Send + Sync>::downcast::<ContentError>)
    {
        Some(Ok(inner)) => Ok(*inner),
        _ => unreachable!("the inner error was checked to be a ContentError"),
    }
}
