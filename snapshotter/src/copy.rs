//! The copy snapshotter: each snapshot is a full, independent copy of its tree; mounts are bind mounts.
//!
//! It works on any filesystem (no overlay, no xattr-based whiteouts), at the price of a full tree copy per
//! `prepare` (see `copytree` for what a copy keeps). A snapshot `<id>` owns `snapshots/<id>/fs`:
//!
//! | snapshot | mount |
//! |---|---|
//! | active | rw bind of its `fs` (a copy of the parent's tree, or empty) |
//! | view | ro bind of the parent's `fs` (committed, so never changes: no copy needed), or of its empty `fs` |
//!
//! A layer differ compares a committed snapshot's `fs` with its parent's, as trees.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::copytree::copy_tree;
use crate::error::{Error, Result};
use crate::mount::Mount;
use crate::snapshot::{Backend, CleanupReport, Info, Kind, Snapshotter, Usage};
use crate::store::{Resolved, Store};

/// Snapshots as full directory copies. See the module docs for the mounts it returns.
pub struct CopySnapshotter {
    store: Store,
}

impl CopySnapshotter {
    /// Opens the snapshotter rooted at `root` (created if missing).
    pub fn open(root: impl AsRef<Path>) -> Result<CopySnapshotter> {
        Self::with_store(Store::open(root.as_ref())?)
    }

    pub(crate) fn with_store(store: Store) -> Result<CopySnapshotter> {
        store.claim_backend(Backend::Copy)?;
        Ok(CopySnapshotter { store })
    }

    fn mounts_for(&self, resolved: &Resolved) -> Vec<Mount> {
        let record = &resolved.record;
        match (record.kind, resolved.ancestors.first()) {
            (Kind::View, Some(parent)) => vec![Mount::bind(self.store.fs_dir(*parent), true)],
            (kind, _) => vec![Mount::bind(self.store.fs_dir(record.id), kind == Kind::View)],
        }
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let resolved = self
            .store
            .create(key, parent, kind, usize::MAX, |staging, parent| {
                let fs_dir = staging.join("fs");
                match parent {
                    // A view binds its parent directly; only an active snapshot needs its own copy.
                    Some(parent) if kind == Kind::Active => copy_tree(&self.store.fs_dir(parent.id), &fs_dir),
                    _ => fs::create_dir(&fs_dir).map_err(|e| Error::io("create", &fs_dir, e)),
                }
            })?;
        Ok(self.mounts_for(&resolved))
    }
}

impl Snapshotter for CopySnapshotter {
    fn backend(&self) -> Backend {
        Backend::Copy
    }

    crate::store_lifecycle!();

    fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        let record = self.store.record(key)?;
        // A view has no tree of its own: it shows its parent's.
        let id = match (record.kind, record.parent_id) {
            (Kind::View, Some(parent)) => parent,
            _ => record.id,
        };
        Ok(self.store.fs_dir(id))
    }
}
