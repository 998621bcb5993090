//! Applying a layer to a directory: the extraction is kiln's own (the `tar` crate only parses), so
//! every entry goes through the same refusals and ends up inside the target root.
//!
//! What an entry does:
//! - a file, directory, symlink, hardlink, device node or FIFO replaces what is at its path, unless both
//!   are directories (then the directory stays and takes the entry's metadata). Owner, mode, extended
//!   attributes (PAX `SCHILY.xattr.*`) and mtime are set from the entry; directory mtimes last, once
//!   nothing more is created in them.
//! - `.wh.<name>` removes `<name>` as the layers below left it; `<dir>/.wh..wh..opq` removes everything
//!   in `<dir>` except what this same layer put there. Whiteouts never remove the layer's own entries,
//!   wherever they stand in the tar. Other `.wh..wh.*` names (aufs bookkeeping) are skipped.
//! - the root itself (`./`, `/`) is skipped: its metadata belongs to the snapshot.
//!
//! Refused, with an error naming the entry: a `..` component anywhere in a name or hardlink target, a
//! path whose parent is a symlink (unless [`ParentSymlinks::FollowInRoot`]) or not a directory, a
//! whiteout of `.`, `..` or nothing, a hardlink to something missing, sparse files and other tar types
//! a layer does not hold, a truncated or corrupt stream, a tar with no end-of-archive marker.
//! A leading `/` is not refused: it is dropped, as GNU tar and the container runtimes do. Overlay's own
//! attributes (`trusted.overlay.*`, `user.overlay.*`) in a layer are dropped: applied to a directory
//! later used as an overlay lower dir they would change what the mount shows.
//!
//! Failure is not atomic: the layer is applied in place, and after an error the target holds part of it.
//! The caller applies into a fresh active snapshot and, on error, removes that snapshot instead of
//! committing it.

mod entry_path;
mod extract;
mod files;
mod input;
pub(crate) use input::decompress;
mod tar_read;

use std::io::{self, Read};
use std::path::Path;

use super::{ApplyError, Compression, Digest};
use crate::fsroot::{self, Root};
use extract::Extract;
use input::Pipe;
use tar_read::TarReader;

/// What to do with a symlink met on the way to an entry (not at the entry itself, which is always
/// replaced, never followed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentSymlinks {
    /// Refuse the entry: a layer written from a real filesystem never names a path through a symlink.
    #[default]
    Refuse,
    /// Follow it as a chroot would (absolute targets and `..` stop at the root), as containerd and
    /// Docker do; for hand-made layers that write through, say, `lib -> usr/lib`.
    FollowInRoot,
}

impl From<ParentSymlinks> for fsroot::Symlinks {
    fn from(policy: ParentSymlinks) -> fsroot::Symlinks {
        match policy {
            ParentSymlinks::Refuse => fsroot::Symlinks::Refuse,
            ParentSymlinks::FollowInRoot => fsroot::Symlinks::FollowInRoot,
        }
    }
}

/// How a layer is applied.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    parent_symlinks: ParentSymlinks,
}

impl ApplyOptions {
    /// Refuses entries below symlinks.
    pub fn new() -> ApplyOptions {
        ApplyOptions::default()
    }

    /// Sets what happens to entries whose path goes through a symlink.
    #[must_use]
    pub fn parent_symlinks(mut self, policy: ParentSymlinks) -> ApplyOptions {
        self.parent_symlinks = policy;
        self
    }
}

/// What an apply read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar: compare it with the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// The compression found (levels are not recorded in a stream; the default level is reported).
    pub compression: Compression,
    /// Number of tar entries applied, whiteouts included.
    pub entries: u64,
}

