//! The build context as `COPY` and `ADD` see it: a directory minus what `.dockerignore` excludes.
//!
//! The model, in the order a build meets it:
//!
//! * [`Context::builder`] opens the context directory, chooses the ignore file as BuildKit does
//!   ([`IgnoreSource`]: `<Dockerfile>.dockerignore` beside the Dockerfile replaces `.dockerignore` at
//!   the context root) and walks the directory once, as BuildKit's context transfer does:
//!   depth-first with names sorted bytewise, excluded directories skipped unless an exception may
//!   re-include something inside, re-included paths bringing their parent directories, symlinks
//!   never followed, the root never excluded. What the walk leaves out does not exist for any API
//!   here: it cannot be selected, reached through a symlink, read or checksummed.
//! * [`Context::entries`] is the result: one [`Entry`] per path (relative, file type, metadata), in
//!   walk order.
//! * [`Context::select`] resolves a `COPY`/`ADD` source ([`Source`]: a path with optional Go
//!   wildcards, `--exclude` patterns, `--parents`) *inside* the context as BuildKit does: symlinks
//!   on the way are followed but resolved against the context root, `..` stops at the root. The
//!   [`Selection`] holds one [`Match`] per path the source names, each with the entries it brings.
//! * [`Context::checksum`] digests exactly what a selection holds: names relative to each match,
//!   file types, permission bits, sizes, contents, symlink targets and extended attributes; never
//!   owners (`COPY` gives context files `0:0`), timestamps or inode numbers, so a `touch` does not
//!   invalidate a build cache.
//! * `fsop::ContextCopy` copies exactly what selections hold, reading files with
//!   [`Context::open_file`] and [`Context::check_read`] and attributes with [`Context::xattrs`]:
//!   the cache key and the layer are made of the same entries.
//! * A [`StatCache`] (one file per context directory in the kiln root) remembers each file's
//!   content digest under its stat data (device, inode, size, mtime, ctime, mode, owner), so
//!   unchanged files are not read again by the next build.
//! * A context can also come from a stream, as `docker build -` reads standard input: a
//!   [`ContextStream`] unpacked by [`StreamedContext::unpack`] into a temporary directory (a tar
//!   archive), or taken as the Dockerfile itself with an empty context (see the `stream` module).
//!
//! ```
//! use kiln_builder::context::{Context, IgnoreSource, Source};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("src"))?;
//! std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n")?;
//! std::fs::write(dir.path().join("debug.log"), "noise\n")?;
//! std::fs::write(dir.path().join(".dockerignore"), "*.log\n")?;
//!
//! let context = Context::builder(dir.path()).ignore(IgnoreSource::ContextRoot).open()?;
//! let paths: Vec<_> = context.entries().iter().map(|e| e.path().display().to_string()).collect();
//! assert_eq!(paths, [".dockerignore", "src", "src/main.rs"]);
//!
//! let selection = context.select(&Source::new("src"))?;
//! let before = context.checksum(&selection)?;
//! std::fs::write(dir.path().join("debug.log"), "more noise\n")?; // ignored: no effect
//! let again = Context::builder(dir.path()).ignore(IgnoreSource::ContextRoot).open()?;
//! assert_eq!(again.checksum(&again.select(&Source::new("src"))?)?, before);
//!
//! let missing = context.select(&Source::new("debug.log")).unwrap_err();
//! assert!(missing.to_string().ends_with("\"/debug.log\": not found"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod beneath;
mod checksum;
mod error;
mod select;
mod statcache;
mod stream;
mod walk;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use kiln_frontend::dockerignore::{self, Patterns};
use rustix::fs::OFlags;

pub use checksum::HashStats;
pub use error::ContextError;
pub use select::{Match, Selected, Selection, Source};
pub use statcache::StatCache;
pub use stream::{ContextStream, StreamError, StreamedContext};

