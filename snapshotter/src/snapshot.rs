//! The [`Snapshotter`] seam and the values it speaks in.
//!
//! The model is containerd's (`core/snapshots`): a snapshot is a filesystem tree stored as a chain of
//! changesets. Its lifecycle:
//!
//! ```text
//!   prepare(key, parent) --> active (writable) --commit(name, key)--> committed (immutable, a parent)
//!   view(key, parent)    --> view (read-only active) -------------------------> remove(key)
//! ```
//!
//! - A *key* names an active snapshot or a view; a *name* names a committed snapshot. Keys and names share
//!   one namespace: a key cannot be prepared while a snapshot of that name exists, and vice versa.
//! - A *parent* is always a committed snapshot; the new snapshot starts as a copy of its tree. A snapshot
//!   with children cannot be removed.
//! - The snapshotter never mounts. `prepare`, `view` and `mounts` return [`Mount`] values; the caller mounts
//!   them with [`crate::mount::mount_all`], whose guard unmounts on drop.
//! - Active snapshots and views belong to the handle that created them. When that handle is dropped or its
//!   process dies before committing, they are leftovers that [`Snapshotter::cleanup`] removes. Committed
//!   snapshots persist until removed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use crate::error::Result;
use crate::mount::Mount;

/// What state a snapshot is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Made by `prepare`: writable, can be committed.
    Active,
    /// Made by `view`: read-only, cannot be committed.
    View,
    /// Made by `commit`: immutable; may be the parent of new snapshots.
    Committed,
}

impl Kind {
    /// The lowercase name used in messages and in the metadata database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "active" => Some(Kind::Active),
            "view" => Some(Kind::View),
            "committed" => Some(Kind::Committed),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the snapshotter records about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Active, view or committed.
    pub kind: Kind,
    /// The key (active, view) or name (committed).
    pub name: String,
    /// The name of the committed snapshot it was made from.
    pub parent: Option<String>,
    /// When it was prepared (for a committed snapshot: when its active snapshot was prepared).
    pub created: SystemTime,
    /// When it last changed state or labels.
    pub updated: SystemTime,
    /// Free-form labels set with [`Snapshotter::set_labels`].
    pub labels: BTreeMap<String, String>,
}

/// Disk space a snapshot holds on its own (not counting its parents for overlay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of disk used (allocated blocks, hard links counted once).
    pub size: u64,
    /// Number of distinct inodes.
    pub inodes: u64,
}

/// Which snapshotter implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Overlay if a probe mount under the root works, copy otherwise (or whatever the root already holds).
    #[default]
    Auto,
    /// [`crate::OverlaySnapshotter`]: each snapshot stores only its changes; mounts stack them.
    Overlay,
    /// [`crate::CopySnapshotter`]: each snapshot stores a full copy of its tree; mounts are bind mounts.
    Copy,
}

impl Backend {
    /// The lowercase name (`auto`, `overlay`, `copy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Overlay => "overlay",
            Backend::Copy => "copy",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Backend`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown snapshotter {0:?} (expected auto, overlay or copy)")]
pub struct ParseBackendError(pub String);

impl FromStr for Backend {
    type Err = ParseBackendError;

    /// Parses `auto`, `overlay` (or `overlayfs`) and `copy` (or `native`, containerd's name for it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "overlay" | "overlayfs" => Ok(Backend::Overlay),
            "copy" | "native" => Ok(Backend::Copy),
            _ => Err(ParseBackendError(s.to_owned())),
        }
    }
}

/// What [`Snapshotter::cleanup`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Keys of active snapshots and views whose owning handle is gone.
    pub snapshots: Vec<String>,
    /// Directories removed because metadata does not name them (crash leftovers and the dirs of the
    /// snapshots above).
    pub directories: usize,
}

/// Stores snapshots and describes how to mount them; see the module docs for the vocabulary and lifecycle.
///
/// Every method is safe to call from several threads, handles and processes on one root at once: the
/// metadata database serializes writers, and directories in flight are locked against sweepers.
pub trait Snapshotter: Send + Sync {
    /// The implementation behind this handle: [`Backend::Overlay`] or [`Backend::Copy`], never `Auto`.
    fn backend(&self) -> Backend;

    /// Creates the active snapshot `key` from the committed snapshot `parent` (an empty tree if `None`) and
    /// returns the mounts that give a writable view of it.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Creates the read-only snapshot `key` of `parent` and returns its mounts. A view cannot be committed.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Returns again the mounts of the active snapshot or view `key`.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// Turns the active snapshot `key` into the committed snapshot `name`; `key` no longer exists after.
    fn commit(&self, name: &str, key: &str) -> Result<()>;

    /// Removes the snapshot with this key or name. Fails if committed snapshots name it as parent.
    fn remove(&self, key: &str) -> Result<()>;

    /// Describes the snapshot with this key or name.
    fn stat(&self, key: &str) -> Result<Info>;

    /// Replaces the labels of the snapshot with this key or name.
    fn set_labels(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info>;

    /// Disk usage of the snapshot's own directory: measured now for active snapshots; for committed
    /// ones measured the first time it is asked for, then recorded (committing does not measure, so
    /// a build step never waits for a walk of its tree).
    fn usage(&self, key: &str) -> Result<Usage>;

    /// Every snapshot, ordered by key or name.
    fn list(&self) -> Result<Vec<Info>>;

    /// Removes active snapshots and views whose handle is gone, and every directory metadata does not
    /// name (crash leftovers).
    fn cleanup(&self) -> Result<CleanupReport>;

    /// The directory that holds what this snapshot itself stores: for overlay its upper directory (its
    /// changes only, with overlay whiteouts); for copy its full tree. A layer differ walks it.
    fn upper_dir(&self, key: &str) -> Result<PathBuf>;
}
