//! Build-cache records: which committed snapshot (and, once written, which layer) holds the result of
//! a cache key.
//!
//! Records live in the metadata database (table `cache_records`), so they persist across builds and
//! are shared by every kiln process on the root. A record is only a claim: a hit also needs its
//! snapshot to still exist, which the caller checks; a record that fails the check is simply
//! overwritten by the rebuilt step. A step's layer blob is written lazily, when an image first needs
//! it (most steps of a multi-stage build never reach an image), and recorded with [`set_layer`]; a
//! recorded layer whose blob has gone is written again from the snapshot. The image store's garbage
//! collector treats recorded layers as roots, so a layer a record names is never swept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;

use super::cachekey::CacheKey;
use crate::content::Digest;
use crate::store::{Db, StoreError};

/// A layer: its blob (a plain tar for the layers builds write, compressed for pulled images') and
/// what it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    /// The blob's digest.
    pub(crate) digest: Digest,
    /// The digest of the uncompressed tar (the config's `diff_ids` entry).
    pub(crate) diff_id: Digest,
    /// The blob's size in bytes.
    pub(crate) size: u64,
    /// Its media type (`application/vnd.oci.image.layer.v1.tar` for a step's layer).
    pub(crate) media_type: String,
}

/// A step's cached result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheRecord {
    /// The committed snapshot with the filesystem after the step.
    pub(crate) snapshot: String,
    /// The step's layer, once an image needed it (layers are written at export, see
    /// [`set_layer`]); until then the snapshot alone holds the step's changes.
    pub(crate) layer: Option<Layer>,
    /// When the step ran: the `created` time its history entry shows, kept on every cache hit.
    pub(crate) created: SystemTime,
}

/// The columns [`read_row`] reads, in its order.
const RECORD_COLUMNS: &str =
    "snapshot, layer_digest, layer_diff_id, layer_size, layer_media_type, created_ns";

/// Reads a record.
pub(crate) fn get(db: &Db, key: &CacheKey) -> Result<Option<CacheRecord>, StoreError> {
    db.read(|tx| {
        Ok(tx
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM cache_records WHERE key = ?1"),
                [key.digest().as_str()],
                |row| read_row(row, 0),
            )
            .optional()?)
    })
}

/// A record with its key and last hit, as the cache's housekeeping (usage, prune) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedRecord {
    /// The key it is recorded under.
    pub(crate) key: CacheKey,
    /// The record.
    pub(crate) record: CacheRecord,
    /// Its last hit (or when it was written), in unix seconds.
    pub(crate) used_at: i64,
}

