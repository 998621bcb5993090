//! A faithful tree copy for the copy snapshotter: everything a layer can carry survives.
//!
//! Kept: regular file contents, directories, symlinks (not followed), fifos, sockets, character and block
//! devices, hard links (files sharing an inode in the source share one in the copy), owners, modes including
//! setuid/setgid/sticky, extended attributes (including `security.capability`), and access/modification
//! times. The walk works on directory file descriptors (`openat` and friends), so it never follows a symlink
//! out of the tree and is not limited by `PATH_MAX`.
//!
//! Metadata is applied in the order the kernel needs: owner first (chown clears setuid bits and file
//! capabilities), then mode, then xattrs, then times last (for directories after their entries are written,
//! since writing an entry updates the directory's mtime).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, Timestamps};

use crate::error::{Error, Result};

/// Copies the tree at `src` to `dst`, which must not exist yet.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let open_dir = |path: &Path| {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", path, e))
    };
    let src_fd = open_dir(src)?;
    let src_stat = rustix::fs::fstat(&src_fd).map_err(|e| Error::io("stat", src, e))?;
    std::fs::create_dir(dst).map_err(|e| Error::io("create", dst, e))?;
    let dst_fd = open_dir(dst)?;
    let mut copier = Copier {
        src_root: src.to_owned(),
        dst_root: dst_fd.try_clone().map_err(|e| Error::io("dup", dst, e))?,
        links: HashMap::new(),
    };
    copier.copy_dir(&src_fd, &dst_fd, Path::new(""))?;
    // The root directory's own metadata: an image's `/` has an owner, mode and times like any directory.
    let parent = dst.parent().unwrap_or(Path::new("/"));
    let parent_fd = open_dir(parent)?;
    let name = dst.file_name().map_or_else(|| CString::from(c"."), cstring);
    apply_metadata(src_fd.as_fd(), None, parent_fd.as_fd(), &name, &src_stat)
        .map_err(|e| Error::io("copy metadata of", dst, e))
}

