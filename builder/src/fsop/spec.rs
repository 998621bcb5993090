//! What a copy is asked to do, and what it did.

use super::Mode;

/// A numeric owner, already resolved from `--chown` names by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// `0:0`.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

    /// An owner.
    pub fn new(uid: u32, gid: u32) -> Owner {
        Owner { uid, gid }
    }
}

/// Who owns what a copy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// `--chown`: every copied entry, every directory the copy creates and every entry an `ADD`
    /// extracts gets this owner.
    Chown(Owner),
    /// No `--chown`, from the build context: entries land as `0:0` (BuildKit sends context files as
    /// `0:0`); extracted archives keep their headers' owners.
    Root,
    /// No `--chown`, from another stage or image: entries keep their source's owner.
    Preserve,
}

impl Ownership {
    /// For `COPY`/`ADD` from the build context.
    pub fn context(chown: Option<Owner>) -> Ownership {
        chown.map_or(Ownership::Root, Ownership::Chown)
    }

    /// For `COPY --from=<stage or image>`.
    pub fn from_stage(chown: Option<Owner>) -> Ownership {
        chown.map_or(Ownership::Preserve, Ownership::Chown)
    }

    /// The owner copied entries get (`None`: their source's).
    pub(crate) fn entry_owner(self) -> Option<Owner> {
        match self {
            Ownership::Chown(owner) => Some(owner),
            Ownership::Root => Some(Owner::ROOT),
            Ownership::Preserve => None,
        }
    }

    /// `--chown`, if given: the owner of created directories and extracted entries.
    pub(crate) fn chown(self) -> Option<Owner> {
        match self {
            Ownership::Chown(owner) => Some(owner),
            Ownership::Root | Ownership::Preserve => None,
        }
    }
}

/// What a copy does with a source that is a tar archive (plain, gzip, bzip2, xz or zstd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archives {
    /// Copy it as a file (`COPY`).
    Copy,
    /// Extract it into the destination directory (`ADD` of a local file).
    Extract,
}

/// One `COPY` or local `ADD`, with variables already expanded by the caller.
///
/// [`CopySpec::new`] gives what a plain `COPY <src>... <dest>` from the build context means; set the
/// fields for the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// Paths in the source root (a leading `/` or `./` means nothing; `..` stops at the root). Each may
    /// hold Go `filepath.Match` wildcards (`*.txt`, `dir/*`, `[ab].txt`). A directory source copies its
    /// *contents*.
    pub sources: Vec<String>,
    /// Where to copy to, absolute in the destination root: the caller joins a relative `<dest>` with
    /// WORKDIR and keeps a trailing `/` (`.` becomes `<workdir>/`). A trailing `/` (or `/.`) means
    /// "a directory": sources land inside it. Without it, a single file source is written *as* `dest`
    /// unless `dest` is an existing directory.
    pub dest: String,
    /// Owner of what is written (see [`Ownership::context`] and [`Ownership::from_stage`]).
    pub ownership: Ownership,
    /// `--chmod`: applied to every copied file and directory (not symlinks).
    pub chmod: Option<Mode>,
    /// `--exclude` patterns (`.dockerignore` syntax), matched against paths relative to each source
    /// (for a directory source, paths inside it; for wildcard matches, the match itself too).
    pub excludes: Vec<String>,
    /// `--parents`: keep each source's path below the source root (or below a `/./` pivot in it) under
    /// `dest`.
    pub parents: bool,
    /// Follow a symlink named as a source (or matched by a wildcard), inside the source root. Symlinks
    /// inside copied directories are always copied as symlinks. True for `COPY`/`ADD` sources.
    pub follow_symlinks: bool,
    /// What to do with sources that are tar archives.
    pub archives: Archives,
    /// A wildcard that matches nothing is not an error.
    pub allow_empty_wildcard: bool,
}

impl CopySpec {
    /// `COPY <sources> <dest>` from the build context: contents owned by `0:0`, modes kept, top-level
    /// symlinks followed, no flags.
    pub fn new<S: Into<String>>(sources: impl IntoIterator<Item = S>, dest: impl Into<String>) -> CopySpec {
        CopySpec {
            sources: sources.into_iter().map(Into::into).collect(),
            dest: dest.into(),
            ownership: Ownership::context(None),
            chmod: None,
            excludes: Vec::new(),
            parents: false,
            follow_symlinks: true,
            archives: Archives::Copy,
            allow_empty_wildcard: false,
        }
    }
}

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Regular files written (hardlinks not counted).
    pub files: u64,
    /// Directories created or updated from a source directory.
    pub dirs: u64,
    /// Symlinks written.
    pub symlinks: u64,
    /// Hardlinks made to files written earlier in the same copy.
    pub hardlinks: u64,
    /// Device nodes and FIFOs written.
    pub specials: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Archives extracted (`ADD`).
    pub archives: u64,
}
