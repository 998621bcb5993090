//! What runs between `fork` and `exec`: the intermediate process, then PID 1 of the new pid namespace.
//!
//! The caller is multi-threaded, so after fork only async-signal-safe work is allowed: no allocation,
//! no locks, raw syscalls only. Everything this module needs (paths as `CString`s, ids, flags) is
//! computed by the parent in a [`ChildConfig`] before forking; failures are reported as fixed-size
//! records on a pipe ([`Report`]) and decoded by the parent.
//!
//! The process tree of one step:
//!
//! ```text
//! kiln (any thread) --std fork--> intermediate --fork--> PID 1 (setup, then exec of args[0])
//!                                  unshare(), waits,      new pid ns: its children, grandchildren...
//!                                  forwards cancellation
//!                                  and signals
//! ```
//!
//! kiln talks to the intermediate with signals: SIGTERM means "cancel" (it SIGKILLs PID 1, and the
//! kernel the whole namespace), and [`forward_signal`] carries a signal number as its value (queued
//! with `sigqueue`) for the intermediate to send to PID 1, as `docker run`'s signal proxy does.
//!
//! A new pid namespace applies to the *children* of the process that unshares it, hence the second
//! fork; the intermediate stays outside, reaps PID 1 (whose exit the kernel reports only once every
//! process of the namespace is gone) and exits with its status.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, mkdirat, openat, openat2, symlinkat};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags, fsconfig_create, fsconfig_set_string, fsmount, fsopen, mount_change, move_mount, open_tree,
    unmount,
};
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Gid, Pid, Signal, Uid, chdir, fchdir, getppid, pivot_root, setsid};
use rustix::thread::{UnshareFlags, set_thread_gid, set_thread_groups, set_thread_uid};

/// Everything the child needs, computed before forking.
#[derive(Debug)]
pub(super) struct ChildConfig {
    /// kiln's pid: the intermediate checks it is still its parent after arming the death signal.
    pub(super) parent: Pid,
    /// Also unshare the network namespace.
    pub(super) new_network: bool,
    /// Absolute host path of the rootfs.
    pub(super) rootfs: CString,
    /// Mount points inside the rootfs (relative, symlinks already resolved by the parent).
    pub(super) proc: CString,
    pub(super) sys: CString,
    pub(super) dev: CString,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, then `RUN --mount`s, in mount order.
    pub(super) mounts: Vec<ChildMount>,
    pub(super) hostname: CString,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    pub(super) groups: Vec<Gid>,
    /// Absolute working directory inside the rootfs.
    pub(super) cwd: CString,
    /// Write end of the report pipe (close-on-exec).
    pub(super) report: OwnedFd,
}

/// One mount on a path inside the rootfs.
#[derive(Debug)]
pub(super) struct ChildMount {
    /// Relative to the rootfs, symlinks resolved.
    pub(super) target: CString,
    pub(super) kind: ChildMountKind,
}

#[derive(Debug)]
pub(super) enum ChildMountKind {
    Bind { source: CString, readonly: bool },
    Tmpfs { size: Option<CString> },
}

/// The setup step that failed, reported to the parent by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Step {
    Session = 1,
    DeathSignal,
    Namespaces,
    Fork,
    MakePrivate,
    BindRootfs,
    Proc,
    Sys,
    Dev,
    /// `index` is into [`DEV_NODES`].
    DevNode,
    Devpts,
    Shm,
    DevLink,
    /// `index` is into [`ChildConfig::mounts`].
    Mount,
    Hostname,
    Loopback,
    PivotRoot,
    SetGroups,
    SetGid,
    SetUid,
    Chdir,
}

const STEPS: [Step; 21] = [
    Step::Session,
    Step::DeathSignal,
    Step::Namespaces,
    Step::Fork,
    Step::MakePrivate,
    Step::BindRootfs,
    Step::Proc,
    Step::Sys,
    Step::Dev,
    Step::DevNode,
    Step::Devpts,
    Step::Shm,
    Step::DevLink,
    Step::Mount,
    Step::Hostname,
    Step::Loopback,
    Step::PivotRoot,
    Step::SetGroups,
    Step::SetGid,
    Step::SetUid,
    Step::Chdir,
];

