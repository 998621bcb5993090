//! The solver: from a Dockerfile and a build context to an image, as `docker build` makes it.
//!
//! The model, in the order a build runs:
//!
//! 1. A [`BuildRequest`] says what to build (context, Dockerfile, build args, target, platform, tags,
//!    labels, cache and network options, outputs). It is immutable; [`Builder::build`] runs it. A
//!    context given as a stream ([`BuildRequest::builder_from_stream`], `kiln build -`) is read first,
//!    into a directory under the kiln root that lives as long as the build.
//! 2. The Dockerfile is parsed and planned by the frontend into a stage graph; only the stages the
//!    target needs run.
//! 3. *Lowering* applies each instruction to its stage's state (one function per instruction, with
//!    BuildKit's effects on the image config and its history wording) and yields the filesystem op it
//!    needs, if any: a RUN, a COPY/ADD, or WORKDIR's directory.
//! 4. Each op gets a [`CacheKey`]: a sha256 over a canonical, versioned encoding of its parent's key,
//!    the op, and for COPY the checksum of exactly the context files it selects. A key recorded in the
//!    cache reuses its committed snapshot and layer.
//! 5. The *scheduler* runs independent stages concurrently and identical work once; the *engine*
//!    runs each missed step on a snapshot (prepare, mount, run or copy, unmount, commit, record);
//!    the steps of the exported image then get their layers, plain tars diffed from the snapshots in
//!    the background (gzip copies are made only when an image leaves the store: push, `-o`).
//! 6. *Export* writes the config and manifest, names the image in the store, and writes any other
//!    outputs. Progress goes to a [`Reporter`] all along; the library never prints.
//!
//! ```
//! use kiln_builder::solver::{BuildRequest, Builder, Recorder};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let context = tempfile::tempdir()?;
//! std::fs::write(context.path().join("hello.txt"), "hello\n")?;
//! let request = BuildRequest::builder(context.path())
//!     .dockerfile_text("Dockerfile", "FROM scratch\nCOPY hello.txt /\nCMD [\"/hello\"]\n")
//!     .tag("hello:1".parse()?)
//!     .build();
//! let root = tempfile::tempdir()?;
//! let builder = Builder::open(root.path())?;
//! let progress = Recorder::new();
//! let outcome = builder.build(&request, &progress)?;
//! assert_eq!(outcome.config.config.cmd, ["/hello"]);
//! assert_eq!(builder.store().resolve("hello:1")?.id, outcome.image_id);
//! # Ok(())
//! # }
//! ```

mod cache;
mod cachekey;
mod engine;
mod error;
mod export;
mod gofmt;
pub mod image;
mod lower;
mod op;
mod path;
pub mod progress;
pub mod prune;
mod request;
mod run;
mod scheduler;
mod state;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_frontend::graph::{BuildGraph, Planner};
use kiln_snapshotter::{Backend, Snapshotter};

pub use cachekey::CacheKey;
pub use error::{BuildError, StepFailure};
pub use image::ImageConfig;
pub use progress::{Event, LogStream, NoProgress, Recorder, Reporter, VertexId};
pub use prune::{CacheEntry, CacheEntryKind, CacheError, CachePruneOptions, CachePruneReport, CacheUsage};
pub use request::{
    ArchiveOutput, BuildRequest, BuildRequestBuilder, Network, Output, SecretSource, SshSource,
};
pub use run::{RunError, run_image};

use crate::content::Digest;
use crate::context::IgnoreSource;
use crate::dockerfile::{self, DockerfileText, Located};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore, is_dangling};
use progress::Progress;
use request::DockerfileInput;

/// The snapshotter's directory under the kiln root.
const SNAPSHOTS_DIR: &str = "snapshots-v1";
/// How long [`Builder::unpack`]'s lease keeps the image's blobs if the process dies mid-way.
const UNPACK_LEASE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a successful build made.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image ID: the digest of its config, as `docker images` shows it.
    pub image_id: Digest,
    /// The digest of its manifest.
    pub manifest_digest: Digest,
    /// The names it was given (`-t`).
    pub names: Vec<ImageRef>,
    /// Its config.
    pub config: ImageConfig,
}

