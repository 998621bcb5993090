//! Errors of the build context: opening and walking it, selecting sources, checksumming them.

use std::io;
use std::path::PathBuf;

use kiln_frontend::dockerignore;

/// What went wrong with the build context. Messages follow Docker's and BuildKit's where they have
/// one (a missing source reads `failed to calculate checksum of ref <context>: "/missing": not found`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context directory cannot be opened (missing, not a directory, unreadable).
    #[error("unable to prepare context: path {:?} not found", path.display().to_string())]
    Open {
        /// The directory given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The ignore file exists but cannot be read.
    #[error("failed to read ignore file {}", path.display())]
    ReadIgnoreFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The ignore file holds a pattern Docker rejects, which fails the whole build.
    #[error("failed to parse ignore file {}", path.display())]
    IgnoreFile {
        /// The file.
        path: PathBuf,
        /// Which line, and why.
        #[source]
        source: dockerignore::Error,
    },
    /// Listing or stat-ing part of the context failed during the walk.
    #[error("error checking context: {:?}", path.display().to_string())]
    Walk {
        /// The path relative to the context root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A COPY/ADD source names nothing in the context (after `.dockerignore`).
    #[error("failed to calculate checksum of ref {}: {path:?}: not found", context.display())]
    NotFound {
        /// The context root.
        context: PathBuf,
        /// The source as BuildKit reports it: cleaned, with a leading `/`.
        path: String,
    },
    /// Resolving a source went through more than 255 symlinks (a loop, most likely).
    #[error("too many links: {path:?}")]
    TooManyLinks {
        /// The source being resolved.
        path: String,
    },
    /// A source's wildcard pattern is malformed (Go's `path.ErrBadPattern`).
    #[error("syntax error in pattern: {pattern:?}")]
    BadPattern {
        /// The source as written.
        pattern: String,
    },
    /// An `--exclude` pattern is invalid.
    #[error("invalid excludepatterns")]
    Exclude(#[source] dockerignore::Error),
    /// Reading a selected file (or its attributes) for its checksum failed.
    #[error("failed to checksum {:?}", path.display().to_string())]
    Read {
        /// The path relative to the context root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file was replaced or modified between the walk and reading it; the build would see an
    /// inconsistent context.
    #[error("{:?} changed while the build context was being read", path.display().to_string())]
    Changed {
        /// The path relative to the context root.
        path: PathBuf,
    },
    /// A stat cache file exists but cannot be read.
    #[error("read context stat cache {}", path.display())]
    StatCache {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stat cache file cannot be written.
    #[error("write context stat cache {}", path.display())]
    StatCacheWrite {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory to hold the stat cache cannot be created.
    #[error("create directory {}", path.display())]
    StatCacheDir {
        /// The cache directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