/// Device nodes bind-mounted from the host into the step's `/dev` (name, host path).
pub(super) const DEV_NODES: [(&CStr, &CStr); 6] = [
    (c"null", c"/dev/null"),
    (c"zero", c"/dev/zero"),
    (c"full", c"/dev/full"),
    (c"random", c"/dev/random"),
    (c"urandom", c"/dev/urandom"),
    (c"tty", c"/dev/tty"),
];

/// Symlinks in the step's `/dev` (name, target).
pub(super) const DEV_LINKS: [(&CStr, &CStr); 5] = [
    (c"ptmx", c"pts/ptmx"),
    (c"fd", c"/proc/self/fd"),
    (c"stdin", c"/proc/self/fd/0"),
    (c"stdout", c"/proc/self/fd/1"),
    (c"stderr", c"/proc/self/fd/2"),
];

/// A setup failure: which step, which item of it, and errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) step: Step,
    pub(super) index: u32,
    pub(super) errno: i32,
}

/// What the child processes tell the parent on the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    /// Setup failed before exec.
    Failure(Failure),
    /// Setup is done; what follows is std's exec.
    Ready,
    /// PID 1 ended with this `waitpid` status.
    Exit(i32),
}

const RECORD: usize = 12;
const TAG_FAILURE: u8 = 1;
const TAG_EXIT: u8 = 2;
const TAG_READY: u8 = 3;

impl Report {
    fn encode(self) -> [u8; RECORD] {
        let (tag, step, index, value) = match self {
            Self::Failure(f) => (TAG_FAILURE, f.step as u8, f.index, f.errno),
            Self::Ready => (TAG_READY, 0, 0, 0),
            Self::Exit(status) => (TAG_EXIT, 0, 0, status),
        };
        let mut out = [0; RECORD];
        out[0] = tag;
        out[1] = step;
        out[4..8].copy_from_slice(&index.to_le_bytes());
        out[8..12].copy_from_slice(&value.to_le_bytes());
        out
    }

