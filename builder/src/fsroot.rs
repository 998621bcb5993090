//! A directory used as a root: paths below it are resolved the way a process chrooted into it would
//! see them, and no resolution ever leaves it. Shared by everything that writes snapshot contents:
//! layer apply (`layer::apply`) and file operations (`fsop`: COPY, ADD, WORKDIR).
//!
//! Every step works on directory file descriptors, in one of two ways:
//!
//! - [`Root::dir`] opens the directory holding a layer entry with one `openat2` call. The root's
//!   [`Symlinks`] policy picks the flags: [`Symlinks::Refuse`] uses `RESOLVE_NO_SYMLINKS |
//!   RESOLVE_BENEATH`, so any symlink on the way is an error; [`Symlinks::FollowInRoot`] uses
//!   `RESOLVE_IN_ROOT`, so symlinks resolve as if the root were `/` and `..` or absolute targets stop
//!   at the root. Missing directories are created one component at a time. Needs Linux 5.6.
//! - [`Root::walk`] takes a path one component at a time: it looks each up with
//!   `fstatat(AT_SYMLINK_NOFOLLOW)` in the directory it holds, and either opens it (`O_NOFOLLOW |
//!   O_DIRECTORY`, so a directory swapped for a symlink in between fails instead of being followed)
//!   or, for a symlink, reads the target and splices it into the rest of the path: an absolute target
//!   restarts from the root, `..` goes back to the directory held one level up (never `openat(fd,
//!   "..")`, which a moved directory could turn into an escape) and stops at the root. So `/app ->
//!   /etc` means `<root>/etc`, and `../../x` from `/a` means `<root>/x`. Unlike `openat2`, it can
//!   follow the last component too, create directories through dangling symlinks (as `mkdir -p` in a
//!   chroot would) and give every directory it creates its owner through a [`NewDir`] hook.
//!
//! Callers then act on the final component with `*at` calls relative to the directory fd they got,
//! never through a path string, so a symlink planted or swapped later cannot redirect them.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// The components of `path` as Go's `path.Clean("/" + path)` sees them: empty and `.` components
/// dropped, `..` applied and stopped at the root. Every in-root path kiln handles (layer entries,
/// COPY sources and destinations, mount targets, archive members) is cleaned by this one function.
pub(crate) fn clean_components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// [`clean_components`] joined with `/`, without a leading `/`: `a/../b/./c` gives `b/c`, `/` gives ``.
pub(crate) fn clean(path: &str) -> String {
    clean_components(path).join("/")
}

/// Symlinks followed in one resolution before giving up (Linux's own limit is 40).
const MAX_SYMLINKS: u32 = 255;

/// Opening a directory (a symlink as the last component is followed: under `openat2`'s resolve
/// flags, inside the root).
pub(crate) const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::RDONLY).union(OFlags::CLOEXEC);

/// Opening a directory that must not be a symlink.
pub(crate) const DIR_NOFOLLOW: OFlags = DIR_FLAGS.union(OFlags::NOFOLLOW);

/// What [`Root::dir`] does with a symlink on the way to a directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Symlinks {
    /// Refuse it.
    #[default]
    Refuse,
    /// Follow it as a chroot would.
    FollowInRoot,
}

/// Why [`Root::dir`] refused a path. `component` is the root-relative path of the component at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A component is a symlink and the policy refuses them.
    ThroughSymlink { component: String },
    /// A component is a symlink to nothing.
    DanglingSymlink { component: String },
    /// A component exists and is not a directory.
    ParentNotDirectory { component: String },
    /// Resolution left the root.
    Escapes,
}

/// Why [`Root::dir`] could not reach a directory.
#[derive(Debug)]
pub(crate) enum DirError {
    Refused(Refused),
    Io(io::Error),
}

impl From<Errno> for DirError {
    fn from(e: Errno) -> DirError {
        DirError::Io(e.into())
    }
}

