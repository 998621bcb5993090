//! Layers: a snapshot's changes written as an OCI layer tar, and layer tars applied to directories.
//!
//! A layer is a tar of what changed between a snapshot and its parent: added and modified paths as
//! ordinary entries, deleted ones as whiteouts (`.wh.<name>`), and directories that hide everything
//! the layers below hold as opaque directories (`<dir>/.wh..wh..opq`).
//!
//! - [`diff`] finds the changes ([`Changes`]: an overlay upper dir, or a tree compared with its parent
//!   tree for the copy snapshotter), writes them as a deterministic tar (sorted, no user names, optional
//!   mtime clamp) and streams it through a [`LayerWriter`], which compresses ([`Compression`]: none, gzip
//!   on several threads, zstd) and digests both forms in the same pass into a [`LayerDescriptor`].
//! - [`apply`] reads a plain, gzip or zstd layer and applies it to a directory, refusing every entry
//!   that would reach outside it, and returns the layer's diff_id.
//!
//! Everything works on directory paths; snapshots and mounts are the caller's business.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_builder::layer::{self, ApplyOptions, Changes, DiffOptions};
//!
//! // A parent tree and a copy of it with one file changed and one deleted.
//! let (parent, tree) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! for dir in [&parent, &tree] {
//!     std::fs::write(dir.path().join("kept"), "same")?;
//!     std::fs::write(dir.path().join("app.conf"), "v1")?;
//! }
//! std::fs::write(parent.path().join("old.log"), "bye")?;
//! std::fs::write(tree.path().join("app.conf"), "v2")?;
//!
//! let changes = Changes::TreeCompare { parent: Some(parent.path()), tree: tree.path() };
//! let (descriptor, blob) = layer::diff(changes, Vec::new(), &DiffOptions::new())?;
//! assert_eq!(descriptor.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
//!
//! // Applying the layer to the parent gives the tree.
//! layer::apply(&blob[..], parent.path(), &ApplyOptions::new())?;
//! assert_eq!(std::fs::read_to_string(parent.path().join("app.conf"))?, "v2");
//! assert!(!parent.path().join("old.log").exists());
//! # Ok(())
//! # }
//! ```

mod apply;
mod changes;
mod chunks;
mod compare;
mod compress;
mod diff;
mod error;
mod meta;
mod overlay;
mod pgzip;
mod tar_write;

pub use crate::content::Digest;
pub(crate) use apply::decompress;
pub use apply::{Applied, ApplyOptions, ParentSymlinks, apply};
pub use compress::{
    Compression, LayerDescriptor, LayerWriter, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD,
};
pub use diff::{Changes, DiffOptions, diff};
pub use error::{ApplyError, DiffError, Refusal};