    /// Decodes the records the parent read from the pipe (each write is atomic: under `PIPE_BUF`).
    pub(super) fn decode_all(bytes: &[u8]) -> Vec<Self> {
        bytes
            .chunks_exact(RECORD)
            .filter_map(|r| {
                let index = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
                let value = i32::from_le_bytes([r[8], r[9], r[10], r[11]]);
                match r[0] {
                    TAG_EXIT => Some(Self::Exit(value)),
                    TAG_READY => Some(Self::Ready),
                    TAG_FAILURE => {
                        let step = *STEPS.iter().find(|s| **s as u8 == r[1])?;
                        Some(Self::Failure(Failure {
                            step,
                            index,
                            errno: value,
                        }))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

impl ChildConfig {
    /// Sends `report` to the parent. Best effort: the pipe cannot be full (a few records at most).
    fn send(&self, report: Report) {
        let _ = rustix::io::write(&self.report, &report.encode());
    }

    /// Reports `failure` and turns it into the error std hands to `spawn`'s caller.
    fn fail(&self, failure: Failure) -> io::Error {
        self.send(Report::Failure(failure));
        io::Error::from_raw_os_error(failure.errno)
    }
}

fn at(step: Step) -> impl Fn(Errno) -> Failure {
    move |errno| Failure {
        step,
        index: 0,
        errno: errno.raw_os_error(),
    }
}

fn at_index(step: Step, index: usize) -> impl Fn(Errno) -> Failure {
    move |errno| Failure {
        step,
        index: u32::try_from(index).unwrap_or(u32::MAX),
        errno: errno.raw_os_error(),
    }
}

fn last_errno() -> Errno {
    Errno::from_raw_os_error(io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// The `pre_exec` hook: runs in the process std forked. In the intermediate it never returns; in PID 1
/// it returns `Ok` once the container is ready, and std execs `args[0]`.
pub(super) fn enter(cfg: &ChildConfig) -> io::Result<()> {
    let (death_read, death_write) = prepare_intermediate(cfg).map_err(|f| cfg.fail(f))?;
    // SAFETY: this process is single-threaded (a fresh fork), so forking again is sound; the child only
    // makes raw syscalls on data computed before the first fork.
    match unsafe { libc::fork() } {
        -1 => Err(cfg.fail(at(Step::Fork)(last_errno()))),
        0 => {
            drop(death_write);
            pid1(cfg, &death_read).map_err(|f| cfg.fail(f))?;
            cfg.send(Report::Ready);
            Ok(())
        }
        pid1 => {
            drop(death_read);
            supervise(cfg, pid1, &death_write)
        }
    }
}

/// The intermediate's setup, in the order it must happen. Returns the "intermediate alive" pipe.
fn prepare_intermediate(cfg: &ChildConfig) -> Result<(OwnedFd, OwnedFd), Failure> {
    // A session of its own: a terminal's Ctrl-C reaches kiln only, which cancels cleanly through the
    // token, instead of hitting the step's processes behind the solver's back.
    setsid().map_err(at(Step::Session))?;
    // If kiln dies (even SIGKILL), the step dies with it. Checked after arming, as kiln may have died
    // in between. The death signal follows the forking *thread*, which is blocked in `run` until we exit.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(at(Step::DeathSignal))?;
    if getppid() != Some(cfg.parent) {
        // SAFETY: _exit is async-signal-safe and ends this process only.
        unsafe { libc::_exit(1) };
    }
    // Signals the intermediate waits for in `supervise`. Blocked before PID 1 exists so none is lost;
    // dispositions are reset so PID 1 does not inherit kiln's (an ignored SIGCHLD would break `wait`
    // in the step's shell).
    reset_signal_dispositions();
    let waited = waited_signals();
    // SAFETY: sigprocmask with valid pointers; async-signal-safe.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const waited, std::ptr::null_mut()) };
    // The namespaces. The new pid namespace takes effect for our next child, which becomes its PID 1.
    let mut flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC | UnshareFlags::NEWPID;
    if cfg.new_network {
        flags |= UnshareFlags::NEWNET;
    }
    // SAFETY: none of these flags unshares the file table or fs state Rust code relies on.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(at(Step::Namespaces))?;
    // PID 1 watches the read end: if it hangs up, the intermediate is gone (see `pid1`).
    pipe_with(PipeFlags::CLOEXEC).map_err(at(Step::Fork))
}

/// The intermediate after the fork: wait for PID 1, forward cancellation, exit with PID 1's status.
fn supervise(cfg: &ChildConfig, pid1: libc::pid_t, death_write: &OwnedFd) -> ! {
    // Keep only the report pipe and the death pipe. Closing std's exec-error pipe lets `spawn` return
    // as soon as PID 1 execs; closing everything else keeps this process from holding other steps'
    // pipes open (their EOF is how the parent knows those steps are done).
    close_fds_except(death_write.as_raw_fd(), cfg.report.as_raw_fd());
    let waited = waited_signals();
    loop {
        // SAFETY: siginfo_t is plain data that sigwaitinfo fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set and out pointer; async-signal-safe.
        let signal = unsafe { libc::sigwaitinfo(&raw const waited, &raw mut info) };
        if signal == libc::SIGTERM {
            // Cancellation. Killing PID 1 makes the kernel kill every process of the namespace.
            // SAFETY: pid1 is our unreaped child, so the pid cannot have been reused.
            unsafe { libc::kill(pid1, libc::SIGKILL) };
        } else if signal == forward_signal() {
            // SAFETY: the union fields of a queued signal's info are those sigqueue filled in.
            let (sender, value) = unsafe { (info.si_pid(), info.si_value()) };
            // Only kiln's requests: the value is a signal number it caught.
            let forwarded = libc::c_int::try_from(value.sival_ptr as usize).unwrap_or(0);
            if info.si_code == libc::SI_QUEUE && sender == cfg.parent.as_raw_nonzero().get() && forwarded > 0
            {
                // SAFETY: as above; a signal PID 1 has no handler for is dropped by the kernel.
                unsafe { libc::kill(pid1, forwarded) };
            }
        }
        let mut status = 0;
        // SAFETY: valid out pointer.
        if unsafe { libc::waitpid(pid1, &raw mut status, libc::WNOHANG) } == pid1 {
            cfg.send(Report::Exit(status));
            let code = if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            };
            // SAFETY: as above.
            unsafe { libc::_exit(code) };
        }
    }
}

/// PID 1's setup, top to bottom in the order the kernel needs. Returns to std, which execs.
fn pid1(cfg: &ChildConfig, death_read: &OwnedFd) -> Result<(), Failure> {
    // Die with the intermediate (hence with kiln). If it died before this was armed, the pipe shows it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(at(Step::DeathSignal))?;
    if intermediate_is_gone(death_read) {
        // SAFETY: as above.
        unsafe { libc::_exit(1) };
    }
    // The new mount namespace starts as a copy whose mounts are peers of the host's (systemd makes `/`
    // shared): make them all private first, so nothing below propagates to the host, or back.
    mount_change(c"/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(at(Step::MakePrivate))?;
    // Bind the rootfs onto itself: pivot_root needs the new root to be a mount point, and the clone's
    // descriptor is the in-root anchor for every later mount target.
    let root = bind_tree(&cfg.rootfs, true, false).map_err(at(Step::BindRootfs))?;
    move_mount(
        &root,
        c"",
        CWD,
        cfg.rootfs.as_c_str(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(at(Step::BindRootfs))?;
    // /proc for the new pid namespace: only a process inside it (we are its PID 1) mounts that view.
    let proc =
        fs_mount(c"proc", &[], MountAttrFlags::MOUNT_ATTR_NOSUID | NODEV_NOEXEC).map_err(at(Step::Proc))?;
    attach(&proc, &target(&root, &cfg.proc).map_err(at(Step::Proc))?).map_err(at(Step::Proc))?;
    // /sys read-only: a fresh sysfs shows the step's network namespace (only `lo` under --network=none).
    let sys_attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID | NODEV_NOEXEC;
    let sys = fs_mount(c"sysfs", &[], sys_attrs).map_err(at(Step::Sys))?;
    attach(&sys, &target(&root, &cfg.sys).map_err(at(Step::Sys))?).map_err(at(Step::Sys))?;
    // /dev: a small tmpfs with only the safe host devices, never the host's /dev.
    let dev_opts: [(&CStr, &CStr); 2] = [(c"mode", c"755"), (c"size", c"65536k")];
    let dev_attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    let dev = fs_mount(c"tmpfs", &dev_opts, dev_attrs).map_err(at(Step::Dev))?;
    attach(&dev, &target(&root, &cfg.dev).map_err(at(Step::Dev))?).map_err(at(Step::Dev))?;
    populate_dev(&dev)?;
    // /etc/hosts, /etc/resolv.conf, /etc/hostname, then RUN --mounts. Bind sources are host paths, so
    // this must happen before the host's root is detached below.
    for (index, mount) in cfg.mounts.iter().enumerate() {
        mount_one(&root, mount).map_err(at_index(Step::Mount, index))?;
    }
    // The UTS namespace is the step's own: naming it touches nothing on the host.
    rustix::system::sethostname(cfg.hostname.as_bytes()).map_err(at(Step::Hostname))?;
    // A new network namespace starts with `lo` down; BuildKit's --network=none has it up.
    if cfg.new_network {
        loopback_up().map_err(at(Step::Loopback))?;
    }
    // Enter the rootfs: pivot_root(".", ".") stacks the old root on the new one, then a lazy unmount
    // drops it. After this the host's filesystem is unreachable.
    pivot_into(&root).map_err(at(Step::PivotRoot))?;
    // runc's file-creation mask, whatever kiln's is.
    rustix::process::umask(Mode::from_raw_mode(0o022));
    // Identity next: setgroups and setgid need CAP_SETGID, which setuid to a non-root user drops.
    set_thread_groups(&cfg.groups).map_err(at(Step::SetGroups))?;
    set_thread_gid(cfg.gid).map_err(at(Step::SetGid))?;
    set_thread_uid(cfg.uid).map_err(at(Step::SetUid))?;
    // As the user: a working directory the user may not enter fails here, as it does with runc.
    chdir(cfg.cwd.as_c_str()).map_err(at(Step::Chdir))?;
    // Nothing of kiln's leaks into the step: every descriptor above stdio closes at exec...
    close_range(3, libc::CLOSE_RANGE_CLOEXEC);
    // ...and the step starts with no blocked signals.
    let empty = empty_signal_set();
    // SAFETY: valid set; async-signal-safe.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut()) };
    Ok(())
}

const NODEV_NOEXEC: MountAttrFlags =
    MountAttrFlags::MOUNT_ATTR_NODEV.union(MountAttrFlags::MOUNT_ATTR_NOEXEC);

fn populate_dev(dev: &OwnedFd) -> Result<(), Failure> {
    for (index, (name, host)) in DEV_NODES.iter().enumerate() {
        let fail = at_index(Step::DevNode, index);
        let flags = OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let node = openat(dev, *name, flags, Mode::from_raw_mode(0o666)).map_err(&fail)?;
        attach(&bind_tree(host, false, false).map_err(&fail)?, &node).map_err(&fail)?;
    }
    // A private devpts instance: the step's ptys are its own, /dev/ptmx points into it.
    mkdirat(dev, c"pts", Mode::from_raw_mode(0o755)).map_err(at(Step::Devpts))?;
    let pts_target = openat(
        dev,
        c"pts",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(Step::Devpts))?;
    let pts_opts: [(&CStr, &CStr); 2] = [(c"ptmxmode", c"0666"), (c"mode", c"0620")];
    let pts_attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let pts = fs_mount(c"devpts", &pts_opts, pts_attrs).map_err(at(Step::Devpts))?;
    attach(&pts, &pts_target).map_err(at(Step::Devpts))?;
    mkdirat(dev, c"shm", Mode::from_raw_mode(0o1777)).map_err(at(Step::Shm))?;
    let shm_target = openat(
        dev,
        c"shm",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(Step::Shm))?;
    let shm_opts: [(&CStr, &CStr); 2] = [(c"mode", c"1777"), (c"size", c"65536k")];
    let shm = fs_mount(
        c"tmpfs",
        &shm_opts,
        MountAttrFlags::MOUNT_ATTR_NOSUID | NODEV_NOEXEC,
    )
    .map_err(at(Step::Shm))?;
    attach(&shm, &shm_target).map_err(at(Step::Shm))?;
    for (index, (name, link)) in DEV_LINKS.iter().enumerate() {
        symlinkat(*link, dev, *name).map_err(at_index(Step::DevLink, index))?;
    }
    Ok(())
}

fn mount_one(root: &OwnedFd, mount: &ChildMount) -> Result<(), Errno> {
    let mnt = match &mount.kind {
        ChildMountKind::Bind { source, readonly } => bind_tree(source, true, *readonly)?,
        ChildMountKind::Tmpfs { size } => {
            let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
            match size {
                Some(size) => fs_mount(c"tmpfs", &[(c"mode", c"1777"), (c"size", size.as_c_str())], attrs)?,
                None => fs_mount(c"tmpfs", &[(c"mode", c"1777")], attrs)?,
            }
        }
    };
    attach(&mnt, &target(root, &mount.target)?)
}

/// An `O_PATH` descriptor for `rel`, resolved inside the rootfs (symlinks cannot lead out of it).
fn target(root: &OwnedFd, rel: &CStr) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    openat2(root, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), resolve)
}

/// A new, detached mount of filesystem `fstype` with `options`.
fn fs_mount(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: MountAttrFlags) -> Result<OwnedFd, Errno> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (key, value) in options {
        fsconfig_set_string(&fs, *key, *value)?;
    }
    fsconfig_create(&fs)?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}

/// A detached copy of the host mount at `source` (its submounts too when `recursive`).
fn bind_tree(source: &CStr, recursive: bool, readonly: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(CWD, source, flags)?;
    if readonly {
        set_readonly(&tree, recursive)?;
    }
    Ok(tree)
}

/// `mount_setattr(MOUNT_ATTR_RDONLY)` on a detached tree (rustix has no wrapper).
fn set_readonly(tree: &OwnedFd, recursive: bool) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: valid descriptor, NUL-terminated empty path, and a mount_attr of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw const attr,
            size_of::<libc::mount_attr>(),
        )
    };
    if ret == 0 { Ok(()) } else { Err(last_errno()) }
}

/// Attaches detached mount `mnt` on the file or directory `target` refers to.
fn attach(mnt: &OwnedFd, target: &OwnedFd) -> Result<(), Errno> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(mnt, c"", target, c"", flags)
}

fn pivot_into(root: &OwnedFd) -> Result<(), Errno> {
    let old_root = rustix::fs::open(
        c"/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fchdir(root)?;
    pivot_root(c".", c".")?;
    // The kernel leaves "." on the old root in practice; do not rely on it (runc does the same).
    fchdir(&old_root)?;
    unmount(c".", UnmountFlags::DETACH)?;
    chdir(c"/")
}

fn loopback_up() -> Result<(), Errno> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(last_errno());
    }
    // SAFETY: raw is a descriptor we just opened and nothing else owns.
    let socket = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *slot = libc::c_char::from_ne_bytes([*byte]);
    }
    // SAFETY: SIOCGIFFLAGS fills ifr_ifru.ifru_flags of a valid ifreq.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut ifr) } < 0 {
        return Err(last_errno());
    }
    #[allow(clippy::cast_possible_truncation)] // IFF_UP is 1
    // SAFETY: the union field SIOCGIFFLAGS just set.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above, SIOCSIFFLAGS reads the flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &raw const ifr) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

fn intermediate_is_gone(death_read: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(death_read, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0 && fds[0].revents().contains(PollFlags::HUP))
}

fn waited_signals() -> libc::sigset_t {
    let mut set = empty_signal_set();
    // SAFETY: valid set pointer; async-signal-safe.
    unsafe {
        libc::sigaddset(&raw mut set, libc::SIGCHLD);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        libc::sigaddset(&raw mut set, forward_signal());
    }
    set
}

/// The signal that asks the intermediate to send PID 1 the signal number queued as its value: the
/// first real-time signal, which nothing else sends an intermediate (and which, being queued, never
/// merges two requests into one).
pub(super) fn forward_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

fn empty_signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, and sigemptyset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set pointer.
    unsafe { libc::sigemptyset(&raw mut set) };
    set
}