/// Why a path could not be resolved inside the root. `path` is the in-root path (`/a/b`) of the
/// component at fault, as far as the walk got.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// A component on the way (not the last) does not exist, and nothing was to be created.
    #[error("{path:?}: not found")]
    NotFound { path: String },
    /// A component on the way is a file, not a directory.
    #[error("{path:?}: not a directory")]
    NotADirectory { path: String },
    /// A component is a symlink, and the root refuses them.
    #[error("{path:?}: is a symbolic link")]
    Symlink { path: String },
    /// Symlinks loop, or chain further than [`MAX_SYMLINKS`].
    #[error("{path:?}: too many levels of symbolic links")]
    TooManySymlinks { path: String },
    /// The filesystem failed (the cause is the source, said once).
    #[error("{path:?}")]
    Io { path: String, source: io::Error },
}

/// A directory fd: the root's own, or one opened below it (possibly shared with a cache).
#[derive(Debug)]
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

impl DirFd<'_> {
    /// An owned fd for this directory (a duplicate unless it is owned already).
    pub(crate) fn into_owned(self) -> io::Result<OwnedFd> {
        match self {
            DirFd::Root(fd) => fd.try_clone_to_owned(),
            DirFd::Owned(fd) => Ok(fd),
            DirFd::Shared(fd) => fd.try_clone(),
        }
    }
}

/// Where a walk ended.
#[derive(Debug)]
pub(crate) enum Location<'a> {
    /// The path is a directory reached without a final name (the root itself, or a path ending in `..`
    /// or in a symlink to such a place).
    Dir(DirFd<'a>),
    /// The last component `name` in `parent`. It may not exist; with `follow_last` it is not a
    /// symlink.
    Entry {
        parent: DirFd<'a>,
        name: CString,
        path: String,
    },
}

/// What to do with a directory the walk creates: called with the new directory's fd, to set its
/// mode and owner. Creating happens only when a hook is given.
pub(crate) type NewDir<'h> = &'h mut dyn FnMut(&OwnedFd) -> io::Result<()>;

/// A directory treated as `/`.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    policy: Symlinks,
}

