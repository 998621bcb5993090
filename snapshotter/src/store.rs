//! The lifecycle both snapshotters share: metadata, directories, leases, and the order they change in.
//!
//! Layout of a root:
//!
//! ```text
//! <root>/metadata.db            the truth (see `metadata`)
//! <root>/leases/<lease>         one file per open handle, flock'ed for the handle's life
//! <root>/snapshots/<id>/fs      a snapshot's tree (overlay: its upper dir; copy: the full tree)
//! <root>/snapshots/<id>/work    overlay's work dir (overlay only)
//! <root>/snapshots/new-*        staging dirs, being filled (locked while in use)
//! <root>/snapshots/rm-*         dirs being deleted (locked while in use)
//! ```
//!
//! Numeric ids keep overlay's option strings short (`lowerdir=<root>/snapshots/17/fs:...`).
//!
//! # Crash safety
//!
//! The invariant: *every row has its directory* (a row never outlives or predates it). A directory without
//! a row is garbage that [`Store::cleanup`] removes; nothing ever needs repairing the other way.
//!
//! - **Create** (prepare/view), in four steps, none of them slow while holding the database write lock:
//!   1. Build the directory under a locked staging name (`new-*`), outside any transaction (copying a tree
//!      can take long).
//!   2. Reserve an id in a short transaction. Ids come from a counter and are never handed out twice.
//!   3. Rename the staging dir to `<id>` and fsync `<root>/snapshots`, so the rename is on disk before any
//!      row can name it (the fsync is the only one per step; SQLite itself runs with `synchronous=NORMAL`).
//!   4. In a second short transaction, check the key is still free and the parent still the same, insert
//!      the row, commit; only then release the staging lock.
//!
//!   A crash before step 3 leaves a staging dir; between 3 and 4, an `<id>` dir no row names (its creator's
//!   lock, held until step 4 commits, keeps live sweepers off it meanwhile). Both are garbage. If a
//!   power loss rolls back a reservation but not the rename after it, the re-reserved id finds a leftover
//!   dir, which is cleared before the rename.
//! - **Commit**: one `UPDATE` (kind, name, usage); directories do not move.
//! - **Remove**: delete the row and commit first, then delete the directory. A crash in between leaves a
//!   `<id>` dir without a row. A committed id is never reserved again, so no new snapshot can be handed
//!   that directory meanwhile.
//! - **Handles that die**: active snapshots and views record the lease of the handle that made them. A lease
//!   whose file lock can be taken belongs to a handle that was dropped or a process that died; `cleanup`
//!   deletes its rows (then their directories, as above).
//! - **Concurrent sweepers**: a dir is only removed by whoever holds its `flock`, and a `<id>` dir only once
//!   the lock is held *and* a fresh read shows no row for it (creators hold the staging lock until their
//!   commit, so a dir renamed in but not yet committed is never taken for garbage).
//!
//! What is not covered: file contents written into a snapshot (through a mount, or by the copy backend's
//! tree copy) are not fsynced one by one, as in containerd. On ext4 (`data=ordered`) the fsync in step 3
//! commits the journal and flushes those data blocks along with it; elsewhere a power loss may truncate
//! recently written files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{self, Locked, STAGING_PREFIX, Staging, TRASH_PREFIX};
use crate::metadata::{Metadata, Record, Tx};
use crate::snapshot::{Backend, CleanupReport, Info, Kind, Usage};

const BACKEND_SETTING: &str = "backend";

/// A snapshot looked up for mounting: its record and its ancestors' ids, nearest first.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) record: Record,
    pub(crate) ancestors: Vec<i64>,
}

/// The shared part of a snapshotter handle.
pub(crate) struct Store {
    root: PathBuf,
    snapshots: PathBuf,
    leases: PathBuf,
    meta: Metadata,
    /// Held, never read: the lock on this file is what tells other handles we are alive.
    _lease: Locked,
    lease_id: String,
}

