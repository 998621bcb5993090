//! `kiln run`: one process in a throwaway container of a stored image, run the way `RUN` runs.
//!
//! The model is the build engine's, minus the commit: the image's layers are unpacked into the
//! snapshot chain a build would use (shared with builds, named by chain id), an active snapshot is
//! prepared on top and mounted, and the [`NamespaceExecutor`] runs the command in it with the image
//! config's `Env`, `WorkingDir` and `User`, a sandboxed network and the container id's first 12 hex
//! digits as hostname. The active snapshot is always removed afterwards, whatever happened: kiln keeps
//! no containers, so every run is what `docker run --rm` does.
//!
//! The command is Docker's: `ENTRYPOINT` followed by the given arguments, or by the image's `CMD`
//! when none are given (shell form was already turned into `/bin/sh -c ...` when the image was built).
//!
//! Signals are the caller's to catch: what it hands to the [`SignalProxy`] while the process runs
//! is sent to the process (Docker's `--sig-proxy`), which decides when to exit; the run then ends as
//! usual, with the process's status, and cleans up. The [`CancelToken`] kills the process instead
//! (and before the process started, stops the run before it does).
//!
//! # Example
//! Needs root and an image in the store (here a `busybox` imported beforehand):
//! ```no_run
//! use kiln_builder::exec::{CancelToken, SignalProxy, Stream};
//! use kiln_builder::solver::run_image;
//!
//! let root = kiln_builder::store::default_root();
//! let mut out = Vec::new();
//! let mut sink = |stream, chunk: &[u8]| {
//!     if stream == Stream::Stdout {
//!         out.extend_from_slice(chunk);
//!     }
//! };
//! let command = ["echo".to_owned(), "hi".to_owned()];
//! let status = run_image(&root, "busybox", &command, &mut sink, &CancelToken::new(), &SignalProxy::new())?;
//! assert_eq!((status.code(), &out[..]), (0, &b"hi\n"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use kiln_snapshotter::{Backend, mount};

use super::SNAPSHOTS_DIR;
use super::engine::{ActiveSnapshot, image_layers, random_suffix, unpack_layers};
use super::error::BuildError;
use super::image::{ImageConfig, RunConfig};
use crate::content::Digest;
use crate::exec::{
    self, CancelToken, ExecError, Executor as _, ExitStatus, NamespaceExecutor, OutputSink, SignalProxy,
};
use crate::reference::ImageRef;
use crate::store::{ImageStore, StoreError};

