//! The blocking side of the engine: unpacking image layers into snapshots, and running one step on
//! an active snapshot through to its committed snapshot, layer blob and cache record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_frontend::graph::Input;
use kiln_frontend::instruction::{Chmod, MountType, Network};
use kiln_snapshotter::{Backend, ErrorKind as SnapshotErrorKind, Snapshotter, mount};

use super::secrets::{Secrets, StepSecrets};
use crate::content::Digest;
use crate::context::Context;
use crate::exec::{self, CancelToken, Executor as _, NamespaceExecutor, ProcessSpec, Stream};
use crate::fsop::{self, Archives, CopySpec, InlineFile, Mode, Owner, Ownership, UrlCopy};
use crate::layer::{self, ApplyOptions, Changes, Compression, DiffOptions};
use crate::solver::cache::{self, CacheRecord, Layer};
use crate::solver::cachekey::CacheKey;
use crate::solver::error::BuildError;
use crate::solver::lower::{Remote, classify};
use crate::solver::op::{CopyOp, CopySource, MkdirOp, Op, RunOp};
use crate::solver::progress::{LogStream, Vertex};
use crate::store::{ImageStore, Lease};

/// How many of a failed step's last output lines its error keeps.
const LOG_TAIL: usize = 10;

/// An active snapshot that is removed unless committed: the undo of a step.
pub(crate) struct ActiveSnapshot<'a> {
    snapshotter: &'a dyn Snapshotter,
    key: String,
    done: bool,
}

impl<'a> ActiveSnapshot<'a> {
    /// Prepares a writable snapshot on `parent`.
    pub(crate) fn prepare(
        snapshotter: &'a dyn Snapshotter,
        parent: Option<&str>,
    ) -> Result<(ActiveSnapshot<'a>, Vec<kiln_snapshotter::Mount>), BuildError> {
        let key = format!("build-{}", random_suffix());
        let mounts = snapshotter.prepare(&key, parent)?;
        Ok((ActiveSnapshot::owning(snapshotter, key), mounts))
    }

    /// Prepares a read-only view of `parent`.
    pub(crate) fn view(
        snapshotter: &'a dyn Snapshotter,
        parent: Option<&str>,
    ) -> Result<(ActiveSnapshot<'a>, Vec<kiln_snapshotter::Mount>), BuildError> {
        let key = format!("view-{}", random_suffix());
        let mounts = snapshotter.view(&key, parent)?;
        Ok((ActiveSnapshot::owning(snapshotter, key), mounts))
    }