impl Store {
    /// Opens (creating) the root and takes a lease for this handle.
    pub(crate) fn open(root: &Path) -> Result<Store> {
        let root = std::path::absolute(root).map_err(|e| Error::io("resolve", root, e))?;
        let snapshots = root.join("snapshots");
        let leases = root.join("leases");
        for dir in [&snapshots, &leases] {
            fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let meta = Metadata::open(&root.join("metadata.db"))?;
        let (lease, lease_id) = loop {
            let id = fsutil::unique_suffix();
            match Locked::create_file(&leases.join(&id)) {
                Ok(lease) => break (lease, id),
                // A sweeper took the fresh file for a dead lease before we locked it: pick another name.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("create", leases.join(&id), e)),
            }
        };
        Ok(Store {
            root,
            snapshots,
            leases,
            meta,
            _lease: lease,
            lease_id,
        })
    }

    /// The root directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/snapshots`, where snapshot and staging dirs live.
    pub(crate) fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    /// `<root>/snapshots/<id>/fs`.
    pub(crate) fn fs_dir(&self, id: i64) -> PathBuf {
        self.snapshots.join(id.to_string()).join("fs")
    }

    /// `<root>/snapshots/<id>/work`.
    pub(crate) fn work_dir(&self, id: i64) -> PathBuf {
        self.snapshots.join(id.to_string()).join("work")
    }

    /// The backend recorded for this root, if any handle has claimed one yet.
    pub(crate) fn stored_backend(&self) -> Result<Option<Backend>> {
        let stored = self.meta.read(|tx| tx.setting(BACKEND_SETTING))?;
        Ok(stored.and_then(|s| s.parse().ok()))
    }

    /// Records `backend` as the root's, or fails if the root already belongs to another one.
    pub(crate) fn claim_backend(&self, backend: Backend) -> Result<()> {
        self.meta.write(|tx| match tx.setting(BACKEND_SETTING)? {
            None => tx.set_setting(BACKEND_SETTING, backend.as_str()),
            Some(stored) if stored == backend.as_str() => Ok(()),
            Some(stored) => Err(Error::BackendMismatch {
                path: self.root.clone(),
                stored,
                requested: backend.as_str().to_owned(),
            }),
        })
    }

    /// A root-wide setting.
    pub(crate) fn setting(&self, key: &str) -> Result<Option<String>> {
        self.meta.read(|tx| tx.setting(key))
    }

    /// Sets a root-wide setting.
    pub(crate) fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.meta.write(|tx| tx.set_setting(key, value))
    }

