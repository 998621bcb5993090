//! The metadata database: the single source of truth about which snapshots exist.
//!
//! One SQLite file (`<root>/metadata.db`) in WAL mode, shared by every handle and process using the root.
//! Readers never block writers; writers take the database lock up front (`BEGIN IMMEDIATE`), so a
//! read-then-write decision (is this key free? is the parent still there?) cannot be invalidated by another
//! writer between the read and the write, and a waiting writer is put to sleep by `busy_timeout` instead of
//! failing with `SQLITE_BUSY`.
//!
//! Schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`):
//! - `next_id`: a counter. Ids are reserved from it (in a transaction of their own) before a snapshot's
//!   directory is renamed to `<root>/snapshots/<id>`, and never handed out twice.
//! - `snapshots`: one row per snapshot, keyed by its reserved id.
//!   `name` is the key or name (one namespace). `lease` is the id of the handle that owns an active snapshot
//!   or view, cleared on commit.
//! - `labels`: free-form labels per snapshot.
//! - `settings`: root-wide facts, such as which backend laid out the directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::snapshot::{Info, Kind, Usage};

/// The schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE next_id (
    value INTEGER NOT NULL
) STRICT;
INSERT INTO next_id (value) VALUES (1);
CREATE TABLE snapshots (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    parent_id INTEGER REFERENCES snapshots(id),
    lease     TEXT,
    created   INTEGER NOT NULL,
    updated   INTEGER NOT NULL,
    size      INTEGER,
    inodes    INTEGER
) STRICT;
CREATE INDEX snapshots_parent ON snapshots(parent_id);
CREATE INDEX snapshots_lease ON snapshots(lease);
CREATE TABLE labels (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
) STRICT;
";

/// One row of `snapshots`, with the parent's name joined in.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) parent_id: Option<i64>,
    pub(crate) parent: Option<String>,
    pub(crate) lease: Option<String>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) usage: Option<Usage>,
}

/// A handle on the database. The connection is behind a mutex so one handle can serve several threads;
/// separate handles have separate connections.
pub(crate) struct Metadata {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A transaction, read or write; statements run through it.
pub(crate) struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
}

trait SqlContext<T> {
    fn ctx(self, path: &Path) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Metadata {
            path: path.to_owned(),
            source,
        })
    }
}

/// Puts the database in WAL mode (a setting the file keeps). Switching needs the database to itself,
/// and SQLite answers "busy" at once, without its busy handler, while another process has it open
/// (two builds creating one root at the same moment): so wait and try again, up to [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Metadata {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).ctx(path)?;
        conn.busy_timeout(BUSY_TIMEOUT).ctx(path)?;
        enable_wal(&conn).ctx(path)?;
        // NORMAL in WAL mode: a commit may be lost on power failure but the file is never corrupt; the
        // crash-safety argument in `store` only needs "rows never outlive their directories".
        conn.pragma_update(None, "synchronous", "NORMAL").ctx(path)?;
        conn.pragma_update(None, "foreign_keys", true).ctx(path)?;
        let meta = Metadata {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        };
        meta.write(|tx: &Tx<'_>| tx.migrate())?;
        Ok(meta)
    }

    /// Runs `f` in a read transaction (a consistent snapshot of the database).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transact(TransactionBehavior::Deferred, f)
    }

    /// Runs `f` holding the database write lock; commits if `f` succeeds, rolls back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transact(TransactionBehavior::Immediate, f)
    }

    fn transact<T>(&self, behavior: TransactionBehavior, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        // A panic while holding the lock leaves no half-done transaction (it rolls back on drop), so a
        // poisoned mutex is still a usable connection.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(behavior).ctx(&self.path)?;
        let tx = Tx { tx, path: &self.path };
        let value = f(&tx)?;
        tx.tx.commit().ctx(&self.path)?;
        Ok(value)
    }
}

const RECORD_SELECT: &str = "SELECT s.id, s.name, s.kind, s.parent_id, p.name, s.lease, s.created, s.updated,
        s.size, s.inodes
    FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id";

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let kind: String = row.get(2)?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, "unknown kind".into())
    })?;
    let size: Option<i64> = row.get(8)?;
    let inodes: Option<i64> = row.get(9)?;
    Ok(Record {
        id: row.get(0)?,
        name: row.get(1)?,
        kind,
        parent_id: row.get(3)?,
        parent: row.get(4)?,
        lease: row.get(5)?,
        created: row.get(6)?,
        updated: row.get(7)?,
        usage: size.zip(inodes).map(|(size, inodes)| Usage {
            size: u64::try_from(size).unwrap_or(0),
            inodes: u64::try_from(inodes).unwrap_or(0),
        }),
    })
}

