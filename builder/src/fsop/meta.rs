//! Metadata of a written entry: owner, mode, extended attributes, times, set the way fsutil's
//! `copyFileInfo` does (owner first, since chown clears setuid bits; xattrs after, since chown drops
//! `security.capability`; times last). Everything addresses the entry as `name` in a directory fd,
//! never following it.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode as RawMode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags,
};

use crate::fsroot::proc_path;

use super::{Mode, Owner};

/// The metadata to give one entry.
pub(super) struct Metadata<'a> {
    /// Owner; `None` keeps the source's.
    pub(super) owner: Option<Owner>,
    /// `--chmod`, applied over the source mode.
    pub(super) chmod: Option<&'a Mode>,
}

impl Metadata<'_> {
    /// Gives `name` in `dst` the metadata of the source `st` (found as `src_name` in `src`, for its
    /// xattrs; `None` when it has no place in a source tree). `fd` is an open fd of the entry when
    /// there is one (regular files and directories), used for chmod.
    pub(super) fn apply(
        &self,
        dst: BorrowedFd<'_>,
        name: &CStr,
        fd: Option<BorrowedFd<'_>>,
        st: &Stat,
        src: Option<(BorrowedFd<'_>, &CStr)>,
    ) -> io::Result<()> {
        let (uid, gid) = self.owner.map_or((st.st_uid, st.st_gid), |o| (o.uid, o.gid));
        rustix::fs::chownat(
            dst,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let file_type = FileType::from_raw_mode(st.st_mode);
        if file_type != FileType::Symlink {
            let mode = match self.chmod {
                Some(chmod) => chmod.apply(st.st_mode, file_type == FileType::Directory),
                None => st.st_mode & 0o7777,
            };
            chmod(dst, name, fd, mode)?;
        }
        if let Some((src_dir, src_name)) = src {
            copy_xattrs(src_dir, src_name, dst, name);
        }
        set_times(dst, name, st)
    }
}

/// Sets the mode of `name` in `dir` (through `fd` when open, else through an `O_PATH` fd, which
/// pins the inode without opening a FIFO or device for I/O).
pub(super) fn chmod(
    dir: BorrowedFd<'_>,
    name: &CStr,
    fd: Option<BorrowedFd<'_>>,
    mode: u32,
) -> io::Result<()> {
    let mode = RawMode::from_raw_mode(mode);
    if let Some(fd) = fd {
        return Ok(rustix::fs::fchmod(fd, mode)?);
    }
    let pinned = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        RawMode::empty(),
    )?;
    let st = rustix::fs::fstat(&pinned)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::LOOP.raw_os_error(),
        ));
    }
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&pinned));
    Ok(rustix::fs::chmod(path.as_str(), mode)?)
}

/// Sets atime and mtime of `name` in `dir` from `st`.
pub(super) fn set_times(dir: BorrowedFd<'_>, name: &CStr, st: &Stat) -> io::Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec.try_into().unwrap_or(0),
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec.try_into().unwrap_or(0),
        },
    };
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Whether an xattr is overlayfs's own bookkeeping: copied onto a directory later used as an
/// overlay layer, it would change what the mount shows.
pub(super) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Copies the extended attributes of one entry to another, best effort as BuildKit does (a
/// filesystem without xattrs, or a namespace we may not write, is not an error).
fn copy_xattrs(src_dir: BorrowedFd<'_>, src_name: &CStr, dst_dir: BorrowedFd<'_>, dst_name: &CStr) {
    let src = proc_path(&src_dir, src_name.to_bytes());
    let dst = proc_path(&dst_dir, dst_name.to_bytes());
    let Ok(size) = rustix::fs::llistxattr_query(&*src) else {
        return;
    };
    if size == 0 {
        return;
    }
    let mut names = vec![0u8; size];
    let Ok(len) = rustix::fs::llistxattr(&*src, &mut names[..]) else {
        return;
    };
    for key in names[..len].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        if is_overlay_xattr(key) {
            continue;
        }
        let Ok(key) = std::ffi::CString::new(key) else {
            continue;
        };
        let Ok(size) = rustix::fs::lgetxattr_query(&*src, &*key) else {
            continue;
        };
        let mut value = vec![0u8; size];
        if let Ok(len) = rustix::fs::lgetxattr(&*src, &*key, &mut value[..]) {
            let _ = rustix::fs::lsetxattr(&*dst, &*key, &value[..len], XattrFlags::empty());
        }
    }
}
