//! The RUN executor: run one process inside a prepared root filesystem, the way `RUN` does.
//!
//! The model has four parts:
//!
//! - a [`ProcessSpec`] says *what* to run: argv in exec form (shell form is the caller's job: it passes
//!   `SHELL` + the command), environment, working directory, [`User`] (already resolved, see
//!   [`resolve_user`]), hostname, [`NetworkMode`] and extra [`Mount`]s (what `RUN --mount` lowers to);
//! - an [`Executor`] runs it on a rootfs directory the caller has already mounted (a snapshot), streams the
//!   process's stdout and stderr *live* to an [`OutputSink`] and returns its [`ExitStatus`];
//! - a [`CancelToken`] stops a running step from another thread: the whole step (every process it
//!   started) is killed, as when a build is interrupted;
//! - a [`SignalProxy`] carries signals the caller caught (Ctrl-C in `kiln run`) to the running
//!   process instead, which handles them and exits in its own time, as with `docker run`;
//! - [`ExitStatus::check`] turns a non-zero status into BuildKit's message for a failed step,
//!   `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`.
//!
//! [`NamespaceExecutor`] is the built-in executor: no daemon and no external runtime. It forks a process
//! into new mount, pid, uts and ipc namespaces (and a new network namespace for [`NetworkMode::None`]),
//! builds the container's view of the filesystem (`/proc`, a minimal `/dev`, read-only `/sys`,
//! `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`), pivots into the rootfs, drops to the user and
//! execs. The process is PID 1 of its pid namespace: when it exits, the kernel kills whatever it left
//! running, so a step never leaves processes behind. The trait leaves room for an executor that drives
//! an OCI runtime (runc, crun) instead.
//!
//! # What a step leaves in the rootfs
//! Only what the process wrote. `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are files the
//! executor writes *outside* the rootfs and bind-mounts read-only over the rootfs's own (whose content is
//! untouched). When a mount point is missing from the rootfs (an image without `/etc/hosts`, a `RUN
//! --mount` target that does not exist, even `/proc` in a `scratch` image), the executor creates an
//! empty file or directory for it, with any missing parent directories, and removes them after the run
//! if they are still empty, restoring the parent directory's timestamps, as BuildKit's mount-stub
//! cleaner does. On overlayfs the parent directory itself stays copied up in the upper directory with
//! unchanged metadata; the layer differ must skip such directories (BuildKit's does). The working
//! directory is created when missing (owned by root, mode 0755) and stays, as with BuildKit.
//!
//! # Not a security boundary
//! The step runs as real root (or the requested user) in the initial user namespace, with the default
//! capability set of that user and no seccomp filter: the namespaces isolate the build from the host's
//! view, not from a hostile Dockerfile. This matches what `RUN --security=insecure` grants in BuildKit.
//!
//! # Example
//! A rootfs with nothing but a static busybox is enough (needs root: namespaces and mounts):
//! ```
//! use kiln_builder::exec::{CancelToken, Executor, NamespaceExecutor, ProcessSpec, Stream, resolve_user};
//!
//! let rootfs = tempfile::tempdir()?;
//! std::fs::create_dir(rootfs.path().join("bin"))?;
//! std::fs::copy("/bin/busybox", rootfs.path().join("bin/busybox"))?;
//! std::os::unix::fs::symlink("busybox", rootfs.path().join("bin/sh"))?;
//!
//! let mut spec = ProcessSpec::new(["/bin/sh", "-c", "echo hello from $(busybox hostname) as $(busybox id -u)"]);
//! spec.env.push(("PATH".into(), "/bin".into()));
//! spec.user = resolve_user(rootfs.path(), "1000:1000")?;
//! let mut stdout = Vec::new();
//! let status = NamespaceExecutor::new().run(
//!     rootfs.path(),
//!     &spec,
//!     &mut |stream: Stream, chunk: &[u8]| {
//!         if stream == Stream::Stdout {
//!             stdout.extend_from_slice(chunk);
//!         }
//!     },
//!     &CancelToken::new(),
//! )?;
//! status.check(&spec.args)?;
//! assert_eq!(stdout, b"hello from buildkitsandbox as 1000\n");
//! // The mount points made for /proc, /dev, /etc/hosts... are gone again.
//! let left: Vec<_> = std::fs::read_dir(rootfs.path())?.map(|e| e.unwrap().file_name()).collect();
//! assert_eq!(left, ["bin"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Dependencies
//! `rustix` does almost every syscall: its Linux backend issues them directly, returns errno as a value
//! (no thread-local errno after fork), takes `&CStr` paths without allocating, and has typed flags for
//! the new mount API (`fsopen`, `fsmount`, `open_tree`, `move_mount`), `openat2` and pidfds. `libc` fills
//! the few gaps rustix keeps out of its stable API: `fork`, the signal mask and `sigwaitinfo`,
//! `close_range`, `mount_setattr` and the `SIOCSIFFLAGS` ioctl that brings loopback up. `nix` would
//! replace neither and add a third layer.