/// The `PATH` a container gets when its image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why `kiln run` could not run its command (the command failing is an [`ExitStatus`], not this).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No image of this name or id is in the store.
    #[error("Unable to find image '{reference}' locally")]
    ImageNotFound {
        /// The name asked for, normalized (`busybox:latest`).
        reference: String,
    },
    /// The store could not be opened or read.
    #[error("reading the image store")]
    Store(#[source] StoreError),
    /// The image config is not valid JSON.
    #[error("reading the config of image {image}")]
    Config {
        /// The image asked for.
        image: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The image has no command and none was given.
    #[error("no command specified for image {image}")]
    NoCommand {
        /// The image asked for.
        image: String,
    },
    /// Unpacking the layers or preparing and mounting the container's snapshot failed.
    #[error("preparing the root filesystem of image {image}")]
    Prepare {
        /// The image asked for.
        image: String,
        /// What failed.
        #[source]
        source: BuildError,
    },
    /// No temporary directory could be made to mount the root filesystem on.
    #[error("creating a mount point")]
    MountPoint(#[source] std::io::Error),
    /// The image's `USER` does not resolve in its root filesystem.
    #[error("resolving user {user:?}")]
    User {
        /// The `USER` of the image config.
        user: String,
        /// What failed.
        #[source]
        source: exec::UserError,
    },
    /// The run was cancelled through its [`CancelToken`]: before the process started, or by killing it.
    #[error("the run was cancelled")]
    Cancelled,
    /// The executor could not start the process.
    #[error("running {args:?}")]
    Exec {
        /// The command.
        args: Vec<String>,
        /// What failed.
        #[source]
        source: ExecError,
    },
}

/// Runs `command` (or the image's `ENTRYPOINT` + `CMD`) in a throwaway container of `image` from the
/// store at `root`, streaming its output to `sink`; returns how the process ended. Signals forwarded
/// to `signals` while the process runs are sent to it; `cancel` kills it. The container's snapshot
/// is unmounted and removed before this returns, whatever happened.
///
/// # Errors
/// [`RunError`] when the image is unknown, its root filesystem cannot be prepared, the process
/// cannot be started, or the run was cancelled.
pub fn run_image(
    root: &Path,
    image: &str,
    command: &[String],
    sink: &mut dyn OutputSink,
    cancel: &CancelToken,
    signals: &SignalProxy,
) -> Result<ExitStatus, RunError> {
    let store = ImageStore::open(root).map_err(RunError::Store)?;
    let stored = match store.resolve(image) {
        Ok(stored) => stored,
        Err(StoreError::ImageNotFound { .. }) => {
            let reference = ImageRef::parse(image).map_or_else(|_| image.to_owned(), |r| r.familiar_string());
            return Err(RunError::ImageNotFound { reference });
        }
        Err(e) => return Err(RunError::Store(e)),
    };
    let bytes = store
        .content()
        .read(&stored.id)
        .map_err(|e| RunError::Store(e.into()))?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|source| RunError::Config {
        image: image.to_owned(),
        source,
    })?;
    let run = &config.config;
    let mut args = run.entrypoint.clone();
    args.extend(
        if command.is_empty() {
            run.cmd.iter()
        } else {
            command.iter()
        }
        .cloned(),
    );
    if args.is_empty() {
        return Err(RunError::NoCommand {
            image: image.to_owned(),
        });
    }
    let prepare = |source: BuildError| RunError::Prepare {
        image: image.to_owned(),
        source,
    };
    let snapshotter =
        kiln_snapshotter::open(root.join(SNAPSHOTS_DIR), Backend::Auto).map_err(|e| prepare(e.into()))?;
    let layers = image_layers(&store, &stored.manifest, &config.rootfs.diff_ids, image).map_err(prepare)?;
    let (top, _) = unpack_layers(&*snapshotter, &store, &layers, image).map_err(prepare)?;
    // Dropped last (declared first): the snapshot goes after the rootfs is unmounted.
    let (active, mounts) = ActiveSnapshot::prepare(&*snapshotter, top.as_deref()).map_err(prepare)?;
    let target = tempfile::tempdir().map_err(RunError::MountPoint)?;
    let guard = mount::mount_all(&mounts, target.path()).map_err(|e| prepare(e.into()))?;
    let rootfs = target.path();

    let spec = process_spec(run, args, rootfs)?;
    let status = NamespaceExecutor::new()
        .with_signal_proxy(signals.clone())
        .run(rootfs, &spec, sink, cancel)
        .map_err(|source| match source {
            ExecError::Cancelled => RunError::Cancelled,
            source => RunError::Exec {
                args: spec.args.clone(),
                source,
            },
        });
    guard.unmount().map_err(|e| prepare(e.into()))?;
    drop(active);
    status
}

/// What the executor runs: `args` with the image config's environment (and Docker's default `PATH`),
/// working directory and user resolved in `rootfs`, on a sandboxed network.
fn process_spec(run: &RunConfig, args: Vec<String>, rootfs: &Path) -> Result<exec::ProcessSpec, RunError> {
    let mut spec = exec::ProcessSpec::new(args);
    spec.env = run
        .env
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.clone(), String::new()),
        })
        .collect();
    if !spec.env.iter().any(|(key, _)| key == "PATH") {
        spec.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !run.working_dir.is_empty() {
        spec.cwd.clone_from(&run.working_dir);
    }
    if !run.user.is_empty() {
        spec.user = exec::resolve_user(rootfs, &run.user).map_err(|source| RunError::User {
            user: run.user.clone(),
            source,
        })?;
    }
    // A short container id, as Docker's hostname; there is no container to look it up by.
    Digest::of(random_suffix().as_bytes()).hex()[..12].clone_into(&mut spec.hostname);
    spec.network = exec::NetworkMode::Sandbox;
    Ok(spec)
}
