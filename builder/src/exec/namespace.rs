//! [`NamespaceExecutor`]: the parent's side of a run. It prepares everything the child needs (paths,
//! mount points, the `/etc` files), spawns it through `std::process::Command` with the `pre_exec` hook
//! of [`child`](super::child), then streams output and waits for exit or cancellation in one `poll`.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Gid, Pid, PidfdFlags, Signal, Uid, pidfd_open, pidfd_send_signal};

use crate::fsroot::clean;

use super::child::{
    self, ChildConfig, ChildMount, ChildMountKind, DEV_LINKS, DEV_NODES, Failure, Report, Step,
};
use super::etc::EtcFiles;
use super::rootfs::{Root, StubKind, Stubs};
use super::{
    CancelToken, ExecError, Executor, ExitStatus, MountKind, NetworkMode, OutputSink, ProcessSpec, SetupStep,
    SignalProxy, Stream, user,
};

/// The built-in executor: Linux namespaces, no daemon, no external runtime. Requires root and Linux
/// 5.12 or later (the new mount API and `mount_setattr`).
#[derive(Debug, Clone)]
pub struct NamespaceExecutor {
    state_dir: PathBuf,
    signals: Option<SignalProxy>,
}

impl NamespaceExecutor {
    /// An executor writing its per-run files under the system's temporary directory.
    pub fn new() -> Self {
        Self {
            state_dir: std::env::temp_dir(),
            signals: None,
        }
    }

    /// Writes per-run files (the step's `/etc/hosts`...) under `dir` instead; each run uses its own
    /// subdirectory, removed after the run.
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Attaches each run to `signals` while its process runs: what the caller forwards there is sent
    /// to the step's PID 1 (see [`SignalProxy`]).
    #[must_use]
    pub fn with_signal_proxy(mut self, signals: SignalProxy) -> Self {
        self.signals = Some(signals);
        self
    }
}

impl Default for NamespaceExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor for NamespaceExecutor {
    fn run(
        &self,
        rootfs: &Path,
        spec: &ProcessSpec,
        output: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError> {
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        validate(spec)?;
        let root = Root::open(rootfs).map_err(|source| ExecError::Rootfs {
            path: rootfs.to_owned(),
            source,
        })?;
        let cwd = clean(&spec.cwd);
        root.mkdir_all(Path::new(&cwd))
            .map_err(|source| ExecError::Workdir {
                path: PathBuf::from(&cwd),
                source,
            })?;
        let etc = EtcFiles::write(&self.state_dir, spec)
            .map_err(|(path, source)| ExecError::StateFile { path, source })?;
        let mut stubs = Stubs::new(&root);
        let result = prepare(&root, &mut stubs, &etc, spec, &cwd)
            .and_then(|prepared| spawn_and_wait(prepared, spec, output, cancel, self.signals.as_ref()));
        // Mount points made for this run go whatever happened; a failure to remove one is an error,
        // since the rootfs would otherwise be committed with it.
        let cleanup = stubs.remove();
        let status = result?;
        cleanup.map_err(|(path, source)| ExecError::Cleanup { path, source })?;
        Ok(status)
    }
}

/// What the parent keeps to decode the child's reports, next to what the child gets.
struct Prepared {
    config: ChildConfig,
    report: OwnedFd,
    labels: Labels,
    env: Vec<(String, String)>,
}

/// Human names for what the child does by index, to word [`SetupStep`]s.
struct Labels {
    mounts: Vec<(String, String)>,
    user: (u32, u32),
    cwd: String,
}

fn validate(spec: &ProcessSpec) -> Result<(), ExecError> {
    let nul = |field: &'static str, value: &str| {
        if value.contains('\0') {
            Err(ExecError::NulByte {
                field,
                value: value.to_owned(),
            })
        } else {
            Ok(())
        }
    };
    if spec.args.is_empty() {
        return Err(ExecError::EmptyArgs);
    }
    for arg in &spec.args {
        nul("argument", arg)?;
    }
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains('=') {
            return Err(ExecError::InvalidEnvName { name: name.clone() });
        }
        nul("environment variable", name)?;
        nul("environment variable", value)?;
    }
    nul("working directory", &spec.cwd)?;
    nul("hostname", &spec.hostname)?;
    if spec.hostname.len() > 64 {
        return Err(ExecError::InvalidHostname {
            hostname: spec.hostname.clone(),
        });
    }
    for mount in &spec.mounts {
        nul("mount target", &mount.target)?;
        if !mount.target.starts_with('/') || clean(&mount.target).is_empty() {
            return Err(ExecError::InvalidMountTarget {
                target: mount.target.clone(),
            });
        }
        if let MountKind::Bind { source, .. } = &mount.kind {
            nul("mount source", &source.to_string_lossy())?;
        }
    }
    Ok(())
}