/// Builds images in one kiln root: its image store, snapshots and build cache.
pub struct Builder {
    root: PathBuf,
    store: Arc<ImageStore>,
    snapshotter: Arc<dyn Snapshotter>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Opens (creating if needed) the kiln root `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Builder, BuildError> {
        let root = root.as_ref().to_owned();
        let store = Arc::new(ImageStore::open(&root)?);
        let snapshotter: Arc<dyn Snapshotter> =
            kiln_snapshotter::open(root.join(SNAPSHOTS_DIR), Backend::Auto)?.into();
        Ok(Builder {
            root,
            store,
            snapshotter,
        })
    }

    /// The image store the builder writes to.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Unpacks a stored image's layers into the snapshots a build `FROM` it starts from, as
    /// containerd unpacks an image on pull: each layer into the committed snapshot
    /// `layer-<chain id hex>`, shared by every image whose layers are the same up to it. Layers
    /// already unpacked are skipped; returns whether any had to be.
    ///
    /// The platform manifest unpacked is the one the store resolved for `image`
    /// ([`Image::manifest`]: the host's, when its name points at a multi-platform index). Its
    /// blobs are leased while this runs, so another process removing the image cannot take them
    /// mid-way, and a cache prune meanwhile keeps the base layers of stored images. The snapshots
    /// are build cache like those a build unpacks (see [`prune`]): kept while a stored image
    /// refers to them, removed by a prune with [`CachePruneOptions::all`].
    ///
    /// ```
    /// use kiln_builder::archive::{self, ImportOptions};
    /// use kiln_builder::solver::{Builder, CacheEntryKind};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let root = tempfile::tempdir()?;
    /// let builder = Builder::open(root.path())?;
    /// // A root filesystem of one file, imported as a one-layer image.
    /// let mut rootfs = tar::Builder::new(Vec::new());
    /// let mut header = tar::Header::new_gnu();
    /// header.set_size(6);
    /// header.set_mode(0o644);
    /// header.set_uid(0);
    /// header.set_gid(0);
    /// header.set_mtime(0);
    /// rootfs.append_data(&mut header, "hello.txt", &b"hello\n"[..])?;
    /// let rootfs = rootfs.into_inner()?;
    /// let names = ["hello:1".parse()?];
    /// let image = archive::import(builder.store(), &rootfs[..], &names, &ImportOptions::default())?;
    ///
    /// assert!(builder.unpack(&image)?, "its layer is unpacked");
    /// assert!(!builder.unpack(&image)?, "and found unpacked the next time");
    /// let usage = builder.cache_usage()?;
    /// let kinds: Vec<_> = usage.entries.iter().map(|entry| (entry.kind, entry.dangling)).collect();
    /// assert_eq!(kinds, [(CacheEntryKind::BaseLayer, false)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unpack(&self, image: &Image) -> Result<bool, BuildError> {
        let label = image
            .names
            .iter()
            .find(|name| !is_dangling(name))
            .map_or_else(|| image.id.to_string(), ImageRef::familiar_string);
        let _lease = self.store.lease_image(image, UNPACK_LEASE)?;
        let layers = engine::image_layers(
            &self.store,
            &image.manifest,
            image.config.rootfs().diff_ids(),
            &label,
        )?;
        let (_, worked) = engine::unpack_layers(&*self.snapshotter, &self.store, &layers, &label)?;
        Ok(worked)
    }

    /// Runs `request`, reporting progress to `reporter`.
    pub fn build(&self, request: &BuildRequest, reporter: &dyn Reporter) -> Result<BuildOutcome, BuildError> {
        // Held (shared) while the build runs, so a cache prune in another process knows a build may be
        // about to use what it finds in the cache; the kernel drops it if the process dies.
        let _running = prune::BuildsRunning::enter(&self.root)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| BuildError::Io {
                path: PathBuf::from("the async runtime"),
                source,
            })?;
        let (progress, mut events) = Progress::channel();
        let work = self.solve(request, progress);
        let drain = async {
            while let Some(event) = events.recv().await {
                reporter.report(&event);
            }
        };
        let result = runtime.block_on(async {
            let interrupt = async {
                if request.cancel_on_ctrl_c() && tokio::signal::ctrl_c().await.is_ok() {
                    return;
                }
                std::future::pending::<()>().await;
            };
            let guarded = async {
                tokio::select! {
                    result = work => result,
                    () = interrupt => Err(BuildError::Interrupted),
                }
            };
            let (result, ()) = tokio::join!(guarded, drain);
            result
        });
        // Dropping the runtime waits for blocking work still running (steps being killed), so their
        // guards have unmounted and removed their snapshots before this returns.
        drop(runtime);
        result
    }

    async fn solve(&self, request: &BuildRequest, progress: Progress) -> Result<BuildOutcome, BuildError> {
        // A context from a stream is read first (the Dockerfile may be in it); its directory is
        // removed when `streamed` goes, however the build ends.
        let streamed = match request.context_stream() {
            Some(input) => Some(stream::load(&self.root, input, request.dockerfile(), &progress).await?),
            None => None,
        };
        let text = match &streamed {
            Some(loaded) => {
                report_definition(&loaded.text, &progress);
                loaded.text.clone()
            }
            None => Builder::dockerfile(request, &progress)?,
        };
        let graph = plan(request, &text)?;
        let ignore = IgnoreSource::for_dockerfile(text.path.as_deref());
        let engine = engine::LocalEngine::new(
            Arc::clone(&self.store),
            Arc::clone(&self.snapshotter),
            &self.root,
            streamed
                .as_ref()
                .map_or(request.context(), |loaded| loaded.streamed.dir()),
            ignore,
            request.pull(),
            progress.clone(),
        )
        .with_secrets(engine::Secrets::of(request));
        if let Some(loaded) = &streamed {
            engine.preload_context(Arc::clone(&loaded.context));
        }
        let settings = scheduler::Settings {
            file: &text.name,
            no_cache: request.no_cache(),
            network: request.network(),
        };
        let target = scheduler::Scheduler::new(&engine, &graph, settings, progress.clone())
            .run()
            .await
            .map_err(|error| match error {
                BuildError::StepFailed(mut failure) => {
                    failure.excerpt = error::excerpt(&text.bytes, failure.lines);
                    BuildError::StepFailed(failure)
                }
                other => other,
            })?;
        let vertex = progress.start("exporting to image");
        let started = std::time::Instant::now();
        let layers = engine
            .write_layers(&target.chain)
            .await
            .inspect_err(|e| vertex.failed(&e.to_string()))?;
        vertex.log(
            LogStream::Status,
            format!("exporting layers {:.1}s done", started.elapsed().as_secs_f64()),
        );
        let outcome = export::export(&engine, &target, &layers, request)
            .inspect_err(|e| vertex.failed(&e.to_string()))?;
        vertex.log(
            LogStream::Status,
            format!("writing image {} done", outcome.image_id),
        );
        for name in &outcome.names {
            vertex.log(LogStream::Status, format!("naming to {name} done"));
        }
        vertex.done();
        Ok(outcome)
    }

    /// Reads the Dockerfile, as the `[internal] load build definition` vertex.
    fn dockerfile(request: &BuildRequest, progress: &Progress) -> Result<DockerfileText, BuildError> {
        let text = match request.dockerfile() {
            DockerfileInput::Text(text) => text.clone(),
            DockerfileInput::Source(source) => dockerfile::read(source, request.context())?,
        };
        report_definition(&text, progress);
        Ok(text)
    }
}

/// The `[internal] load build definition` vertex for a Dockerfile read.
fn report_definition(text: &DockerfileText, progress: &Progress) {
    let vertex = progress.start(format!(
        "[internal] load build definition from {}",
        short_name(&text.name)
    ));
    vertex.log(
        LogStream::Status,
        format!("transferring dockerfile: {}B done", text.bytes.len()),
    );
    vertex.done();
}

/// The Dockerfile's file name, as BuildKit names the definition it loads.
fn short_name(name: &str) -> &str {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
}

/// Parses and plans the build the request describes.
fn plan(request: &BuildRequest, text: &DockerfileText) -> Result<BuildGraph, BuildError> {
    let tree = text.parse()?;
    let host = crate::platform::host();
    let mut planner = Planner::new(&tree, host).build_args(request.build_args().clone());
    if let Some(target) = request.target() {
        planner = planner.target(target);
    }
    if let Some(platform) = request.platform() {
        planner = planner.platform(platform.clone());
    }
    planner.plan().map_err(|error| {
        BuildError::from(Located {
            file: text.name.clone(),
            line: error.line(),
            error,
        })
    })
}
