//! The engine the scheduler drives on a real root: base images from the image store (pulled when
//! missing), layers unpacked into committed snapshots, steps run on snapshots and recorded in the
//! cache.
//!
//! Snapshot names: an image layer is unpacked once into the committed snapshot
//! `layer-<chain id hex>` (the chain id names the layer *and* everything below it, as in containerd),
//! so every build and every image sharing a base shares its snapshots. A step's result is committed
//! as `step-<cache key hex>`. Work in progress lives in active snapshots named `build-<random>`,
//! removed by a guard when the step fails or the build is interrupted.

mod secrets;
mod step;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use kiln_frontend::graph::Platform;
use kiln_snapshotter::{ErrorKind as SnapshotErrorKind, Snapshotter};
use oci_spec::image::ImageManifest;
use tokio::sync::OnceCell;

use super::cache::{self, CacheRecord, Layer};
use super::cachekey::CacheKey;
use super::error::BuildError;
use super::image::ImageConfig;
use super::op::CopyOp;
use super::progress::{LogStream, Progress};
use super::scheduler::{Chain, ChainLayer, Engine, Job, ResolvedImage};
use crate::content::{Digest, Digester};
use crate::context::{Context, IgnoreSource, StatCache};
use crate::reference::ImageRef;
use crate::store::{ImageStore, Lease};

pub(crate) use secrets::Secrets;
pub(crate) use step::{ActiveSnapshot, CACHE_MOUNTS_DIR, layer_snapshot_names, random_suffix, unpack_layers};

/// How long a build's lease keeps new blobs if the process dies mid-build.
const BUILD_LEASE: Duration = Duration::from_secs(24 * 3600);

/// One build's engine.
pub(crate) struct LocalEngine {
    pub(crate) store: Arc<ImageStore>,
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) root: PathBuf,
    /// The context directory and its ignore file choice; walked on first use.
    context_dir: PathBuf,
    ignore: IgnoreSource,
    context: OnceCell<Arc<Context>>,
    stat_cache: OnceLock<Option<Arc<StatCache>>>,
    pull: bool,
    /// Holds every blob the build writes until the image is named (see `store`'s GC protocol).
    pub(crate) lease: Arc<BuildLease>,
    progress: Progress,
    /// Step layers being written or written by this build.
    step_layers: StepLayers,
    /// The secrets and ssh agents steps may mount.
    secrets: Arc<Secrets>,
}

impl LocalEngine {
    pub(crate) fn new(
        store: Arc<ImageStore>,
        snapshotter: Arc<dyn Snapshotter>,
        root: &Path,
        context_dir: &Path,
        ignore: IgnoreSource,
        pull: bool,
        progress: Progress,
    ) -> LocalEngine {
        let lease = Arc::new(BuildLease {
            store: Arc::clone(&store),
            lease: OnceLock::new(),
        });
        let step_layers = StepLayers {
            store: Arc::clone(&store),
            snapshotter: Arc::clone(&snapshotter),
            lease: Arc::clone(&lease),
            cells: Arc::default(),
        };
        LocalEngine {
            store,
            snapshotter,
            root: root.to_owned(),
            context_dir: context_dir.to_owned(),
            ignore,
            context: OnceCell::new(),
            stat_cache: OnceLock::new(),
            pull,
            lease,
            progress,
            step_layers,
            secrets: Arc::default(),
        }
    }

    /// Gives steps `secrets` to mount.
    pub(crate) fn with_secrets(mut self, secrets: Secrets) -> LocalEngine {
        self.secrets = Arc::new(secrets);
        self
    }

    /// Uses `context`, already walked (a context unpacked from a stream is), instead of walking the
    /// context directory on first use.
    pub(crate) fn preload_context(&self, context: Arc<Context>) {
        let _ = self.context.set(context);
    }

