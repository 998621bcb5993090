//! The stat cache: file digests remembered across builds (documented on [`StatCache`]).

use std::cmp::Ordering;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::checksum::EntryHash;
use super::{ContextError, Metadata, walk_order};

/// The first bytes of every cache file. The layout version is in the directory name.
const MAGIC: &[u8; 8] = b"kilnstat";
/// Temporary files older than this were left by a writer that died: the next writer removes them.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The persistent stat cache, shared by every context and every kiln process using one root.
///
/// A row maps (context root, relative path) and the file's stat data (device, inode, size, mtime,
/// ctime, mode, uid, gid) to its content sha256 and extended attributes. An entry whose stat data
/// all match is not read again. Any write to a file changes its mtime and ctime; a `touch` changes
/// them too, so the file is read again and, its bytes being the same, yields the same checksum. A
/// file rewritten with the same size and a restored mtime still gets a new ctime, which no user can
/// set. Rows are only written for file versions older than the filesystem's timestamp tick (see
/// `checksum::trusted`), so a change in the same tick as the read is never hidden.
///
/// # On disk
///
/// `<kiln root>/context-cache-v2/<sha256 of the context path>`: one file per context directory,
/// holding all of its rows sorted in walk order, so a build loads its context's rows with one read
/// and matches them against the walk in one pass (no query per row, no allocation per row). It is a
/// cache: deleting the directory costs one re-read of each context, nothing else, so a file that
/// does not parse is ignored (and replaced by the next write). A write replaces the whole file (temp
/// name, fsync, rename), so readers in other processes see the old rows or the new ones, never a mix.
/// Two processes writing the same context's rows at once may lose one's new rows (the last rename
/// wins); that costs a re-read of those files next time and can never make a stale row match, since
/// a row is only used when all its stat data still match.
///
/// Each write drops the rows of paths the context no longer has (deleted, or ignored now); files of
/// context directories that are gone stay until the directory is deleted. (Version 1 was an SQLite
/// database, `context-cache-v1.db`; loading 20,000 rows from it took longer than the walk.)
#[derive(Debug)]
pub struct StatCache {
    dir: PathBuf,
}

/// The stat data a cached digest is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl StatKey {
    pub(crate) fn of(meta: &Metadata) -> StatKey {
        StatKey {
            dev: meta.dev,
            ino: meta.ino,
            size: meta.size,
            mtime_ns: meta.mtime_ns,
            ctime_ns: meta.ctime_ns,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
        }
    }
}

/// One digest to cache.
#[derive(Debug, Clone)]
pub(crate) struct CachedRow {
    pub(crate) key: StatKey,
    pub(crate) hash: EntryHash,
}

/// The rows of one context root as its file holds them, sorted in walk order. They are read in
/// place, as lookups and writes pass over them: no allocation per row, nor an index (on a big
/// context, the memory an index takes costs more in page faults than reading rows twice).
#[derive(Debug)]
pub(crate) struct Rows {
    root: Vec<u8>,
    /// The file's bytes (checked whole by [`decode`]).
    data: Vec<u8>,
    /// Where the first row starts, and how many there are.
    first: usize,
    count: usize,
}

/// One row, read in place.
#[derive(Debug, Clone, Copy)]
struct Row<'a> {
    path: &'a [u8],
    key: StatKey,
    content: Option<[u8; 32]>,
    xattrs: &'a [u8],
}

impl Rows {
    fn empty(root: &[u8]) -> Rows {
        Rows {
            root: root.to_vec(),
            data: Vec::new(),
            first: 0,
            count: 0,
        }
    }

    /// Every row, in order.
    fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        let mut reader = Reader {
            data: &self.data,
            at: self.first,
        };
        (0..self.count).map_while(move |_| read_row(&mut reader))
    }

    /// A reader for lookups made in walk order.
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            reader: Reader {
                data: &self.data,
                at: self.first,
            },
            left: self.count,
        }
    }
}

