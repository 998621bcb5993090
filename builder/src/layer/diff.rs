//! The diff side's entry point: find a snapshot's changes, then write them as a tar through a
//! [`LayerWriter`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use super::changes::{self, Item};
use super::chunks::{self, ChunkWriter};
use super::meta::XattrSource;
use super::tar_write::{EntryHeader, Kind, TarWriter};
use super::{Compression, DiffError, LayerDescriptor, LayerWriter, compare, meta, overlay};

/// Where a snapshot's changes are read from.
#[derive(Clone, Copy, Debug)]
pub enum Changes<'a> {
    /// The upper dir of an overlay snapshot, read on its own (see the module docs for the mount options
    /// this needs).
    OverlayUpper(&'a Path),
    /// A tree compared with the tree of its parent snapshot; with no parent, everything in the tree is
    /// new (a base layer).
    TreeCompare {
        /// The parent snapshot's tree.
        parent: Option<&'a Path>,
        /// The snapshot's tree.
        tree: &'a Path,
    },
}

/// How a layer is written: compression, the threads it may use, and an optional mtime clamp.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    compression: Compression,
    threads: usize,
    clamp_mtime: Option<i64>,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions::new()
    }
}

impl DiffOptions {
    /// gzip, as many threads as the machine has, mtimes as they are.
    pub fn new() -> DiffOptions {
        DiffOptions {
            compression: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            clamp_mtime: None,
        }
    }

    /// Sets the compression.
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> DiffOptions {
        self.compression = compression;
        self
    }

    /// Sets how many threads may compress (at least 1). The layer's bytes do not depend on it.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> DiffOptions {
        self.threads = threads.max(1);
        self
    }

    /// Clamps every entry's mtime to `time` at most (`SOURCE_DATE_EPOCH`): entries newer than it are
    /// written with it, older ones keep theirs. `None` keeps all mtimes.
    #[must_use]
    pub fn clamp_mtime(mut self, time: Option<SystemTime>) -> DiffOptions {
        self.clamp_mtime = time.map(epoch_seconds);
        self
    }
}

/// Writes the changes of a snapshot as an OCI layer into `out` and returns its descriptor with `out`.
///
/// Entries come sorted by path, parents first, each changed path preceded by its ancestor directories
/// (the root itself is never an entry); they carry numeric owners with empty user and group names,
/// whole-second mtimes (clamped when asked), and extended attributes as PAX `SCHILY.xattr.*` records.
/// A second name of a multiply-linked inode becomes a hardlink entry to the first. Deletions are
/// `.wh.<name>` entries, opaque directories a `.wh..wh..opq` entry; both are empty files with mode 0,
/// owner 0 and mtime 0. The same tree always gives the same bytes.
///
/// The snapshot is read (the system calls: `stat`, `open`, `read`) on a thread of its own while the
/// calling thread digests and compresses, so the two overlap. Memory holds the list of changed paths
/// and a few megabytes of the stream in flight, never whole files.
pub fn diff<W: Write>(
    changes: Changes<'_>,
    out: W,
    options: &DiffOptions,
) -> Result<(LayerDescriptor, W), DiffError> {
    let (root, items) = match changes {
        Changes::OverlayUpper(upper) => (upper, overlay::upper_changes(upper)?),
        Changes::TreeCompare { parent, tree } => (tree, compare::tree_changes(parent, tree)?),
    };
    let items = changes::into_layer_order(items);
    let mut layer = LayerWriter::new(out, options.compression, options.threads).map_err(write_error)?;
    let (sink, chunks) = chunks::channel();
    let clamp = options.clamp_mtime;
    let (written, produced) = std::thread::scope(|scope| {
        let producer = std::thread::Builder::new()
            .name("kiln-layer-tar".into())
            .spawn_scoped(scope, || write_tar(root, &items, clamp, sink))
            .map_err(write_error)?;
        let written = chunks.for_each(|chunk| layer.write_all(chunk));
        let produced = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok::<_, DiffError>((written, produced))
    })?;
    // A failed output stops the reading thread too; its error then only says that the output went away.
    written.map_err(write_error)?;
    produced?;
    layer.finish().map_err(write_error)
}

/// Writes the tar of `items` (in layer order) into `sink`: the reading thread's whole job.
fn write_tar(root: &Path, items: &[Item], clamp: Option<i64>, sink: ChunkWriter) -> Result<(), DiffError> {
    let mut writer = EntryWriter {
        root,
        tar: TarWriter::new(sink),
        clamp,
        links: HashMap::new(),
        dir: None,
    };
    for item in items {
        writer.write_item(item)?;
    }
    writer
        .tar
        .finish()
        .and_then(ChunkWriter::finish)
        .map_err(write_error)
}

struct EntryWriter<'a> {
    root: &'a Path,
    tar: TarWriter<ChunkWriter>,
    clamp: Option<i64>,
    /// First name written for each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// The directory of the last entry, open: entries come grouped by directory, so their `stat` and
    /// `open` go through it rather than walking the whole path again.
    dir: Option<(Vec<u8>, OwnedFd)>,
}