    /// The build context, walked once per build (on a blocking thread: it reads the whole tree).
    async fn context(&self) -> Result<Arc<Context>, BuildError> {
        self.context
            .get_or_try_init(|| async {
                let vertex = self.progress.start("[internal] load build context");
                let stat_cache = self
                    .stat_cache
                    .get_or_init(|| match StatCache::open(&self.root) {
                        Ok(cache) => Some(Arc::new(cache)),
                        // The build still works, reading every file: say why it may be slower.
                        Err(e) => {
                            vertex.log(
                                LogStream::Status,
                                format!("no stat cache, every file is read: {}", super::error::chain(&e)),
                            );
                            None
                        }
                    })
                    .clone();
                let dir = self.context_dir.clone();
                let ignore = self.ignore.clone();
                let context = blocking(move || {
                    let mut builder = Context::builder(&dir).ignore(ignore);
                    if let Some(cache) = stat_cache {
                        builder = builder.stat_cache(cache);
                    }
                    builder.open().map_err(|e| BuildError::Context(Box::new(e)))
                })
                .await
                .inspect_err(|e| vertex.failed(&e.to_string()))?;
                vertex.log(
                    LogStream::Status,
                    format!("transferring context: {} entries done", context.entries().len()),
                );
                vertex.done();
                Ok(Arc::new(context))
            })
            .await
            .map(Arc::clone)
    }

    /// A pull from the image's registry into the store.
    async fn pull_image(
        &self,
        reference: &ImageRef,
        platform: &Platform,
    ) -> Result<crate::store::Image, BuildError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::BaseImage {
            reference: reference.familiar_string(),
            source,
        };
        let client = crate::registry::Client::builder()
            .build()
            .map_err(|e| fail(Box::new(e)))?;
        crate::distribution::pull_image(
            &self.store,
            &client,
            reference,
            platform,
            &crate::registry::NoProgress,
        )
        .await
        .map_err(|e| fail(Box::new(e)))
    }
}

/// The build's lease on the blobs it writes, taken on first use: a build that writes nothing (a
/// no-op rebuild) never commits one.
pub(crate) struct BuildLease {
    store: Arc<ImageStore>,
    lease: OnceLock<Lease>,
}

impl BuildLease {
    /// The lease, taken now if this is the first use.
    pub(crate) fn get(&self) -> Result<&Lease, BuildError> {
        if let Some(lease) = self.lease.get() {
            return Ok(lease);
        }
        let lease = self.store.lease(BUILD_LEASE)?;
        // Two threads may race here: the loser's (still empty) lease is dropped, which releases it.
        Ok(self.lease.get_or_init(|| lease))
    }
}

/// A layer of the image being exported, with the time its history entry shows if a step made it.
#[derive(Debug, Clone)]
pub(crate) struct ExportLayer {
    pub(crate) layer: Layer,
    /// When the step ran (`None` for a base image's layer, whose history has its own time).
    pub(crate) created: Option<SystemTime>,
}

impl LocalEngine {
    /// The blobs of a chain's layers, writing those no build has written yet (two at a time: each
    /// also compresses on two threads, but small layers are bound by their walk and fsync).
    pub(crate) async fn write_layers(&self, chain: &Chain) -> Result<Vec<ExportLayer>, BuildError> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        futures_util::stream::iter(chain.layers.iter().cloned())
            .map(|layer| self.write_layer(layer))
            .buffered(2)
            .try_collect()
            .await
    }

    /// Puts blobs the image being named needs under the build's lease, in one commit.
    pub(crate) fn protect(&self, digests: &[&Digest]) -> Result<(), BuildError> {
        self.lease.get()?.add_all(digests.iter().copied())?;
        Ok(())
    }

    async fn write_layer(&self, layer: ChainLayer) -> Result<ExportLayer, BuildError> {
        let (key, record) = match layer {
            ChainLayer::Image(layer) => return Ok(ExportLayer { layer, created: None }),
            ChainLayer::Step { key, record } => (key, record),
        };
        let created = Some(record.created);
        if let Some(layer) = &record.layer {
            // The export leases it before naming the image, and checks it is there when it does.
            if self.blob_exists(&layer.digest)? {
                return Ok(ExportLayer {
                    layer: layer.clone(),
                    created,
                });
            }
        }
        let layer = self.step_layers.get(key, record).await?;
        Ok(ExportLayer { layer, created })
    }
}

