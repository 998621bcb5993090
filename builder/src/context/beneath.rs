//! Filesystem access that cannot leave the context directory.
//!
//! Every path is opened relative to a descriptor of the context root with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: the kernel refuses any symlink on the way and any `..`
//! that would climb out, so a directory swapped for a symlink after the walk saw it (to `/etc`, say)
//! makes the open fail instead of reading outside. Kernels before 5.6 lack `openat2`; there the path
//! is walked one component at a time with `O_NOFOLLOW`, which refuses symlinks just the same.

use std::ffi::{CStr, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, ResolveFlags};

use super::{Metadata, Xattrs};

/// Opens the context root itself (following symlinks in its own path, as `docker build DIR` does).
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `rel` (relative, no `..`) below `root` without following any symlink; `flags` add to
/// `O_NOFOLLOW | O_CLOEXEC` (use `O_DIRECTORY` for directories, `O_RDONLY` for files).
pub(crate) fn open(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    match rustix::fs::openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // ENOSYS: no openat2 (Linux < 5.6); EPERM: a seccomp filter that predates it.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => open_by_components(root, rel, flags),
        other => Ok(other?),
    }
}

/// The pre-`openat2` fallback: one `openat(O_NOFOLLOW)` per component.
fn open_by_components(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let names: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(Ok(name)),
            Component::CurDir => None,
            _ => Some(Err(io::Error::from(io::ErrorKind::InvalidInput))),
        })
        .collect::<io::Result<_>>()?;
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Some((last, parents)) = names.split_last() else {
        return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
    };
    let mut dir: Option<OwnedFd> = None;
    for name in parents {
        let at = dir.as_ref().map_or(root, AsFd::as_fd);
        dir = Some(rustix::fs::openat(at, *name, dir_flags, Mode::empty())?);
    }
    let at = dir.as_ref().map_or(root, AsFd::as_fd);
    Ok(rustix::fs::openat(at, *last, flags, Mode::empty())?)
}

/// `lstat` of `name` in the directory `dir`.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Metadata> {
    Ok(Metadata::from_stat(&rustix::fs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// `fstat` of an open file.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Metadata> {
    Ok(Metadata::from_stat(&rustix::fs::fstat(fd)?))
}

/// The names of one directory, sorted bytewise (the walk's order), in one buffer.
pub(crate) struct Names {
    /// The names, each followed by a NUL.
    bytes: Vec<u8>,
    /// Where each name starts in `bytes`, its length, and its type as the directory lists it.
    names: Vec<(u32, u32, FileType)>,
}

impl Names {
    /// Each name (as the C string system calls take) and its listed type, in order. The type is
    /// [`FileType::Unknown`] where the filesystem does not record types in directories.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CStr, FileType)> {
        self.names.iter().map(|&(start, len, kind)| {
            let (start, end) = (start as usize, start as usize + len as usize);
            let name =
                CStr::from_bytes_with_nul(&self.bytes[start..=end]).expect("NUL-terminated, no inner NUL");
            (name, kind)
        })
    }

    /// How many names there are.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// The names in the directory `dir`, without `.` and `..`, sorted bytewise. `dir` must be freshly
/// opened: the listing starts at its current position.
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Names> {
    let mut buffer = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut reader = RawDir::new(dir, &mut buffer);
    let mut out = Names {
        bytes: Vec::new(),
        names: Vec::new(),
    };
    while let Some(entry) = reader.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes_with_nul();
        if name == b".\0" || name == b"..\0" {
            continue;
        }
        let too_long = || io::Error::from(io::ErrorKind::OutOfMemory);
        let start = u32::try_from(out.bytes.len()).map_err(|_| too_long())?;
        let len = u32::try_from(name.len() - 1).map_err(|_| too_long())?;
        out.bytes.extend_from_slice(name);
        out.names.push((start, len, entry.file_type()));
    }
    let Names { bytes, names } = &mut out;
    let name = |&(start, len, _): &(u32, u32, FileType)| &bytes[start as usize..(start + len) as usize];
    names.sort_unstable_by(|a, b| name(a).cmp(name(b)));
    Ok(out)
}

/// Extended attributes of an open file or directory, sorted by name.
pub(crate) fn xattrs_fd(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    read_xattrs(
        || rustix::fs::flistxattr_query(fd),
        |buf| rustix::fs::flistxattr(fd, buf),
        |name, buf| rustix::fs::fgetxattr(fd, name, buf),
        |name| rustix::fs::fgetxattr_query(fd, name),
    )
}

/// Extended attributes of an entry that cannot be opened for reading (a symlink, a FIFO, a device),
/// by path: the final component is not followed. Only symlinks' and special files' own attributes
/// are read this way, and a swapped parent directory can at worst change a checksum, never expose
/// file contents.
pub(crate) fn xattrs_path(path: &Path) -> io::Result<Xattrs> {
    read_xattrs(
        || rustix::fs::llistxattr_query(path),
        |buf| rustix::fs::llistxattr(path, buf),
        |name, buf| rustix::fs::lgetxattr(path, name, buf),
        |name| rustix::fs::lgetxattr_query(path, name),
    )
}

/// Lists then reads every attribute. A list or value that grows in between fails with `ERANGE`
/// rather than yielding a truncated value.
fn read_xattrs(
    list_len: impl Fn() -> rustix::io::Result<usize>,
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&std::ffi::CStr, &mut [u8]) -> rustix::io::Result<usize>,
    get_len: impl Fn(&std::ffi::CStr) -> rustix::io::Result<usize>,
) -> io::Result<Xattrs> {
    let len = match list_len() {
        Ok(len) => len,
        // Filesystems without xattr support have none to copy.
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0; len];
    let len = list(&mut names)?;
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut value = vec![0; get_len(&cname)?];
        let len = get(&cname, &mut value)?;
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}