/// Looks rows up by path, for paths asked in walk order: each lookup starts where the last one
/// stopped, so looking up every entry of a context is one pass over both.
pub(crate) struct Cursor<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl Cursor<'_> {
    /// The hash cached for `path` under the stat data `key`, if there is one. A path that sorts
    /// before the previous one asked is not found (the caller then reads the file: slower, never
    /// wrong).
    pub(crate) fn get(&mut self, path: &[u8], key: &StatKey) -> Option<EntryHash> {
        while self.left > 0 {
            let mut next = self.reader;
            let row = read_row(&mut next)?;
            // Usually the very next row: equal bytes settle it without the walk-order compare.
            let order = if row.path == path {
                Ordering::Equal
            } else {
                walk_order(row.path, path)
            };
            if order == Ordering::Greater {
                return None;
            }
            self.reader = next;
            self.left -= 1;
            if order == Ordering::Equal {
                return (row.key == *key).then(|| EntryHash {
                    content: row.content,
                    xattrs: row.xattrs.to_vec(),
                });
            }
        }
        None
    }
}

impl StatCache {
    /// The directory name, under the kiln root.
    pub const DIR_NAME: &'static str = "context-cache-v2";

    /// Opens (creating if needed) `<kiln_root>/context-cache-v2`. Creating it removes the version 1
    /// database a kiln before it may have left (`context-cache-v1.db`): nothing reads it any more.
    pub fn open(kiln_root: &Path) -> Result<StatCache, ContextError> {
        let dir = kiln_root.join(Self::DIR_NAME);
        let created =
            match std::fs::create_dir(&dir) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                // The kiln root itself is missing.
                Err(_) => std::fs::create_dir_all(&dir).map(|()| true).map_err(|source| {
                    ContextError::StatCacheDir {
                        path: dir.clone(),
                        source,
                    }
                })?,
            };
        if !dir.is_dir() {
            return Err(ContextError::StatCacheDir {
                path: dir,
                source: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        if created {
            for name in [
                "context-cache-v1.db",
                "context-cache-v1.db-wal",
                "context-cache-v1.db-shm",
            ] {
                let _ = std::fs::remove_file(kiln_root.join(name));
            }
        }
        Ok(StatCache { dir })
    }

    /// The cache directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// How many digests are cached for the context directory `root` (canonical, as
    /// [`Context::root`](super::Context::root) gives it).
    pub fn len_for(&self, root: &Path) -> Result<usize, ContextError> {
        Ok(self.load(root)?.count)
    }

    /// The file holding the rows of the context at `root`.
    fn file_for(&self, root: &[u8]) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(root)))
    }

    /// Every row of the context at `root` (none if its file is missing or does not parse).
    pub(crate) fn load(&self, root: &Path) -> Result<Rows, ContextError> {
        let root = root.as_os_str().as_bytes();
        let path = self.file_for(root);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Rows::empty(root)),
            Err(source) => return Err(ContextError::StatCache { path, source }),
        };
        Ok(decode(root, data).unwrap_or_else(|| Rows::empty(root)))
    }

    /// Replaces the file of `rows`' context with `rows` plus `fresh` (which win over a row of the
    /// same path), minus the rows of paths `exists` rejects; `rows` then holds what was written.
    pub(crate) fn store(
        &self,
        rows: &mut Rows,
        mut fresh: Vec<(Vec<u8>, CachedRow)>,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<(), ContextError> {
        fresh.sort_unstable_by(|a, b| walk_order(&a.0, &b.0));
        let out = merge(rows, &fresh, exists);
        let path = self.file_for(&rows.root);
        self.write(&path, &out)
            .map_err(|source| ContextError::StatCacheWrite { path, source })?;
        *rows = decode(&rows.root, out).unwrap_or_else(|| Rows::empty(&rows.root));
        Ok(())
    }

    /// Writes `bytes` to `path` through a temporary file: fsync, then rename.
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.sweep_temps();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".tmp-{}-{nanos}", std::process::id()));
        let temp = PathBuf::from(temp);
        let written = (|| {
            let mut file = std::fs::File::create_new(&temp)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// Removes temporary files that writers which died left behind (best effort).
    fn sweep_temps(&self) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in listing.flatten() {
            let stale = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| now.duration_since(modified).unwrap_or_default() > STALE_TEMP);
            if stale && entry.file_name().as_bytes().windows(5).any(|w| w == b".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The cache file holding `rows` and `fresh` (sorted; they win over a row of the same path), minus
/// the rows of paths `exists` rejects.
fn merge(rows: &Rows, fresh: &[(Vec<u8>, CachedRow)], exists: impl Fn(&Path) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.data.len() + fresh.len() * 128);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, &rows.root);
    let count = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut written = 0u32;
    let mut old = rows.iter().peekable();
    let mut new = fresh.iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some(n)) => walk_order(o.path, &n.0),
        };
        if order == Ordering::Less {
            let row = old.next().expect("peeked");
            if exists(Path::new(std::ffi::OsStr::from_bytes(row.path))) {
                put_row(&mut out, row.path, &row.key, row.content.as_ref(), row.xattrs);
                written += 1;
            }
            continue;
        }
        if order == Ordering::Equal {
            old.next();
        }
        let (path, row) = new.next().expect("peeked");
        put_row(
            &mut out,
            path,
            &row.key,
            row.hash.content.as_ref(),
            &row.hash.xattrs,
        );
        written += 1;
    }
    out[count..count + 4].copy_from_slice(&written.to_le_bytes());
    out
}