/// Extended attributes: (name, value) pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Name of the ignore file at the context root.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// Where the context's ignore patterns come from.
#[derive(Debug, Clone, Default)]
pub enum IgnoreSource {
    /// `.dockerignore` at the context root, if present (the Dockerfile came from stdin).
    #[default]
    ContextRoot,
    /// `<dockerfile>.dockerignore` if it exists (the path plus `.dockerignore`, relative to the same
    /// directory as the Dockerfile path), else `.dockerignore` at the context root. Never both.
    Dockerfile(PathBuf),
    /// Patterns given directly (tests, or a caller that read them itself).
    Patterns(Patterns),
    /// No exclusions at all.
    None,
}

impl IgnoreSource {
    /// BuildKit's choice for a build whose Dockerfile is at `dockerfile` (`None`: standard input).
    pub fn for_dockerfile(dockerfile: Option<&Path>) -> IgnoreSource {
        dockerfile.map_or(IgnoreSource::ContextRoot, |path| {
            IgnoreSource::Dockerfile(path.to_path_buf())
        })
    }

    /// Reads the chosen file: its path (if one was used) and its patterns.
    fn load(self, root: &Path) -> Result<(Option<PathBuf>, Patterns), ContextError> {
        let candidates = match self {
            IgnoreSource::Patterns(patterns) => return Ok((None, patterns)),
            IgnoreSource::None => return Ok((None, Patterns::default())),
            IgnoreSource::ContextRoot => vec![root.join(DOCKERIGNORE)],
            IgnoreSource::Dockerfile(dockerfile) => {
                let mut beside = dockerfile.into_os_string();
                beside.push(DOCKERIGNORE);
                vec![PathBuf::from(beside), root.join(DOCKERIGNORE)]
            }
        };
        for path in candidates {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ContextError::ReadIgnoreFile { path, source }),
            };
            return match dockerignore::parse(&bytes) {
                Ok(patterns) => Ok((Some(path), patterns)),
                Err(source) => Err(ContextError::IgnoreFile { path, source }),
            };
        }
        Ok((None, Patterns::default()))
    }
}

/// Options for opening a [`Context`]; [`open`](ContextBuilder::open) walks the directory.
#[derive(Debug)]
pub struct ContextBuilder {
    root: PathBuf,
    ignore: IgnoreSource,
    stat_cache: Option<Arc<StatCache>>,
}

impl ContextBuilder {
    /// Where the ignore patterns come from ([`IgnoreSource::ContextRoot`] unless set).
    #[must_use]
    pub fn ignore(mut self, ignore: IgnoreSource) -> ContextBuilder {
        self.ignore = ignore;
        self
    }

    /// Remember file digests across builds in `cache` (without one, every checksum reads files).
    #[must_use]
    pub fn stat_cache(mut self, cache: Arc<StatCache>) -> ContextBuilder {
        self.stat_cache = Some(cache);
        self
    }

    /// Opens the directory, reads the ignore file and walks the context.
    pub fn open(self) -> Result<Context, ContextError> {
        let open_error = |source| ContextError::Open {
            path: self.root.clone(),
            source,
        };
        let root = std::fs::canonicalize(&self.root).map_err(open_error)?;
        let root_fd = beneath::open_root(&root).map_err(open_error)?;
        let (ignore_file, patterns) = self.ignore.load(&root)?;
        // The stat cache's rows are read while the walk runs: a checksum follows and needs them.
        // A failed read is left for that checksum to retry and report.
        let (entries, rows) = std::thread::scope(|scope| {
            let rows = self
                .stat_cache
                .as_deref()
                .map(|cache| scope.spawn(|| cache.load(&root)));
            let entries = walk::walk(root_fd.as_fd(), &patterns);
            (entries, rows.and_then(|rows| rows.join().ok()?.ok()))
        });
        Ok(Context {
            root,
            root_fd,
            ignore_file,
            patterns,
            entries: entries?,
            stat_cache: self.stat_cache,
            cached: Mutex::new(rows),
            stats: checksum::Counters::default(),
        })
    }
}