    /// Creates the active snapshot or view `key` on `parent`; see the module docs for the order of steps.
    /// `max_ancestors` bounds the chain length (overlay's stacking limit); `populate` fills the staging
    /// directory given the parent's record.
    pub(crate) fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        max_ancestors: usize,
        populate: impl FnOnce(&Path, Option<&Record>) -> Result<()>,
    ) -> Result<Resolved> {
        validate_key(key)?;
        let (parent_record, ancestors) = self.meta.read(|tx| {
            if tx.get(key)?.is_some() {
                return Err(Error::AlreadyExists { key: key.to_owned() });
            }
            let Some(parent) = parent else {
                return Ok((None, Vec::new()));
            };
            let record = check_parent(tx.get(parent)?, key, parent)?;
            let mut ancestors = vec![record.id];
            ancestors.extend(tx.ancestors(record.id)?);
            Ok((Some(record), ancestors))
        })?;
        if ancestors.len() > max_ancestors {
            return Err(Error::ChainTooDeep {
                key: key.to_owned(),
                depth: ancestors.len(),
                max: max_ancestors,
            });
        }
        let mut staging =
            Staging::create(&self.snapshots).map_err(|e| Error::io("create", &self.snapshots, e))?;
        populate(staging.path(), parent_record.as_ref())?;
        // The slow part (rename + fsync) happens between two short transactions, never holding the
        // database write lock: other writers are not kept waiting on the disk.
        let id = self.meta.write(|tx: &Tx<'_>| tx.reserve_id())?;
        let dir = self.snapshots.join(id.to_string());
        clear_leftover(&dir)?;
        staging.rename(&dir).map_err(|e| Error::io("rename", &dir, e))?;
        fsutil::fsync_dir(&self.snapshots).map_err(|e| Error::io("sync", &self.snapshots, e))?;
        let record = self.meta.write(|tx| {
            if tx.get(key)?.is_some() {
                return Err(Error::AlreadyExists { key: key.to_owned() });
            }
            if let (Some(parent), Some(before)) = (parent, &parent_record) {
                let now = check_parent(tx.get(parent)?, key, parent)?;
                if now.id != before.id {
                    // Removed and made again while we were staging: our copy is of the old one.
                    return Err(Error::ParentNotFound {
                        key: key.to_owned(),
                        parent: parent.to_owned(),
                    });
                }
            }
            tx.insert(
                id,
                key,
                kind,
                parent_record.as_ref().map(|p| p.id),
                &self.lease_id,
            )?;
            tx.get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })
        })?;
        staging.keep();
        Ok(Resolved { record, ancestors })
    }

    /// Looks up an active snapshot or view for mounting.
    pub(crate) fn resolve(&self, key: &str, operation: &'static str) -> Result<Resolved> {
        self.meta.read(|tx| {
            let record = tx
                .get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
            if record.kind == Kind::Committed {
                return Err(Error::WrongKind {
                    key: key.to_owned(),
                    kind: record.kind,
                    operation,
                    expected: "an active snapshot or a view",
                });
            }
            let ancestors = tx.ancestors(record.id)?;
            Ok(Resolved { record, ancestors })
        })
    }

    /// Commits the active snapshot `key` as `name`. Its usage is measured when first asked for
    /// ([`usage`](Store::usage)), not here: a walk of the whole tree would hold up every build step.
    pub(crate) fn commit(&self, name: &str, key: &str) -> Result<()> {
        validate_key(name)?;
        let record = self
            .meta
            .read(|tx| tx.get(key))?
            .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
        if record.kind != Kind::Active {
            return Err(Error::WrongKind {
                key: key.to_owned(),
                kind: record.kind,
                operation: "commit",
                expected: "an active snapshot",
            });
        }
        self.meta.write(|tx| {
            match tx.get(key)? {
                Some(now) if now.id == record.id && now.kind == Kind::Active => {}
                _ => return Err(Error::NotFound { key: key.to_owned() }),
            }
            if tx.get(name)?.is_some() {
                return Err(Error::AlreadyExists { key: name.to_owned() });
            }
            tx.commit(record.id, name)
        })
    }

    /// Removes the snapshot `key`: the row first, then the directory.
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let id = self.meta.write(|tx| {
            let record = tx
                .get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
            let children = tx.children(record.id)?;
            if children > 0 {
                return Err(Error::HasChildren {
                    key: key.to_owned(),
                    children,
                });
            }
            tx.delete(record.id)?;
            Ok(record.id)
        })?;
        let dir = self.snapshots.join(id.to_string());
        let removed = Locked::lock(&dir).and_then(|locked| locked.map_or(Ok(()), Locked::remove_dir));
        if let Err(error) = removed {
            // The snapshot is gone from metadata; its directory is now garbage `cleanup` will retry.
            tracing::warn!(path = %dir.display(), %error, "could not remove snapshot directory");
        }
        Ok(())
    }

    /// Describes the snapshot `key`.
    pub(crate) fn stat(&self, key: &str) -> Result<Info> {
        self.meta.read(|tx| {
            let record = tx
                .get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
            tx.info(&record)
        })
    }

    /// The record of snapshot `key`.
    pub(crate) fn record(&self, key: &str) -> Result<Record> {
        self.meta
            .read(|tx| tx.get(key))?
            .ok_or_else(|| Error::NotFound { key: key.to_owned() })
    }

    /// Replaces the labels of snapshot `key`.
    pub(crate) fn set_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> Result<Info> {
        self.meta.write(|tx| {
            let record = tx
                .get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
            tx.set_labels(record.id, labels)?;
            let record = tx
                .get(key)?
                .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
            tx.info(&record)
        })
    }

    /// Usage of snapshot `key`: as recorded, or measured now from `dir(record)` (and recorded, for a
    /// committed snapshot: it cannot change).
    pub(crate) fn usage(&self, key: &str, dir: impl FnOnce(&Record) -> PathBuf) -> Result<Usage> {
        let record = self.record(key)?;
        if let Some(usage) = record.usage {
            return Ok(usage);
        }
        let dir = dir(&record);
        let usage = fsutil::disk_usage(&dir).map_err(|e| Error::io("measure", &dir, e))?;
        if record.kind == Kind::Committed {
            // Best effort: unrecorded, it is measured again next time.
            let _ = self.meta.write(|tx| tx.set_usage(record.id, usage));
        }
        Ok(usage)
    }

    /// Every snapshot.
    pub(crate) fn list(&self) -> Result<Vec<Info>> {
        self.meta
            .read(|tx| tx.list()?.iter().map(|r| tx.info(r)).collect())
    }

    /// Sweeps what dead handles and crashes left; see the module docs.
    pub(crate) fn cleanup(&self) -> Result<CleanupReport> {
        let dead = self.dead_leases()?;
        let dead_ids: Vec<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
        let snapshots = self.meta.write(|tx| {
            let mut swept = Vec::new();
            for lease in tx.leases()? {
                let gone = dead_ids.contains(&lease.as_str())
                    || (lease != self.lease_id && !self.leases.join(&lease).exists());
                if !gone {
                    continue;
                }
                for record in tx
                    .list()?
                    .into_iter()
                    .filter(|r| r.lease.as_deref() == Some(lease.as_str()))
                {
                    if tx.children(record.id)? == 0 {
                        tx.delete(record.id)?;
                        swept.push(record.name);
                    }
                }
            }
            Ok(swept)
        })?;
        let directories = self.sweep_directories()?;
        for (id, lease) in dead {
            lease
                .remove_file()
                .map_err(|e| Error::io("remove", self.leases.join(id), e))?;
        }
        Ok(CleanupReport {
            snapshots,
            directories,
        })
    }

    /// Lease files whose lock nobody holds, locked by us now.
    fn dead_leases(&self) -> Result<Vec<(String, Locked)>> {
        let mut dead = Vec::new();
        let entries = fs::read_dir(&self.leases).map_err(|e| Error::io("read", &self.leases, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.leases, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name == self.lease_id {
                continue;
            }
            let path = entry.path();
            if let Some(locked) = Locked::try_lock(&path).map_err(|e| Error::io("lock", &path, e))? {
                dead.push((name, locked));
            }
        }
        Ok(dead)
    }

    /// Removes every unlocked staging or trash dir and every `<id>` dir no row names.
    fn sweep_directories(&self) -> Result<usize> {
        let mut removed = 0;
        let entries = fs::read_dir(&self.snapshots).map_err(|e| Error::io("read", &self.snapshots, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.snapshots, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let id = name.parse::<i64>().ok();
            if id.is_none() && !name.starts_with(STAGING_PREFIX) && !name.starts_with(TRASH_PREFIX) {
                continue; // not ours
            }
            let path = entry.path();
            let Some(locked) = Locked::try_lock(&path).map_err(|e| Error::io("lock", &path, e))? else {
                continue; // in use
            };
            // Only now, holding the lock its creator keeps until commit, is "no row" a reliable answer.
            if let Some(id) = id {
                if self.meta.read(|tx| tx.exists_id(id))? {
                    continue;
                }
            }
            locked.remove_dir().map_err(|e| Error::io("remove", &path, e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Removes a `<id>` dir left behind for a freshly reserved id. Only possible after a power loss rolled back
/// the reservation but not the rename that followed it; the id is ours now, so the dir is garbage.
fn clear_leftover(dir: &Path) -> Result<()> {
    if let Some(leftover) = Locked::lock(dir).map_err(|e| Error::io("lock", dir, e))? {
        leftover.remove_dir().map_err(|e| Error::io("remove", dir, e))?;
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: "must not be empty",
        });
    }
    Ok(())
}

fn check_parent(found: Option<Record>, key: &str, parent: &str) -> Result<Record> {
    let record = found.ok_or_else(|| Error::ParentNotFound {
        key: key.to_owned(),
        parent: parent.to_owned(),
    })?;
    if record.kind != Kind::Committed {
        return Err(Error::ParentNotCommitted {
            key: key.to_owned(),
            parent: parent.to_owned(),
            kind: record.kind,
        });
    }
    Ok(record)
}
