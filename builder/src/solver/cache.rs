//! Build-cache records: which committed snapshot and layer hold the result of a cache key.
//!
//! Records live in the metadata database (table `cache_records`), so they persist across builds and
//! are shared by every kiln process on the root. A record is only a claim: a hit also needs its
//! snapshot and its layer blob to still exist, which the caller checks; a record that fails the check
//! is simply overwritten by the rebuilt step. The image store's garbage collector treats recorded
//! layers as roots, so a layer a record names is never swept.

use rusqlite::OptionalExtension;

use super::cachekey::CacheKey;
use crate::content::Digest;
use crate::store::{Db, StoreError};

/// A layer: the compressed blob and what it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    /// The blob's digest.
    pub(crate) digest: Digest,
    /// The digest of the uncompressed tar (the config's `diff_ids` entry).
    pub(crate) diff_id: Digest,
    /// The blob's size in bytes.
    pub(crate) size: u64,
    /// Its media type (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub(crate) media_type: String,
}

/// A step's cached result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheRecord {
    /// The committed snapshot with the filesystem after the step.
    pub(crate) snapshot: String,
    /// The step's layer.
    pub(crate) layer: Layer,
}

/// Reads a record.
pub(crate) fn get(db: &Db, key: &CacheKey) -> Result<Option<CacheRecord>, StoreError> {
    db.read(|tx| {
        let record = tx
            .query_row(
                "SELECT snapshot, layer_digest, layer_diff_id, layer_size, layer_media_type
                 FROM cache_records WHERE key = ?1",
                [key.digest().as_str()],
                |row| {
                    let size: i64 = row.get(3)?;
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        size,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((snapshot, digest, diff_id, size, media_type)) = record else {
            return Ok(None);
        };
        // A row that does not parse is as good as no row: the step is rebuilt and the row replaced.
        let (Ok(digest), Ok(diff_id), Ok(size)) = (
            Digest::parse(&digest),
            Digest::parse(&diff_id),
            u64::try_from(size),
        ) else {
            return Ok(None);
        };
        Ok(Some(CacheRecord {
            snapshot,
            layer: Layer {
                digest,
                diff_id,
                size,
                media_type,
            },
        }))
    })
}

/// Writes (or replaces) a record.
pub(crate) fn put(db: &Db, key: &CacheKey, record: &CacheRecord) -> Result<(), StoreError> {
    let size = i64::try_from(record.layer.size).unwrap_or(i64::MAX);
    db.write(|tx| {
        tx.execute(
            "INSERT INTO cache_records (key, snapshot, layer_digest, layer_diff_id, layer_size,
                                        layer_media_type, created_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch(), unixepoch())
             ON CONFLICT (key) DO UPDATE SET
                 snapshot = excluded.snapshot, layer_digest = excluded.layer_digest,
                 layer_diff_id = excluded.layer_diff_id, layer_size = excluded.layer_size,
                 layer_media_type = excluded.layer_media_type, used_at = excluded.used_at",
            rusqlite::params![
                key.digest().as_str(),
                record.snapshot,
                record.layer.digest.as_str(),
                record.layer.diff_id.as_str(),
                size,
                record.layer.media_type,
            ],
        )?;
        Ok(())
    })
}

/// Notes a hit (for a future cache prune that drops the least recently used records).
pub(crate) fn touch(db: &Db, key: &CacheKey) -> Result<(), StoreError> {
    db.write(|tx| {
        tx.execute(
            "UPDATE cache_records SET used_at = unixepoch() WHERE key = ?1",
            [key.digest().as_str()],
        )?;
        Ok(())
    })
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
        let record = CacheRecord {
            snapshot: "sha256:abc".into(),
            layer: Layer {
                digest: layer.digest.clone(),
                diff_id: Digest::of(b"tar"),
                size: layer.size,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            },
        };
        put(store.db(), &key, &record).unwrap();
        touch(store.db(), &key).unwrap();
        assert_eq!(get(store.db(), &key).unwrap(), Some(record));
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
}
