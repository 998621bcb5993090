//! What can go wrong in a file operation. Paths are in-root paths (`/app/x`), never host paths: they
//! are what the Dockerfile author wrote and sees.

use std::io;

use super::ModeError;

/// Why a COPY, ADD, heredoc write or WORKDIR creation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsopError {
    /// A source path does not exist in the source root. The wording is BuildKit's (its cache-key
    /// step reports `failed to compute cache key: ...: "/missing": not found`).
    #[error("{path:?}: not found")]
    SourceNotFound {
        /// The source, absolute in the source root.
        path: String,
    },
    /// A wildcard source matched nothing (and empty matches were not allowed).
    #[error("{pattern:?}: not found: no source files were specified")]
    NoSourceFiles {
        /// The pattern, absolute in the source root.
        pattern: String,
    },
    /// A source wildcard is malformed.
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern {
        /// The source as given.
        pattern: String,
    },
    /// Several sources, and a destination that does not end in `/`.
    #[error(
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    )]
    DestNotDirectory {
        /// The destination as given.
        dest: String,
    },
    /// A path (source or destination) could not be resolved inside its root.
    #[error("{root} path {path:?}: {reason}")]
    Resolve {
        /// `source` or `destination`.
        root: &'static str,
        /// The path asked for.
        path: String,
        /// What the resolution met.
        reason: String,
    },
    /// A file would replace an existing directory.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirWithFile {
        /// The directory, in the destination root.
        path: String,
    },
    /// A directory would be copied onto an existing non-directory.
    #[error("cannot copy to non-directory: {path}")]
    CopyToNonDirectory {
        /// The non-directory, in the destination root.
        path: String,
    },
    /// A source entry of a type that cannot be copied (a socket).
    #[error("unsupported file type of {path}")]
    Unsupported {
        /// The entry, in the source root.
        path: String,
    },
    /// A filesystem call failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done (`copy`, `create`, `chown` ...).
        op: &'static str,
        /// The entry it was done to.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `--exclude` patterns that do not compile.
    #[error("invalid exclude patterns")]
    Exclude(#[source] kiln_frontend::dockerignore::Error),
    /// A `--chmod` value that does not parse.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// An ADD archive holds an entry that would land outside the extraction directory.
    #[error("archive {archive}: archive path {entry:?} is outside extraction root")]
    ArchiveEscape {
        /// The archive, in the source root.
        archive: String,
        /// The entry name as the archive holds it.
        entry: String,
    },
    /// An ADD archive holds an entry kiln does not extract (devices, FIFOs, sparse files ...), or a
    /// hardlink to nothing.
    #[error("archive {archive}: unsupported tar entry {entry:?}: {reason}")]
    ArchiveEntry {
        /// The archive, in the source root.
        archive: String,
        /// The entry name.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An ADD archive could not be read (corrupt, truncated).
    #[error("archive {archive}: failed to read")]
    ArchiveRead {
        /// The archive, in the source root.
        archive: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Selecting or reading the build context failed: a source names nothing the build may see, or
    /// a file changed since the context was walked.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// An ADD URL could not be fetched.
    #[error("failed to fetch {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An ADD URL answered with a status other than success.
    #[error("failed to fetch {url}: invalid response status {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// `--checksum` is not `<algorithm>:<hex>` with sha256, sha384 or sha512.
    #[error("invalid checksum {value:?}: expected sha256:<64 hex digits> (or sha384, sha512)")]
    InvalidChecksum {
        /// The value given.
        value: String,
    },
    /// The downloaded content does not have the `--checksum` digest.
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// The digest `--checksum` asked for.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },
}

impl FsopError {
    pub(crate) fn io(op: &'static str, path: &str, source: impl Into<io::Error>) -> FsopError {
        FsopError::Io {
            op,
            path: path.to_owned(),
            source: source.into(),
        }
    }
}
