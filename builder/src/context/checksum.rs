//! The content checksum of a selection, and the file hashing behind it.
//!
//! The encoding the digest is taken over is documented on [`Context::checksum`].
//!
//! # Hashing
//!
//! A file's contents are read once per [`Context`] (the digest is kept on its [`Entry`]) and, with
//! a [`StatCache`](super::StatCache), once per file version across builds. Files are read on up to
//! [`MAX_WORKERS`] threads when there are enough of them for threads to pay.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::OFlags;
use sha2::{Digest as _, Sha256};

use super::statcache::{CachedRow, StatKey};
use super::{Context, ContextError, Entry, EntryKind, Selected, Selection, Xattrs, beneath};
use crate::content::{Digest, Digester};

/// The most threads a checksum reads files on.
const MAX_WORKERS: usize = 4;
/// Below this many files to read, one thread does it (spawning costs more than it saves).
const PARALLEL_MIN_FILES: usize = 8;
/// Read buffer per thread.
const BUFFER: usize = 256 * 1024;

/// What a checksum learned about an entry besides its `lstat` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHash {
    /// sha256 of a regular file's bytes.
    pub(crate) content: Option<[u8; 32]>,
    /// Extended attributes in the checksum's encoding (empty: none).
    pub(crate) xattrs: Vec<u8>,
}

/// How much work checksums did: files read (not answered by the stat cache or an earlier checksum
/// of the same [`Context`]), their bytes, and stat cache hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Regular files whose contents were read.
    pub files_read: u64,
    /// Bytes read from them.
    pub bytes_read: u64,
    /// Entries whose digest came from the stat cache.
    pub cache_hits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    cache_hits: AtomicU64,
}

impl Context {
    /// The checksum of exactly what `selection` holds: the cache key input of a `COPY`/`ADD`.
    ///
    /// Files are read only if neither an earlier checksum of this context nor the stat cache knows
    /// their digest; new digests are written to the stat cache in one transaction.
    ///
    /// # Encoding (`kiln.context.checksum.v2`)
    ///
    ///  The digest is sha256 over a canonical encoding; integers are little-endian, byte strings are a
    ///  `u64` length then the bytes:
    ///
    ///  ```text
    ///  "kiln.context.checksum.v2\0"  u64 number of matches
    ///  per match:   bytes name: what `COPY` calls it in the destination, the last component of its
    ///                     path for a file (or anything not a directory), "" for a directory, whose
    ///                     contents are copied
    ///               u64 number of entries
    ///  per entry:   bytes name (relative to the match's root; "" for the root)
    ///               u8 kind ('f' file, 'd' dir, 'l' symlink, 'p' FIFO, 's' socket, 'c'/'b' device)
    ///               u32 permission bits (mode & 0o7777)
    ///               file:    u64 size, then the 32-byte sha256 of the contents
    ///               symlink: bytes target
    ///               device:  u64 rdev
    ///               bytes extended attributes: per attribute, sorted by name, u32 name length, name,
    ///                     u32 value length, value
    ///  ```
    ///
    ///  Left out on purpose: owners (BuildKit's client sends context files as `0:0`, and `COPY` gives
    ///  them `0:0` or its `--chown`, never the owner on disk: v1 hashed them, so a `chown` in the
    ///  context changed the key and not the layer), access, modification and change times (a `touch`, a fresh `git clone` or
    ///  a different checkout time must not invalidate the cache; BuildKit leaves them out too), inode and
    ///  device numbers and link counts (they say where a file is stored, not what it is), and directory
    ///  sizes (they depend on the filesystem, not on the contents).
    ///
    pub fn checksum(&self, selection: &Selection<'_>) -> Result<Digest, ContextError> {
        self.hash_entries(selection.entries().map(Selected::entry))?;
        let mut encoder = Encoder::new();
        encoder.put(b"kiln.context.checksum.v2\0");
        encoder.put_u64(selection.matches().len() as u64);
        for m in selection.matches() {
            let name = match m.root().kind() {
                EntryKind::Dir => &[][..],
                _ => m.path().file_name().map_or(&[][..], OsStrExt::as_bytes),
            };
            encoder.put_bytes(name);
            encoder.put_u64(m.entries().len() as u64);
            for selected in m.entries() {
                encoder.put_bytes(selected.name().as_os_str().as_bytes());
                encoder.put_entry(selected.entry());
            }
        }
        Ok(encoder.finish())
    }

