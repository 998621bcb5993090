//! The metadata database: one SQLite file that several kiln processes share.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, Row, Transaction, TransactionBehavior};

use super::StoreError;
use crate::content::Digest;
use crate::reference::ImageRef;

/// How long a writer waits for another process's write transaction before giving up. GC holds
/// the write lock while it sweeps, which on a large store takes seconds, not minutes.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema, one step per version: `PRAGMA user_version` is the number of steps applied.
/// Steps are append-only; a released step is never edited.
const MIGRATIONS: &[&str] = &[
    // v1: image names and leases.
    "CREATE TABLE images (
        name              TEXT PRIMARY KEY,  -- ImageRef, full form: docker.io/library/nginx:latest
        target_digest     TEXT NOT NULL,     -- the manifest or index the name points to
        target_media_type TEXT NOT NULL,
        target_size       INTEGER NOT NULL,
        manifest_digest   TEXT NOT NULL,     -- the image manifest used (the target, or picked from the index)
        config_digest     TEXT NOT NULL,     -- the image ID
        created_at        INTEGER NOT NULL,  -- unix seconds: when the name was first set
        updated_at        INTEGER NOT NULL   -- unix seconds: when the name last moved
    ) STRICT;
    CREATE INDEX images_by_config ON images (config_digest);
    CREATE TABLE leases (
        id         TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL          -- unix seconds; GC drops the lease after this
    ) STRICT;
    CREATE TABLE lease_blobs (
        lease  TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        PRIMARY KEY (lease, digest)
    ) STRICT, WITHOUT ROWID;",
    // v2: build-cache records (the solver's `cache` module); their layers are GC roots.
    "CREATE TABLE cache_records (
        key              TEXT PRIMARY KEY,  -- CacheKey (sha256) of a step's result
        snapshot         TEXT NOT NULL,     -- committed snapshot holding the filesystem after the step
        layer_digest     TEXT NOT NULL,     -- the step's layer blob (compressed)
        layer_diff_id    TEXT NOT NULL,     -- its uncompressed digest
        layer_size       INTEGER NOT NULL,
        layer_media_type TEXT NOT NULL,
        created_at       INTEGER NOT NULL,  -- unix seconds
        used_at          INTEGER NOT NULL   -- unix seconds: last hit
    ) STRICT;",
    // v3: a step's layer is written when an image first needs it, not when the step runs, so a
    // record may name no layer yet; `created_ns` is when the step ran, the time its history entry
    // shows (a cached step keeps it, so a fully cached rebuild yields the same image).
    "CREATE TABLE cache_records_v3 (
        key              TEXT PRIMARY KEY,  -- CacheKey (sha256) of a step's result
        snapshot         TEXT NOT NULL,     -- committed snapshot holding the filesystem after the step
        layer_digest     TEXT,              -- the step's layer blob (compressed), once written
        layer_diff_id    TEXT,              -- its uncompressed digest
        layer_size       INTEGER,
        layer_media_type TEXT,
        created_ns       INTEGER NOT NULL,  -- unix nanoseconds: when the step ran
        used_at          INTEGER NOT NULL   -- unix seconds: last hit
    ) STRICT;
    INSERT INTO cache_records_v3
        SELECT key, snapshot, layer_digest, layer_diff_id, layer_size, layer_media_type,
               created_at * 1000000000, used_at
        FROM cache_records;
    DROP TABLE cache_records;
    ALTER TABLE cache_records_v3 RENAME TO cache_records;",
    // v4: compressed copies of uncompressed layer blobs (the layers builds write), made when an
    // image leaves the store (push, `-o type=oci|docker`) and kept as long as their source is.
    "CREATE TABLE layer_variants (
        source_digest TEXT NOT NULL,        -- an uncompressed layer blob
        media_type    TEXT NOT NULL,        -- the copy's media type (its compression)
        digest        TEXT NOT NULL,        -- the copy's blob
        size          INTEGER NOT NULL,
        PRIMARY KEY (source_digest, media_type)
    ) STRICT, WITHOUT ROWID;",
];

