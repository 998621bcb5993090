//! Errors of the metadata database and the image store.

use std::path::PathBuf;

use crate::content::{ContentError, Digest};
use crate::reference::ReferenceError;

/// What went wrong in the image store. Messages follow Docker's where Docker has one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing blobs failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The given string is neither an image reference nor an image ID.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The metadata database could not be opened or set up.
    #[error("open metadata database {}", path.display())]
    DatabaseOpen {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A query or transaction on the metadata database failed.
    #[error("metadata database")]
    Database(#[from] rusqlite::Error),
    /// The database was written by a newer kiln; this one will not guess at its meaning.
    #[error("metadata database {} has schema version {found}, newer than the {supported} this kiln knows", path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// No image has this name or ID.
    #[error("No such image: {reference}")]
    ImageNotFound {
        /// The name or ID asked for, in familiar form.
        reference: String,
    },
    /// An ID prefix matches more than one image.
    #[error("multiple IDs found with provided prefix: {prefix}")]
    AmbiguousId {
        /// The prefix given.
        prefix: String,
    },
    /// Removing an image by ID would drop names in several repositories; needs `force`.
    #[error("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", id.short())]
    ReferencedInMultipleRepositories {
        /// The image ID.
        id: Digest,
    },
    /// A manifest, index or config blob is not valid JSON of its kind.
    #[error("parse {kind} {digest}")]
    InvalidJson {
        /// "manifest", "index" or "config".
        kind: &'static str,
        /// The blob.
        digest: Digest,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The bytes given as an image's manifest are neither an image manifest nor an index.
    #[error("unsupported manifest media type {media_type:?} ({digest})")]
    UnsupportedMediaType {
        /// The manifest's digest.
        digest: Digest,
        /// Its media type, as declared or detected.
        media_type: String,
    },
    /// An image refers to a blob that is not in the content store.
    #[error("image {image} references blob {digest}, which is not in the content store")]
    MissingBlob {
        /// The manifest or index being stored.
        image: Digest,
        /// The missing blob.
        digest: Digest,
    },
    /// A descriptor names a blob by a digest kiln does not compute (such as sha512).
    #[error("{owner} references {digest}, whose digest algorithm kiln does not support")]
    UnsupportedDigest {
        /// The manifest or index holding the descriptor.
        owner: Digest,
        /// The digest as written in the descriptor.
        digest: String,
    },
    /// An index none of whose image manifests is stored locally.
    #[error("index {index} has no image manifest in the content store")]
    NoManifest {
        /// The index.
        index: Digest,
    },
}
