//! Errors of the content store and of every [`BlobSource`](super::BlobSource).

use std::io;
use std::path::PathBuf;

use super::Digest;

/// What went wrong writing, reading or managing blobs.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// No blob with this digest is stored (or offered by the source).
    #[error("blob {digest} not found")]
    NotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// An ingest received a different number of bytes than it was told to expect.
    #[error("size mismatch for blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest the content was expected to have.
        digest: Digest,
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// Content hashed to another digest than the one it was written or read under.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was supposed to have.
        expected: Digest,
        /// The digest the bytes actually have.
        actual: Digest,
    },
    /// A filesystem operation on the store failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, such as "create ingest in" or "rename blob to".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file under `blobs/sha256/` whose name is not a digest (listing skips nothing silently).
    #[error("unexpected file in blob store: {}", path.display())]
    StrayFile {
        /// The offending path.
        path: PathBuf,
    },
    /// A non-local source (such as a registry) failed to provide the blob.
    #[error("fetch blob {digest}")]
    Source {
        /// The blob being fetched.
        digest: Digest,
        /// The source's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ContentError {
    /// Shorthand for [`ContentError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> ContentError {
        ContentError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether this error says the blob does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentError::NotFound { .. })
    }
}
