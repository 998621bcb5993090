//! Copying entries and trees between two roots with `cp -a` semantics, the way fsutil's copier does:
//! directories merge into existing ones, files and symlinks replace what is there (never a
//! directory), symlinks are copied as symlinks, hardlinks within one copy stay hardlinks, device
//! nodes are recreated, FIFOs and sockets are skipped. The destination side is a directory fd and a
//! name, and no call follows the entry it acts on.
//!
//! The source side is a [`SourceTree`]: what the copier reads entries from. Two kinds exist, and the
//! copier treats them alike: a directory on disk (`source::DirTree`, for stages and images: every
//! read relative to a directory fd) and the entries a build context selection holds
//! (`context::SelectionTree`: what `.dockerignore` and `--exclude` left, read through the context).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::{AtFlags, FileType, Mode as RawMode, OFlags};

use crate::fsroot::{DIR_NOFOLLOW, is_dir, lstat_at};

use super::meta::{Info, Metadata, Xattrs, set_times};
use super::{CopyReport, FsopError, Owner};

/// Where a copy reads from. A *node* is one entry of the tree; the copier asks what it is, what a
/// directory holds, and for the bytes, link target and attributes of the others.
pub(super) trait SourceTree {
    /// One entry.
    type Node;

    /// Its `lstat` data.
    fn info(&self, node: &Self::Node) -> Info;

    /// Its path, for messages.
    fn path(&self, node: &Self::Node) -> String;

    /// The entries of a directory, with their names, in name order.
    fn children(&self, dir: &Self::Node) -> Result<Vec<(CString, Self::Node)>, FsopError>;

    /// Opens a regular file for reading: the very file [`info`](SourceTree::info) describes, or an
    /// error.
    fn open_file(&self, node: &Self::Node) -> Result<File, FsopError>;

    /// Checks, once `bytes` were read from `file` (opened by [`open_file`](SourceTree::open_file)),
    /// that they are the whole of the version [`info`](SourceTree::info) describes.
    fn check_read(&self, node: &Self::Node, file: &File, bytes: u64) -> Result<(), FsopError>;

    /// A symlink's target.
    fn read_link(&self, node: &Self::Node) -> Result<Vec<u8>, FsopError>;

    /// Extended attributes to give the copy.
    fn xattrs(&self, node: &Self::Node) -> Result<Xattrs, FsopError>;
}

/// A destination directory: its fd (shared, so hardlink records can keep it) and in-root path.
#[derive(Clone)]
pub(super) struct DstDir {
    pub(super) fd: Rc<OwnedFd>,
    pub(super) path: String,
    /// Made by this copy, for one source directory's entries: nothing can be in the way of them,
    /// so they are created without looking first.
    fresh: bool,
}

impl DstDir {
    pub(super) fn new(fd: OwnedFd, path: String) -> DstDir {
        DstDir {
            fd: Rc::new(fd),
            path,
            fresh: false,
        }
    }

    pub(super) fn child_path(&self, name: &CStr) -> String {
        join(&self.path, name)
    }

    /// Makes room for a non-directory at `name` (see [`clear_target`]); nothing to do in a fresh
    /// directory.
    fn clear_target(&self, name: &CStr, path: &str) -> Result<(), FsopError> {
        if self.fresh {
            return Ok(());
        }
        clear_target(self.fd.as_fd(), name, path)
    }
}

/// One copy's state: how to set metadata, what to leave out, which inodes were already written.
pub(super) struct Copier<'a> {
    pub(super) meta: Metadata<'a>,
    /// `--chown`: owner of the directories the copy creates on its own, and of extracted entries.
    chown: Option<Owner>,
    /// `--exclude`, when the source tree does not apply it itself.
    pub(super) excludes: Option<&'a Patterns>,
    /// Files with several links already written: (dev, ino) -> where.
    links: HashMap<(u64, u64), (Rc<OwnedFd>, CString)>,
    /// `copy_file_range` was refused between this copy's source and destination.
    no_copy_file_range: bool,
    pub(super) report: CopyReport,
}

