//! Copying entries and trees between two roots with `cp -a` semantics, the way fsutil's copier does:
//! directories merge into existing ones, files and symlinks replace what is there (never a
//! directory), symlinks are copied as symlinks, hardlinks within one copy stay hardlinks, device
//! nodes are recreated, FIFOs and sockets are skipped. Every call is relative to a directory fd on
//! both sides and never follows the entry it acts on.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::{AtFlags, FileType, Mode as RawMode, OFlags, Stat};

use crate::fsroot::{DIR_NOFOLLOW, is_dir, list, lstat_at};

use super::meta::{Metadata, set_times};
use super::{CopyReport, FsopError, Owner};

/// A source entry: `name` in the directory `dir`, as `st` describes it. `path` is for messages.
pub(super) struct SrcEntry<'a> {
    pub(super) dir: BorrowedFd<'a>,
    pub(super) name: &'a CStr,
    pub(super) st: Stat,
    pub(super) path: String,
}

/// A destination directory: its fd (shared, so hardlink records can keep it) and in-root path.
#[derive(Clone)]
pub(super) struct DstDir {
    pub(super) fd: Rc<OwnedFd>,
    pub(super) path: String,
}

impl DstDir {
    pub(super) fn new(fd: OwnedFd, path: String) -> DstDir {
        DstDir {
            fd: Rc::new(fd),
            path,
        }
    }

    pub(super) fn child_path(&self, name: &CStr) -> String {
        join(&self.path, name)
    }
}