fn cstring(bytes: impl Into<Vec<u8>>) -> CString {
    // Every string reaching here was checked for NUL bytes by `validate` (paths from the rootfs or the
    // state directory cannot contain one).
    CString::new(bytes).expect("NUL bytes rejected by validate")
}

fn path_cstring(path: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().is_empty() {
        cstring(".")
    } else {
        cstring(path.as_os_str().as_bytes())
    }
}

/// Creates missing mount points (recorded in `stubs`) and computes the child's configuration.
fn prepare(
    root: &Root,
    stubs: &mut Stubs<'_>,
    etc: &EtcFiles,
    spec: &ProcessSpec,
    cwd: &str,
) -> Result<Prepared, ExecError> {
    let mut ensure = |target: &str, kind: StubKind| {
        stubs
            .ensure(Path::new(target), kind)
            .map(|resolved| path_cstring(&resolved))
            .map_err(|source| ExecError::MountPoint {
                path: PathBuf::from("/").join(target),
                source,
            })
    };
    let (proc, sys, dev) = (
        ensure("proc", StubKind::Dir)?,
        ensure("sys", StubKind::Dir)?,
        ensure("dev", StubKind::Dir)?,
    );
    let mut mounts = Vec::new();
    let mut labels = Vec::new();
    for (host, target) in &etc.files {
        let source = path_cstring(host);
        mounts.push(ChildMount {
            target: ensure(target, StubKind::File)?,
            kind: ChildMountKind::Bind {
                source,
                readonly: true,
            },
        });
        labels.push((format!("bind of {}", host.display()), format!("/{target}")));
    }
    // Parents before children, so a mount inside another mount's target lands on top of it.
    let mut extra: Vec<_> = spec.mounts.iter().map(|m| (clean(&m.target), m)).collect();
    extra.sort_by_key(|(target, _)| target.split('/').count());
    for (target, mount) in extra {
        let (kind, stub, what) = match &mount.kind {
            MountKind::Bind { source, readonly } => {
                let meta = std::fs::metadata(source).map_err(|err| ExecError::MountSource {
                    path: source.clone(),
                    source: err,
                })?;
                let stub = if meta.is_dir() {
                    StubKind::Dir
                } else {
                    StubKind::File
                };
                let kind = ChildMountKind::Bind {
                    source: path_cstring(source),
                    readonly: *readonly,
                };
                (kind, stub, format!("bind of {}", source.display()))
            }
            MountKind::Tmpfs { size } => {
                let kind = ChildMountKind::Tmpfs {
                    size: size.map(|bytes| cstring(bytes.to_string())),
                };
                (kind, StubKind::Dir, "tmpfs".to_owned())
            }
        };
        mounts.push(ChildMount {
            target: ensure(&target, stub)?,
            kind,
        });
        labels.push((what, format!("/{target}")));
    }

    let (report_read, report) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|err| ExecError::Spawn { source: err.into() })?;
    // Read only once every writer is gone, without blocking on a copy a concurrent fork may briefly hold.
    rustix::fs::fcntl_setfl(&report_read, OFlags::NONBLOCK)
        .map_err(|err| ExecError::Spawn { source: err.into() })?;
    let mut env = spec.env.clone();
    if !env.iter().any(|(name, _)| name == "HOME") {
        env.push(("HOME".to_owned(), user::home_for_uid(root, spec.user.uid)));
    }
    let config = ChildConfig {
        parent: rustix::process::getpid(),
        new_network: spec.network == NetworkMode::None,
        rootfs: path_cstring(root.path()),
        proc,
        sys,
        dev,
        mounts,
        hostname: cstring(spec.effective_hostname()),
        uid: Uid::from_raw(spec.user.uid),
        gid: Gid::from_raw(spec.user.gid),
        groups: spec
            .user
            .additional_gids
            .iter()
            .map(|gid| Gid::from_raw(*gid))
            .collect(),
        cwd: cstring(format!("/{cwd}")),
        report,
    };
    let labels = Labels {
        mounts: labels,
        user: (spec.user.uid, spec.user.gid),
        cwd: format!("/{cwd}"),
    };
    Ok(Prepared {
        config,
        report: report_read,
        labels,
        env,
    })
}

fn spawn_and_wait(
    prepared: Prepared,
    spec: &ProcessSpec,
    output: &mut dyn OutputSink,
    cancel: &CancelToken,
    signals: Option<&SignalProxy>,
) -> Result<ExitStatus, ExecError> {
    let Prepared {
        config,
        report,
        labels,
        env,
    } = prepared;
    let mut command = Command::new(&spec.args[0]);
    command
        .args(&spec.args[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the hook runs between fork and exec; it only makes raw syscalls on `config`, computed
    // above, and never allocates (see the `child` module).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || child::enter(&config));
    }
    let spawned = command.spawn();
    // Dropping the command drops the hook and with it our copy of the report pipe's write end.
    drop(command);
    match spawned {
        Ok(child) => supervise(child, output, cancel, signals, &report),
        Err(err) => Err(spawn_error(err, &read_reports(&report), &labels, &spec.args[0])),
    }
}

fn read_reports(report: &OwnedFd) -> Vec<Report> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n @ 1..) = rustix::io::read(report, &mut buf) {
        bytes.extend_from_slice(&buf[..n]);
    }
    Report::decode_all(&bytes)
}