    /// Work done by this context's checksums so far.
    pub fn stats(&self) -> HashStats {
        HashStats {
            files_read: self.stats.files_read.load(Ordering::Relaxed),
            bytes_read: self.stats.bytes_read.load(Ordering::Relaxed),
            cache_hits: self.stats.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// Makes sure every entry has its [`EntryHash`]: from memory, the stat cache, or the disk.
    fn hash_entries<'a>(&self, entries: impl Iterator<Item = &'a Entry>) -> Result<(), ContextError> {
        let mut todo: Vec<&Entry> = entries.filter(|e| e.hash.get().is_none()).collect();
        // A wildcard can select one entry twice (a directory and a symlink to it).
        todo.sort_unstable_by_key(|e| std::ptr::from_ref(*e));
        todo.dedup_by_key(|e| std::ptr::from_ref(*e));
        let Some(cache) = &self.stat_cache else {
            self.hash_files(&todo)?;
            return Ok(());
        };
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.is_none() {
            *cached = Some(cache.load(&self.root)?);
        }
        let rows = cached.as_mut().expect("loaded above");
        let hits_before = todo.len();
        // `todo` is in walk order (entries are, and it was sorted by address), as the rows are.
        let mut cursor = rows.cursor();
        todo.retain(|entry| {
            let path = entry.path.as_os_str().as_bytes();
            match cursor.get(path, &StatKey::of(&entry.meta)) {
                Some(hash) => {
                    // Another thread cannot have set it: the lock is held.
                    let _ = entry.hash.set(hash);
                    false
                }
                None => true,
            }
        });
        self.stats
            .cache_hits
            .fetch_add((hits_before - todo.len()) as u64, Ordering::Relaxed);
        let fresh = self.hash_files(&todo)?;
        if !fresh.is_empty() {
            cache.store(rows, fresh, |path| self.index_of(path).is_some())?;
        }
        Ok(())
    }

    /// Hashes `todo` (on several threads when there are many), setting each entry's hash, and
    /// returns the rows worth caching.
    fn hash_files(&self, todo: &[&Entry]) -> Result<Vec<(Vec<u8>, CachedRow)>, ContextError> {
        let files = todo.iter().filter(|e| e.kind == EntryKind::File).count();
        let workers = if files < PARALLEL_MIN_FILES {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_WORKERS)
        };
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let error = Mutex::new(None);
        let rows = Mutex::new(Vec::new());
        let work = || {
            let mut buffer = vec![0; BUFFER];
            let mut mine = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let Some(entry) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                match self.hash_one(entry, &mut buffer) {
                    Ok((hash, row)) => {
                        let _ = entry.hash.set(hash);
                        mine.extend(row.map(|row| (entry.path.as_os_str().as_bytes().to_vec(), row)));
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(e);
                    }
                }
            }
            rows.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&mut mine);
        };
        if workers == 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(work);
                }
            });
        }
        if let Some(e) = error.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        Ok(rows.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads one entry's contents and attributes. The row comes back only when caching it is safe
    /// (see [`trusted`]).
    fn hash_one(
        &self,
        entry: &Entry,
        buffer: &mut [u8],
    ) -> Result<(EntryHash, Option<CachedRow>), ContextError> {
        let read_error = |source| ContextError::Read {
            path: entry.path.clone(),
            source,
        };
        let started = now_ns();
        let root = self.root_fd.as_fd();
        let hash = match entry.kind {
            EntryKind::File => {
                let fd = beneath::open(root, &entry.path, OFlags::RDONLY).map_err(read_error)?;
                let now = beneath::stat_fd(fd.as_fd()).map_err(read_error)?;
                if !now.same_file_version(&entry.meta) {
                    return Err(ContextError::Changed {
                        path: entry.path.clone(),
                    });
                }
                let xattrs = encode_xattrs(&beneath::xattrs_fd(fd.as_fd()).map_err(read_error)?);
                let mut file = std::fs::File::from(fd);
                let mut hasher = Sha256::new();
                let mut read = 0u64;
                loop {
                    match file.read(buffer) {
                        Ok(0) => break,
                        Ok(n) => {
                            hasher.update(&buffer[..n]);
                            read += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(read_error(e)),
                    }
                }
                // Appended to or truncated while read: the digest belongs to no version of it.
                if read != entry.meta.size {
                    return Err(ContextError::Changed {
                        path: entry.path.clone(),
                    });
                }
                self.stats.files_read.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_read.fetch_add(read, Ordering::Relaxed);
                EntryHash {
                    content: Some(hasher.finalize().into()),
                    xattrs,
                }
            }
            _ => EntryHash {
                content: None,
                xattrs: encode_xattrs(&self.read_xattrs(entry)?),
            },
        };
        let row = trusted(entry.meta.ctime_ns, started).then(|| CachedRow {
            key: StatKey::of(&entry.meta),
            hash: hash.clone(),
        });
        Ok((hash, row))
    }
}

impl Context {
    /// Reads the extended attributes of `entry` (through an fd for files and directories; by path,
    /// not following the last component, for the rest: see [`beneath::xattrs_path`]).
    pub(super) fn read_xattrs(&self, entry: &Entry) -> Result<Xattrs, ContextError> {
        let read_error = |source| ContextError::Read {
            path: entry.path.clone(),
            source,
        };
        let root = self.root_fd.as_fd();
        match entry.kind {
            EntryKind::Dir if entry.path.as_os_str().is_empty() => beneath::xattrs_fd(root),
            EntryKind::Dir => beneath::open(root, &entry.path, OFlags::RDONLY | OFlags::DIRECTORY)
                .and_then(|fd| beneath::xattrs_fd(fd.as_fd())),
            EntryKind::File => {
                beneath::open(root, &entry.path, OFlags::RDONLY).and_then(|fd| beneath::xattrs_fd(fd.as_fd()))
            }
            _ => beneath::xattrs_path(&self.root.join(&entry.path)),
        }
        .map_err(read_error)
    }
}

/// Whether a digest taken at `started` may be cached under a stat with this `ctime`.
///
/// A change to a file sets its ctime to the current time, but only at the filesystem's timestamp
/// granularity: a write in the same tick as the version we read would leave size, mtime and ctime
/// all as cached (git's "racily clean" problem). Any later change gets a ctime no earlier than
/// `started` minus one tick, so a version whose ctime is at least a tick older than `started` cannot
/// be confused with a later one. Nanosecond filesystems tick with the kernel's coarse clock (at most
/// 10 ms); a ctime on a whole second suggests a filesystem with second (FAT: two-second) stamps.
fn trusted(ctime_ns: i64, started: i64) -> bool {
    const FINE: i64 = 20_000_000;
    const COARSE: i64 = 2_000_000_000;
    let tick = if ctime_ns % 1_000_000_000 == 0 {
        COARSE
    } else {
        FINE
    };
    ctime_ns.saturating_add(tick) < started
}

/// Now, in nanoseconds since the epoch (the clock file times are stamped with).
fn now_ns() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// The checksum's encoding of a sorted attribute list.
fn encode_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        for part in [name, value] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// The attribute list [`encode_xattrs`] encoded.
pub(super) fn decode_xattrs(mut encoded: &[u8]) -> Xattrs {
    let mut take = || -> Option<Vec<u8>> {
        let (len, rest) = encoded.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let part = rest.get(..len)?.to_vec();
        encoded = &rest[len..];
        Some(part)
    };
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (take(), take()) {
        out.push((name, value));
    }
    out
}

/// Writes the checksum's encoding into the digester in large chunks: a big context's encoding is
/// megabytes of few-byte fields, and feeding them one by one costs more than hashing them.
struct Encoder {
    digester: Digester,
    buffer: Vec<u8>,
}

impl Encoder {
    const CHUNK: usize = 64 * 1024;

    fn new() -> Encoder {
        Encoder {
            digester: Digester::new(),
            buffer: Vec::with_capacity(Encoder::CHUNK + 1024),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Encoder::CHUNK {
            self.digester.update(&self.buffer);
            self.buffer.clear();
        }
    }

    fn put_u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_u64(bytes.len() as u64);
        self.put(bytes);
    }

    /// One entry's part of the encoding; its [`EntryHash`] must be known.
    fn put_entry(&mut self, entry: &Entry) {
        let hash = entry
            .hash
            .get()
            .expect("entries are hashed before the digest is taken");
        let meta = &entry.meta;
        let tag = match entry.kind {
            EntryKind::File => b'f',
            EntryKind::Dir => b'd',
            EntryKind::Symlink(_) => b'l',
            EntryKind::Fifo => b'p',
            EntryKind::Socket => b's',
            EntryKind::CharDevice => b'c',
            EntryKind::BlockDevice => b'b',
        };
        self.put(&[tag]);
        self.put(&meta.permissions().to_le_bytes());
        match &entry.kind {
            EntryKind::File => {
                self.put_u64(meta.size);
                self.put(&hash.content.expect("files have contents"));
            }
            EntryKind::Symlink(target) => self.put_bytes(target.as_bytes()),
            EntryKind::CharDevice | EntryKind::BlockDevice => self.put_u64(meta.rdev),
            EntryKind::Dir | EntryKind::Fifo | EntryKind::Socket => {}
        }
        self.put_bytes(&hash.xattrs);
    }

    fn finish(mut self) -> Digest {
        self.digester.update(&self.buffer);
        self.digester.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ctime_within_a_tick_of_the_read_is_not_trusted() {
        let started = 1_700_000_000_123_456_789;
        assert!(!trusted(started - 5_000_000, started));
        assert!(trusted(started - 50_000_000, started));
        // Whole-second stamps: a second-granular filesystem needs two seconds of distance.
        assert!(!trusted(1_700_000_000_000_000_000, started));
        assert!(trusted(1_699_999_998_000_000_000, started));
    }

    #[test]
    fn the_encoder_feeds_exactly_its_fields() {
        let big = vec![7; 70_000];
        let mut encoder = Encoder::new();
        encoder.put(b"ab");
        encoder.put_u64(3);
        encoder.put_bytes(&big);
        encoder.put_bytes(b"");
        let mut expected = Digester::new();
        expected.update(b"ab");
        expected.update(&3u64.to_le_bytes());
        expected.update(&70_000u64.to_le_bytes());
        expected.update(&big);
        expected.update(&0u64.to_le_bytes());
        assert_eq!(encoder.finish(), expected.finish());
    }

    #[test]
    fn xattr_encoding_is_length_prefixed() {
        let encoded = encode_xattrs(&[(b"user.a".to_vec(), b"1".to_vec())]);
        assert_eq!(encoded, b"\x06\0\0\0user.a\x01\0\0\0\x31");
        assert!(encode_xattrs(&[]).is_empty());
        let list = vec![
            (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
            (b"user.a".to_vec(), Vec::new()),
        ];
        assert_eq!(decode_xattrs(&encode_xattrs(&list)), list);
    }
}
