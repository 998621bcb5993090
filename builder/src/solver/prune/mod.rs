//! Build-cache housekeeping: how much space the cache takes ([`Builder::cache_usage`], `docker
//! system df`'s Build Cache row, `docker buildx du`) and removing what is not needed
//! ([`Builder::prune_cache`], `docker builder prune`).
//!
//! The build cache is made of these *cache entries* ([`CacheEntryKind`]):
//!
//! - **steps**: a step's committed snapshot `step-<cache key hex>` (its parent is the previous
//!   step's or the base image's top snapshot) with the cache record naming it; a record whose
//!   snapshot has gone is an entry of its own, of size 0;
//! - **base layers**: an image layer unpacked into the committed snapshot `layer-<chain id hex>`,
//!   by a build at `FROM` or ahead of it by [`Builder::unpack`] (`kiln pull`, `load`, `import`);
//! - **cache mounts**: the directories `RUN --mount=type=cache` mounts (`<root>/cache-mounts-v1/`);
//! - **in progress**: the active snapshots and views of running builds (never removed).
//!
//! An entry is *dangling* when nothing stored refers to it: a step whose layer is in no stored
//! image's manifest, a base layer of an image no longer stored, a record without its snapshot,
//! unless it is an ancestor of an entry that is kept. An entry is *in use* when a running build
//! holds it: an active snapshot or view and their ancestors, and, while another kiln process holds
//! a store lease (a build, pull or load in progress), the entries it may be about to use: the base
//! layers of stored images and the steps used or made in the last hour (a build keeps no claim on a
//! committed snapshot between looking it up and preparing the next step on it).
//!
//! A prune without [`CachePruneOptions::all`] removes dangling entries; with it, every entry not
//! in use, cache mounts included (only while no build runs: a running step may have one
//! mounted). Children go before their parents; an entry with a kept child is kept. A step's record
//! is deleted just before its snapshot, and only if no build hit it since the prune looked; a
//! record without its snapshot is a cache miss, so a build racing the prune rebuilds the step.
//! Afterwards the store's garbage collector sweeps the layer blobs only the pruned records held,
//! and the snapshotter's cleanup sweeps what an interrupted removal left.
//!
//! ```
//! use kiln_builder::solver::{Builder, CachePruneOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = tempfile::tempdir()?;
//! let builder = Builder::open(root.path())?;
//! assert_eq!(builder.cache_usage()?.size(), 0);
//! let report = builder.prune_cache(&CachePruneOptions { all: true, ..CachePruneOptions::default() })?;
//! assert!(report.removed.is_empty());
//! # Ok(())
//! # }
//! ```

mod select;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_snapshotter::{ErrorKind as SnapshotErrorKind, Info, Kind, Snapshotter};
use oci_spec::image::ImageManifest;

use super::Builder;
use super::cache::{self, ListedRecord};
use super::engine::CACHE_MOUNTS_DIR;
use crate::content::Digest;
use crate::store::{GcOptions, ImageStore, StoreError};
use select::{Hold, Node, Policy};

/// Prefix of a cache-mount directory being removed (not a 64-hex id, so never taken for a mount).
const CACHE_MOUNT_TRASH: &str = ".rm-";
/// While another process holds a store lease, entries used more recently than this are in use.
const IN_FLIGHT: Duration = Duration::from_secs(3600);

/// What [`Builder::prune_cache`] removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePruneOptions {
    /// Remove every entry not in use, not just dangling ones (`docker builder prune --all`).
    pub all: bool,
    /// Keep entries used within this long (`--filter until=24h` or `unused-for=24h`). A step's
    /// use is its record's last hit; a base layer's, the time it was unpacked; a cache mount's,
    /// the last change of its top directory.
    pub unused_for: Option<Duration>,
    /// Stop once the build cache takes at most this many bytes (`--keep-storage`), removing the
    /// least recently used entries first.
    pub keep_storage: Option<u64>,
}

/// What [`Builder::prune_cache`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePruneReport {
    /// The [`CacheEntry::id`]s removed, in the order they went.
    pub removed: Vec<String>,
    /// Bytes freed: the entries' sizes, plus the blobs the store's collection swept after.
    pub reclaimed: u64,
}

/// What a [`CacheEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheEntryKind {
    /// A step's result: its snapshot and cache record (either may be missing).
    Step,
    /// A base-image layer unpacked into a snapshot.
    BaseLayer,
    /// A `RUN --mount=type=cache` directory.
    CacheMount,
    /// An active snapshot or view of a running build.
    InProgress,
}