fn spawn_error(err: io::Error, reports: &[Report], labels: &Labels, program: &str) -> ExecError {
    if let Some(failure) = reports.iter().find_map(|r| {
        if let Report::Failure(f) = r {
            Some(*f)
        } else {
            None
        }
    }) {
        return ExecError::Setup {
            step: labels.describe(failure),
            source: io::Error::from_raw_os_error(failure.errno),
        };
    }
    let program = program.to_owned();
    match (reports.contains(&Report::Ready), err.kind()) {
        (true, io::ErrorKind::NotFound) => ExecError::NotFound { program },
        (true, _) => ExecError::Exec { program, source: err },
        (false, _) => ExecError::Spawn { source: err },
    }
}

impl Labels {
    fn describe(&self, failure: Failure) -> SetupStep {
        let index = failure.index as usize;
        let mount = |what: &str, target: &str| SetupStep::Mount {
            what: what.to_owned(),
            target: target.to_owned(),
        };
        match failure.step {
            Step::Session | Step::DeathSignal => SetupStep::Process,
            Step::Namespaces => SetupStep::Namespaces,
            Step::Fork => SetupStep::Fork,
            Step::MakePrivate => SetupStep::MakePrivate,
            Step::BindRootfs => SetupStep::BindRootfs,
            Step::Proc => mount("proc", "/proc"),
            Step::Sys => mount("sysfs", "/sys"),
            Step::Dev => mount("tmpfs", "/dev"),
            Step::DevNode => {
                let (name, host) = DEV_NODES[index.min(DEV_NODES.len() - 1)];
                let (name, host) = (name.to_string_lossy(), host.to_string_lossy());
                mount(&format!("bind of {host}"), &format!("/dev/{name}"))
            }
            Step::Devpts => mount("devpts", "/dev/pts"),
            Step::Shm => mount("tmpfs", "/dev/shm"),
            Step::DevLink => SetupStep::DevSymlink {
                path: format!(
                    "/dev/{}",
                    DEV_LINKS[index.min(DEV_LINKS.len() - 1)].0.to_string_lossy()
                ),
            },
            Step::Mount => match self.mounts.get(index) {
                Some((what, target)) => mount(what, target),
                None => mount("a mount", "?"),
            },
            Step::Hostname => SetupStep::Hostname,
            Step::Loopback => SetupStep::Loopback,
            Step::PivotRoot => SetupStep::PivotRoot,
            Step::SetGroups | Step::SetGid | Step::SetUid => SetupStep::User {
                uid: self.user.0,
                gid: self.user.1,
            },
            Step::Chdir => SetupStep::Chdir {
                cwd: self.cwd.clone(),
            },
        }
    }
}

/// Reaps the intermediate process; if dropped before that (a panicking sink), cancels the step first.
struct Reaper {
    child: Option<Child>,
    pidfd: OwnedFd,
}

impl Reaper {
    /// Asks the intermediate to kill the step: it SIGKILLs PID 1, which takes the namespace down.
    fn cancel(&self) {
        let _ = pidfd_send_signal(&self.pidfd, Signal::TERM);
    }

    /// Asks the intermediate to send `signal` to PID 1 (see `child::forward_signal`).
    fn forward(&self, signal: i32) {
        let Some(child) = &self.child else { return };
        let value = libc::sigval {
            // The signal number travels as the value's integer; the pointer type is libc's spelling.
            sival_ptr: usize::try_from(signal).unwrap_or(0) as *mut libc::c_void,
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        // SAFETY: sigqueue takes no pointers to memory; the pid is our unreaped child's (`child` is
        // only waited through `wait`, which takes it), so it cannot name another process.
        unsafe { libc::sigqueue(pid, child::forward_signal(), value) };
    }

    fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        let mut child = self.child.take().expect("waited once");
        child.wait()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.cancel();
            let _ = child.wait();
        }
    }
}

