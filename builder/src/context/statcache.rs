//! The stat cache: file digests remembered across builds (documented on [`StatCache`]).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::checksum::EntryHash;
use super::{ContextError, Metadata};

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema, applied to an empty file; `PRAGMA user_version` records it.
const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS context_roots (
        id   INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE          -- the context directory, canonical and absolute
    ) STRICT;
    CREATE TABLE IF NOT EXISTS context_stat_cache (
        root     INTEGER NOT NULL REFERENCES context_roots (id) ON DELETE CASCADE,
        path     BLOB NOT NULL,            -- relative to the root, as the walk names it
        dev      INTEGER NOT NULL,         -- the stat data the digest was taken under; u64 values
        ino      INTEGER NOT NULL,         -- are stored as their two's-complement i64
        size     INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        mode     INTEGER NOT NULL,
        uid      INTEGER NOT NULL,
        gid      INTEGER NOT NULL,
        content  BLOB,                     -- sha256 of a regular file's bytes (32 bytes), else NULL
        xattrs   BLOB NOT NULL,            -- extended attributes, in the checksum's encoding
        PRIMARY KEY (root, path)
    ) STRICT, WITHOUT ROWID;";

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
/// `<kiln root>/context-cache-v1.db`, an SQLite database of its own rather than tables in the
/// metadata database: it is a cache (deleting the file costs one re-read of each context, nothing
/// else), it takes tens of thousands of rows per build that need no fsync on commit
/// (`synchronous=NORMAL`: a crash loses at most the last batch), and its writers never queue behind
/// the metadata database's write lock, which the image GC holds for seconds. The version is in the
/// name: a new layout is a new file. Several processes share it safely (WAL; each checksum run
/// writes its new rows in one transaction, `INSERT OR REPLACE`, so racing writers agree).
///
/// Rows of paths a context no longer has (deleted, or ignored now) are deleted by the next checksum
/// run of that context that writes (a deletion changes its directory, which is then cached anew);
/// rows of context directories that are gone stay until the file is deleted.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    conn: Mutex<Connection>,
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

/// One cached digest.
#[derive(Debug, Clone)]
pub(crate) struct CachedRow {
    pub(crate) key: StatKey,
    pub(crate) hash: EntryHash,
}

/// The rows of one context root, as loaded by its first checksum.
#[derive(Debug)]
pub(crate) struct Rows {
    root: Vec<u8>,
    map: HashMap<Vec<u8>, CachedRow>,
}

impl Rows {
    pub(crate) fn get(&self, path: &Path) -> Option<&CachedRow> {
        self.map.get(path.as_os_str().as_bytes())
    }
}

impl StatCache {
    /// The file name, under the kiln root.
    pub const FILE_NAME: &'static str = "context-cache-v1.db";

    /// Opens (creating if needed) `<kiln_root>/context-cache-v1.db`.
    pub fn open(kiln_root: &Path) -> Result<StatCache, ContextError> {
        let path = kiln_root.join(Self::FILE_NAME);
        std::fs::create_dir_all(kiln_root).map_err(|source| ContextError::StatCacheDir {
            path: kiln_root.to_path_buf(),
            source,
        })?;
        StatCache::open_file(path)
    }