impl Root {
    /// Opens `path` (itself may be a symlink: the root is where it points), following symlinks
    /// below it inside it.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        Root::open_with(path, Symlinks::FollowInRoot)
    }

    /// Opens `path` with a policy for symlinks on the way to directories.
    pub(crate) fn open_with(path: &Path, policy: Symlinks) -> io::Result<Root> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Root { fd, policy })
    }

    /// A root at an already open directory, following symlinks below it inside it.
    pub(crate) fn from_fd(fd: OwnedFd) -> Root {
        Root {
            fd,
            policy: Symlinks::FollowInRoot,
        }
    }

    fn resolve_flags(&self) -> ResolveFlags {
        match self.policy {
            Symlinks::Refuse => ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
            Symlinks::FollowInRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        }
    }

    /// Opens the directory `dir` (a normalized relative path, empty for the root) with `openat2`.
    /// Missing directories are created (mode 0755, owned by the caller) when `create`, else `Ok(None)`
    /// is returned.
    pub(crate) fn dir(&self, dir: &[u8], create: bool) -> Result<Option<DirFd<'_>>, DirError> {
        if dir.is_empty() {
            return Ok(Some(DirFd::Root(self.fd.as_fd())));
        }
        match self.open_beneath(dir) {
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
            let fd = match self.open_beneath(prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if !create => return Ok(None),
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_beneath(prefix)
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

    fn open_beneath(&self, dir: &[u8]) -> Result<OwnedFd, Errno> {
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
    fn explain(&self, parent: BorrowedFd<'_>, name: &[u8], prefix: &[u8], e: Errno) -> DirError {
        let component = String::from_utf8_lossy(prefix).into_owned();
        let is_symlink = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        match e {
            Errno::LOOP => DirError::Refused(Refused::ThroughSymlink { component }),
            Errno::XDEV => DirError::Refused(Refused::Escapes),
            Errno::NOTDIR | Errno::EXIST | Errno::NOENT if is_symlink => match self.policy {
                Symlinks::Refuse => DirError::Refused(Refused::ThroughSymlink { component }),
                Symlinks::FollowInRoot => DirError::Refused(Refused::DanglingSymlink { component }),
            },
            Errno::NOTDIR | Errno::EXIST => DirError::Refused(Refused::ParentNotDirectory { component }),
            e => DirError::Io(e.into()),
        }
    }

    /// Resolves `path` (slash-separated; leading `/`, `.` and empty components mean nothing) inside
    /// the root. Symlinks on the way are followed as a chroot would, and so is the last component when
    /// `follow_last`. With `new_dir`, missing directories on the way are created (mode 0755, then the
    /// hook); the last component is never created here.
    pub(crate) fn walk(
        &self,
        path: &[u8],
        follow_last: bool,
        mut new_dir: Option<NewDir<'_>>,
    ) -> Result<Location<'_>, ResolveError> {
        let mut pending: VecDeque<Vec<u8>> = components(path).map(<[u8]>::to_vec).collect();
        // The directories below the root that lead to where the walk stands, with their names.
        let mut stack: Vec<(OwnedFd, Vec<u8>)> = Vec::new();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == b".." {
                stack.pop();
                continue;
            }
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                return Ok(self.entry(stack, name));
            }
            let here = stack.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
            let Ok(cname) = CString::new(name.clone()) else {
                return Err(ResolveError::NotFound {
                    path: shown_path(&stack, &name),
                });
            };
            let st = match lstat_at(&here, &cname) {
                Ok(Some(st)) => st,
                Ok(None) if is_last => return Ok(self.entry(stack, name)),
                Ok(None) => {
                    let Some(hook) = new_dir.as_deref_mut() else {
                        return Err(ResolveError::NotFound {
                            path: shown_path(&stack, &name),
                        });
                    };
                    match create_dir(here, &cname, hook) {
                        Ok(fd) => stack.push((fd, name)),
                        Err(source) => {
                            return Err(ResolveError::Io {
                                path: shown_path(&stack, &name),
                                source,
                            });
                        }
                    }
                    continue;
                }
                Err(source) => {
                    return Err(ResolveError::Io {
                        path: shown_path(&stack, &name),
                        source,
                    });
                }
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if self.policy == Symlinks::Refuse => {
                    return Err(ResolveError::Symlink {
                        path: shown_path(&stack, &name),
                    });
                }
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::TooManySymlinks {
                            path: shown_path(&stack, &name),
                        });
                    }
                    let target = match rustix::fs::readlinkat(here, &cname, Vec::new()) {
                        Ok(target) => target,
                        Err(e) => {
                            return Err(ResolveError::Io {
                                path: shown_path(&stack, &name),
                                source: e.into(),
                            });
                        }
                    };
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for component in components(target).rev() {
                        pending.push_front(component.to_vec());
                    }
                }
                FileType::Directory if !is_last => {
                    match rustix::fs::openat(here, &cname, DIR_NOFOLLOW, Mode::empty()) {
                        Ok(fd) => stack.push((fd, name)),
                        // Swapped for something else since the lstat: look again (a bounded number of times).
                        Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) if links < MAX_SYMLINKS => {
                            links += 1;
                            pending.push_front(name);
                        }
                        Err(e) => {
                            return Err(ResolveError::Io {
                                path: shown_path(&stack, &name),
                                source: e.into(),
                            });
                        }
                    }
                }
                _ if is_last => return Ok(self.entry(stack, name)),
                _ => {
                    return Err(ResolveError::NotADirectory {
                        path: shown_path(&stack, &name),
                    });
                }
            }
        }
        Ok(match stack.pop() {
            Some((fd, _)) => Location::Dir(DirFd::Owned(fd)),
            None => Location::Dir(DirFd::Root(self.fd.as_fd())),
        })
    }

    fn entry(&self, mut stack: Vec<(OwnedFd, Vec<u8>)>, name: Vec<u8>) -> Location<'_> {
        let path = shown_path(&stack, &name);
        let parent = match stack.pop() {
            Some((fd, _)) => DirFd::Owned(fd),
            None => DirFd::Root(self.fd.as_fd()),
        };
        // A NUL in a name cannot come from the filesystem; it makes an entry nothing can exist at.
        let name = CString::new(name).unwrap_or_else(|_| c"\u{fffd}".to_owned());
        Location::Entry { parent, name, path }
    }

    /// Opens the directory at `path`, following every symlink (the last one too). With `new_dir`,
    /// missing directories (the last one too) are created.
    pub(crate) fn open_dir(
        &self,
        path: &[u8],
        mut new_dir: Option<NewDir<'_>>,
    ) -> Result<DirFd<'_>, ResolveError> {
        match self.walk(path, true, new_dir.as_deref_mut().map(|h| h as NewDir<'_>))? {
            Location::Dir(fd) => Ok(fd),
            Location::Entry { parent, name, path } => {
                let io_err = |source: io::Error| ResolveError::Io {
                    path: path.clone(),
                    source,
                };
                match lstat_at(&parent, &name).map_err(io_err)? {
                    Some(st) if is_dir(&st) => {
                        let fd = rustix::fs::openat(&parent, &name, DIR_NOFOLLOW, Mode::empty())
                            .map_err(|e| io_err(e.into()))?;
                        Ok(DirFd::Owned(fd))
                    }
                    Some(_) => Err(ResolveError::NotADirectory { path }),
                    None => match new_dir {
                        Some(hook) => Ok(DirFd::Owned(
                            create_dir(parent.as_fd(), &name, hook).map_err(io_err)?,
                        )),
                        None => Err(ResolveError::NotFound { path }),
                    },
                }
            }
        }
    }
}