impl LocalEngine {
    fn blob_exists(&self, digest: &Digest) -> Result<bool, BuildError> {
        self.store
            .content()
            .exists(digest)
            .map_err(|e| BuildError::Store(e.into()))
    }
}

/// The layers of this build's steps, by snapshot name, each written once however many ask: an
/// exported step's layer starts in the background as soon as the step is done
/// ([`StepLayers::start`]), and the export waits for it.
#[derive(Clone)]
struct StepLayers {
    store: Arc<ImageStore>,
    snapshotter: Arc<dyn Snapshotter>,
    lease: Arc<BuildLease>,
    cells: Arc<std::sync::Mutex<HashMap<String, Arc<OnceCell<Layer>>>>>,
}

impl StepLayers {
    /// The layer of a step's snapshot.
    async fn get(&self, key: CacheKey, record: CacheRecord) -> Result<Layer, BuildError> {
        let cell = Arc::clone(
            self.cells
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(record.snapshot.clone())
                .or_default(),
        );
        let this = self.clone();
        cell.get_or_try_init(|| {
            blocking(move || write_step_layer(&this.store, &*this.snapshotter, &this.lease, &key, &record))
        })
        .await
        .cloned()
    }

    /// Starts writing a step's layer in the background; an error is left for the export to meet
    /// again (and report) when it asks for the layer.
    fn start(&self, key: CacheKey, record: CacheRecord) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.get(key, record).await;
        });
    }
}

/// Writes a step's layer unless another build has recorded it for the same snapshot since, and
/// records it.
fn write_step_layer(
    store: &ImageStore,
    snapshotter: &dyn Snapshotter,
    lease: &BuildLease,
    key: &CacheKey,
    record: &CacheRecord,
) -> Result<Layer, BuildError> {
    if let Some(Some(layer)) = cache::get(store.db(), key)?
        .filter(|r| r.snapshot == record.snapshot)
        .map(|r| r.layer)
    {
        lease.get()?.add(&layer.digest)?;
        if store
            .content()
            .exists(&layer.digest)
            .map_err(|e| BuildError::Store(e.into()))?
        {
            return Ok(layer);
        }
    }
    let layer = step::write_layer(store, snapshotter, lease.get()?, &record.snapshot)?;
    cache::set_layer(store.db(), key, &record.snapshot, &layer)?;
    Ok(layer)
}