struct Copier {
    src_root: PathBuf,
    dst_root: OwnedFd,
    /// Source inode (dev, ino) of multiply-linked files -> where its first copy is, relative to the root.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier {
    /// Copies the entries of `src` into `dst`; `rel` is their path relative to the roots.
    fn copy_dir(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &Path) -> Result<()> {
        let dir = Dir::read_from(src).map_err(|e| Error::io("read", self.src_root.join(rel), e))?;
        for entry in dir {
            let entry = entry.map_err(|e| Error::io("read", self.src_root.join(rel), e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let rel = rel.join(OsStr::from_bytes(name.to_bytes()));
            self.copy_entry(src, dst, name, &rel)?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, src: &OwnedFd, dst: &OwnedFd, name: &CStr, rel: &Path) -> Result<()> {
        let src_path = self.src_root.join(rel);
        let failed = |e: io::Error| Error::io("copy", src_path.clone(), e);
        let stat = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| failed(e.into()))?;
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type != FileType::Directory && stat.st_nlink > 1 {
            let inode = (stat.st_dev, stat.st_ino);
            if let Some(first) = self.links.get(&inode) {
                return rustix::fs::linkat(&self.dst_root, first.as_path(), dst, name, AtFlags::empty())
                    .map_err(|e| failed(e.into()));
            }
            self.links.insert(inode, rel.to_owned());
        }
        if file_type == FileType::Directory {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(|e| failed(e.into()))?;
            let src_child = open_at(src, name, OFlags::DIRECTORY).map_err(failed)?;
            let dst_child = open_at(dst, name, OFlags::DIRECTORY).map_err(failed)?;
            self.copy_dir(&src_child, &dst_child, rel)?;
            return apply_metadata(src_child.as_fd(), None, dst.as_fd(), name, &stat).map_err(failed);
        }
        copy_leaf(src, dst, name, &stat).map_err(failed)
    }
}

/// Copies one non-directory entry and its metadata.
fn copy_leaf(src: &OwnedFd, dst: &OwnedFd, name: &CStr, stat: &Stat) -> io::Result<()> {
    let file_type = FileType::from_raw_mode(stat.st_mode);
    match file_type {
        FileType::RegularFile => {
            let mut from = File::from(open_at(src, name, OFlags::empty())?);
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
            let to = rustix::fs::openat(dst, name, flags, Mode::from_raw_mode(0o600))?;
            // std's File-to-File copy uses copy_file_range, so the data never enters user space.
            io::copy(&mut from, &mut File::from(to))?;
            apply_metadata(from.as_fd(), None, dst.as_fd(), name, stat)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
            apply_metadata(src.as_fd(), Some(name), dst.as_fd(), name, stat)
        }
        FileType::Fifo | FileType::Socket | FileType::CharacterDevice | FileType::BlockDevice => {
            let permissions = Mode::from_raw_mode(stat.st_mode & 0o7777);
            rustix::fs::mknodat(dst, name, file_type, permissions, stat.st_rdev)?;
            apply_metadata(src.as_fd(), Some(name), dst.as_fd(), name, stat)
        }
        FileType::Directory | FileType::Unknown => {
            Err(io::Error::new(io::ErrorKind::Unsupported, "unexpected file type"))
        }
    }
}

fn open_at(dir: &OwnedFd, name: &CStr, extra: OFlags) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

fn cstring(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).unwrap_or_else(|_| CString::from(c"."))
}

/// A path naming `name` inside the directory `dir` without resolving anything else: the xattr calls have
/// no `*at` form, so they go through the directory's `/proc/self/fd` link.
fn proc_path(dir: BorrowedFd<'_>, name: Option<&CStr>) -> PathBuf {
    let dir_path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    match name {
        Some(name) => dir_path.join(OsStr::from_bytes(name.to_bytes())),
        None => dir_path,
    }
}

/// Gives `dst_dir/dst_name` the owner, mode, xattrs and times in `stat`. The source for xattrs is `src`
/// itself when `src_name` is `None`, else the entry `src_name` in the directory `src` (symlinks and device
/// nodes, which are not opened).
fn apply_metadata(
    src: BorrowedFd<'_>,
    src_name: Option<&CStr>,
    dst_dir: BorrowedFd<'_>,
    dst_name: &CStr,
    stat: &Stat,
) -> io::Result<()> {
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    let owner = (
        rustix::fs::Uid::from_raw(stat.st_uid),
        rustix::fs::Gid::from_raw(stat.st_gid),
    );
    rustix::fs::chownat(dst_dir, dst_name, Some(owner.0), Some(owner.1), nofollow)?;
    let is_symlink = FileType::from_raw_mode(stat.st_mode) == FileType::Symlink;
    if !is_symlink {
        // Symlink modes mean nothing and fchmodat cannot change them.
        rustix::fs::chmodat(
            dst_dir,
            dst_name,
            Mode::from_raw_mode(stat.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    // With no name, the source path is the fd's own /proc link, which only the following calls resolve.
    let follow = src_name.is_none();
    copy_xattrs(
        &proc_path(src, src_name),
        follow,
        &proc_path(dst_dir, Some(dst_name)),
    )?;
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: stat.st_atime,
            tv_nsec: i64::try_from(stat.st_atime_nsec).unwrap_or(0),
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: stat.st_mtime,
            tv_nsec: i64::try_from(stat.st_mtime_nsec).unwrap_or(0),
        },
    };
    rustix::fs::utimensat(dst_dir, dst_name, &times, nofollow)?;
    Ok(())
}

fn copy_xattrs(src: &Path, follow: bool, dst: &Path) -> io::Result<()> {
    let names = match list_xattrs(src, follow) {
        Ok(names) => names,
        // A filesystem without xattrs has none to copy.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = get_xattr(src, follow, name)?;
        rustix::fs::lsetxattr(dst, name, &value, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}

/// Runs a size-query-then-fetch xattr call, retrying if the value grew in between.
fn read_sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fetch: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    loop {
        let size = query()?;
        let mut buf = vec![0u8; size];
        match fetch(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn list_xattrs(path: &Path, follow: bool) -> io::Result<Vec<u8>> {
    if follow {
        read_sized(
            || rustix::fs::listxattr_query(path),
            |buf| rustix::fs::listxattr(path, buf),
        )
    } else {
        read_sized(
            || rustix::fs::llistxattr_query(path),
            |buf| rustix::fs::llistxattr(path, buf),
        )
    }
}

fn get_xattr(path: &Path, follow: bool, name: &OsStr) -> io::Result<Vec<u8>> {
    if follow {
        read_sized(
            || rustix::fs::getxattr_query(path, name),
            |buf| rustix::fs::getxattr(path, name, buf),
        )
    } else {
        read_sized(
            || rustix::fs::lgetxattr_query(path, name),
            |buf| rustix::fs::lgetxattr(path, name, buf),
        )
    }
}