impl Tx<'_> {
    fn migrate(&self) -> Result<()> {
        let version: i64 = self
            .tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx(self.path)?;
        match version {
            0 => {
                self.tx.execute_batch(SCHEMA).ctx(self.path)?;
                self.tx
                    .pragma_update(None, "user_version", SCHEMA_VERSION)
                    .ctx(self.path)
            }
            SCHEMA_VERSION => Ok(()),
            found => Err(Error::SchemaVersion {
                path: self.path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            }),
        }
    }

    /// The snapshot with this key or name.
    pub(crate) fn get(&self, name: &str) -> Result<Option<Record>> {
        let sql = format!("{RECORD_SELECT} WHERE s.name = ?1");
        self.tx
            .query_row(&sql, [name], record_from_row)
            .optional()
            .ctx(self.path)
    }

    /// Whether a snapshot row with this id exists.
    pub(crate) fn exists_id(&self, id: i64) -> Result<bool> {
        self.tx
            .query_row("SELECT 1 FROM snapshots WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .ctx(self.path)
    }

    /// The ids of `id`'s ancestors, nearest first (its parent, grandparent, ...), not `id` itself.
    pub(crate) fn ancestors(&self, id: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "WITH RECURSIVE chain(id, parent_id, depth) AS (
                     SELECT id, parent_id, 0 FROM snapshots WHERE id = ?1
                     UNION ALL
                     SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
                 )
                 SELECT id FROM chain WHERE depth > 0 ORDER BY depth",
            )
            .ctx(self.path)?;
        let ids = stmt.query_map([id], |r| r.get(0)).ctx(self.path)?;
        ids.collect::<rusqlite::Result<Vec<i64>>>().ctx(self.path)
    }

    /// Reserves a snapshot id nobody has had or will have.
    pub(crate) fn reserve_id(&self) -> Result<i64> {
        self.tx
            .query_row(
                "UPDATE next_id SET value = value + 1 RETURNING value - 1",
                [],
                |r| r.get(0),
            )
            .ctx(self.path)
    }

    /// Inserts an active snapshot or view under the reserved `id`.
    pub(crate) fn insert(
        &self,
        id: i64,
        name: &str,
        kind: Kind,
        parent_id: Option<i64>,
        lease: &str,
    ) -> Result<()> {
        let now = now_nanos();
        self.tx
            .execute(
                "INSERT INTO snapshots (id, name, kind, parent_id, lease, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![id, name, kind.as_str(), parent_id, lease, now],
            )
            .ctx(self.path)
            .map(drop)
    }

    /// Turns the active snapshot `id` into the committed snapshot `name`, its usage not measured yet.
    pub(crate) fn commit(&self, id: i64, name: &str) -> Result<()> {
        self.tx
            .execute(
                "UPDATE snapshots SET name = ?2, kind = 'committed', lease = NULL, updated = ?3, size = NULL,
                     inodes = NULL
                 WHERE id = ?1",
                params![id, name, now_nanos()],
            )
            .ctx(self.path)
            .map(drop)
    }

    /// Records the usage measured for the committed snapshot `id` (unchanged since: it is read-only).
    pub(crate) fn set_usage(&self, id: i64, usage: Usage) -> Result<()> {
        self.tx
            .execute(
                "UPDATE snapshots SET size = ?2, inodes = ?3 WHERE id = ?1 AND kind = 'committed'",
                params![
                    id,
                    i64::try_from(usage.size).unwrap_or(i64::MAX),
                    i64::try_from(usage.inodes).unwrap_or(i64::MAX)
                ],
            )
            .ctx(self.path)
            .map(drop)
    }

    /// Deletes the row (labels go with it).
    pub(crate) fn delete(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM snapshots WHERE id = ?1", [id])
            .ctx(self.path)
            .map(drop)
    }

    /// How many snapshots name `id` as their parent.
    pub(crate) fn children(&self, id: i64) -> Result<usize> {
        let count: i64 = self
            .tx
            .query_row("SELECT count(*) FROM snapshots WHERE parent_id = ?1", [id], |r| {
                r.get(0)
            })
            .ctx(self.path)?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// Every snapshot, ordered by name.
    pub(crate) fn list(&self) -> Result<Vec<Record>> {
        let sql = format!("{RECORD_SELECT} ORDER BY s.name");
        let mut stmt = self.tx.prepare(&sql).ctx(self.path)?;
        let rows = stmt.query_map([], record_from_row).ctx(self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self.path)
    }

    /// The distinct leases that own active snapshots or views.
    pub(crate) fn leases(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .tx
            .prepare("SELECT DISTINCT lease FROM snapshots WHERE lease IS NOT NULL")
            .ctx(self.path)?;
        let rows = stmt.query_map([], |r| r.get(0)).ctx(self.path)?;
        rows.collect::<rusqlite::Result<Vec<String>>>().ctx(self.path)
    }

    /// The labels of snapshot `id`.
    pub(crate) fn labels(&self, id: i64) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT key, value FROM labels WHERE snapshot_id = ?1")
            .ctx(self.path)?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(self.path)?;
        rows.collect::<rusqlite::Result<BTreeMap<_, _>>>().ctx(self.path)
    }

    /// Replaces the labels of snapshot `id`.
    pub(crate) fn set_labels(&self, id: i64, labels: &BTreeMap<String, String>) -> Result<()> {
        self.tx
            .execute("DELETE FROM labels WHERE snapshot_id = ?1", [id])
            .ctx(self.path)?;
        for (key, value) in labels {
            self.tx
                .execute(
                    "INSERT INTO labels (snapshot_id, key, value) VALUES (?1, ?2, ?3)",
                    params![id, key, value],
                )
                .ctx(self.path)?;
        }
        self.tx
            .execute(
                "UPDATE snapshots SET updated = ?2 WHERE id = ?1",
                params![id, now_nanos()],
            )
            .ctx(self.path)
            .map(drop)
    }

    /// A root-wide setting.
    pub(crate) fn setting(&self, key: &str) -> Result<Option<String>> {
        self.tx
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx(self.path)
    }

    /// Sets a root-wide setting.
    pub(crate) fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .ctx(self.path)
            .map(drop)
    }

    /// The public description of a record.
    pub(crate) fn info(&self, record: &Record) -> Result<Info> {
        Ok(Info {
            kind: record.kind,
            name: record.name.clone(),
            parent: record.parent.clone(),
            created: from_nanos(record.created),
            updated: from_nanos(record.updated),
            labels: self.labels(record.id)?,
        })
    }
}

fn now_nanos() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(nanos: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}