mod cancel;
mod child;
mod error;
mod etc;
mod namespace;
mod proxy;
mod rootfs;
mod status;
mod user;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use cancel::{CancelOnDrop, CancelToken};
pub use error::{ExecError, SetupStep};
pub use namespace::NamespaceExecutor;
pub use proxy::SignalProxy;
pub use status::{ExitStatus, ProcessFailed};
pub use user::{User, UserError, resolve_user};

/// Something that runs a [`ProcessSpec`] in a rootfs: the seam between the solver and the way a step is
/// isolated.
///
/// `run` blocks until the process and everything it started have exited (call it from a blocking
/// thread, e.g. `tokio::task::spawn_blocking`). Output is handed to `output` as it is produced. A
/// process that exits non-zero is `Ok` with that status; `Err` means the step could not be run, or was
/// cancelled through `cancel` ([`ExecError::Cancelled`]).
pub trait Executor: Send + Sync {
    /// Runs `spec` with `rootfs` (an already-mounted directory) as its root filesystem.
    fn run(
        &self,
        rootfs: &Path,
        spec: &ProcessSpec,
        output: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError>;
}

/// One process to run: what `RUN` lowers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The argv, exec form; `args[0]` is looked up in the process's `PATH` inside the rootfs.
    pub args: Vec<String>,
    /// The environment, exactly (nothing is inherited). `HOME` is added from the user's passwd entry when
    /// absent, as runc does.
    pub env: Vec<(String, String)>,
    /// Absolute working directory inside the rootfs (a relative one is taken from `/`); created
    /// (root-owned, 0755) when missing.
    pub cwd: String,
    /// Who the process runs as.
    pub user: User,
    /// The hostname inside the step (also written to `/etc/hostname` and `/etc/hosts`); empty means
    /// [`DEFAULT_HOSTNAME`], as in BuildKit.
    pub hostname: String,
    /// Which network the step sees.
    pub network: NetworkMode,
    /// Extra `host:ip` lines for `/etc/hosts` (`--add-host`).
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// Extra mounts (`RUN --mount`), mounted after the standard ones, parents before children.
    pub mounts: Vec<Mount>,
}

/// BuildKit's hostname for build steps.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

impl ProcessSpec {
    /// The hostname the step gets: [`hostname`](Self::hostname), or [`DEFAULT_HOSTNAME`] when empty.
    pub fn effective_hostname(&self) -> &str {
        if self.hostname.is_empty() {
            DEFAULT_HOSTNAME
        } else {
            &self.hostname
        }
    }

    /// A spec for `args` with BuildKit's defaults: empty environment, cwd `/`, root, hostname
    /// [`DEFAULT_HOSTNAME`], the sandbox network, no extra mounts.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: User::root(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            network: NetworkMode::Sandbox,
            extra_hosts: Vec::new(),
            mounts: Vec::new(),
        }
    }
}

/// The network a step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The host's network namespace, shared (`--network=default` and `--network=host`).
    #[default]
    Sandbox,
    /// A new, empty network namespace with only loopback, up (`--network=none`).
    None,
}

/// An extra mount inside the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the rootfs; created for the run when missing (see the module docs).
    pub target: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What an extra [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host file or directory (recursively), read-only or read-write.
    Bind {
        /// Host path of the file or directory.
        source: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs, mode 1777, gone after the run.
    Tmpfs {
        /// Size limit in bytes (the kernel's default, half of RAM, when `None`).
        size: Option<u64>,
    },
}

/// Which of the process's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// File descriptor 1.
    Stdout,
    /// File descriptor 2.
    Stderr,
}

/// Receives a step's output as it is produced, one chunk per read from the process's pipes.
///
/// Chunks of one stream arrive in order; stdout and stderr are separate pipes, so writes to both that
/// happen close together may arrive in either order. Any `FnMut(Stream, &[u8])` is a sink.
pub trait OutputSink {
    /// Called with each chunk read from `stream`.
    fn output(&mut self, stream: Stream, chunk: &[u8]);
}

impl<F: FnMut(Stream, &[u8])> OutputSink for F {
    fn output(&mut self, stream: Stream, chunk: &[u8]) {
        self(stream, chunk);
    }
}

/// An [`OutputSink`] that writes stdout and stderr to two writers, ignoring write errors (a closed
/// terminal must not fail the build).
#[derive(Debug)]
pub struct WriteSink<O, E> {
    /// Receives stdout.
    pub stdout: O,
    /// Receives stderr.
    pub stderr: E,
}

impl<O: Write, E: Write> OutputSink for WriteSink<O, E> {
    fn output(&mut self, stream: Stream, chunk: &[u8]) {
        let _ = match stream {
            Stream::Stdout => self.stdout.write_all(chunk).and_then(|()| self.stdout.flush()),
            Stream::Stderr => self.stderr.write_all(chunk).and_then(|()| self.stderr.flush()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_write_sink_splits_streams() {
        let mut sink = WriteSink {
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        sink.output(Stream::Stdout, b"out ");
        sink.output(Stream::Stderr, b"err");
        sink.output(Stream::Stdout, b"more");
        assert_eq!(
            (&sink.stdout[..], &sink.stderr[..]),
            (&b"out more"[..], &b"err"[..])
        );
    }
}