impl<'a> Copier<'a> {
    pub(super) fn new(
        meta: Metadata<'a>,
        chown: Option<Owner>,
        excludes: Option<&'a Patterns>,
    ) -> Copier<'a> {
        Copier {
            meta,
            chown,
            excludes,
            links: HashMap::new(),
            no_copy_file_range: false,
            report: CopyReport::default(),
        }
    }

    /// `--chown`: the owner of directories this copy creates on its own (parents of the
    /// destination, which are root's otherwise) and of entries extracted from archives.
    pub(super) fn chown(&self) -> Option<Owner> {
        self.chown
    }

    /// Copies `src` to `name` in `dst`. `rel` is the entry's path relative to the copy's source (for
    /// excludes of what is below it), `state` its exclude state. At the `top` of a copy an existing
    /// directory keeps its own metadata; below it, it takes the source's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_entry<T: SourceTree>(
        &mut self,
        tree: &T,
        src: &T::Node,
        dst: &DstDir,
        name: &CStr,
        rel: &str,
        state: &MatchState,
        top: bool,
    ) -> Result<(), FsopError> {
        let dst_path = dst.child_path(name);
        let info = tree.info(src);
        match info.file_type() {
            FileType::Directory => self.copy_dir(tree, src, &info, dst, name, rel, state, top),
            FileType::RegularFile => self.copy_file(tree, src, &info, dst, name),
            FileType::Symlink => {
                let target = tree.read_link(src)?;
                dst.clear_target(name, &dst_path)?;
                rustix::fs::symlinkat(&*target, dst.fd.as_fd(), name)
                    .map_err(|e| FsopError::io("create symlink", &dst_path, e))?;
                self.finish(tree, src, &info, dst, name, None)?;
                self.report.symlinks += 1;
                Ok(())
            }
            file_type @ (FileType::CharacterDevice | FileType::BlockDevice) => {
                dst.clear_target(name, &dst_path)?;
                rustix::fs::mknodat(
                    dst.fd.as_fd(),
                    name,
                    file_type,
                    RawMode::from_raw_mode(info.mode & 0o7777),
                    info.rdev,
                )
                .map_err(|e| FsopError::io("create device", &dst_path, e))?;
                self.finish(tree, src, &info, dst, name, None)?;
                self.report.specials += 1;
                Ok(())
            }
            // fsutil leaves FIFOs and sockets out without a word; so does kiln.
            _ => Ok(()),
        }
    }

    /// Gives `name` in `dst` the metadata of `src` (through `fd` when it is open).
    fn finish<T: SourceTree>(
        &self,
        tree: &T,
        src: &T::Node,
        info: &Info,
        dst: &DstDir,
        name: &CStr,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), FsopError> {
        let xattrs = tree.xattrs(src)?;
        self.meta
            .apply(dst.fd.as_fd(), name, fd, info, &xattrs)
            .map_err(|e| FsopError::io("set metadata of", &dst.child_path(name), e))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_dir<T: SourceTree>(
        &mut self,
        tree: &T,
        src: &T::Node,
        info: &Info,
        dst: &DstDir,
        name: &CStr,
        rel: &str,
        state: &MatchState,
        top: bool,
    ) -> Result<(), FsopError> {
        let dst_path = dst.child_path(name);
        let existing = if dst.fresh {
            None
        } else {
            lstat_at(&dst.fd.as_fd(), name).map_err(|e| FsopError::io("stat", &dst_path, e))?
        };
        let created = match existing {
            None => {
                // Owner-only until the metadata is set, once the contents are in.
                rustix::fs::mkdirat(dst.fd.as_fd(), name, RawMode::from_raw_mode(0o700))
                    .map_err(|e| FsopError::io("create directory", &dst_path, e))?;
                true
            }
            Some(st) if is_dir(&st) => false,
            Some(_) => return Err(FsopError::CopyToNonDirectory { path: dst_path }),
        };
        let dst_fd = rustix::fs::openat(dst.fd.as_fd(), name, DIR_NOFOLLOW, RawMode::empty())
            .map_err(|e| FsopError::io("open directory", &dst_path, e))?;
        let child_dst = DstDir {
            fresh: created,
            ..DstDir::new(dst_fd, dst_path)
        };
        self.copy_children(tree, src, &child_dst, rel, state)?;
        if created || !top {
            self.finish(tree, src, info, dst, name, Some(child_dst.fd.as_fd()))?;
            self.report.dirs += 1;
        }
        Ok(())
    }

    /// Copies what the source directory `dir` holds into `dst`, leaving out excluded paths.
    pub(super) fn copy_children<T: SourceTree>(
        &mut self,
        tree: &T,
        dir: &T::Node,
        dst: &DstDir,
        rel: &str,
        state: &MatchState,
    ) -> Result<(), FsopError> {
        for (name, child) in tree.children(dir)? {
            let child_rel = join_rel(rel, &name);
            let Some(child_state) = self.included(&child_rel, tree.info(&child).is_dir(), state) else {
                continue;
            };
            self.copy_entry(tree, &child, dst, &name, &child_rel, &child_state, false)?;
        }
        Ok(())
    }

    /// The exclude state of `rel` when it is copied, `None` when it is left out (an excluded
    /// directory is still entered when an exception may re-include something in it).
    pub(super) fn included(&self, rel: &str, is_dir: bool, parent: &MatchState) -> Option<MatchState> {
        let Some(patterns) = self.excludes else {
            return Some(MatchState::root());
        };
        let verdict = patterns.matcher().check(rel, parent);
        if verdict.excluded && !(is_dir && patterns.should_descend(rel)) {
            return None;
        }
        Some(verdict.state)
    }

    fn copy_file<T: SourceTree>(
        &mut self,
        tree: &T,
        src: &T::Node,
        info: &Info,
        dst: &DstDir,
        name: &CStr,
    ) -> Result<(), FsopError> {
        let dst_path = dst.child_path(name);
        dst.clear_target(name, &dst_path)?;
        let key = (info.dev, info.ino);
        if info.nlink > 1 {
            if let Some((link_dir, link_name)) = self.links.get(&key) {
                rustix::fs::linkat(
                    link_dir.as_fd(),
                    link_name,
                    dst.fd.as_fd(),
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| FsopError::io("create hard link", &dst_path, e))?;
                self.finish(tree, src, info, dst, name, None)?;
                self.report.hardlinks += 1;
                return Ok(());
            }
        }
        let from = tree.open_file(src)?;
        let dst_fd = rustix::fs::openat(
            dst.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            RawMode::from_raw_mode(0o600),
        )
        .map_err(|e| FsopError::io("create", &dst_path, e))?;
        let to = File::from(dst_fd);
        let bytes = self
            .copy_data(&from, &to, info.size)
            .map_err(|e| FsopError::io("copy", &tree.path(src), e))?;
        tree.check_read(src, &from, bytes)?;
        self.finish(tree, src, info, dst, name, Some(to.as_fd()))?;
        if info.nlink > 1 {
            self.links.insert(key, (Rc::clone(&dst.fd), name.to_owned()));
        }
        self.report.files += 1;
        self.report.bytes += bytes;
        Ok(())
    }

    /// Copies the file `from` into the empty `to`, returning the bytes copied: `copy_file_range`
    /// (reflinks or in-kernel copies where the filesystem can), else `sendfile`. The first refusal
    /// of `copy_file_range` (between two filesystems, as a context directory and an overlay mount
    /// are) is remembered for the rest of the copy: a syscall less per file. The copy stops at
    /// `size`, the size the source was listed with (or at its end if it is shorter); the caller's
    /// check of the source against its listing catches a file that changed meanwhile.
    fn copy_data(&mut self, from: &File, to: &File, size: u64) -> std::io::Result<u64> {
        const CHUNK: u64 = 1 << 30;
        let mut copied = 0u64;
        loop {
            if size > 0 && copied >= size {
                return Ok(copied);
            }
            // At least one byte: a file listed as empty is read to its end all the same.
            let want = usize::try_from(size.saturating_sub(copied).clamp(1, CHUNK)).unwrap_or(1 << 30);
            let result = if self.no_copy_file_range {
                rustix::fs::sendfile(to, from, None, want)
            } else {
                rustix::fs::copy_file_range(from, None, to, None, want)
            };
            match result {
                Ok(0) => return Ok(copied),
                Ok(n) => copied += n as u64,
                Err(rustix::io::Errno::INTR) => {}
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::OPNOTSUPP
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::PERM,
                ) if copied == 0 && !self.no_copy_file_range => self.no_copy_file_range = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sets the times of directories created for `--parents` once their contents are in.
    pub(super) fn restore_dir_times(dirs: &[(DstDir, CString, Info)]) -> Result<(), FsopError> {
        for (parent, name, info) in dirs.iter().rev() {
            set_times(parent.fd.as_fd(), name, info)
                .map_err(|e| FsopError::io("set times of", &parent.child_path(name), e))?;
        }
        Ok(())
    }
}

/// Makes room for a non-directory at `name`: what is there goes, unless it is a directory.
pub(super) fn clear_target(dir: BorrowedFd<'_>, name: &CStr, path: &str) -> Result<(), FsopError> {
    match lstat_at(&dir, name).map_err(|e| FsopError::io("stat", path, e))? {
        None => Ok(()),
        Some(st) if is_dir(&st) => Err(FsopError::ReplaceDirWithFile {
            path: path.to_owned(),
        }),
        Some(_) => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| FsopError::io("remove", path, e))
        }
    }
}

/// `dir/name` for messages (`/` joins without doubling).
pub(super) fn join(dir: &str, name: &CStr) -> String {
    let name = String::from_utf8_lossy(name.to_bytes());
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `rel/name`, relative paths as the exclude patterns see them.
pub(super) fn join_rel(rel: &str, name: &CStr) -> String {
    let name = String::from_utf8_lossy(name.to_bytes());
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}