/// A walked build context. See the [module documentation](self).
#[derive(Debug)]
pub struct Context {
    /// Canonical absolute path of the context directory.
    root: PathBuf,
    /// The directory itself: every read goes through it and stays beneath it.
    root_fd: OwnedFd,
    ignore_file: Option<PathBuf>,
    patterns: Patterns,
    /// Walk order; `entries[0]` is the root (`""`).
    entries: Vec<Entry>,
    stat_cache: Option<Arc<StatCache>>,
    /// The stat cache's rows for this root, read during the walk (or by the first checksum).
    cached: Mutex<Option<statcache::Rows>>,
    stats: checksum::Counters,
}

impl Context {
    /// Starts opening the context at `root` (a directory; symlinks in its own path are followed).
    pub fn builder(root: impl Into<PathBuf>) -> ContextBuilder {
        ContextBuilder {
            root: root.into(),
            ignore: IgnoreSource::default(),
            stat_cache: None,
        }
    }

    /// The context directory, canonical and absolute.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore file that was used, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// The ignore patterns in force.
    pub fn patterns(&self) -> &Patterns {
        &self.patterns
    }

    /// Every path in the context (the root itself excepted), in walk order: depth-first, names
    /// sorted bytewise, a directory's contents right after it.
    pub fn entries(&self) -> &[Entry] {
        &self.entries[1..]
    }

    /// The context root as an entry (path `""`, a directory).
    pub fn root_entry(&self) -> &Entry {
        &self.entries[0]
    }

    /// The entry at `path` (relative to the root, no symlinks followed), if the context has it.
    pub fn get(&self, path: impl AsRef<Path>) -> Option<&Entry> {
        self.index_of(path.as_ref()).map(|i| &self.entries[i])
    }

    /// Opens a regular file of this context for reading. The open never leaves the context
    /// directory, and fails with [`ContextError::Changed`] if the file is no longer the one the
    /// walk saw.
    pub fn open_file(&self, entry: &Entry) -> Result<File, ContextError> {
        let read_error = |source| ContextError::Read {
            path: entry.path.clone(),
            source,
        };
        let fd = beneath::open(self.root_fd.as_fd(), &entry.path, OFlags::RDONLY).map_err(read_error)?;
        let now = beneath::stat_fd(fd.as_fd()).map_err(read_error)?;
        if !now.same_file_version(&entry.meta) {
            return Err(ContextError::Changed {
                path: entry.path.clone(),
            });
        }
        Ok(File::from(fd))
    }

    /// Checks that `bytes` read from `file` (opened by [`Context::open_file`] for `entry`) are the
    /// whole of the version the walk saw, and that nothing wrote to it meanwhile: a copy made of
    /// them holds what the checksum covered. [`ContextError::Changed`] otherwise.
    pub fn check_read(&self, entry: &Entry, file: &File, bytes: u64) -> Result<(), ContextError> {
        let now = beneath::stat_fd(file.as_fd()).map_err(|source| ContextError::Read {
            path: entry.path.clone(),
            source,
        })?;
        if bytes != entry.meta.size || !now.same_file_version(&entry.meta) {
            return Err(ContextError::Changed {
                path: entry.path.clone(),
            });
        }
        Ok(())
    }

    /// The extended attributes of `entry` as (name, value) pairs sorted by name: those its checksum
    /// covered when one was taken (so a copy gets what the cache key hashed), else read now.
    pub fn xattrs(&self, entry: &Entry) -> Result<Xattrs, ContextError> {
        match entry.hash.get() {
            Some(hash) => Ok(checksum::decode_xattrs(&hash.xattrs)),
            None => self.read_xattrs(entry),
        }
    }

    fn index_of(&self, path: &Path) -> Option<usize> {
        let path = path.as_os_str().as_bytes();
        self.entries
            .binary_search_by(|entry| walk_order(entry.path.as_os_str().as_bytes(), path))
            .ok()
    }

