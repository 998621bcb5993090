//! The target root and every filesystem operation apply makes in it, none of which can leave it.
//!
//! All work goes through directory file descriptors. The directory holding an entry is opened from the
//! root fd with `openat2`: with [`ParentSymlinks::Refuse`], `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`, so
//! any symlink on the way (planted earlier by the same layer or already in the target) is an error;
//! with [`ParentSymlinks::FollowInRoot`], `RESOLVE_IN_ROOT`, so symlinks resolve as if the root were
//! `/` (as in a chroot) and `..` or absolute targets stop at the root. The final component is then
//! handled with `*at` calls that never follow it: an existing symlink there is replaced, never written
//! through. Needs Linux 5.6 (`openat2`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::ParentSymlinks;
use crate::layer::Refusal;

/// Why a directory could not be reached.
#[derive(Debug)]
pub(crate) enum ResolveError {
    Refused(Refusal),
    Io(io::Error),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> ResolveError {
        ResolveError::Io(e.into())
    }
}

/// A directory fd: the root's own, or one opened below it (possibly shared with a cache).
pub(crate) enum DirFd<'a> {
    Root(BorrowedFd<'a>),
    Owned(OwnedFd),
    Shared(Arc<OwnedFd>),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => *fd,
            DirFd::Owned(fd) => fd.as_fd(),
            DirFd::Shared(fd) => fd.as_fd(),
        }
    }
}

/// The target directory of an apply.
pub(crate) struct Root {
    fd: OwnedFd,
    policy: ParentSymlinks,
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::RDONLY).union(OFlags::CLOEXEC);

impl Root {
    pub(crate) fn open(path: &Path, policy: ParentSymlinks) -> io::Result<Root> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Root { fd, policy })
    }

    fn resolve_flags(&self) -> ResolveFlags {
        match self.policy {
            ParentSymlinks::Refuse => ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
            ParentSymlinks::FollowInRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        }
    }

    /// Opens the directory `dir` (a normalized relative path, empty for the root). Missing directories
    /// are created (mode 0755, owned by the caller) when `create`, else `Ok(None)` is returned.
    pub(crate) fn dir(&self, dir: &[u8], create: bool) -> Result<Option<DirFd<'_>>, ResolveError> {
        if dir.is_empty() {
            return Ok(Some(DirFd::Root(self.fd.as_fd())));
        }
        match self.open_dir(dir) {
            Ok(fd) => return Ok(Some(DirFd::Owned(fd))),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => {}
            Err(e) => return Err(e.into()),
        }
        // Walk the components one by one to create what is missing, or to say which one is wrong.
        let mut current: Option<OwnedFd> = None;
        let mut end = 0;
        loop {
            let next = dir[end..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(dir.len(), |i| end + i);
            let prefix = &dir[..next];
            let name = &dir[end..next];
            let parent = current.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            let fd = match self.open_dir(prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if !create => return Ok(None),
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_dir(prefix)
                        .map_err(|e| self.explain(parent, name, prefix, e))?
                }
                Err(e) => return Err(self.explain(parent, name, prefix, e)),
            };
            current = Some(fd);
            if next == dir.len() {
                return Ok(current.map(DirFd::Owned));
            }
            end = next + 1;
        }
    }

    fn open_dir(&self, dir: &[u8]) -> Result<OwnedFd, Errno> {
        let flags = self.resolve_flags();
        loop {
            match rustix::fs::openat2(&self.fd, dir, DIR_FLAGS, Mode::empty(), flags) {
                // The kernel asks for a retry when a rename raced the lookup.
                Err(Errno::AGAIN) => {}
                other => return other,
            }
        }
    }

    /// Turns the failure to open `prefix` (whose last component `name` sits in `parent`) into a refusal
    /// that names the component at fault.
    fn explain(&self, parent: BorrowedFd<'_>, name: &[u8], prefix: &[u8], e: Errno) -> ResolveError {
        let component = String::from_utf8_lossy(prefix).into_owned();
        let is_symlink = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink);
        match e {
            Errno::LOOP => ResolveError::Refused(Refusal::ThroughSymlink { component }),
            Errno::XDEV => ResolveError::Refused(Refusal::Escapes),
            Errno::NOTDIR | Errno::EXIST | Errno::NOENT if is_symlink => match self.policy {
                ParentSymlinks::Refuse => ResolveError::Refused(Refusal::ThroughSymlink { component }),
                ParentSymlinks::FollowInRoot => ResolveError::Refused(Refusal::DanglingSymlink { component }),
            },
            Errno::NOTDIR | Errno::EXIST => ResolveError::Refused(Refusal::ParentNotDirectory { component }),
            e => ResolveError::Io(e.into()),
        }
    }
}

/// What sits at a name, without following a symlink there.
pub(crate) fn lstat_at(dir: &impl AsFd, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &rustix::fs::Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
}

/// Removes `name` in `dir`, with everything below it when it is a directory. Never follows a symlink.
pub(crate) fn remove_all(dir: &impl AsFd, name: &[u8]) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = rustix::fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
        for child in list(&sub)? {
            remove_all(&sub, child.as_bytes())?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// The names in a directory, `.` and `..` left out.
pub(crate) fn list(dir: &impl AsFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// A path that reaches `name` inside the directory `dir` without following `name` itself, for the
/// calls that only exist path-based (`lsetxattr` on a symlink or device node).
pub(crate) fn proc_path(dir: &impl AsFd, name: &[u8]) -> Vec<u8> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    path
}