impl Engine for LocalEngine {
    async fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, BuildError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::BaseImage {
            reference: reference.to_owned(),
            source,
        };
        let parsed = ImageRef::parse(reference).map_err(|e| fail(Box::new(e)))?;
        let local = if self.pull {
            None
        } else {
            match self.store.resolve(&parsed.to_string()) {
                Ok(image) => Some(image),
                Err(crate::store::StoreError::ImageNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let image = match local {
            Some(image) => image,
            None => self.pull_image(&parsed, platform).await?,
        };
        let bytes = self
            .store
            .content()
            .read(&image.id)
            .map_err(|e| fail(Box::new(e)))?;
        let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| fail(Box::new(e)))?;
        let target = image.target.digest().to_string();
        let name = match parsed.digest() {
            Some(_) => parsed.to_string(),
            None => format!("{parsed}@{target}"),
        };
        Ok(ResolvedImage {
            name,
            manifest: image.manifest,
            config,
        })
    }

    async fn unpack(&self, image: &ResolvedImage, key: &CacheKey) -> Result<(Chain, bool), BuildError> {
        let layers = image_layers(
            &self.store,
            &image.manifest,
            &image.config.rootfs.diff_ids,
            &image.name,
        )?;
        let snapshotter = Arc::clone(&self.snapshotter);
        let store = Arc::clone(&self.store);
        let name = image.name.clone();
        let unpack_layers = layers.clone();
        let (top, worked) =
            blocking(move || step::unpack_layers(&*snapshotter, &store, &unpack_layers, &name)).await?;
        Ok((
            Chain {
                key: key.clone(),
                snapshot: top,
                layers: layers.into_iter().map(ChainLayer::Image).collect(),
            },
            worked,
        ))
    }

    async fn context_checksum(&self, sources: &[String], excludes: &[String]) -> Result<Digest, BuildError> {
        let context = self.context().await?;
        let mut spec = crate::fsop::CopySpec::new(sources.iter().cloned(), "/");
        spec.excludes = excludes.to_vec();
        spec.allow_empty_wildcard = true;
        blocking(move || checksum(&context, &spec)).await
    }

    async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheRecord>, BuildError> {
        let Some(mut record) = cache::get(self.store.db(), key)? else {
            return Ok(None);
        };
        let snapshot_ok = match self.snapshotter.stat(&record.snapshot) {
            Ok(info) => info.kind == kiln_snapshotter::Kind::Committed,
            Err(e) if e.kind() == SnapshotErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        if !snapshot_ok {
            return Ok(None);
        }
        if let Some(layer) = &record.layer {
            // The record roots its blob; this build's lease takes it over at export (one commit for
            // all hits, see `write_layers`), which checks again that it is there.
            if !self.blob_exists(&layer.digest)? {
                // Written again from the snapshot if an image needs it.
                record.layer = None;
            }
        }
        // Seen at once by a cache prune in another process (it keeps what was used recently),
        // without a disk sync per hit.
        self.store.db().write_unsynced(|tx| cache::touch_in(tx, [key]))?;
        Ok(Some(record))
    }

    async fn execute(&self, job: Job<'_>) -> Result<CacheRecord, BuildError> {
        let context = match job.op {
            super::op::Op::Copy(CopyOp {
                source: super::op::CopySource::Context,
                ..
            }) => Some(self.context().await?),
            _ => None,
        };
        let cancel = crate::exec::CancelToken::new();
        // Dropping this future (the build failed elsewhere, or was interrupted) kills the step.
        let _cancel_on_drop = cancel.cancel_on_drop();
        let work = step::Work {
            store: Arc::clone(&self.store),
            snapshotter: Arc::clone(&self.snapshotter),
            root: self.root.clone(),
            context,
            parent: job.parent.snapshot.clone(),
            inputs: job
                .inputs
                .iter()
                .map(|(i, c)| (i.clone(), c.snapshot.clone()))
                .collect(),
            op: job.op.clone(),
            key: job.key.clone(),
            vertex: job.vertex.clone(),
            cancel,
            secrets: Arc::clone(&self.secrets),
        };
        let record = blocking(move || work.run()).await?;
        if job.exported {
            self.step_layers.start(job.key.clone(), record.clone());
        }
        Ok(record)
    }
}

/// The layers of the image whose manifest is `manifest`, paired with the config's `diff_ids`: what
/// [`unpack_layers`] turns into a snapshot chain. `name` only labels errors.
pub(crate) fn image_layers(
    store: &ImageStore,
    manifest: &Digest,
    diff_ids: &[String],
    name: &str,
) -> Result<Vec<Layer>, BuildError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::BaseImage {
        reference: name.to_owned(),
        source,
    };
    let bytes = store.content().read(manifest).map_err(|e| fail(Box::new(e)))?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| fail(Box::new(e)))?;
    let parse = |s: &str| Digest::parse(s).map_err(|e| fail(Box::new(e)));
    let mut layers = Vec::new();
    for (descriptor, diff_id) in manifest.layers().iter().zip(diff_ids) {
        layers.push(Layer {
            digest: parse(descriptor.digest().as_ref())?,
            diff_id: parse(diff_id)?,
            size: descriptor.size(),
            media_type: descriptor.media_type().to_string(),
        });
    }
    Ok(layers)
}

/// The checksum of what a COPY from the context selects: its selections' checksums, combined.
pub(crate) fn checksum(context: &Context, spec: &crate::fsop::CopySpec) -> Result<Digest, BuildError> {
    let copy =
        crate::fsop::ContextCopy::select(context, spec).map_err(|e| BuildError::Context(Box::new(e)))?;
    let sums = copy.checksums().map_err(|e| BuildError::Context(Box::new(e)))?;
    let mut digester = Digester::new();
    for sum in sums {
        digester.update(sum.as_str().as_bytes());
        digester.update(b"\n");
    }
    Ok(digester.finish())
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(BuildError::Interrupted),
    }
}
