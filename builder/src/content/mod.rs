//! Content-addressed blobs: the bytes of layers, configs and manifests, named by their digest.
//!
//! The model is containerd's content store. A blob is immutable and named by the sha256 of its
//! bytes, a [`Digest`]. It is written through an [`Ingest`]: a temp file under `ingest-v1/` that is
//! hashed while written and, on [`commit`](Ingest::commit), checked against the expected size and
//! digest, fsynced and renamed to `blobs/sha256/<hex>`. A reader never sees a partial blob, a
//! blob that already exists is success, and an abandoned ingest cleans up after itself.
//!
//! Readers see a [`BlobSource`]: open a blob by digest, get a stream that is verified as it is
//! read ([`VerifiedReader`]). The local [`ContentStore`] is one; the registry client is another,
//! so code that consumes layers does not care where they come from.
//!
//! This module knows nothing else of kiln (no images, no database): which blobs are still needed
//! is decided by the image store's garbage collector, which alone deletes them.
//!
//! ```
//! use std::io::{Read, Write};
//! use kiln_builder::content::{BlobSource, ContentStore, Digest};
//!
//! let root = tempfile::tempdir()?;
//! let store = ContentStore::open(root.path())?;
//!
//! let mut ingest = store.ingest(Some((Digest::of(b"layer bytes"), 11)))?;
//! ingest.write_all(b"layer bytes")?;
//! let blob = ingest.commit()?;
//!
//! let mut text = String::new();
//! store.open(&blob.digest)?.read_to_string(&mut text)?;
//! assert_eq!(text, "layer bytes");
//! assert_eq!(store.stat(&blob.digest)?.size, 11);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod digest;
mod error;
mod ingest;
mod store;
mod verify;

use std::io::Read;

pub use digest::{Digest, DigestError, Digester, SHA256};
pub use error::ContentError;
pub use ingest::Ingest;
pub use store::{ContentStore, StoredBlob};
pub use verify::VerifiedReader;

/// The two facts every source knows about a blob: its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// Somewhere blobs can be read from by digest: the local store, a registry.
///
/// Vocabulary: a *blob* is an immutable byte string named by its [`Digest`]; to *open* it is to
/// get a stream of its bytes; to *stat* it is to learn its size without reading it.
///
/// Every implementation verifies: the reader returned by [`open`](BlobSource::open) fails with
/// an [`io::Error`](std::io::Error) wrapping [`ContentError::DigestMismatch`] (or `SizeMismatch`)
/// instead of ending cleanly when the bytes are not the blob, so corruption on disk or on the
/// wire is never silently used. A missing blob is [`ContentError::NotFound`].
pub trait BlobSource {
    /// Opens a verified stream of the blob's bytes.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError>;

    /// The blob's digest and size, without reading it.
    fn stat(&self, digest: &Digest) -> Result<BlobInfo, ContentError>;

    /// The blob's size in bytes.
    fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        self.stat(digest).map(|info| info.size)
    }
}