/// Appends a `u32` length and the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one row: path, stat data, content digest (if any), extended attributes.
fn put_row(out: &mut Vec<u8>, path: &[u8], key: &StatKey, content: Option<&[u8; 32]>, xattrs: &[u8]) {
    put_bytes(out, path);
    for value in [key.dev, key.ino, key.size] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for value in [key.mtime_ns, key.ctime_ns] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for value in [key.mode, key.uid, key.gid] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    match content {
        Some(digest) => {
            out.push(1);
            out.extend_from_slice(digest);
        }
        None => out.push(0),
    }
    put_bytes(out, xattrs);
}

/// Reads a cache file written for `root`: `None` unless it is whole, for this root, and sorted.
fn decode(root: &[u8], data: Vec<u8>) -> Option<Rows> {
    let mut reader = Reader { data: &data, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC || reader.bytes()? != root {
        return None;
    }
    let count = reader.u32()? as usize;
    let first = reader.at;
    let mut last: Option<&[u8]> = None;
    for _ in 0..count {
        let row = read_row(&mut reader)?;
        if last.is_some_and(|last| walk_order(last, row.path) != Ordering::Less) {
            return None;
        }
        last = Some(row.path);
    }
    if reader.at != data.len() {
        return None;
    }
    Some(Rows {
        root: root.to_vec(),
        data,
        first,
        count,
    })
}

/// The row at the reader's position (the layout [`put_row`] writes).
fn read_row<'a>(reader: &mut Reader<'a>) -> Option<Row<'a>> {
    let path = reader.bytes()?;
    let key = StatKey {
        dev: reader.u64()?,
        ino: reader.u64()?,
        size: reader.u64()?,
        mtime_ns: reader.i64()?,
        ctime_ns: reader.i64()?,
        mode: reader.u32()?,
        uid: reader.u32()?,
        gid: reader.u32()?,
    };
    let content = match reader.take(1)? {
        [0] => None,
        [1] => Some(<[u8; 32]>::try_from(reader.take(32)?).ok()?),
        _ => return None,
    };
    let xattrs = reader.bytes()?;
    Some(Row {
        path,
        key,
        content,
        xattrs,
    })
}