/// Every record. A row whose key does not parse is left out: no build can hit it.
pub(crate) fn list(db: &Db) -> Result<Vec<ListedRecord>, StoreError> {
    db.read(|tx| {
        let mut statement = tx.prepare(&format!(
            "SELECT {RECORD_COLUMNS}, key, used_at FROM cache_records ORDER BY key"
        ))?;
        let rows = statement.query_map([], |row| {
            Ok((read_row(row, 0)?, row.get::<_, String>(6)?, row.get::<_, i64>(7)?))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (record, key, used_at) = row?;
            if let Ok(digest) = Digest::parse(&key) {
                records.push(ListedRecord {
                    key: CacheKey::from_digest(digest),
                    record,
                    used_at,
                });
            }
        }
        Ok(records)
    })
}

/// Deletes `key`'s record if it still names `snapshot` and has not been hit after `used_at` (unix
/// seconds); returns whether it did. A build that hit the record since it was listed keeps it.
pub(crate) fn delete_unused(
    db: &Db,
    key: &CacheKey,
    snapshot: &str,
    used_at: i64,
) -> Result<bool, StoreError> {
    db.write(|tx| {
        let deleted = tx.execute(
            "DELETE FROM cache_records WHERE key = ?1 AND snapshot = ?2 AND used_at <= ?3",
            rusqlite::params![key.digest().as_str(), snapshot, used_at],
        )?;
        Ok(deleted > 0)
    })
}

/// A record from the [`RECORD_COLUMNS`] starting at column `first`.
fn read_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<CacheRecord> {
    let snapshot = row.get::<_, String>(first)?;
    let digest = row.get::<_, Option<String>>(first + 1)?;
    let diff_id = row.get::<_, Option<String>>(first + 2)?;
    let size = row.get::<_, Option<i64>>(first + 3)?;
    let media_type = row.get::<_, Option<String>>(first + 4)?;
    let created_ns = row.get::<_, i64>(first + 5)?;
    // A layer whose columns do not parse is as good as none: it is written again at export.
    let layer = match (digest, diff_id, size, media_type) {
        (Some(digest), Some(diff_id), Some(size), Some(media_type)) => {
            match (
                Digest::parse(&digest),
                Digest::parse(&diff_id),
                u64::try_from(size),
            ) {
                (Ok(digest), Ok(diff_id), Ok(size)) => Some(Layer {
                    digest,
                    diff_id,
                    size,
                    media_type,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(CacheRecord {
        snapshot,
        layer,
        created: from_unix_ns(created_ns),
    })
}

/// Writes (or replaces) a record.
///
/// Records are written without a sync of their own (a step's commit is not kept waiting on the
/// disk): a power loss may undo the newest ones, which costs those steps a rebuild and nothing
/// else. The next synced commit (naming the image, at the latest) makes them durable with it,
/// since SQLite's WAL is replayed in order.
pub(crate) fn put(db: &Db, key: &CacheKey, record: &CacheRecord) -> Result<(), StoreError> {
    let layer = record.layer.as_ref();
    db.write_unsynced(|tx| {
        tx.execute(
            "INSERT INTO cache_records (key, snapshot, layer_digest, layer_diff_id, layer_size,
                                        layer_media_type, created_ns, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, unixepoch())
             ON CONFLICT (key) DO UPDATE SET
                 snapshot = excluded.snapshot, layer_digest = excluded.layer_digest,
                 layer_diff_id = excluded.layer_diff_id, layer_size = excluded.layer_size,
                 layer_media_type = excluded.layer_media_type, created_ns = excluded.created_ns,
                 used_at = excluded.used_at",
            rusqlite::params![
                key.digest().as_str(),
                record.snapshot,
                layer.map(|l| l.digest.as_str()),
                layer.map(|l| l.diff_id.as_str()),
                layer.map(|l| i64::try_from(l.size).unwrap_or(i64::MAX)),
                layer.map(|l| l.media_type.as_str()),
                to_unix_ns(record.created),
            ],
        )?;
        Ok(())
    })
}

/// Records the layer written for `key`'s snapshot `snapshot`. A record that meanwhile names another
/// snapshot (the step was rebuilt) is left alone: the layer belongs to the snapshot it was made from.
/// Unsynced, as [`put`]: the build's lease holds the blob until the (synced) naming of its image.
pub(crate) fn set_layer(db: &Db, key: &CacheKey, snapshot: &str, layer: &Layer) -> Result<(), StoreError> {
    db.write_unsynced(|tx| {
        tx.execute(
            "UPDATE cache_records SET layer_digest = ?3, layer_diff_id = ?4, layer_size = ?5,
                                      layer_media_type = ?6
             WHERE key = ?1 AND snapshot = ?2",
            rusqlite::params![
                key.digest().as_str(),
                snapshot,
                layer.digest.as_str(),
                layer.diff_id.as_str(),
                i64::try_from(layer.size).unwrap_or(i64::MAX),
                layer.media_type,
            ],
        )?;
        Ok(())
    })
}

/// Notes hits (cache prune keeps what was used recently, see `solver::prune`), inside the caller's
/// write transaction.
pub(crate) fn touch_in<'k>(
    tx: &rusqlite::Transaction<'_>,
    keys: impl IntoIterator<Item = &'k CacheKey>,
) -> Result<(), StoreError> {
    let mut statement = tx.prepare_cached("UPDATE cache_records SET used_at = unixepoch() WHERE key = ?1")?;
    for key in keys {
        statement.execute([key.digest().as_str()])?;
    }
    Ok(())
}

/// A time as unix nanoseconds (saturating; times before 1970 are 0).
fn to_unix_ns(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn from_unix_ns(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::cachekey;
    use crate::store::ImageStore;

    #[test]
    fn records_round_trip_and_root_their_layers() {
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        let layer = store.content().write_blob(b"layer").unwrap();
        let key = cachekey::scratch("linux/amd64");
        assert_eq!(get(store.db(), &key).unwrap(), None);
        let created = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let mut record = CacheRecord {
            snapshot: "sha256:abc".into(),
            layer: None,
            created,
        };
        put(store.db(), &key, &record).unwrap();
        store.db().write(|tx| touch_in(tx, [&key])).unwrap();
        assert_eq!(
            get(store.db(), &key).unwrap(),
            Some(record.clone()),
            "a record without a layer yet"
        );
        let written = Layer {
            digest: layer.digest.clone(),
            diff_id: Digest::of(b"tar"),
            size: layer.size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        set_layer(store.db(), &key, "another-snapshot", &written).unwrap();
        assert_eq!(
            get(store.db(), &key).unwrap(),
            Some(record.clone()),
            "a layer of another snapshot"
        );
        set_layer(store.db(), &key, "sha256:abc", &written).unwrap();
        record.layer = Some(written);
        assert_eq!(get(store.db(), &key).unwrap(), Some(record), "nanoseconds kept");
        let options = crate::store::GcOptions {
            grace: std::time::Duration::ZERO,
            ..crate::store::GcOptions::default()
        };
        store.gc(&options).unwrap();
        assert!(
            store.content().exists(&layer.digest).unwrap(),
            "a cache record keeps its layer"
        );
    }

    #[test]
    fn records_are_listed_and_deleted_only_while_unused() {
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        let key = cachekey::scratch("linux/amd64");
        let record = CacheRecord {
            snapshot: "step-a".into(),
            layer: None,
            created: UNIX_EPOCH,
        };
        put(store.db(), &key, &record).unwrap();
        let listed = list(store.db()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((&listed[0].key, &listed[0].record), (&key, &record));
        let used_at = listed[0].used_at;
        assert!(
            !delete_unused(store.db(), &key, "step-other", used_at).unwrap(),
            "another snapshot"
        );
        assert!(
            !delete_unused(store.db(), &key, "step-a", used_at - 1).unwrap(),
            "hit after the listing"
        );
        assert!(delete_unused(store.db(), &key, "step-a", used_at).unwrap());
        assert_eq!(get(store.db(), &key).unwrap(), None);
        assert!(list(store.db()).unwrap().is_empty());
    }
}