    /// The index one past the last entry inside the directory at `index` (or `index + 1`).
    fn subtree_end(&self, index: usize) -> usize {
        let dir = &self.entries[index].path;
        let after = &self.entries[index + 1..];
        index + 1 + after.partition_point(|entry| entry.path.starts_with(dir))
    }
}

/// Compares two walk paths (relative, `/`-separated, no empty components) in walk order, which is
/// `Path`'s component-wise order: bytewise, but with `/` before every other byte, so `a/b` sorts
/// before `a.txt`. Comparing bytes is several times faster than iterating components.
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |byte: u8| if byte == b'/' { 0 } else { u16::from(byte) + 1 };
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((&x, &y)) => rank(x).cmp(&rank(y)),
        None => a.len().cmp(&b.len()),
    }
}

/// One path of the context: where it is, what it is, and its metadata as the walk saw it.
#[derive(Debug)]
pub struct Entry {
    path: PathBuf,
    kind: EntryKind,
    meta: Metadata,
    /// Content digest and attributes, filled in by the first checksum that needs them.
    hash: OnceLock<checksum::EntryHash>,
}

impl Entry {
    fn new(path: PathBuf, kind: EntryKind, meta: Metadata) -> Entry {
        Entry {
            path,
            kind,
            meta,
            hash: OnceLock::new(),
        }
    }

    /// The path relative to the context root (`""` for the root itself).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file type (with the target, for a symlink).
    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }

    /// The `lstat` data the walk saw.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }
}

/// The type of an [`Entry`]. Symlinks carry their target, uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Symlink(OsString),
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    /// The kind `st_mode` names (a symlink with an empty target, to be filled in).
    fn from_mode(mode: u32) -> Option<EntryKind> {
        let kind = match rustix::fs::FileType::from_raw_mode(mode) {
            rustix::fs::FileType::RegularFile => EntryKind::File,
            rustix::fs::FileType::Directory => EntryKind::Dir,
            rustix::fs::FileType::Symlink => EntryKind::Symlink(OsString::new()),
            rustix::fs::FileType::Fifo => EntryKind::Fifo,
            rustix::fs::FileType::Socket => EntryKind::Socket,
            rustix::fs::FileType::CharacterDevice => EntryKind::CharDevice,
            rustix::fs::FileType::BlockDevice => EntryKind::BlockDevice,
            rustix::fs::FileType::Unknown => return None,
        };
        Some(kind)
    }
}

/// `lstat` data of an entry. The checksum uses the mode's permission bits, the owner, the size and
/// (for devices) `rdev`; the rest identifies a file version for the stat cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Device of the filesystem holding the entry.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode`: file type and permission bits (including setuid, setgid, sticky).
    pub mode: u32,
    /// Hard link count.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number, for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Last status change, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl Metadata {
    /// Converts the kernel's `struct stat`, whose field widths vary by architecture.
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::cast_lossless,
        clippy::unnecessary_cast,
        clippy::useless_conversion
    )]
    fn from_stat(st: &rustix::fs::Stat) -> Metadata {
        let ns = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
        Metadata {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }

    /// The permission bits: `rwx` for all three classes plus setuid, setgid and sticky.
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether `other` is the same file, unchanged: same inode and the same size and times.
    fn same_file_version(&self, other: &Metadata) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)
            == (other.dev, other.ino, other.size, other.mtime_ns, other.ctime_ns)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::walk_order;

    #[test]
    fn walk_order_is_paths_component_order() {
        let paths = ["", "B", "a", "a/b", "a/b/c", "a-z", "a-z/d", "a.txt", "ab", "é"];
        for x in paths {
            for y in paths {
                assert_eq!(
                    walk_order(x.as_bytes(), y.as_bytes()),
                    Path::new(x).cmp(Path::new(y)),
                    "{x:?} vs {y:?}"
                );
            }
        }
    }
}