/// A position in a cache file being decoded.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let bytes = self.data.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A `u32`-length-prefixed byte string.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> StatKey {
        StatKey {
            dev: 1,
            ino,
            size: 3,
            mtime_ns: -5,
            ctime_ns: 7,
            mode: 0o100_644,
            uid: 1000,
            gid: 100,
        }
    }

    fn row(ino: u64, xattrs: &[u8]) -> CachedRow {
        CachedRow {
            key: key(ino),
            hash: EntryHash {
                content: (ino % 2 == 0).then_some([u8::try_from(ino).unwrap(); 32]),
                xattrs: xattrs.to_vec(),
            },
        }
    }

    #[test]
    fn rows_round_trip_in_walk_order_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StatCache::open(dir.path()).unwrap();
        let root = Path::new("/ctx");
        let mut rows = cache.load(root).unwrap();
        assert_eq!(rows.count, 0);
        let fresh = ["a.txt", "a/b", "a", ""]
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_bytes().to_vec(), row(i as u64, b"x")))
            .collect();
        cache.store(&mut rows, fresh, |_| true).unwrap();
        let paths: Vec<&[u8]> = rows.iter().map(|r| r.path).collect();
        assert_eq!(paths, [&b""[..], b"a", b"a/b", b"a.txt"]);
        // Written and read back: a lookup in walk order finds each row under its own key only.
        let rows = cache.load(root).unwrap();
        let mut cursor = rows.cursor();
        assert_eq!(cursor.get(b"", &key(3)), Some(row(3, b"x").hash));
        assert_eq!(cursor.get(b"a", &key(0)), None, "another key: not a hit");
        assert_eq!(cursor.get(b"a/a", &key(9)), None);
        assert_eq!(cursor.get(b"a.txt", &key(0)), Some(row(0, b"x").hash));
        // A merge keeps old rows, lets fresh ones win and drops what no longer exists.
        let mut rows = rows;
        let fresh = vec![(b"a".to_vec(), row(8, b""))];
        cache.store(&mut rows, fresh, |p| p != Path::new("a/b")).unwrap();
        assert_eq!(cache.len_for(root).unwrap(), 3);
        let mut cursor = rows.cursor();
        assert_eq!(cursor.get(b"a", &key(8)), Some(row(8, b"").hash));
        assert_eq!(cursor.get(b"a/b", &key(1)), None);
        assert_eq!(cache.len_for(Path::new("/other")).unwrap(), 0);
    }

    #[test]
    fn the_first_open_removes_the_version_1_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("context-cache-v1.db"), "old").unwrap();
        StatCache::open(dir.path()).unwrap();
        assert!(!dir.path().join("context-cache-v1.db").exists());
        assert!(dir.path().join(StatCache::DIR_NAME).is_dir());
        // A missing kiln root is created.
        let nested = dir.path().join("a/b");
        assert_eq!(
            StatCache::open(&nested).unwrap().path(),
            nested.join(StatCache::DIR_NAME)
        );
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StatCache::open(dir.path()).unwrap();
        let root = Path::new("/ctx");
        let mut rows = cache.load(root).unwrap();
        let fresh = vec![(b"f".to_vec(), row(2, b""))];
        cache.store(&mut rows, fresh, |_| true).unwrap();
        let file = cache.file_for(b"/ctx");
        let whole = std::fs::read(&file).unwrap();
        for cut in [0, 5, whole.len() - 1] {
            std::fs::write(&file, &whole[..cut]).unwrap();
            assert_eq!(cache.len_for(root).unwrap(), 0, "cut at {cut}");
        }
        let mut extra = whole.clone();
        extra.push(0);
        std::fs::write(&file, extra).unwrap();
        assert_eq!(cache.len_for(root).unwrap(), 0);
        std::fs::write(&file, whole).unwrap();
        assert_eq!(cache.len_for(root).unwrap(), 1);
        // Another root's file (a hash collision, or a renamed file) is not taken for this one's.
        std::fs::rename(&file, cache.file_for(b"/elsewhere")).unwrap();
        assert_eq!(cache.len_for(Path::new("/elsewhere")).unwrap(), 0);
    }
}