/// Applies the layer read from `layer` (plain tar, gzip or zstd, told apart by their first bytes) to the
/// directory `target`, and returns the layer's diff_id.
///
/// On error the target is partly applied and must be discarded (see the module docs).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kiln_builder::layer::{self, ApplyOptions, Changes, Compression, DiffOptions};
///
/// let tree = tempfile::tempdir()?;
/// std::fs::create_dir(tree.path().join("etc"))?;
/// std::fs::write(tree.path().join("etc/motd"), "hello\n")?;
///
/// let changes = Changes::TreeCompare { parent: None, tree: tree.path() };
/// let options = DiffOptions::new().compression(Compression::ZSTD);
/// let (descriptor, blob) = layer::diff(changes, Vec::new(), &options)?;
///
/// let target = tempfile::tempdir()?;
/// let applied = layer::apply(&blob[..], target.path(), &ApplyOptions::new())?;
/// assert_eq!(applied.diff_id, descriptor.diff_id);
/// assert_eq!(std::fs::read_to_string(target.path().join("etc/motd"))?, "hello\n");
/// # Ok(())
/// # }
/// ```
pub fn apply<R: Read + Send>(layer: R, target: &Path, options: &ApplyOptions) -> Result<Applied, ApplyError> {
    let root =
        Root::open_with(target, options.parent_symlinks.into()).map_err(|source| ApplyError::Target {
            path: target.to_owned(),
            source,
        })?;
    let (stream, compression) = input::decompress(layer)?;
    let (pipe, pump) = input::pipe();
    let (files, queue) = files::channel();
    let mut extract = Extract::new(&root, files);
    // Three threads: one decompresses, this one parses, digests and creates what the entries name, one
    // writes regular files' data and metadata.
    let (read, written, ended_cleanly) = std::thread::scope(|scope| {
        let spawn_error = |source| ApplyError::Io {
            entry: String::new(),
            op: "start the threads that apply the layer".into(),
            source,
        };
        let producer = std::thread::Builder::new()
            .name("kiln-layer-read".into())
            .spawn_scoped(scope, move || pump.run(stream))
            .map_err(spawn_error)?;
        let writer = std::thread::Builder::new()
            .name("kiln-layer-write".into())
            .spawn_scoped(scope, move || files::run(queue))
            .map_err(spawn_error)?;
        let read = read_entries(&mut extract, pipe);
        // Whatever happened, the writing thread must learn that no more files come before it is joined.
        let ended = extract.end_files();
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A panic there would be a bug in a decoder; report it as a broken stream, not a crash.
        let ended_cleanly = producer.join().unwrap_or(false);
        Ok::<_, ApplyError>((read.and_then(|read| ended.map(|()| read)), written, ended_cleanly))
    })?;
    // The writing thread's error concerns an earlier entry than the extracting thread's, which may only
    // say that the writing thread is gone.
    written?;
    let (last, pipe) = read?;
    if !ended_cleanly {
        return Err(ApplyError::Corrupt {
            after: last,
            source: io::Error::other("the layer reader stopped before the end of the stream"),
        });
    }
    let (diff_id, uncompressed_size) = pipe.digest();
    let entries = extract.finish()?;
    Ok(Applied {
        diff_id: Digest::from_sha256(diff_id),
        uncompressed_size,
        compression,
        entries,
    })
}

/// Applies every entry, then reads what follows the end-of-archive block (more zero padding, which is
/// part of the diff_id too). Returns the name of the last entry, and the pipe, drained.
fn read_entries(extract: &mut Extract<'_>, pipe: Pipe) -> Result<(Option<String>, Pipe), ApplyError> {
    let mut tar = TarReader::new(pipe);
    let mut last: Option<String> = None;
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ApplyError::MissingEnd { after: last });
            }
            Err(source) => return Err(ApplyError::Corrupt { after: last, source }),
        };
        last = Some(extract.entry(&entry, &mut tar)?);
    }
    let mut pipe = tar.into_inner();
    match pipe.drain() {
        Ok(()) => Ok((last, pipe)),
        Err(source) => Err(ApplyError::Corrupt { after: last, source }),
    }
}