    /// Opens (creating if needed) the cache database at `path`.
    pub fn open_file(path: impl Into<PathBuf>) -> Result<StatCache, ContextError> {
        let path = path.into();
        let error = |source| ContextError::StatCache {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get::<_, String>(0))
            .map_err(error)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(error)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(error)?;
        if found > SCHEMA_VERSION {
            return Err(ContextError::StatCacheTooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        tx.execute_batch(SCHEMA).map_err(error)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(StatCache {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many digests are cached for the context directory `root` (canonical, as
    /// [`Context::root`](super::Context::root) gives it).
    pub fn len_for(&self, root: &Path) -> Result<usize, ContextError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let count: i64 = conn
            .query_row(
                "SELECT count(*) FROM context_stat_cache s JOIN context_roots r ON s.root = r.id WHERE r.path = ?1",
                [root.as_os_str().as_bytes()],
                |row| row.get(0),
            )
            .map_err(|source| self.error(source))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    fn error(&self, source: rusqlite::Error) -> ContextError {
        ContextError::StatCache {
            path: self.path.clone(),
            source,
        }
    }

    /// Every row of the context at `root`.
    pub(crate) fn load(&self, root: &Path) -> Result<Rows, ContextError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let root = root.as_os_str().as_bytes().to_vec();
        let mut statement = conn
            .prepare_cached(
                "SELECT s.path, dev, ino, size, mtime_ns, ctime_ns, mode, uid, gid, content, xattrs
                 FROM context_stat_cache s JOIN context_roots r ON s.root = r.id WHERE r.path = ?1",
            )
            .map_err(|source| self.error(source))?;
        let mut rows = statement.query([&root]).map_err(|source| self.error(source))?;
        let mut map = HashMap::new();
        while let Some(row) = rows.next().map_err(|source| self.error(source))? {
            let (path, cached) = read_row(row).map_err(|source| self.error(source))?;
            map.insert(path, cached);
        }
        Ok(Rows { root, map })
    }

    /// Writes `fresh` rows and deletes the rows of paths `exists` rejects, in one transaction.
    /// (Stale rows cost nothing but space until then, so a run that writes nothing skips the
    /// search for them.)
    pub(crate) fn store(
        &self,
        rows: &mut Rows,
        fresh: &[(Vec<u8>, CachedRow)],
        exists: impl Fn(&Path) -> bool,
    ) -> Result<(), ContextError> {
        let stale: Vec<Vec<u8>> = rows
            .map
            .keys()
            .filter(|path| !exists(Path::new(std::ffi::OsStr::from_bytes(path))))
            .cloned()
            .collect();
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO context_roots (path) VALUES (?1)",
                [&rows.root],
            )?;
            let root: i64 = tx.query_row(
                "SELECT id FROM context_roots WHERE path = ?1",
                [&rows.root],
                |row| row.get(0),
            )?;
            {
                let mut delete =
                    tx.prepare_cached("DELETE FROM context_stat_cache WHERE root = ?1 AND path = ?2")?;
                for path in &stale {
                    delete.execute(params![root, path])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO context_stat_cache
                     (root, path, dev, ino, size, mtime_ns, ctime_ns, mode, uid, gid, content, xattrs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for (path, row) in fresh {
                    let k = &row.key;
                    insert.execute(params![
                        root,
                        path,
                        as_i64(k.dev),
                        as_i64(k.ino),
                        as_i64(k.size),
                        k.mtime_ns,
                        k.ctime_ns,
                        k.mode,
                        k.uid,
                        k.gid,
                        row.hash.content.as_ref().map(<[u8; 32]>::as_slice),
                        row.hash.xattrs,
                    ])?;
                }
            }
            tx.commit()
        };
        write(&mut conn).map_err(|source| self.error(source))?;
        for path in &stale {
            rows.map.remove(path);
        }
        for (path, row) in fresh {
            rows.map.insert(path.clone(), row.clone());
        }
        Ok(())
    }
}

/// The bit pattern of a `u64` as SQLite's `i64`.
#[allow(clippy::cast_possible_wrap)]
fn as_i64(value: u64) -> i64 {
    value as i64
}

/// Back from [`as_i64`].
#[allow(clippy::cast_sign_loss)]
fn as_u64(value: i64) -> u64 {
    value as u64
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, CachedRow)> {
    let content: Option<Vec<u8>> = row.get(9)?;
    let content = match content {
        None => None,
        Some(bytes) => Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Blob, Box::new(e))
        })?),
    };
    let key = StatKey {
        dev: as_u64(row.get(1)?),
        ino: as_u64(row.get(2)?),
        size: as_u64(row.get(3)?),
        mtime_ns: row.get(4)?,
        ctime_ns: row.get(5)?,
        mode: row.get(6)?,
        uid: row.get(7)?,
        gid: row.get(8)?,
    };
    let hash = EntryHash {
        content,
        xattrs: row.get(10)?,
    };
    Ok((row.get(0)?, CachedRow { key, hash }))
}