    /// The guard of the active snapshot `key`, which it removes unless committed.
    fn owning(snapshotter: &'a dyn Snapshotter, key: String) -> ActiveSnapshot<'a> {
        ActiveSnapshot {
            snapshotter,
            key,
            done: false,
        }
    }

    /// Commits it as `name`, content-addressed: a snapshot of that name made meanwhile by another
    /// build holds the same files and is as good (this one is then dropped).
    fn commit(mut self, name: &str) -> Result<(), BuildError> {
        match self.snapshotter.commit(name, &self.key) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            Err(e) if e.kind() == SnapshotErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits it as `name`, or, if a snapshot of that name exists, as `name-<random>`, and returns
    /// the name it got. For a step's result: the one there is an earlier run of the step, which
    /// `--no-cache` ran again because its result may differ (`RUN apt-get upgrade`), or a
    /// concurrent build's; either way this build's own result is the one its record must name. The
    /// snapshot the record no longer names is dangling cache for the next prune.
    fn commit_own(mut self, base: &str) -> Result<String, BuildError> {
        let mut name = base.to_owned();
        loop {
            match self.snapshotter.commit(&name, &self.key) {
                Ok(()) => {
                    self.done = true;
                    return Ok(name);
                }
                Err(e) if e.kind() == SnapshotErrorKind::AlreadyExists => {
                    name = format!("{base}-{}", random_suffix());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for ActiveSnapshot<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover is swept by the snapshotter's cleanup.
            let _ = self.snapshotter.remove(&self.key);
        }
    }
}

/// A random suffix for temporary snapshot keys.
pub(crate) fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS per process; the pid and a counter make keys unique within it.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{}-{:016x}", std::process::id(), hasher.finish())
}

/// Unpacks image layers into committed snapshots named by chain id; returns the top one and whether
/// any layer had to be unpacked.
pub(crate) fn unpack_layers(
    snapshotter: &dyn Snapshotter,
    store: &ImageStore,
    layers: &[Layer],
    image: &str,
) -> Result<(Option<String>, bool), BuildError> {
    let mut parent: Option<String> = None;
    let mut worked = false;
    let names = layer_snapshot_names(layers.iter().map(|l| l.diff_id.clone()));
    for (layer, name) in layers.iter().zip(names) {
        if snapshotter.stat(&name).is_err() {
            worked = true;
            let (active, mounts) = ActiveSnapshot::prepare(snapshotter, parent.as_deref())?;
            let target = tempfile::tempdir().map_err(|e| io_error("a mount point", e))?;
            let guard = mount::mount_all(&mounts, target.path())?;
            let blob = crate::content::BlobSource::open(store.content(), &layer.digest)
                .map_err(|e| BuildError::Store(e.into()))?;
            let applied = layer::apply(blob, target.path(), &ApplyOptions::new()).map_err(|e| {
                BuildError::BaseImage {
                    reference: image.to_owned(),
                    source: Box::new(e),
                }
            })?;
            guard.unmount()?;
            if applied.diff_id != layer.diff_id {
                return Err(BuildError::BaseImage {
                    reference: image.to_owned(),
                    source: format!(
                        "layer {} unpacks to {}, not {}",
                        layer.digest, applied.diff_id, layer.diff_id
                    )
                    .into(),
                });
            }
            active.commit(&name)?;
        }
        parent = Some(name);
    }
    Ok((parent, worked))
}

/// The committed snapshots an image's layers unpack into, bottom first: `layer-<chain id hex>`,
/// where the first layer's chain id is its diff id and each next one's the digest of
/// `"<chain id below> <diff id>"`, so the name stands for the layer and everything below it.
pub(crate) fn layer_snapshot_names(diff_ids: impl IntoIterator<Item = Digest>) -> Vec<String> {
    let mut chain: Option<Digest> = None;
    diff_ids
        .into_iter()
        .map(|diff_id| {
            let id = match &chain {
                None => diff_id,
                Some(below) => Digest::of(format!("{below} {diff_id}").as_bytes()),
            };
            let name = format!("layer-{}", id.hex());
            chain = Some(id);
            name
        })
        .collect()
}

/// Where `RUN --mount=type=cache` directories live under the kiln root.
pub(crate) const CACHE_MOUNTS_DIR: &str = "cache-mounts-v1";

/// How a step's layer is stored: a plain tar, whose digest is its diff ID. Writing it is one pass
/// over the snapshot with no compression (a 120 MB layer: 0.2 s instead of 0.8 s of two cores'
/// gzip), and an image that leaves the store gets gzip copies then
/// ([`ImageStore::compressed`](crate::store::ImageStore::compressed)), as Docker's own store does.
fn local_layers() -> DiffOptions {
    DiffOptions::new().compression(Compression::Uncompressed)
}

/// Writes the changes a committed step snapshot holds over its parent as a plain tar layer into
/// the content store, held by `lease`.
pub(crate) fn write_layer(
    store: &ImageStore,
    snapshotter: &dyn Snapshotter,
    lease: &Lease,
    snapshot: &str,
) -> Result<Layer, BuildError> {
    let upper = snapshotter.upper_dir(snapshot)?;
    let parent_tree = match snapshotter.backend() {
        Backend::Copy => match snapshotter.stat(snapshot)?.parent {
            Some(parent) => Some(snapshotter.upper_dir(&parent)?),
            None => None,
        },
        _ => None,
    };
    let changes = match snapshotter.backend() {
        Backend::Copy => Changes::TreeCompare {
            parent: parent_tree.as_deref(),
            tree: &upper,
        },
        _ => Changes::OverlayUpper(&upper),
    };
    let ingest = store
        .content()
        .ingest(None)
        .map_err(|e| BuildError::Store(e.into()))?;
    let (descriptor, ingest) =
        layer::diff(changes, ingest, &local_layers()).map_err(|e| BuildError::Layer(Box::new(e)))?;
    // Leased before it is committed: the GC protocol of the store.
    lease.add(&descriptor.digest)?;
    ingest.commit().map_err(|e| BuildError::Store(e.into()))?;
    Ok(Layer {
        digest: descriptor.digest,
        diff_id: descriptor.diff_id,
        size: descriptor.size,
        media_type: descriptor.media_type.to_owned(),
    })
}

/// One step to run, with owned copies of what it needs (it runs on a blocking thread).
pub(crate) struct Work {
    pub(crate) store: Arc<ImageStore>,
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) root: PathBuf,
    pub(crate) context: Option<Arc<Context>>,
    pub(crate) parent: Option<String>,
    pub(crate) inputs: Vec<(Input, Option<String>)>,
    pub(crate) op: Op,
    pub(crate) key: CacheKey,
    pub(crate) vertex: Vertex,
    pub(crate) cancel: CancelToken,
    /// What `--mount=type=secret|ssh` can be given.
    pub(crate) secrets: Arc<Secrets>,
}

impl Work {
    /// prepare -> mount -> run the op -> unmount -> commit -> record. The layer blob is written later,
    /// if an image needs it ([`write_layer`]).
    pub(crate) fn run(self) -> Result<CacheRecord, BuildError> {
        let snapshotter = &*self.snapshotter;
        let (active, mounts) = ActiveSnapshot::prepare(snapshotter, self.parent.as_deref())?;
        let target = tempfile::tempdir().map_err(|e| io_error("a mount point", e))?;
        let guard = mount::mount_all(&mounts, target.path())?;
        let rootfs = target.path();
        match &self.op {
            Op::Run(run) => self.run_process(rootfs, run)?,
            Op::Copy(copy) => self.copy(rootfs, copy)?,
            Op::Mkdir(mkdir) => mkdir_op(rootfs, mkdir)?,
        }
        guard.unmount()?;
        if self.cancel.is_cancelled() {
            return Err(BuildError::Interrupted);
        }
        let name = active.commit_own(&format!("step-{}", self.key.digest().hex()))?;
        let record = CacheRecord {
            snapshot: name,
            layer: None,
            created: std::time::SystemTime::now(),
        };
        cache::put(self.store.db(), &self.key, &record)?;
        Ok(record)
    }

    fn run_process(&self, rootfs: &Path, run: &RunOp) -> Result<(), BuildError> {
        let mut spec = ProcessSpec::new(run.args.clone());
        spec.env.clone_from(&run.env);
        spec.env.extend(run.proxy_env.iter().cloned());
        spec.cwd.clone_from(&run.cwd);
        spec.user = if run.user.is_empty() {
            exec::User::root()
        } else {
            exec::resolve_user(rootfs, &run.user).map_err(|e| step_error(e.to_string(), Vec::new()))?
        };
        spec.network = match run.network {
            Network::None => exec::NetworkMode::None,
            Network::Default | Network::Host => exec::NetworkMode::Sandbox,
        };
        // Views of other stages and images for `--mount=from=`, kept mounted while the step runs.
        let mut held = Vec::new();
        let scratch = tempfile::tempdir().map_err(|e| io_error("a scratch directory", e))?;
        // Secret files and ssh forwarders, kept until the step has run.
        let mut private = StepSecrets::new();
        for (index, mount) in run.mounts.iter().enumerate() {
            let m = &mount.mount;
            let target = m.target.clone().unwrap_or_default();
            let kind = match m.kind {
                MountType::Secret | MountType::Ssh => {
                    let added = if m.kind == MountType::Secret {
                        private.add_secret(&self.secrets, m, &run.cwd)
                    } else {
                        private.add_ssh(&self.secrets, m, &run.cwd)
                    };
                    added.map_err(|e| step_error(e.chain(), Vec::new()))?;
                    continue;
                }
                MountType::Tmpfs => exec::MountKind::Tmpfs { size: m.size },
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self
                        .root
                        .join(CACHE_MOUNTS_DIR)
                        .join(Digest::of(id.as_bytes()).hex());
                    std::fs::create_dir_all(&dir).map_err(|e| io_error("a cache mount", e))?;
                    exec::MountKind::Bind {
                        source: dir,
                        readonly: false,
                    }
                }
                MountType::Bind => {
                    let source_root = match &mount.from {
                        Some(input) => {
                            let snapshot = self.input_snapshot(input);
                            let (view, mounts) =
                                ActiveSnapshot::view(&*self.snapshotter, snapshot.as_deref())?;
                            let dir = scratch.path().join(format!("from-{index}"));
                            std::fs::create_dir(&dir).map_err(|e| io_error("a mount point", e))?;
                            let guard = mount::mount_all(&mounts, &dir)?;
                            held.push((view, guard));
                            dir
                        }
                        None => match &self.context {
                            Some(context) => context.root().to_owned(),
                            None => {
                                return Err(BuildError::Unsupported {
                                    what: "RUN --mount=type=bind from the context".into(),
                                });
                            }
                        },
                    };
                    let source = m.source.as_deref().unwrap_or("/").trim_start_matches('/');
                    exec::MountKind::Bind {
                        source: source_root.join(source),
                        readonly: m.read_only,
                    }
                }
            };
            spec.mounts.push(exec::Mount { target, kind });
        }
        private.apply(&mut spec);
        if let Some(script) = &run.script {
            let path = scratch.path().join("script");
            std::fs::write(&path, &script.content).map_err(|e| io_error("a heredoc script", e))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(|e| io_error("a heredoc script", e))?;
            spec.mounts.push(exec::Mount {
                target: format!("/dev/pipes/{}", script.name),
                kind: exec::MountKind::Bind {
                    source: path,
                    readonly: true,
                },
            });
        }
        let mut lines = LineSink::new(&self.vertex);
        let status = NamespaceExecutor::new().run(
            rootfs,
            &spec,
            &mut |stream: Stream, chunk: &[u8]| lines.push(stream, chunk),
            &self.cancel,
        );
        lines.flush();
        let status = match status {
            Ok(status) => status,
            Err(exec::ExecError::Cancelled) => return Err(BuildError::Interrupted),
            Err(e) => return Err(step_error(e.to_string(), lines.tail)),
        };
        drop(held);
        drop(private);
        status
            .check(&run.args)
            .map_err(|e| step_error(e.to_string(), lines.tail))
    }

    fn input_snapshot(&self, input: &Input) -> Option<String> {
        self.inputs
            .iter()
            .find(|(i, _)| i == input)
            .and_then(|(_, s)| s.clone())
    }

    fn copy(&self, rootfs: &Path, copy: &CopyOp) -> Result<(), BuildError> {
        let chown = copy
            .chown
            .as_deref()
            .map(|c| chown_owner(rootfs, c))
            .transpose()?;
        let chmod = copy
            .chmod
            .as_ref()
            .map(|c| {
                let text = match c {
                    Chmod::Octal(mode) => format!("{mode:o}"),
                    Chmod::Symbolic(s) => s.clone(),
                };
                Mode::parse(&text).map_err(|e| step_error(e.to_string(), Vec::new()))
            })
            .transpose()?;
        let (local, urls): (Vec<&String>, Vec<&String>) =
            copy.sources.iter().partition(|s| classify(s) == Remote::Local);
        if !local.is_empty() {
            let mut spec = CopySpec::new(local.iter().map(|s| (*s).clone()), copy.dest.clone());
            spec.chmod.clone_from(&chmod);
            spec.excludes.clone_from(&copy.excludes);
            spec.parents = copy.parents;
            spec.allow_empty_wildcard = true;
            spec.archives = if copy.add && copy.unpack {
                Archives::Extract
            } else {
                Archives::Copy
            };
            match &copy.source {
                CopySource::Context => {
                    spec.ownership = Ownership::context(chown);
                    let context = self.context.as_ref().expect("a context copy has the context");
                    fsop::ContextCopy::select(context, &spec)
                        .and_then(|c| c.copy(rootfs))
                        .map_err(|e| step_error(e.to_string(), Vec::new()))?;
                }
                CopySource::Input(input) => {
                    spec.ownership = Ownership::from_stage(chown);
                    let snapshot = self.input_snapshot(input);
                    let (_view, mounts) = ActiveSnapshot::view(&*self.snapshotter, snapshot.as_deref())?;
                    let dir = tempfile::tempdir().map_err(|e| io_error("a mount point", e))?;
                    let guard = mount::mount_all(&mounts, dir.path())?;
                    fsop::copy(dir.path(), rootfs, &spec)
                        .map_err(|e| step_error(e.to_string(), Vec::new()))?;
                    guard.unmount()?;
                }
            }
        }
        for url in urls {
            if classify(url) == Remote::Git {
                return Err(BuildError::Unsupported {
                    what: "ADD from git".into(),
                });
            }
            let add = UrlCopy {
                url: url.clone(),
                dest: copy.dest.clone(),
                chown,
                chmod: chmod.clone(),
                checksum: copy.checksum.clone(),
            };
            fsop::copy_url(rootfs, &add).map_err(|e| step_error(e.to_string(), Vec::new()))?;
        }
        if !copy.inline.is_empty() {
            let files: Vec<InlineFile> = copy
                .inline
                .iter()
                .map(|(name, content)| InlineFile {
                    name: name.clone(),
                    data: content.clone().into_bytes(),
                })
                .collect();
            fsop::write_inline(rootfs, &copy.dest, &files, chown, chmod.as_ref())
                .map_err(|e| step_error(e.to_string(), Vec::new()))?;
        }
        Ok(())
    }
}

/// `WORKDIR`: the directory and its parents, owned by the stage's user.
fn mkdir_op(rootfs: &Path, mkdir: &MkdirOp) -> Result<(), BuildError> {
    let owner = if mkdir.user.is_empty() {
        None
    } else {
        let user =
            exec::resolve_user(rootfs, &mkdir.user).map_err(|e| step_error(e.to_string(), Vec::new()))?;
        Some(Owner::new(user.uid, user.gid))
    };
    fsop::mkdir_p(rootfs, &mkdir.path, owner, 0o755).map_err(|e| step_error(e.to_string(), Vec::new()))
}

/// `--chown=user[:group]` resolved in the destination root. A user alone gives the group of the same
/// number, as Docker documents for `--chown`.
fn chown_owner(rootfs: &Path, chown: &str) -> Result<Owner, BuildError> {
    let user = exec::resolve_user(rootfs, chown).map_err(|e| step_error(e.to_string(), Vec::new()))?;
    if chown.contains(':') {
        Ok(Owner::new(user.uid, user.gid))
    } else {
        Ok(Owner::new(user.uid, user.uid))
    }
}

fn step_error(message: String, logs: Vec<String>) -> BuildError {
    BuildError::step(message, logs)
}

fn io_error(what: &str, source: std::io::Error) -> BuildError {
    BuildError::Io {
        path: PathBuf::from(what),
        source,
    }
}

/// Splits a process's output into lines for progress, keeping the last few for the error.
struct LineSink<'a> {
    vertex: &'a Vertex,
    partial: [Vec<u8>; 2],
    tail: Vec<String>,
}

impl<'a> LineSink<'a> {
    fn new(vertex: &'a Vertex) -> LineSink<'a> {
        LineSink {
            vertex,
            partial: [Vec::new(), Vec::new()],
            tail: Vec::new(),
        }
    }

    fn push(&mut self, stream: Stream, chunk: &[u8]) {
        let index = usize::from(stream == Stream::Stderr);
        self.partial[index].extend_from_slice(chunk);
        while let Some(end) = self.partial[index].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[index].drain(..=end).collect();
            self.emit(index, &line[..line.len() - 1]);
        }
    }

    fn emit(&mut self, index: usize, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        let stream = if index == 1 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        };
        self.vertex.log(stream, text.clone());
        self.tail.push(text);
        if self.tail.len() > LOG_TAIL {
            self.tail.remove(0);
        }
    }

    fn flush(&mut self) {
        for index in 0..2 {
            if !self.partial[index].is_empty() {
                let line = std::mem::take(&mut self.partial[index]);
                self.emit(index, &line);
            }
        }
    }
}