/// One copy's state: how to set metadata, what to leave out, which inodes were already written.
pub(super) struct Copier<'a> {
    pub(super) meta: Metadata<'a>,
    /// `--chown`: owner of the directories the copy creates on its own, and of extracted entries.
    chown: Option<Owner>,
    pub(super) excludes: Option<&'a Patterns>,
    /// Files with several links already written: (dev, ino) -> where.
    links: HashMap<(u64, u64), (Rc<OwnedFd>, CString)>,
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
    pub(super) fn copy_entry(
        &mut self,
        src: &SrcEntry<'_>,
        dst: &DstDir,
        name: &CStr,
        rel: &str,
        state: &MatchState,
        top: bool,
    ) -> Result<(), FsopError> {
        let dst_path = dst.child_path(name);
        match FileType::from_raw_mode(src.st.st_mode) {
            FileType::Directory => self.copy_dir(src, dst, name, &dst_path, rel, state, top),
            FileType::RegularFile => self.copy_file(src, dst, name, &dst_path),
            FileType::Symlink => {
                clear_target(dst.fd.as_fd(), name, &dst_path)?;
                let target = rustix::fs::readlinkat(src.dir, src.name, Vec::new())
                    .map_err(|e| FsopError::io("read link", &src.path, e))?;
                rustix::fs::symlinkat(&*target, dst.fd.as_fd(), name)
                    .map_err(|e| FsopError::io("create symlink", &dst_path, e))?;
                self.finish(src, dst, name, None, &dst_path)?;
                self.report.symlinks += 1;
                Ok(())
            }
            file_type @ (FileType::CharacterDevice | FileType::BlockDevice) => {
                clear_target(dst.fd.as_fd(), name, &dst_path)?;
                rustix::fs::mknodat(
                    dst.fd.as_fd(),
                    name,
                    file_type,
                    RawMode::from_raw_mode(src.st.st_mode & 0o7777),
                    src.st.st_rdev,
                )
                .map_err(|e| FsopError::io("create device", &dst_path, e))?;
                self.finish(src, dst, name, None, &dst_path)?;
                self.report.specials += 1;
                Ok(())
            }
            // fsutil leaves FIFOs and sockets out without a word; so does kiln.
            _ => Ok(()),
        }
    }

    fn finish(
        &self,
        src: &SrcEntry<'_>,
        dst: &DstDir,
        name: &CStr,
        fd: Option<BorrowedFd<'_>>,
        dst_path: &str,
    ) -> Result<(), FsopError> {
        self.meta
            .apply(dst.fd.as_fd(), name, fd, &src.st, Some((src.dir, src.name)))
            .map_err(|e| FsopError::io("set metadata of", dst_path, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_dir(
        &mut self,
        src: &SrcEntry<'_>,
        dst: &DstDir,
        name: &CStr,
        dst_path: &str,
        rel: &str,
        state: &MatchState,
        top: bool,
    ) -> Result<(), FsopError> {
        let created = match lstat_at(&dst.fd.as_fd(), name).map_err(|e| FsopError::io("stat", dst_path, e))? {
            None => {
                // Owner-only until the metadata is set, once the contents are in.
                rustix::fs::mkdirat(dst.fd.as_fd(), name, RawMode::from_raw_mode(0o700))
                    .map_err(|e| FsopError::io("create directory", dst_path, e))?;
                true
            }
            Some(st) if is_dir(&st) => false,
            Some(_) => {
                return Err(FsopError::CopyToNonDirectory {
                    path: dst_path.to_owned(),
                });
            }
        };
        let dst_fd = rustix::fs::openat(dst.fd.as_fd(), name, DIR_NOFOLLOW, RawMode::empty())
            .map_err(|e| FsopError::io("open directory", dst_path, e))?;
        let src_fd = rustix::fs::openat(src.dir, src.name, DIR_NOFOLLOW, RawMode::empty())
            .map_err(|e| FsopError::io("open directory", &src.path, e))?;
        let child_dst = DstDir::new(dst_fd, dst_path.to_owned());
        self.copy_children(&src_fd, &src.path, &child_dst, rel, state)?;
        if created || !top {
            self.meta
                .apply(
                    dst.fd.as_fd(),
                    name,
                    Some(child_dst.fd.as_fd()),
                    &src.st,
                    Some((src.dir, src.name)),
                )
                .map_err(|e| FsopError::io("set metadata of", dst_path, e))?;
            self.report.dirs += 1;
        }
        Ok(())
    }

    /// Copies what the source directory `src_dir` holds into `dst`, leaving out excluded paths.
    pub(super) fn copy_children(
        &mut self,
        src_dir: &OwnedFd,
        src_path: &str,
        dst: &DstDir,
        rel: &str,
        state: &MatchState,
    ) -> Result<(), FsopError> {
        for name in list(src_dir).map_err(|e| FsopError::io("read directory", src_path, e))? {
            let path = join(src_path, &name);
            let Some(st) = lstat_at(src_dir, &name).map_err(|e| FsopError::io("stat", &path, e))? else {
                continue; // Gone since the listing.
            };
            let child_rel = join_rel(rel, &name);
            let Some(child_state) = self.included(&child_rel, is_dir(&st), state) else {
                continue;
            };
            let entry = SrcEntry {
                dir: src_dir.as_fd(),
                name: &name,
                st,
                path,
            };
            self.copy_entry(&entry, dst, &name, &child_rel, &child_state, false)?;
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

    fn copy_file(
        &mut self,
        src: &SrcEntry<'_>,
        dst: &DstDir,
        name: &CStr,
        dst_path: &str,
    ) -> Result<(), FsopError> {
        clear_target(dst.fd.as_fd(), name, dst_path)?;
        let key = (src.st.st_dev, src.st.st_ino);
        if src.st.st_nlink > 1 {
            if let Some((link_dir, link_name)) = self.links.get(&key) {
                rustix::fs::linkat(
                    link_dir.as_fd(),
                    link_name,
                    dst.fd.as_fd(),
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| FsopError::io("create hard link", dst_path, e))?;
                self.finish(src, dst, name, None, dst_path)?;
                self.report.hardlinks += 1;
                return Ok(());
            }
        }
        let src_fd = rustix::fs::openat(
            src.dir,
            src.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            RawMode::empty(),
        )
        .map_err(|e| FsopError::io("open", &src.path, e))?;
        // What was opened must be what was looked at: a swap in between is refused, not followed.
        let st = rustix::fs::fstat(&src_fd).map_err(|e| FsopError::io("stat", &src.path, e))?;
        if (st.st_dev, st.st_ino) != key || FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(FsopError::io(
                "copy",
                &src.path,
                std::io::Error::other("source changed during the copy"),
            ));
        }
        let dst_fd = rustix::fs::openat(
            dst.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            RawMode::from_raw_mode(0o600),
        )
        .map_err(|e| FsopError::io("create", dst_path, e))?;
        let (mut from, mut to) = (File::from(src_fd), File::from(dst_fd));
        // std's copy uses copy_file_range (reflinks where the filesystem can) and falls back itself.
        let bytes = std::io::copy(&mut from, &mut to).map_err(|e| FsopError::io("copy", &src.path, e))?;
        self.meta
            .apply(
                dst.fd.as_fd(),
                name,
                Some(to.as_fd()),
                &st,
                Some((src.dir, src.name)),
            )
            .map_err(|e| FsopError::io("set metadata of", dst_path, e))?;
        if st.st_nlink > 1 {
            self.links.insert(key, (Rc::clone(&dst.fd), name.to_owned()));
        }
        self.report.files += 1;
        self.report.bytes += bytes;
        Ok(())
    }

    /// Sets the times of directories created for `--parents` once their contents are in.
    pub(super) fn restore_dir_times(dirs: &[(DstDir, CString, Stat)]) -> Result<(), FsopError> {
        for (parent, name, st) in dirs.iter().rev() {
            set_times(parent.fd.as_fd(), name, st)
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
