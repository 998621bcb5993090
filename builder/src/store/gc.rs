//! Leases and garbage collection: which blobs are still needed, and sweeping the rest.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oci_spec::image::ImageManifest;

use super::db::{digest_column, seconds, unix_now};
use super::manifest::{Kind, children, descriptor_digest, kind_of, parse_json};
use super::{Db, Image, ImageStore, StoreError};
use crate::content::{ContentStore, Digest};

/// A claim on blobs that keeps the garbage collector away from them until it is released or
/// expires, whether or not any image names them yet.
///
/// Writers hold one while they produce an image (add each digest *before* committing its
/// ingest); readers hold one while they read an image whose names another process might remove.
/// Dropping the lease releases it; a crashed process's lease expires after its time-to-live.
///
/// Lease changes are committed without a sync: what matters is that other processes (a GC) see
/// them at once, which they do; a lease only protects a process that is running, so one lost to a
/// power loss (with the process) protects nothing anyone still needs.
#[derive(Debug)]
pub struct Lease {
    db: Arc<Db>,
    id: String,
    released: bool,
}

/// How [`ImageStore::gc`] decides what is garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Unreferenced blobs written or re-ingested more recently than this are kept: a writer
    /// without a lease may be about to name them.
    pub grace: Duration,
    /// Ingest files untouched for this long are leftovers of crashed writers and are removed.
    pub stale_ingest: Duration,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            grace: Duration::from_secs(3600),
            stale_ingest: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Their total size in bytes.
    pub bytes_reclaimed: u64,
    /// Blobs kept only because they are younger than the grace period.
    pub blobs_in_grace: usize,
    /// Stale ingest files removed.
    pub ingests_removed: usize,
    /// Expired leases dropped.
    pub leases_expired: usize,
}

impl Lease {
    /// The lease's ID (random, unique in the database).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Protects `digest`, stored yet or not.
    pub fn add(&self, digest: &Digest) -> Result<(), StoreError> {
        self.add_all([digest])
    }

    /// Protects every digest of `digests` in one transaction (one commit, however many).
    pub fn add_all<'d>(&self, digests: impl IntoIterator<Item = &'d Digest>) -> Result<(), StoreError> {
        self.db.write_unsynced(|tx| {
            let mut statement =
                tx.prepare_cached("INSERT OR IGNORE INTO lease_blobs (lease, digest) VALUES (?1, ?2)")?;
            for digest in digests {
                statement.execute([self.id.as_str(), digest.as_str()])?;
            }
            Ok(())
        })
    }

    /// Moves the expiry to `ttl` from now.
    pub fn renew(&self, ttl: Duration) -> Result<(), StoreError> {
        self.db.write_unsynced(|tx| {
            tx.execute(
                "UPDATE leases SET expires_at = ?2 WHERE id = ?1",
                rusqlite::params![self.id, unix_now().saturating_add(seconds(ttl))],
            )?;
            Ok(())
        })
    }

    /// Releases the lease, reporting failure (dropping it releases too, silently).
    pub fn release(mut self) -> Result<(), StoreError> {
        self.released = true;
        delete_lease(&self.db, &self.id)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            // Best effort: if this fails the lease still expires.
            let _ = delete_lease(&self.db, &self.id);
        }
    }
}

fn delete_lease(db: &Db, id: &str) -> Result<(), StoreError> {
    db.write_unsynced(|tx| {
        tx.execute("DELETE FROM leases WHERE id = ?1", [id])?;
        Ok(())
    })
}

impl ImageStore {
    /// Takes a new, empty lease that expires after `ttl` unless renewed or released first.
    pub fn lease(&self, ttl: Duration) -> Result<Lease, StoreError> {
        let id = self.db.write_unsynced(|tx| {
            let expires_at = unix_now().saturating_add(seconds(ttl));
            let id: String = tx.query_row(
                "INSERT INTO leases (id, expires_at) VALUES (lower(hex(randomblob(16))), ?1) RETURNING id",
                [expires_at],
                |row| row.get(0),
            )?;
            Ok(id)
        })?;
        Ok(Lease {
            db: Arc::clone(&self.db),
            id,
            released: false,
        })
    }