/// One object of the build cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Its name: the snapshot's (`step-<hex>`, `layer-<hex>`, a running build's key), or
    /// `cache-mount-<hex>`.
    pub id: String,
    /// What it is.
    pub kind: CacheEntryKind,
    /// The entry it sits on (a snapshot's parent).
    pub parent: Option<String>,
    /// Bytes it holds on its own (a snapshot without its parents).
    pub size: u64,
    /// When it was last used (see [`CachePruneOptions::unused_for`]).
    pub last_used: SystemTime,
    /// Whether a running build holds it: no prune removes it.
    pub in_use: bool,
    /// Whether nothing refers to it: a prune without `all` removes it.
    pub dangling: bool,
}

/// The build cache's entries and totals, as `docker system df` and `buildx du` show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Every entry, most recently used first.
    pub entries: Vec<CacheEntry>,
}

impl CacheUsage {
    /// Bytes the build cache takes.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Bytes a prune with `all` could free: the entries not in use.
    pub fn reclaimable(&self) -> u64 {
        self.entries.iter().filter(|e| !e.in_use).map(|e| e.size).sum()
    }

    /// How many entries a running build holds.
    pub fn in_use(&self) -> usize {
        self.entries.iter().filter(|e| e.in_use).count()
    }
}

/// Why looking at or pruning the build cache failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The image store, its database or the cache records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshotter failed (its errors name the snapshot).
    #[error(transparent)]
    Snapshot(#[from] kiln_snapshotter::Error),
    /// The lock running builds hold could not be checked.
    #[error("checking for running builds with {}", path.display())]
    BuildsLock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A cache-mount directory could not be read or removed.
    #[error("cache mount {}", path.display())]
    CacheMount {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Builder {
    /// The build cache's entries, sizes and what is in use; changes nothing.
    pub fn cache_usage(&self) -> Result<CacheUsage, CacheError> {
        let inventory = Inventory::gather(self, SystemTime::now())?;
        Ok(inventory.usage())
    }

    /// Removes build-cache entries as `options` say (see the [module docs](crate::solver::prune)
    /// for what is dangling and what is in use), then reclaims the layer blobs only they held.
    pub fn prune_cache(&self, options: &CachePruneOptions) -> Result<CachePruneReport, CacheError> {
        // Active snapshots of processes that died are not in use: sweep them before looking.
        self.snapshotter.cleanup()?;
        sweep_mount_trash(&self.root.join(CACHE_MOUNTS_DIR))?;
        let now = SystemTime::now();
        let inventory = Inventory::gather(self, now)?;
        let policy = Policy {
            all: options.all,
            used_after: options.unused_for.and_then(|d| now.checked_sub(d)),
            keep_storage: options.keep_storage,
        };
        let mut report = CachePruneReport::default();
        let mut records_removed = false;
        for index in select::select(&inventory.nodes, &policy) {
            let entry = &inventory.entries[index];
            let removed = match entry.kind {
                Some(CacheEntryKind::Step) => {
                    let records = inventory.records.get(&entry.id).map_or(&[][..], Vec::as_slice);
                    let removed = self.remove_step(&entry.id, entry.snapshot, records)?;
                    records_removed |= removed && !records.is_empty();
                    removed
                }
                Some(CacheEntryKind::BaseLayer) => remove_snapshot(&*self.snapshotter, &entry.id)?,
                Some(CacheEntryKind::CacheMount) => {
                    remove_mount(&self.root.join(CACHE_MOUNTS_DIR), &entry.id)?
                }
                // Held in use: never selected.
                Some(CacheEntryKind::InProgress) | None => false,
            };
            if removed {
                report.removed.push(entry.id.clone());
                report.reclaimed += inventory.nodes[index].size;
            }
        }
        if records_removed {
            // No grace period: every kiln writer leases its blobs until an image names them.
            let gc = self.store.gc(&GcOptions {
                grace: Duration::ZERO,
                ..GcOptions::default()
            })?;
            report.reclaimed += gc.bytes_reclaimed;
        }
        self.snapshotter.cleanup()?;
        Ok(report)
    }

    /// Deletes a step's records, then its snapshot; `Ok(false)` if a build used it meanwhile
    /// (its records are put back if the snapshot turned out to have gained a child).
    fn remove_step(
        &self,
        id: &str,
        has_snapshot: bool,
        records: &[ListedRecord],
    ) -> Result<bool, CacheError> {
        let db = self.store.db();
        for listed in records {
            if !cache::delete_unused(db, &listed.key, &listed.record.snapshot, listed.used_at)? {
                return Ok(false);
            }
        }
        if !has_snapshot {
            return Ok(true);
        }
        let removed = remove_snapshot(&*self.snapshotter, id)?;
        if !removed {
            for listed in records {
                cache::put(db, &listed.key, &listed.record)?;
            }
        }
        Ok(removed)
    }
}

/// Removes a committed snapshot; `Ok(false)` if a build has put a snapshot on it meanwhile. One
/// already gone (another prune) counts as removed.
fn remove_snapshot(snapshotter: &dyn Snapshotter, name: &str) -> Result<bool, CacheError> {
    match snapshotter.remove(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == SnapshotErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == SnapshotErrorKind::FailedPrecondition => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A node as the inventory knows it.
struct Entry {
    id: String,
    /// `None` for a committed snapshot the build cache did not make: it only holds its ancestors
    /// and is no entry of the usage report.
    kind: Option<CacheEntryKind>,
    /// Whether the entry has a snapshot (a step's record may have lost it).
    snapshot: bool,
}

/// Everything a usage report or a prune decides on, read once.
struct Inventory {
    /// Parallel to `nodes`.
    entries: Vec<Entry>,
    nodes: Vec<Node>,
    /// Cache records by the snapshot they name.
    records: HashMap<String, Vec<ListedRecord>>,
}

/// What stored images refer to.
#[derive(Default)]
struct Referenced {
    /// Layer blob digests of every stored image's manifest.
    layers: HashSet<String>,
    /// `layer-<chain id hex>` snapshot names of every stored image's layers.
    base_layers: HashSet<String>,
}

impl Inventory {
    fn gather(builder: &Builder, now: SystemTime) -> Result<Inventory, CacheError> {
        let store = &*builder.store;
        // Records before snapshots: a record is written after its snapshot is committed, so every
        // record listed here whose snapshot exists finds it in the listing below.
        let mut records: HashMap<String, Vec<ListedRecord>> = HashMap::new();
        for listed in cache::list(store.db())? {
            records
                .entry(listed.record.snapshot.clone())
                .or_default()
                .push(listed);
        }
        let facts = Facts {
            referenced: referenced(store)?,
            in_flight_since: (builds_running(&builder.root)? || writers_in_progress(store)?)
                .then(|| now.checked_sub(IN_FLIGHT))
                .flatten(),
        };
        let snapshots = builder.snapshotter.list()?;
        let mut inventory = Inventory {
            entries: Vec::new(),
            nodes: Vec::new(),
            records: HashMap::new(),
        };
        for info in &snapshots {
            let step_records = records.get(&info.name).map_or(&[][..], Vec::as_slice);
            inventory.add_snapshot(&*builder.snapshotter, info, step_records, &facts)?;
        }
        let names: HashSet<&str> = snapshots.iter().map(|info| info.name.as_str()).collect();
        for (snapshot, listed) in &records {
            if !names.contains(snapshot.as_str()) {
                inventory.add_stale_record(snapshot, listed, &facts);
            }
        }
        inventory.records = records;
        // A running step may have a cache mount mounted; which one is not recorded anywhere.
        let building = snapshots.iter().any(|info| info.kind != Kind::Committed);
        inventory.add_cache_mounts(&builder.root.join(CACHE_MOUNTS_DIR), building)?;
        Ok(inventory)
    }

    /// Adds a snapshot, unless it went while the inventory was taken.
    fn add_snapshot(
        &mut self,
        snapshotter: &dyn Snapshotter,
        info: &Info,
        records: &[ListedRecord],
        facts: &Facts,
    ) -> Result<(), CacheError> {
        let (kind, hold, last_used) = classify(info, records, facts);
        let usage = match kind {
            Some(_) => snapshotter.usage(&info.name),
            None => Ok(kiln_snapshotter::Usage::default()),
        };
        let size = match usage {
            Ok(usage) => usage.size,
            Err(e) if e.kind() == SnapshotErrorKind::NotFound => return Ok(()),
            // A running step's tree is measured while it changes (files come and go under the
            // walk): it counts as empty rather than failing the whole report.
            Err(_) if info.kind != Kind::Committed => 0,
            Err(e) => return Err(e.into()),
        };
        self.push(
            Entry {
                id: info.name.clone(),
                kind,
                snapshot: true,
            },
            Node {
                id: info.name.clone(),
                parent: info.parent.clone(),
                size,
                last_used,
                hold,
            },
        );
        Ok(())
    }

    /// Adds the records of a snapshot that has gone: a cache miss, dangling whatever they name.
    fn add_stale_record(&mut self, snapshot: &str, records: &[ListedRecord], facts: &Facts) {
        let last_used = records
            .iter()
            .map(|l| unix(l.used_at))
            .max()
            .unwrap_or(UNIX_EPOCH);
        let hold = if facts.recent(last_used) {
            Hold::InUse
        } else {
            Hold::Dangling
        };
        self.push(
            Entry {
                id: snapshot.to_owned(),
                kind: Some(CacheEntryKind::Step),
                snapshot: false,
            },
            Node {
                id: snapshot.to_owned(),
                parent: None,
                size: 0,
                last_used,
                hold,
            },
        );
    }

    /// Adds the cache mounts: in use while any build runs, else removed only with `all`.
    fn add_cache_mounts(&mut self, dir: &Path, building: bool) -> Result<(), CacheError> {
        for (id, size, last_used) in cache_mounts(dir)? {
            self.push(
                Entry {
                    id: id.clone(),
                    kind: Some(CacheEntryKind::CacheMount),
                    snapshot: false,
                },
                Node {
                    id,
                    parent: None,
                    size,
                    last_used,
                    hold: if building { Hold::InUse } else { Hold::Referenced },
                },
            );
        }
        Ok(())
    }

    fn push(&mut self, entry: Entry, node: Node) {
        self.entries.push(entry);
        self.nodes.push(node);
    }

    fn usage(&self) -> CacheUsage {
        let in_use = select::in_use(&self.nodes);
        let dangling: HashSet<usize> = select::select(&self.nodes, &Policy::default())
            .into_iter()
            .collect();
        let mut entries: Vec<CacheEntry> = self
            .entries
            .iter()
            .zip(&self.nodes)
            .enumerate()
            .filter_map(|(index, (entry, node))| {
                Some(CacheEntry {
                    id: entry.id.clone(),
                    kind: entry.kind?,
                    parent: node.parent.clone(),
                    size: node.size,
                    last_used: node.last_used,
                    in_use: in_use[index],
                    dangling: dangling.contains(&index),
                })
            })
            .collect();
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then_with(|| a.id.cmp(&b.id)));
        CacheUsage { entries }
    }
}

/// A snapshot's kind of entry (`None`: not the build cache's), hold and last use.
fn classify(
    info: &Info,
    records: &[ListedRecord],
    facts: &Facts,
) -> (Option<CacheEntryKind>, Hold, SystemTime) {
    if info.kind != Kind::Committed {
        return (Some(CacheEntryKind::InProgress), Hold::InUse, info.updated);
    }
    if info.name.starts_with("step-") {
        let last_used = records
            .iter()
            .map(|l| unix(l.used_at))
            .max()
            .unwrap_or(info.updated);
        let in_image = records.iter().any(|l| {
            l.record
                .layer
                .as_ref()
                .is_some_and(|layer| facts.referenced.layers.contains(layer.digest.as_str()))
        });
        let hold = match () {
            () if facts.recent(last_used) => Hold::InUse,
            () if in_image => Hold::Referenced,
            () => Hold::Dangling,
        };
        return (Some(CacheEntryKind::Step), hold, last_used);
    }
    if info.name.starts_with("layer-") {
        let stored = facts.referenced.base_layers.contains(&info.name);
        let hold = match () {
            // A build in progress may be about to start from any stored image.
            () if facts.in_flight_since.is_some() && stored => Hold::InUse,
            () if facts.recent(info.updated) => Hold::InUse,
            () if stored => Hold::Referenced,
            () => Hold::Dangling,
        };
        return (Some(CacheEntryKind::BaseLayer), hold, info.updated);
    }
    (None, Hold::InUse, info.updated)
}

/// What the holds of entries depend on besides the entries themselves.
struct Facts {
    referenced: Referenced,
    /// While another process writes, the time after which a use counts as in flight.
    in_flight_since: Option<SystemTime>,
}

impl Facts {
    /// Whether a use at `time` may be part of a build in progress.
    fn recent(&self, time: SystemTime) -> bool {
        self.in_flight_since.is_some_and(|since| time > since)
    }
}

/// The layer blobs and base-layer snapshots of every stored image.
fn referenced(store: &ImageStore) -> Result<Referenced, CacheError> {
    let mut referenced = Referenced::default();
    for image in store.list()? {
        let bytes = match store.content().read(&image.manifest) {
            Ok(bytes) => bytes,
            // As the store's GC: a manifest that is not there refers to nothing.
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(StoreError::from(error).into()),
        };
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::InvalidJson {
                kind: "manifest",
                digest: image.manifest.clone(),
                source,
            })?;
        for layer in manifest.layers() {
            referenced.layers.insert(layer.digest().to_string());
        }
        referenced
            .base_layers
            .extend(base_layer_names(image.config.rootfs().diff_ids()));
    }
    Ok(referenced)
}

/// The snapshot names the engine unpacks an image's layers into; stops at a diff id that does not
/// parse, as unpacking would.
fn base_layer_names(diff_ids: &[String]) -> Vec<String> {
    let parsed = diff_ids.iter().map_while(|d| Digest::parse(d).ok());
    super::engine::layer_snapshot_names(parsed)
}

/// The lock file every running build holds shared (`<root>/builds-v1.lock`).
const BUILDS_LOCK: &str = "builds-v1.lock";

/// A running build's shared `flock` on the root's builds lock: a build that so far only hit the
/// cache has written nothing (no store lease) yet may be about to prepare a step on a cached
/// snapshot. No disk sync is needed to take or drop it, and the kernel drops it when the process
/// dies.
pub(crate) struct BuildsRunning {
    _file: std::fs::File,
}

impl BuildsRunning {
    /// Takes the shared lock, waiting while a prune holds it exclusively for a moment.
    pub(crate) fn enter(root: &Path) -> Result<BuildsRunning, super::BuildError> {
        let path = root.join(BUILDS_LOCK);
        let io = |source| super::BuildError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared).map_err(|e| io(e.into()))?;
        Ok(BuildsRunning { _file: file })
    }
}

/// Whether a build runs on `root` now (someone holds the builds lock).
fn builds_running(root: &Path) -> Result<bool, CacheError> {
    let path = root.join(BUILDS_LOCK);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(CacheError::BuildsLock { path, source }),
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        // Released when `file` closes, at the end of this function.
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(CacheError::BuildsLock {
            path,
            source: e.into(),
        }),
    }
}

