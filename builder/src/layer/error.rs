//! Errors of the diff and apply sides, each naming the path or layer entry it is about.

use std::io;
use std::path::PathBuf;

/// Why a layer could not be written from a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A file, directory or attribute of the snapshot could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path in the snapshot.
        path: PathBuf,
        /// What the filesystem said.
        source: io::Error,
    },
    /// The overlay upper dir uses a feature whose meaning lives outside the upper dir (a renamed lower
    /// directory, a metadata-only copy-up), so walking the upper dir cannot describe the change.
    #[error(
        "{path} carries the overlay attribute {xattr}: mount the snapshot with redirect_dir=off and \
         metacopy=off so its upper dir describes the change on its own"
    )]
    OverlayFeature {
        /// The path in the upper dir.
        path: PathBuf,
        /// The extended attribute found, such as `trusted.overlay.redirect`.
        xattr: String,
    },
    /// A snapshot file is named `.wh.*`: in a layer that name means a whiteout, so it cannot be stored.
    #[error("{path} is named like a whiteout (`.wh.*`), which no layer can carry")]
    ReservedName {
        /// The path in the snapshot.
        path: PathBuf,
    },
    /// A regular file's size changed between its `lstat` and the end of its read.
    #[error("{path} changed while it was read: {expected} bytes were expected")]
    Changed {
        /// The path in the snapshot.
        path: PathBuf,
        /// The size the header already announced.
        expected: u64,
    },
    /// The output (or the compressor in front of it) failed.
    #[error("cannot write the layer")]
    Write {
        /// The writer's error.
        source: io::Error,
    },
}

/// Why a layer could not be applied. After any of these the target directory is partly written and
/// must be discarded (see [`apply`](super::apply)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The target directory could not be opened.
    #[error("cannot open the apply target {path}")]
    Target {
        /// The target given by the caller.
        path: PathBuf,
        /// What the filesystem said.
        source: io::Error,
    },
    /// The layer starts with the magic bytes of a compression kiln does not read.
    #[error("layer is {format}-compressed; kiln reads plain, gzip and zstd layers")]
    UnsupportedCompression {
        /// The format recognised, such as `xz`.
        format: &'static str,
    },
    /// The stream could not be decompressed or a tar header was invalid.
    #[error("layer is corrupt or truncated {}", position(.after.as_deref()))]
    Corrupt {
        /// The last entry read whole, if any.
        after: Option<String>,
        /// The reader's or the tar parser's error.
        source: io::Error,
    },
    /// The stream ended on an entry boundary without the zero blocks that end a tar.
    #[error("layer is truncated: no end-of-archive marker {}", position(.after.as_deref()))]
    MissingEnd {
        /// The last entry read whole, if any.
        after: Option<String>,
    },
    /// A file's data ended before the size its header declared.
    #[error("layer entry {entry:?} is truncated: {expected} bytes declared, {read} present")]
    Truncated {
        /// The entry's name as stored in the layer.
        entry: String,
        /// The size the header declared.
        expected: u64,
        /// The bytes that were present.
        read: u64,
    },
    /// The entry would write outside the target root, or through a path kiln refuses to follow.
    #[error("layer entry {entry:?} refused: {reason}")]
    Refused {
        /// The entry's name as stored in the layer.
        entry: String,
        /// What is wrong with it.
        reason: Refusal,
    },
    /// A hardlink entry names a target kiln refuses.
    #[error("layer entry {entry:?} refused: hardlink target {target:?} {reason}")]
    RefusedLink {
        /// The entry's name as stored in the layer.
        entry: String,
        /// The link target as stored in the layer.
        target: String,
        /// What is wrong with the target.
        reason: Refusal,
    },
    /// The entry's tar type is not one a layer may hold (sparse files, volume labels, unknown bytes).
    #[error("layer entry {entry:?} has tar type {type_flag:?}, which kiln does not apply")]
    UnsupportedType {
        /// The entry's name as stored in the layer.
        entry: String,
        /// The type flag byte, as a character.
        type_flag: char,
    },
    /// A filesystem operation for the entry failed.
    #[error("layer entry {entry:?}: cannot {op}")]
    Io {
        /// The entry's name as stored in the layer.
        entry: String,
        /// The operation, such as `create the file` or `set xattr user.x`.
        op: String,
        /// What the filesystem said.
        source: io::Error,
    },
}

impl From<crate::fsroot::Refused> for Refusal {
    fn from(refused: crate::fsroot::Refused) -> Refusal {
        use crate::fsroot::Refused;
        match refused {
            Refused::ThroughSymlink { component } => Refusal::ThroughSymlink { component },
            Refused::DanglingSymlink { component } => Refusal::DanglingSymlink { component },
            Refused::ParentNotDirectory { component } => Refusal::ParentNotDirectory { component },
            Refused::Escapes => Refusal::Escapes,
        }
    }
}

/// Why an entry path (or a hardlink target) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The path has a `..` component; layers never need one and it is how entries escape.
    #[error("its path has a `..` component")]
    ParentComponent,
    /// The path holds a NUL byte, which no file name can.
    #[error("its path contains a NUL byte")]
    NulByte,
    /// A parent of the path is a symbolic link (planted by the layer or already in the target).
    #[error("{component:?} on its path is a symbolic link")]
    ThroughSymlink {
        /// The path of the symlink, relative to the root.
        component: String,
    },
    /// With [`ParentSymlinks::FollowInRoot`](super::ParentSymlinks::FollowInRoot): a symlink on the path
    /// leads to nothing (kiln does not create directories at a symlink's target).
    #[error("{component:?} on its path is a symbolic link to nothing")]
    DanglingSymlink {
        /// The path of the symlink, relative to the root.
        component: String,
    },
    /// A parent of the path exists and is not a directory.
    #[error("{component:?} on its path is not a directory")]
    ParentNotDirectory {
        /// The path of the non-directory, relative to the root.
        component: String,
    },
    /// Resolving the path (through a symlink, when following is allowed) left the root.
    #[error("its path resolves outside the target root")]
    Escapes,
    /// A whiteout whose name is empty, `.` or `..`.
    #[error("it is a whiteout of {name:?}, which names no file")]
    BadWhiteout {
        /// The name after the `.wh.` prefix.
        name: String,
    },
    /// The hardlink target does not exist in the target or earlier in the layer.
    #[error("does not exist")]
    Missing,
    /// The hardlink target is a directory, which cannot be hardlinked.
    #[error("is a directory")]
    Directory,
    /// The hardlink names itself, or the root.
    #[error("is the entry itself or the root")]
    SelfOrRoot,
}

fn position(after: Option<&str>) -> String {
    match after {
        Some(entry) => format!("after entry {entry:?}"),
        None => "before its first entry".to_owned(),
    }
}