impl EntryWriter<'_> {
    fn write_item(&mut self, item: &Item) -> Result<(), DiffError> {
        match item {
            Item::Node(rel) => self.write_node(rel),
            Item::Whiteout(_) | Item::Opaque(_) => {
                let header = EntryHeader {
                    name: &item.tar_path(),
                    kind: Kind::Regular { size: 0 },
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                    xattrs: &[],
                };
                self.tar.header(&header).map_err(write_error)
            }
        }
    }

    fn write_node(&mut self, rel: &[u8]) -> Result<(), DiffError> {
        let path = self.root.join(OsStr::from_bytes(rel));
        let read_error = |source: io::Error| DiffError::Read {
            path: path.clone(),
            source,
        };
        let (st, file) = self.stat_and_open(rel).map_err(read_error)?;
        let file_type = FileType::from_raw_mode(st.st_mode);
        let mut xattrs = match &file {
            Some(file) => meta::read_xattrs_of(XattrSource::Fd(file.as_fd())),
            None => meta::read_xattrs(&path),
        }
        .map_err(read_error)?;
        if let Some((name, _)) = xattrs
            .iter()
            .find(|(n, _)| meta::is_unrepresentable_overlay_xattr(n))
        {
            return Err(DiffError::OverlayFeature {
                path,
                xattr: String::from_utf8_lossy(name).into_owned(),
            });
        }
        xattrs.retain(|(name, _)| meta::is_emitted_xattr(name));

        let mut name = rel.to_vec();
        let link_key = (st.st_dev, st.st_ino);
        #[allow(clippy::useless_conversion)] // `nlink_t` is 32 bits on some targets
        let nlink = u64::from(st.st_nlink);
        let symlink_target;
        let kind = match file_type {
            FileType::Directory => {
                name.push(b'/');
                Kind::Directory
            }
            _ if nlink > 1 && self.links.contains_key(&link_key) => {
                // The inode's data and attributes went with its first name.
                xattrs.clear();
                Kind::Hardlink {
                    target: &self.links[&link_key],
                }
            }
            FileType::Symlink => {
                symlink_target = fs::read_link(&path)
                    .map_err(read_error)?
                    .into_os_string()
                    .into_vec();
                Kind::Symlink {
                    target: &symlink_target,
                }
            }
            FileType::RegularFile => Kind::Regular {
                size: u64::try_from(st.st_size).unwrap_or(0),
            },
            FileType::CharacterDevice => Kind::Char {
                major: rustix::fs::major(st.st_rdev),
                minor: rustix::fs::minor(st.st_rdev),
            },
            FileType::BlockDevice => Kind::Block {
                major: rustix::fs::major(st.st_rdev),
                minor: rustix::fs::minor(st.st_rdev),
            },
            FileType::Fifo => Kind::Fifo,
            _ => return Ok(()), // a socket: no layer carries one
        };

        let mtime = st.st_mtime;
        let header = EntryHeader {
            name: &name,
            kind,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            mtime: self.clamp.map_or(mtime, |clamp| mtime.min(clamp)),
            xattrs: &xattrs,
        };
        self.tar.header(&header).map_err(write_error)?;
        let is_first_name = !matches!(kind, Kind::Hardlink { .. });
        if let (Kind::Regular { size }, Some(file)) = (kind, file) {
            self.copy_file(File::from(file), &path, size)?;
        }
        if is_first_name && file_type != FileType::Directory && nlink > 1 {
            self.links.insert(link_key, name);
        }
        Ok(())
    }

    /// `lstat`s the node and, when it is a regular file, opens it (not following a symlink that took
    /// its place meanwhile), both relative to its directory.
    fn stat_and_open(&mut self, rel: &[u8]) -> io::Result<(Stat, Option<OwnedFd>)> {
        let (parent, file_name) = changes::split_last(rel);
        let dir = match &self.dir {
            Some((open, fd)) if open == parent => fd,
            _ => {
                let fd = rustix::fs::open(
                    self.root.join(OsStr::from_bytes(parent)),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                &self.dir.insert((parent.to_vec(), fd)).1
            }
        };
        let st = rustix::fs::statat(dir, file_name, AtFlags::SYMLINK_NOFOLLOW)?;
        let file = if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            Some(rustix::fs::openat(dir, file_name, flags, Mode::empty())?)
        } else {
            None
        };
        Ok((st, file))
    }

    /// Copies exactly `size` bytes of the file into the tar, failing if the file is not that long. The
    /// data is read straight into the outgoing chunks.
    fn copy_file(&mut self, mut file: File, path: &Path, size: u64) -> Result<(), DiffError> {
        let read_error = |source| DiffError::Read {
            path: path.to_owned(),
            source,
        };
        let mut left = size;
        while left > 0 {
            let sink = self.tar.get_mut();
            let room = sink.room().map_err(write_error)?;
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(room.len());
            let n = match file.read(&mut room[..want]) {
                Ok(0) => return Err(changed(path, size)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            sink.commit(n);
            left -= n as u64;
        }
        if file.read(&mut [0; 1]).map_err(read_error)? != 0 {
            return Err(changed(path, size));
        }
        self.tar.pad(size).map_err(write_error)
    }
}

fn changed(path: &Path, expected: u64) -> DiffError {
    DiffError::Changed {
        path: path.to_owned(),
        expected,
    }
}

fn write_error(source: io::Error) -> DiffError {
    DiffError::Write { source }
}

/// Whole seconds since the epoch, rounded down (negative before 1970).
fn epoch_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -secs - i64::from(d.subsec_nanos() > 0)
        }
    }
}