fn reset_signal_dispositions() {
    for signal in 1..=libc::SIGRTMAX() {
        // SAFETY: resetting to the default action; fails harmlessly for SIGKILL, SIGSTOP and the
        // signals libc reserves.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

fn close_fds_except(a: RawFd, b: RawFd) {
    // Descriptors are never negative.
    let (low, high) = (
        u32::try_from(a.min(b)).unwrap_or(0),
        u32::try_from(a.max(b)).unwrap_or(0),
    );
    close_range_between(3, low, 0);
    close_range_between(low + 1, high, 0);
    close_range(high + 1, 0);
}

/// `close_range(first, ~0, flags)`.
fn close_range(first: u32, flags: libc::c_uint) {
    // SAFETY: close_range takes no pointers; closing descriptors this process owns.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
}

/// `close_range` over `[first, end)`, if not empty.
fn close_range_between(first: u32, end: u32, flags: libc::c_uint) {
    if first < end {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_close_range, first, end - 1, flags) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_reports_round_trip() {
        let reports = [
            Report::Failure(Failure {
                step: Step::Mount,
                index: 2,
                errno: 13,
            }),
            Report::Exit(3 << 8),
            Report::Ready,
            Report::Failure(Failure {
                step: Step::Chdir,
                index: 0,
                errno: 2,
            }),
        ];
        let bytes: Vec<u8> = reports.iter().flat_map(|r| r.encode()).collect();
        assert_eq!(Report::decode_all(&bytes), reports);
        for step in STEPS {
            let bytes = Report::Failure(Failure {
                step,
                index: 0,
                errno: 1,
            })
            .encode();
            assert_eq!(
                Report::decode_all(&bytes),
                [Report::Failure(Failure {
                    step,
                    index: 0,
                    errno: 1
                })]
            );
        }
    }
}