    /// Takes a lease on everything needed to read `image` (target, manifest, config, layers),
    /// failing if any of it is already gone: once this returns, the reads cannot fail for want
    /// of a blob, whatever other processes remove.
    pub fn lease_image(&self, image: &Image, ttl: Duration) -> Result<Lease, StoreError> {
        let lease = self.lease(ttl)?;
        let manifest: ImageManifest =
            parse_json("manifest", &image.manifest, &self.content.read(&image.manifest)?)?;
        let mut digests = vec![
            descriptor_digest(&image.manifest, &image.target)?,
            image.manifest.clone(),
        ];
        for descriptor in std::iter::once(manifest.config()).chain(manifest.layers()) {
            digests.push(descriptor_digest(&image.manifest, descriptor)?);
        }
        self.db.write_unsynced(|tx| {
            // Inside the write lock no GC runs: what exists now stays, now that it is leased.
            for digest in &digests {
                if !self.content.exists(digest)? {
                    return Err(StoreError::MissingBlob {
                        image: image.manifest.clone(),
                        digest: digest.clone(),
                    });
                }
                tx.execute(
                    "INSERT OR IGNORE INTO lease_blobs (lease, digest) VALUES (?1, ?2)",
                    [lease.id.as_str(), digest.as_str()],
                )?;
            }
            Ok(())
        })?;
        Ok(lease)
    }

    /// Deletes every blob that no image name reaches and no live lease holds, except those
    /// younger than `options.grace`; then removes stale ingests.
    ///
    /// Marking and sweeping run inside one write transaction: no name can be set and no lease
    /// taken while blobs are judged and deleted, so nothing deleted can be wanted by a
    /// transaction that commits after the sweep.
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport, StoreError> {
        let mut report = self.db.write(|tx| {
            let mut report = GcReport {
                leases_expired: tx.execute("DELETE FROM leases WHERE expires_at <= ?1", [unix_now()])?,
                ..GcReport::default()
            };
            let mut statement = tx.prepare("SELECT DISTINCT target_digest, target_media_type FROM images")?;
            let roots = statement
                .query_map([], |row| Ok((digest_column(row, 0)?, row.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut live = mark(&self.content, roots)?;
            let mut statement = tx.prepare("SELECT DISTINCT digest FROM lease_blobs")?;
            for digest in statement.query_map([], |row| digest_column(row, 0))? {
                live.insert(digest?);
            }
            // Build-cache records keep their layers: a cache hit must find its blob.
            let mut statement =
                tx.prepare("SELECT DISTINCT layer_digest FROM cache_records WHERE layer_digest IS NOT NULL")?;
            for digest in statement.query_map([], |row| digest_column(row, 0))? {
                live.insert(digest?);
            }
            keep_variants(tx, &mut live)?;
            sweep(&self.content, &live, options.grace, &mut report)?;
            Ok(report)
        })?;
        report.ingests_removed = self.content.cleanup_ingests(options.stale_ingest)?;
        Ok(report)
    }
}

/// Every blob reachable from `roots`: index -> manifests -> config and layers. A child that is
/// not stored (an index's other platforms) is simply not there to keep.
fn mark(content: &ContentStore, roots: Vec<(Digest, String)>) -> Result<HashSet<Digest>, StoreError> {
    let mut live = HashSet::new();
    let mut pending = roots;
    while let Some((digest, media_type)) = pending.pop() {
        if !live.insert(digest.clone()) {
            continue;
        }
        let kind = kind_of(&media_type);
        if kind == Kind::Leaf {
            continue;
        }
        let bytes = match content.read(&digest) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => continue,
            // A corrupt manifest hides what it references: stop rather than delete its blobs.
            Err(error) => return Err(error.into()),
        };
        pending.extend(children(kind, &digest, &bytes)?);
    }
    Ok(live)
}

/// Adds to `live` the compressed copies of live layers, and forgets the copies of the others.
fn keep_variants(tx: &rusqlite::Transaction<'_>, live: &mut HashSet<Digest>) -> Result<(), StoreError> {
    let mut statement = tx.prepare("SELECT source_digest, digest FROM layer_variants")?;
    let rows = statement
        .query_map([], |row| Ok((digest_column(row, 0)?, digest_column(row, 1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut forget = tx.prepare("DELETE FROM layer_variants WHERE source_digest = ?1")?;
    for (source, copy) in rows {
        if live.contains(&source) {
            live.insert(copy);
        } else {
            forget.execute([source.as_str()])?;
        }
    }
    Ok(())
}

fn sweep(
    content: &ContentStore,
    live: &HashSet<Digest>,
    grace: Duration,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    let now = SystemTime::now();
    for blob in content.list()? {
        if live.contains(&blob.info.digest) {
            continue;
        }
        if now.duration_since(blob.modified).unwrap_or_default() < grace {
            report.blobs_in_grace += 1;
            continue;
        }
        match content.delete(&blob.info.digest) {
            Ok(()) => {
                report.blobs_removed += 1;
                report.bytes_reclaimed += blob.info.size;
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
