//! Errors of reading and writing image archives and of importing root filesystems.

use std::io;

use crate::content::{ContentError, Digest};
use crate::frontend::{shell, syntax};
use crate::reference::ReferenceError;
use crate::store::StoreError;

/// What went wrong saving, loading or importing. Entry names are paths inside the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The image store failed (a name, a lease, a blob write).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The content store failed outside any archive entry.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Reading the input stream failed, or it is not a well-formed tar (or compressed tar).
    #[error("read archive")]
    Read {
        /// The I/O or tar-format error.
        #[source]
        source: io::Error,
    },
    /// Writing the output stream failed.
    #[error("write archive")]
    Write {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input ended inside an entry.
    #[error("unexpected end of archive in {entry}: {actual} of {expected} bytes")]
    Truncated {
        /// The entry being read.
        entry: String,
        /// Its size as the tar header declares.
        expected: u64,
        /// Bytes there were.
        actual: u64,
    },
    /// An entry's bytes are not the blob its name or a descriptor says they are.
    #[error("{entry}")]
    Corrupt {
        /// The entry, such as `blobs/sha256/<hex>`.
        entry: String,
        /// The size or digest mismatch.
        #[source]
        source: ContentError,
    },
    /// The input is compressed in a format kiln does not read.
    #[error("unsupported compression {format} (plain tar, gzip and zstd are read)")]
    UnsupportedCompression {
        /// The format recognised by its magic bytes, such as `bzip2`.
        format: &'static str,
    },
    /// The archive has neither `manifest.json` (docker save) nor `index.json` (OCI).
    #[error("not an image archive: neither manifest.json nor index.json found")]
    NotAnImageArchive,
    /// The archive lists no image at all.
    #[error("the archive contains no image")]
    Empty,
    /// A file the archive's metadata refers to is not in the archive (nor, for a blob, in the store).
    #[error("{referrer} refers to {entry}, which the archive does not contain")]
    Missing {
        /// The metadata that refers to it (`manifest.json`, a manifest digest).
        referrer: String,
        /// The missing entry or blob.
        entry: String,
    },
    /// A metadata file (JSON) is larger than kiln reads into memory.
    #[error("{entry} is {size} bytes, more than the {limit} a metadata file may have")]
    TooLarge {
        /// The entry.
        entry: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A metadata file is not the JSON it should be.
    #[error("parse {entry}")]
    InvalidJson {
        /// The entry or blob.
        entry: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An image name in the archive (or given to import) is not a valid reference.
    #[error("invalid image name {name:?}")]
    InvalidName {
        /// The name as written.
        name: String,
        /// Why it is invalid.
        #[source]
        source: ReferenceError,
    },
    /// A layer does not have the diff_id its image's config lists at its position.
    #[error("layer {entry} has diff_id {actual}, but the image config lists {expected}")]
    DiffIdMismatch {
        /// The layer entry.
        entry: String,
        /// The config's diff_id.
        expected: Digest,
        /// The layer's.
        actual: Digest,
    },
    /// An image config lists another number of diff_ids than its manifest has layers.
    #[error("image config {config} lists {diff_ids} layers, but {referrer} has {layers}")]
    LayerCount {
        /// The config entry.
        config: String,
        /// The manifest or `manifest.json`.
        referrer: String,
        /// Layers listed by the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// A `--change` instruction could not be parsed.
    #[error("invalid change {change:?}")]
    ChangeSyntax {
        /// The instruction as given.
        change: String,
        /// The parser's error.
        #[source]
        source: syntax::Error,
    },
    /// A `--change` instruction's words could not be expanded.
    #[error("invalid change {change:?}")]
    ChangeExpansion {
        /// The instruction as given.
        change: String,
        /// The expansion error.
        #[source]
        source: shell::Error,
    },
    /// A `--change` instruction is valid Dockerfile but not one a config change can be.
    #[error("{keyword} is not a valid change command")]
    ChangeNotAllowed {
        /// The instruction's keyword, upper case.
        keyword: String,
    },
    /// A `--change` instruction has a malformed argument.
    #[error("invalid change {change:?}: {reason}")]
    ChangeArgument {
        /// The instruction as given.
        change: String,
        /// What is wrong, such as `invalid containerPort: x`.
        reason: String,
    },
    /// The platform given to import is not `os[/arch[/variant]]`.
    #[error("invalid platform {platform:?}: expected os[/arch[/variant]]")]
    InvalidPlatform {
        /// The platform as given.
        platform: String,
    },
}

impl ArchiveError {
    pub(crate) fn read(source: io::Error) -> ArchiveError {
        ArchiveError::Read { source }
    }

    pub(crate) fn write(source: io::Error) -> ArchiveError {
        ArchiveError::Write { source }
    }
}
