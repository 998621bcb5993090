//! The diff side's entry point: find a snapshot's changes, then write them as a tar through a
//! [`LayerWriter`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::SystemTime;

use super::changes::{self, Item};
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
/// Memory holds the list of changed paths, never file data.
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
    let layer = LayerWriter::new(out, options.compression, options.threads).map_err(write_error)?;
    let mut writer = EntryWriter {
        root,
        tar: TarWriter::new(layer),
        clamp: options.clamp_mtime,
        links: HashMap::new(),
        buf: vec![0; 256 * 1024],
    };
    for item in &items {
        writer.write_item(item)?;
    }
    let layer = writer.tar.finish().map_err(write_error)?;
    layer.finish().map_err(write_error)
}

struct EntryWriter<'a, W: Write> {
    root: &'a Path,
    tar: TarWriter<LayerWriter<W>>,
    clamp: Option<i64>,
    /// First name written for each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

impl<W: Write> EntryWriter<'_, W> {
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
        let read_error = |source| DiffError::Read {
            path: path.clone(),
            source,
        };
        let md = fs::symlink_metadata(&path).map_err(read_error)?;
        let file_type = md.file_type();
        let mut xattrs = meta::read_xattrs(&path).map_err(read_error)?;
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
        let link_key = (md.dev(), md.ino());
        let symlink_target;
        let kind = if file_type.is_dir() {
            name.push(b'/');
            Kind::Directory
        } else if let Some(first) = self.links.get(&link_key).filter(|_| md.nlink() > 1) {
            // The inode's data and attributes went with its first name.
            xattrs.clear();
            Kind::Hardlink { target: first }
        } else if file_type.is_symlink() {
            symlink_target = fs::read_link(&path)
                .map_err(read_error)?
                .into_os_string()
                .into_vec();
            Kind::Symlink {
                target: &symlink_target,
            }
        } else if file_type.is_file() {
            Kind::Regular { size: md.len() }
        } else if file_type.is_char_device() {
            Kind::Char {
                major: rustix::fs::major(md.rdev()),
                minor: rustix::fs::minor(md.rdev()),
            }
        } else if file_type.is_block_device() {
            Kind::Block {
                major: rustix::fs::major(md.rdev()),
                minor: rustix::fs::minor(md.rdev()),
            }
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else {
            return Ok(()); // a socket: no layer carries one
        };

        let header = EntryHeader {
            name: &name,
            kind,
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            mtime: self.clamp.map_or(md.mtime(), |clamp| md.mtime().min(clamp)),
            xattrs: &xattrs,
        };
        self.tar.header(&header).map_err(write_error)?;
        let is_first_name = !matches!(kind, Kind::Hardlink { .. });
        if let Kind::Regular { size } = kind {
            self.copy_file(&path, size)?;
        }
        if is_first_name && !file_type.is_dir() && md.nlink() > 1 {
            self.links.insert(link_key, name);
        }
        Ok(())
    }

    /// Copies exactly `size` bytes of the file into the tar, failing if the file is not that long.
    fn copy_file(&mut self, path: &Path, size: u64) -> Result<(), DiffError> {
        let read_error = |source| DiffError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = File::options()
            .read(true)
            .custom_flags(o_nofollow())
            .open(path)
            .map_err(read_error)?;
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(self.buf.len());
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => return Err(changed(path, size)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            self.tar.data(&self.buf[..n]).map_err(write_error)?;
            left -= n as u64;
        }
        if file.read(&mut self.buf[..1]).map_err(read_error)? != 0 {
            return Err(changed(path, size));
        }
        self.tar.pad(size).map_err(write_error)
    }
}

fn o_nofollow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).expect("O_NOFOLLOW fits an int")
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