/// Creates the directory `name` in `dir` (0755 whatever the umask, then `hook`), or opens it if
/// someone else just did.
fn create_dir(
    dir: BorrowedFd<'_>,
    name: &CStr,
    hook: &mut dyn FnMut(&OwnedFd) -> io::Result<()>,
) -> io::Result<OwnedFd> {
    let created = match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let fd = rustix::fs::openat(dir, name, DIR_NOFOLLOW, Mode::empty())?;
    if created {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
        hook(&fd)?;
    }
    Ok(fd)
}

/// The non-empty components of a slash-separated path, `.` left out (`..` kept).
pub(crate) fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".")
}

fn shown_path(stack: &[(OwnedFd, Vec<u8>)], name: &[u8]) -> String {
    let mut path = String::new();
    for (_, component) in stack {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(component));
    }
    path.push('/');
    path.push_str(&String::from_utf8_lossy(name));
    path
}

/// What sits at a name, without following a symlink there.
pub(crate) fn lstat_at<P: rustix::path::Arg>(dir: &impl AsFd, name: P) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Removes `name` in `dir`, with everything below it when it is a directory. Never follows a symlink.
pub(crate) fn remove_all<P: rustix::path::Arg + Copy>(dir: &impl AsFd, name: P) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = rustix::fs::openat(dir, name, DIR_NOFOLLOW, Mode::empty())?;
        for child in list(&sub)? {
            remove_all(&sub, child.as_c_str())?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// The names in a directory, `.` and `..` left out, sorted (bytewise) so that work is deterministic.
pub(crate) fn list(dir: &impl AsFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A path that reaches `name` inside the directory `dir` without following `name` itself, for the
/// calls that only exist path-based (`lsetxattr` on a symlink or device node).
pub(crate) fn proc_path(dir: &impl AsFd, name: &[u8]) -> CString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    // A name from a tar or a directory listing holds no NUL; one that did would name nothing.
    CString::new(path).unwrap_or_default()
}
