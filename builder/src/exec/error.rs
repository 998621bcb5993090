//! Why a step could not be run.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A step that could not be run (a step that ran and exited non-zero is not an error here: see
/// [`ExitStatus::check`](super::ExitStatus::check)).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec has no argv.
    #[error("the process has no arguments")]
    EmptyArgs,
    /// An argument, variable, path or hostname contains a NUL byte, which the kernel cannot take.
    #[error("{field} contains a NUL byte: {value:?}")]
    NulByte {
        /// Which part of the spec.
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// An environment variable name that is empty or contains `=`.
    #[error("invalid environment variable name {name:?}")]
    InvalidEnvName {
        /// The name.
        name: String,
    },
    /// A hostname the kernel refuses (longer than 64 bytes).
    #[error("invalid hostname {hostname:?}: longer than 64 bytes")]
    InvalidHostname {
        /// The hostname.
        hostname: String,
    },
    /// A `RUN --mount` target that is relative or `/`.
    #[error("mount target {target:?} must be an absolute path other than /")]
    InvalidMountTarget {
        /// The target.
        target: String,
    },
    /// The rootfs directory cannot be opened.
    #[error("opening rootfs {}", path.display())]
    Rootfs {
        /// The rootfs path given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The working directory is missing and cannot be created (BuildKit's wording).
    #[error("failed to create working directory {}", path.display())]
    Workdir {
        /// The working directory, inside the rootfs.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file for `/etc` could not be written to the executor's state directory.
    #[error("writing {}", path.display())]
    StateFile {
        /// Host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A missing mount point could not be created in the rootfs.
    #[error("creating mount point {} in the rootfs", path.display())]
    MountPoint {
        /// The mount point, inside the rootfs.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A bind mount's source does not exist or cannot be inspected.
    #[error("bind mount source {}", path.display())]
    MountSource {
        /// Host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A step of the namespace and mount setup failed, before the process was started.
    #[error("{step}")]
    Setup {
        /// What was being done.
        step: SetupStep,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `args[0]` is not in the step's `PATH` (runc's wording).
    #[error("exec: {program:?}: executable file not found in $PATH")]
    NotFound {
        /// `args[0]`.
        program: String,
    },
    /// `args[0]` exists but could not be executed.
    #[error("exec: {program:?}")]
    Exec {
        /// `args[0]`.
        program: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The step's process could not be created.
    #[error("spawning the step's process")]
    Spawn {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for the step's process or reading its output failed.
    #[error("waiting for the step's process")]
    Wait {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A mount point created for the run could not be removed: the rootfs is not clean.
    #[error("removing mount point {} from the rootfs", path.display())]
    Cleanup {
        /// Host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The step was cancelled through its [`CancelToken`](super::CancelToken); all its processes are gone.
    #[error("the step was cancelled")]
    Cancelled,
}

/// The part of the setup that failed (see [`ExecError::Setup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupStep {
    /// The step's own session and parent-death signal.
    Process,
    /// Creating the namespaces.
    Namespaces,
    /// Forking PID 1 of the new pid namespace.
    Fork,
    /// Making the mount namespace's mounts private.
    MakePrivate,
    /// Bind-mounting the rootfs onto itself.
    BindRootfs,
    /// Mounting `what` on `target`, a path inside the rootfs.
    Mount {
        /// A filesystem type (`proc`, `tmpfs`...) or `bind of <host path>`.
        what: String,
        /// Path inside the rootfs.
        target: String,
    },
    /// Creating a symlink in the step's `/dev`.
    DevSymlink {
        /// Path inside the rootfs.
        path: String,
    },
    /// Setting the hostname.
    Hostname,
    /// Bringing the loopback interface up.
    Loopback,
    /// Switching root into the rootfs.
    PivotRoot,
    /// Switching to the step's user.
    User {
        /// The user id.
        uid: u32,
        /// The group id.
        gid: u32,
    },
    /// Entering the working directory.
    Chdir {
        /// Path inside the rootfs.
        cwd: String,
    },
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process => f.write_str("setting up the step's process"),
            Self::Namespaces => f.write_str("creating namespaces"),
            Self::Fork => f.write_str("forking PID 1 of the step"),
            Self::MakePrivate => f.write_str("making mounts private"),
            Self::BindRootfs => f.write_str("bind-mounting the rootfs"),
            Self::Mount { what, target } => write!(f, "mounting {what} on {target}"),
            Self::DevSymlink { path } => write!(f, "creating symlink {path}"),
            Self::Hostname => f.write_str("setting the hostname"),
            Self::Loopback => f.write_str("bringing up the loopback interface"),
            Self::PivotRoot => f.write_str("switching root into the rootfs"),
            Self::User { uid, gid } => write!(f, "switching to uid {uid} gid {gid}"),
            Self::Chdir { cwd } => write!(f, "changing to working directory {cwd}"),
        }
    }
}
