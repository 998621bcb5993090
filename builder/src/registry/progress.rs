//! Progress of pulls and pushes, reported as events for the caller to render.

use super::Descriptor;
use crate::content::Digest;

/// One step of a pull or push. Blob events name the blob by digest; a renderer keeps one line
/// per digest, as `docker pull` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A reference is being resolved to a manifest.
    Resolving {
        /// The reference, in familiar form.
        reference: &'a str,
    },
    /// The reference resolved to this manifest or index.
    Resolved {
        /// The reference, in familiar form.
        reference: &'a str,
        /// The digest of what it names.
        digest: &'a Digest,
    },
    /// An image manifest was read: its blobs move next. A pull reports it once the platform's
    /// manifest is resolved, a push before the blobs of each manifest it pushes. Renderers use
    /// it to lay out one line per layer, in order, and to tell the config blob (which Docker
    /// does not show) from the layers.
    Manifest {
        /// The manifest.
        digest: &'a Digest,
        /// Its config blob.
        config: &'a Digest,
        /// Its layer blobs, base first.
        layers: &'a [Descriptor],
    },
    /// A blob transfer starts.
    BlobStart {
        /// The blob.
        digest: &'a Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// Bytes of a blob have moved (`done` counts from the start of the blob, and may go back
    /// to 0 when a transfer restarts).
    BlobProgress {
        /// The blob.
        digest: &'a Digest,
        /// Bytes transferred so far.
        done: u64,
        /// The blob's size.
        total: u64,
    },
    /// A blob is complete (downloaded and verified, or uploaded and accepted).
    BlobDone {
        /// The blob.
        digest: &'a Digest,
    },
    /// A blob needed no transfer: it is already there (locally on pull, remotely on push).
    BlobExists {
        /// The blob.
        digest: &'a Digest,
    },
    /// A blob was mounted from another repository of the same registry instead of uploaded.
    BlobMounted {
        /// The blob.
        digest: &'a Digest,
        /// The repository it was mounted from.
        from: &'a str,
    },
    /// A transfer failed and is retried after a pause.
    Retrying {
        /// The blob, or `None` for a manifest or other request.
        digest: Option<&'a Digest>,
        /// Which retry this is (1 for the first).
        attempt: u32,
    },
    /// A manifest or index was uploaded.
    ManifestPushed {
        /// The reference (tag or digest) it was put under.
        reference: &'a str,
        /// Its digest.
        digest: &'a Digest,
    },
}

/// Receives [`Event`]s. Implementations must be cheap: events arrive from the transfer loop
/// (once per received chunk for progress), possibly from several transfers interleaved.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: Event<'_>);
}

/// A [`Reporter`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {
    fn report(&self, _event: Event<'_>) {}
}

impl<F: Fn(Event<'_>) + Send + Sync> Reporter for F {
    fn report(&self, event: Event<'_>) {
        self(event);
    }
}