/// The metadata database at `<root>/metadata-v1.db`.
///
/// SQLite in WAL mode: readers never block and are never blocked; writers take the write lock
/// up front (`BEGIN IMMEDIATE`) so two processes never deadlock upgrading read transactions,
/// and wait up to a minute for each other. Every change is one transaction, durable on commit
/// (`synchronous=FULL`).
///
/// One `Db` holds one connection behind a mutex: threads of a process take turns, processes
/// share through SQLite's file locks. Transactions do not nest: calling [`read`](Db::read) or
/// [`write`](Db::write), or dropping a [`Lease`](super::Lease), inside a transaction's closure on
/// the same `Db` deadlocks.
#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (creating and migrating if needed) the database file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Db, StoreError> {
        let path = path.into();
        let open_error = |source| StoreError::DatabaseOpen {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        enable_wal(&conn).map_err(open_error)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(open_error)?;
        // Closing leaves the WAL as it is instead of checkpointing it into the database (two
        // fsyncs, and a WAL and index to create again on the next open: most of what a no-op
        // build wrote). Every commit is as durable either way; the WAL is checkpointed by
        // commits once it holds 1,000 pages (SQLite's auto-checkpoint), and read by every opener.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(open_error)?;
        migrate(&mut conn, &path)?;
        Ok(Db {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a read transaction: a consistent snapshot, blocking no one.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(TransactionBehavior::Deferred, f)
    }

    /// Runs `f` in a write transaction holding the database's write lock; commits if `f` succeeds.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(TransactionBehavior::Immediate, f)
    }

    /// Like [`write`](Db::write), but the commit is not synced to disk: other processes see it at once,
    /// but a power loss (not a crash) may undo it. For bookkeeping that may be lost, such as when a
    /// cache record was last used, where a sync per change would cost more than the change is worth.
    ///
    /// It commits with `synchronous = NORMAL`, not `OFF`: in WAL mode that skips the commit's sync
    /// but still syncs around a checkpoint, should this commit trigger one, so a power loss can cost
    /// the newest commits and never the database's consistency.
    pub fn write_unsynced<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    fn transaction<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic in another thread's transaction rolled it back; the connection is still sound.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(behavior)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Puts the database in WAL mode (a setting the file keeps). Switching needs the database to itself,
/// and SQLite answers "busy" at once rather than waiting when another process has it open, as two
/// processes creating one root at the same moment do: so wait and try again, up to [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Brings the schema up to date, inside one write transaction so concurrent openers take turns.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |source| StoreError::DatabaseOpen {
        path: path.to_owned(),
        source,
    };
    let supported = i64::try_from(MIGRATIONS.len()).expect("few migrations");
    // Up to date, the common case: a read, so opening writes nothing.
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open_error)?;
    if current == supported {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_error)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open_error)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found == supported {
        // Another process migrated it meanwhile.
        return Ok(());
    }
    for step in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.execute_batch(step).map_err(open_error)?;
    }
    tx.pragma_update(None, "user_version", supported)
        .map_err(open_error)?;
    tx.commit().map_err(open_error)
}

/// Now, in unix seconds (the unit of every timestamp column).
pub(crate) fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Seconds in a duration, for adding to [`unix_now`].
pub(crate) fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Reads a text column that holds a [`Digest`].
pub(crate) fn digest_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Digest> {
    parse_column(row, index, Digest::parse)
}

/// Reads a text column that holds an [`ImageRef`].
pub(crate) fn reference_column(row: &Row<'_>, index: usize) -> rusqlite::Result<ImageRef> {
    parse_column(row, index, ImageRef::parse)
}

/// Reads an integer column that holds a size in bytes.
pub(crate) fn size_column(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Integer, Box::new(e)))
}

// Free functions rather than `FromSql` impls: `content` and `reference` stay free of SQLite.
fn parse_column<T, E>(row: &Row<'_>, index: usize, parse: fn(&str) -> Result<T, E>) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    parse(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_database_keeps_its_cache_records_through_v3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for step in &MIGRATIONS[..2] {
                tx.execute_batch(step).unwrap();
            }
            tx.execute(
                "INSERT INTO cache_records VALUES ('k', 'step-k', 'sha256:aa', 'sha256:bb', 7, 'gzip', 1700000000, 1700000001)",
                [],
            )
            .unwrap();
            tx.pragma_update(None, "user_version", 2).unwrap();
            tx.commit().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let row = db
            .read(|tx| {
                Ok(tx.query_row(
                    "SELECT snapshot, layer_digest, layer_size, created_ns, used_at FROM cache_records",
                    [],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, i64>(3)?,
                            row.get::<_, i64>(4)?,
                        ))
                    },
                )?)
            })
            .unwrap();
        assert_eq!(
            row,
            (
                "step-k".to_owned(),
                Some("sha256:aa".to_owned()),
                7,
                1_700_000_000_000_000_000,
                1_700_000_001
            )
        );
        // A record without a layer is now allowed.
        db.write(|tx| {
            tx.execute(
                "INSERT INTO cache_records (key, snapshot, created_ns, used_at) VALUES ('n', 's', 0, 0)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    }
}
