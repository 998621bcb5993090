//! Metadata of a written entry: owner, mode, extended attributes, times, set the way fsutil's
//! `copyFileInfo` does (owner first, since chown clears setuid bits; xattrs after, since chown drops
//! `security.capability`; times last). Everything addresses the entry as `name` in a directory fd,
//! never following it.
//!
//! The source's side is an [`Info`]: the `lstat` data of an entry, whichever kind of tree it comes
//! from (a directory on disk, or the build context as its walk saw it).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode as RawMode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags,
};

use crate::fsroot::proc_path;

use super::{Mode, Owner};

/// Extended attributes of an entry: (name, value) pairs.
pub(super) type Xattrs = Vec<(CString, Vec<u8>)>;

/// What a copy needs to know of a source entry: its `lstat` data.
#[derive(Debug, Clone, Copy)]
pub(super) struct Info {
    /// `st_mode`: file type and permission bits.
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Device number, for device files.
    pub(super) rdev: u64,
    pub(super) size: u64,
    /// Identity, for hardlinks: (`dev`, `ino`) names the inode, `nlink` says whether others share it.
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) nlink: u64,
    pub(super) atime: Timespec,
    pub(super) mtime: Timespec,
}

impl Info {
    /// The kernel's `struct stat`, whose field widths vary by architecture.
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::cast_lossless,
        clippy::unnecessary_cast,
        clippy::useless_conversion
    )]
    pub(super) fn from_stat(st: &Stat) -> Info {
        Info {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: st.st_size as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            atime: Timespec {
                tv_sec: st.st_atime as i64,
                tv_nsec: st.st_atime_nsec.try_into().unwrap_or(0),
            },
            mtime: Timespec {
                tv_sec: st.st_mtime as i64,
                tv_nsec: st.st_mtime_nsec.try_into().unwrap_or(0),
            },
        }
    }

    pub(super) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    pub(super) fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }
}

/// The metadata to give one entry.
pub(super) struct Metadata<'a> {
    /// Owner; `None` keeps the source's.
    pub(super) owner: Option<Owner>,
    /// `--chmod`, applied over the source mode.
    pub(super) chmod: Option<&'a Mode>,
}

impl Metadata<'_> {
    /// Gives `name` in `dst` the metadata of the source entry `info`, with its extended attributes
    /// `xattrs`. `fd` is an open fd of the entry when there is one (regular files and directories),
    /// used for chmod.
    pub(super) fn apply(
        &self,
        dst: BorrowedFd<'_>,
        name: &CStr,
        fd: Option<BorrowedFd<'_>>,
        info: &Info,
        xattrs: &[(CString, Vec<u8>)],
    ) -> io::Result<()> {
        let (uid, gid) = self.owner.map_or((info.uid, info.gid), |o| (o.uid, o.gid));
        rustix::fs::chownat(
            dst,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let file_type = info.file_type();
        if file_type != FileType::Symlink {
            let mode = match self.chmod {
                Some(chmod) => chmod.apply(info.mode, file_type == FileType::Directory),
                None => info.mode & 0o7777,
            };
            chmod(dst, name, fd, mode)?;
        }
        set_xattrs(dst, name, xattrs);
        set_times(dst, name, info)
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

/// Sets atime and mtime of `name` in `dir` from `info`.
pub(super) fn set_times(dir: BorrowedFd<'_>, name: &CStr, info: &Info) -> io::Result<()> {
    let times = Timestamps {
        last_access: info.atime,
        last_modification: info.mtime,
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

/// The extended attributes of `name` in `dir` (not followed), best effort as BuildKit copies them:
/// a filesystem without xattrs, or one that refuses to list them, has none.
pub(super) fn read_xattrs(dir: BorrowedFd<'_>, name: &CStr) -> Xattrs {
    let path = proc_path(&dir, name.to_bytes());
    let Ok(size) = rustix::fs::llistxattr_query(&*path) else {
        return Vec::new();
    };
    if size == 0 {
        return Vec::new();
    }
    let mut names = vec![0u8; size];
    let Ok(len) = rustix::fs::llistxattr(&*path, &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in names[..len].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let Ok(key) = CString::new(key) else {
            continue;
        };
        let Ok(size) = rustix::fs::lgetxattr_query(&*path, &*key) else {
            continue;
        };
        let mut value = vec![0u8; size];
        if let Ok(len) = rustix::fs::lgetxattr(&*path, &*key, &mut value[..]) {
            value.truncate(len);
            out.push((key, value));
        }
    }
    out
}

/// Sets extended attributes on `name` in `dir`, best effort as BuildKit does (a filesystem without
/// xattrs, or a namespace we may not write, is not an error). Overlayfs's own are never written.
fn set_xattrs(dir: BorrowedFd<'_>, name: &CStr, xattrs: &[(CString, Vec<u8>)]) {
    if xattrs.is_empty() {
        return;
    }
    let path = proc_path(&dir, name.to_bytes());
    for (key, value) in xattrs {
        if is_overlay_xattr(key.to_bytes()) {
            continue;
        }
        let _ = rustix::fs::lsetxattr(&*path, &**key, value, XattrFlags::empty());
    }
}