/// Whether another process may be writing: a build, pull or load holds a store lease until it is
/// done (a crashed one until its lease expires).
fn writers_in_progress(store: &ImageStore) -> Result<bool, CacheError> {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
    .unwrap_or(i64::MAX);
    Ok(store.db().read(|tx| {
        Ok(tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM leases WHERE expires_at > ?1)",
            [now],
            |row| row.get::<_, bool>(0),
        )?)
    })?)
}

fn unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// The cache-mount directories: `(cache-mount-<hex>, size, last change)`.
fn cache_mounts(dir: &Path) -> Result<Vec<(String, u64, SystemTime)>, CacheError> {
    let fail = |path: &Path, source| CacheError::CacheMount {
        path: path.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(dir, e)),
    };
    let mut mounts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| is_mount_id(n)) else {
            continue;
        };
        let path = entry.path();
        let modified = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .map_err(|e| fail(&path, e))?;
        let size = disk_usage(&path).map_err(|e| fail(&path, e))?;
        mounts.push((format!("cache-mount-{name}"), size, modified));
    }
    Ok(mounts)
}

/// A cache mount's directory name: the 64 hex digits of its id's digest.
fn is_mount_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Bytes allocated under `path`, each inode counted once.
fn disk_usage(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut pending = vec![path.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        if seen.insert((metadata.dev(), metadata.ino())) {
            total += metadata.blocks() * 512;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(total)
}

/// Removes a cache mount: renamed out of the way first, so a build never sees it half removed
/// under its own name (it makes a new, empty one).
fn remove_mount(dir: &Path, id: &str) -> Result<bool, CacheError> {
    let name = id.trim_start_matches("cache-mount-");
    let path = dir.join(name);
    let trash = dir.join(format!(
        "{CACHE_MOUNT_TRASH}{name}-{}",
        super::engine::random_suffix()
    ));
    match std::fs::rename(&path, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(source) => return Err(CacheError::CacheMount { path, source }),
    }
    std::fs::remove_dir_all(&trash).map_err(|source| CacheError::CacheMount { path: trash, source })?;
    Ok(true)
}

/// Removes what removals interrupted by a crash left in the cache-mount directory.
fn sweep_mount_trash(dir: &Path) -> Result<(), CacheError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(CACHE_MOUNT_TRASH) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|source| CacheError::CacheMount { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layer_names_follow_the_chain_ids_of_unpacking() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let names = base_layer_names(&[a.to_string(), b.to_string()]);
        let second = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(
            names,
            [format!("layer-{}", a.hex()), format!("layer-{}", second.hex())]
        );
        assert_eq!(
            base_layer_names(&["nonsense".to_owned(), b.to_string()]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn mount_ids_are_64_hex_digits() {
        assert!(is_mount_id(Digest::of(b"x").hex()));
        assert!(!is_mount_id(".rm-abc"));
        assert!(!is_mount_id("abc"));
    }
}
