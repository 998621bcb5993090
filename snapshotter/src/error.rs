//! Errors of the snapshotter: one enum, each variant carrying the key, name or path it is about and the
//! underlying cause as its `source`. [`Error::kind`] sorts them into the few classes a caller acts on
//! (containerd's errdefs: not found, already exists, failed precondition, ...).

use std::io;
use std::path::PathBuf;

use crate::snapshot::Kind;

/// A `Result` whose error is the snapshotter's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an [`Error`], for callers that branch on what went wrong rather than on the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key, name or parent does not name a snapshot.
    NotFound,
    /// The key or name is already taken by another snapshot.
    AlreadyExists,
    /// The snapshot exists but is in the wrong state for the operation (for example committing a view, or
    /// removing a snapshot that still has children).
    FailedPrecondition,
    /// The request itself is malformed (an empty key, an unknown mount option, a root path overlay cannot
    /// express).
    InvalidArgument,
    /// The kernel or filesystem cannot do what was asked (overlay unavailable, chain deeper than overlay stacks).
    Unsupported,
    /// A filesystem, mount or database operation failed.
    Io,
}

/// Everything that can go wrong in the snapshotter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No snapshot has this key or name.
    #[error("snapshot {key:?} not found")]
    NotFound {
        /// The key or name asked for.
        key: String,
    },
    /// The parent given to `prepare` or `view` does not exist.
    #[error("parent snapshot {parent:?} of {key:?} not found")]
    ParentNotFound {
        /// The key being created.
        key: String,
        /// The missing parent.
        parent: String,
    },
    /// A snapshot with this key or name already exists (keys and names share one namespace).
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key or name that is taken.
        key: String,
    },
    /// The parent of a new snapshot must be committed.
    #[error("parent {parent:?} of {key:?} is {kind}, not committed")]
    ParentNotCommitted {
        /// The key being created.
        key: String,
        /// The parent that is not committed.
        parent: String,
        /// What the parent is.
        kind: Kind,
    },
    /// The operation needs a snapshot of another kind (commit needs an active snapshot, mounts an active
    /// snapshot or a view).
    #[error("snapshot {key:?} is {kind}; {operation} needs {expected}")]
    WrongKind {
        /// The key or name given.
        key: String,
        /// What the snapshot is.
        kind: Kind,
        /// The operation refused.
        operation: &'static str,
        /// What the operation accepts.
        expected: &'static str,
    },
    /// Snapshots that other snapshots are built on cannot be removed.
    #[error("snapshot {key:?} has {children} child snapshot(s); remove them first")]
    HasChildren {
        /// The snapshot asked to be removed.
        key: String,
        /// How many snapshots name it as parent.
        children: usize,
    },
    /// An overlay mount stacks at most [`crate::overlay::MAX_LOWER_LAYERS`] lower layers.
    #[error("snapshot {key:?} would stack {depth} overlay layers; overlayfs allows at most {max}")]
    ChainTooDeep {
        /// The key being created.
        key: String,
        /// The number of lower layers it would need.
        depth: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// Keys and names must be non-empty.
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The root directory cannot hold snapshots (for example a path overlay mount options cannot express).
    #[error("invalid snapshotter root {path}: {reason}")]
    InvalidRoot {
        /// The root given.
        path: PathBuf,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The root was created by another backend; its directories mean something else.
    #[error("snapshotter root {path} holds {stored} snapshots; cannot open it as {requested}")]
    BackendMismatch {
        /// The root given.
        path: PathBuf,
        /// The backend recorded in the root's metadata.
        stored: String,
        /// The backend asked for.
        requested: String,
    },
    /// Overlay was asked for but the probe mount under the root failed.
    #[error("overlayfs does not work under {root}")]
    OverlayUnsupported {
        /// The snapshotter root probed.
        root: PathBuf,
        /// Why the last probe attempt failed.
        #[source]
        source: Box<Error>,
    },
    /// A probe overlay mounted but did not behave as the snapshotter needs.
    #[error("overlay probe at {path}: {check} failed")]
    OverlayProbe {
        /// The probe's mount point.
        path: PathBuf,
        /// The behaviour that was missing.
        check: &'static str,
    },
    /// The metadata database was written by a newer kiln.
    #[error("metadata {path} has schema version {found}; this kiln understands up to {supported}")]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this code reads.
        supported: i64,
    },
    /// A metadata database operation failed.
    #[error("metadata database {path}")]
    Metadata {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A filesystem operation failed.
    #[error("{operation} {path}")]
    Io {
        /// What was being done ("create", "copy", "rename", ...).
        operation: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A mount option is not understood by [`crate::mount::mount_all`].
    #[error("mount option {option:?} is not supported for {kind} mounts")]
    InvalidMountOption {
        /// The mount type.
        kind: String,
        /// The option.
        option: String,
    },
    /// Mounting failed.
    #[error("mount {kind} at {target}{}", detail_suffix(detail.as_deref()))]
    Mount {
        /// The mount type.
        kind: String,
        /// Where it was to be mounted.
        target: PathBuf,
        /// The kernel's own message, when the new mount API gave one.
        detail: Option<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Overlay mount data does not fit in the one page mount(2) accepts, even with relative paths.
    #[error("overlay mount data for {target} is {len} bytes; mount(2) accepts at most {max}")]
    MountDataTooLong {
        /// Where it was to be mounted.
        target: PathBuf,
        /// The length of the data.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Unmounting failed.
    #[error("unmount {target}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn detail_suffix(detail: Option<&str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::ParentNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::ParentNotCommitted { .. }
            | Error::WrongKind { .. }
            | Error::HasChildren { .. }
            | Error::BackendMismatch { .. } => ErrorKind::FailedPrecondition,
            Error::InvalidKey { .. } | Error::InvalidRoot { .. } | Error::InvalidMountOption { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::ChainTooDeep { .. }
            | Error::OverlayUnsupported { .. }
            | Error::OverlayProbe { .. }
            | Error::SchemaVersion { .. }
            | Error::MountDataTooLong { .. } => ErrorKind::Unsupported,
            Error::Metadata { .. } | Error::Io { .. } | Error::Mount { .. } | Error::Unmount { .. } => {
                ErrorKind::Io
            }
        }
    }

    /// The OS error number behind this error, if it came from a system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Mount { source, .. } | Error::Unmount { source, .. } => {
                source.raw_os_error()
            }
            Error::OverlayUnsupported { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        Error::Io {
            operation,
            path: path.into(),
            source: source.into(),
        }
    }
}