/// Streams output until both pipes close and the intermediate exits, forwarding cancellation and the
/// signals `signals` carries.
fn supervise(
    mut child: Child,
    output: &mut dyn OutputSink,
    cancel: &CancelToken,
    signals: Option<&SignalProxy>,
    report: &OwnedFd,
) -> Result<ExitStatus, ExecError> {
    let wait_err = |err: Errno| ExecError::Wait { source: err.into() };
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // The pidfd is taken before any wait, so it names our unreaped child: no pid-reuse race.
    let pidfd = match pidfd_open(Pid::from_child(&child), PidfdFlags::empty()) {
        Ok(pidfd) => pidfd,
        Err(err) => {
            // Without a pidfd there is no safe way to wait; kill the intermediate (PID 1 follows through
            // its death signal) rather than leave the step running.
            let _ = child.kill();
            let _ = child.wait();
            return Err(wait_err(err));
        }
    };
    let mut reaper = Reaper {
        child: Some(child),
        pidfd,
    };
    // Attached from now until the intermediate is reaped: before, there is no process to signal.
    let _attached = signals.map(SignalProxy::attach);
    let mut streams = [(Stream::Stdout, stdout), (Stream::Stderr, stderr)];
    let (mut exited, mut cancelled) = (false, false);
    let mut buf = vec![0u8; 64 * 1024];
    while !exited || streams.iter().any(|(_, fd)| fd.is_some()) {
        let open: Vec<usize> = (0..streams.len()).filter(|i| streams[*i].1.is_some()).collect();
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .filter_map(|i| streams[*i].1.as_ref())
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        if !cancelled {
            fds.push(PollFd::from_borrowed_fd(cancel.fd(), PollFlags::IN));
        }
        if !exited {
            fds.push(PollFd::new(&reaper.pidfd, PollFlags::IN));
            if let Some(signals) = signals {
                fds.push(PollFd::from_borrowed_fd(signals.fd(), PollFlags::IN));
            }
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(err) => return Err(wait_err(err)),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        for (slot, index) in open.iter().enumerate() {
            let (stream, fd) = &mut streams[*index];
            if !ready[slot] {
                continue;
            }
            match fd.as_ref().map(|fd| rustix::io::read(fd, &mut buf)) {
                Some(Ok(0)) => *fd = None,
                Some(Ok(n)) => output.output(*stream, &buf[..n]),
                Some(Err(Errno::INTR | Errno::AGAIN)) | None => {}
                Some(Err(err)) => return Err(wait_err(err)),
            }
        }
        let mut slot = open.len();
        if !cancelled {
            if ready[slot] {
                cancelled = true;
                reaper.cancel();
            }
            slot += 1;
        }
        if !exited {
            if let Some(signals) = signals.filter(|_| ready[slot + 1]) {
                for signal in signals.take() {
                    reaper.forward(signal);
                }
            }
            exited = ready[slot];
        }
    }
    let intermediate = reaper.wait().map_err(|source| ExecError::Wait { source })?;
    if cancelled {
        return Err(ExecError::Cancelled);
    }
    // PID 1's own status, as the intermediate saw it; its exit code only if it could not say.
    let reported = read_reports(report).into_iter().find_map(|r| {
        if let Report::Exit(raw) = r {
            Some(raw)
        } else {
            None
        }
    });
    Ok(reported.map_or_else(
        || {
            use std::os::unix::process::ExitStatusExt;
            intermediate.signal().map_or(
                ExitStatus::Exited(intermediate.code().unwrap_or(-1)),
                ExitStatus::Signaled,
            )
        },
        ExitStatus::from_wait_status,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_clean_paths_like_go() {
        assert_eq!(clean("/"), "");
        assert_eq!(clean("/a/./b//c/"), "a/b/c");
        assert_eq!(clean("/a/../../b"), "b");
        assert_eq!(clean("rel/x"), "rel/x");
    }

    #[test]
    fn exec_spec_validation() {
        let spec = |f: fn(&mut ProcessSpec)| {
            let mut spec = ProcessSpec::new(["true"]);
            f(&mut spec);
            validate(&spec)
        };
        assert!(spec(|_| {}).is_ok());
        assert!(matches!(spec(|s| s.args.clear()), Err(ExecError::EmptyArgs)));
        assert!(matches!(
            spec(|s| s.args.push("a\0b".into())),
            Err(ExecError::NulByte { .. })
        ));
        assert!(matches!(
            spec(|s| s.env.push(("A=B".into(), String::new()))),
            Err(ExecError::InvalidEnvName { .. })
        ));
        assert!(matches!(
            spec(|s| s.hostname = "h".repeat(65)),
            Err(ExecError::InvalidHostname { .. })
        ));
        let mount = |target: &str| super::super::Mount {
            target: target.into(),
            kind: MountKind::Tmpfs { size: None },
        };
        let mut bad = ProcessSpec::new(["true"]);
        bad.mounts.push(mount("relative"));
        assert!(matches!(
            validate(&bad),
            Err(ExecError::InvalidMountTarget { .. })
        ));
        bad.mounts[0] = mount("/..");
        assert!(matches!(
            validate(&bad),
            Err(ExecError::InvalidMountTarget { .. })
        ));
    }
}
