//! One entry at a time: what each kind of tar entry does to the target (see the module docs of
//! [`apply`](super)).

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::entry_path::EntryPath;
use super::files::FileWriter;
use super::tar_read::{Entry, TarReader};
use crate::fsroot::{self as root, DirError as ResolveError, DirFd, Root};
use crate::layer::changes::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::layer::{ApplyError, Refusal, meta};

/// The state of one apply: what the layer has put in place so far, and the directories whose mtime is
/// set at the end.
pub(super) struct Extract<'r> {
    root: &'r Root,
    /// Paths this layer created or updated; whiteouts leave them alone.
    created: HashSet<Vec<u8>>,
    dirs: Vec<(EntryPath, Timespec, String)>,
    /// The directory the last entry went into: entries come grouped by directory, so most need no
    /// path walk at all. Dropped whenever anything is removed, as it might be below what was removed.
    parent_cache: Option<(Vec<u8>, Arc<OwnedFd>)>,
    entries: u64,
    /// Where regular files go once created; `None` once [`end_files`](Self::end_files) ran.
    files: Option<FileWriter>,
}

/// The metadata an entry sets on what it creates.
pub(super) struct Meta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'r> Extract<'r> {
    pub(super) fn new(root: &'r Root, files: FileWriter) -> Extract<'r> {
        Extract {
            root,
            created: HashSet::new(),
            dirs: Vec::new(),
            parent_cache: None,
            entries: 0,
            files: Some(files),
        }
    }

    /// Applies one entry (reading its data from `tar`) and returns its name as stored.
    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &Entry,
        tar: &mut TarReader<R>,
    ) -> Result<String, ApplyError> {
        let raw = &entry.path;
        let name = String::from_utf8_lossy(raw).into_owned();
        self.entries += 1;
        let kind = entry.kind;
        if entry.sparse {
            return Err(ApplyError::UnsupportedType {
                entry: name,
                type_flag: 'S',
            });
        }
        match kind {
            EntryType::Regular
            | EntryType::Link
            | EntryType::Symlink
            | EntryType::Char
            | EntryType::Block
            | EntryType::Directory
            | EntryType::Fifo => {}
            other => {
                return Err(ApplyError::UnsupportedType {
                    entry: name,
                    type_flag: char::from(other.as_byte()),
                });
            }
        }
        let path = EntryPath::parse(raw).map_err(|reason| refused(&name, reason))?;
        if path.is_root() {
            return Ok(name);
        }
        let file_name = path.file_name();
        if file_name == OPAQUE_MARKER {
            self.opaque(&path, &name)?;
        } else if file_name.starts_with(b".wh..wh.") {
            // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): no meaning outside aufs.
        } else if let Some(victim) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            self.whiteout(&path, victim, &name)?;
        } else {
            self.create(&path, entry, tar, &name)?;
            self.created.insert(path.as_bytes().to_vec());
        }
        Ok(name)
    }

    /// Hands the last files to the writing thread and lets it end once it has written them.
    pub(super) fn end_files(&mut self) -> Result<(), ApplyError> {
        match self.files.take() {
            Some(mut files) => files.flush().map_err(|_| writer_gone("")),
            None => Ok(()),
        }
    }

    /// Sets directory mtimes, now that nothing more is created in them (the writing thread must be
    /// done); returns the entry count.
    pub(super) fn finish(self) -> Result<u64, ApplyError> {
        for (path, mtime, name) in &self.dirs {
            // A later entry may have replaced the directory; then its mtime is not ours to set.
            let Some(dir) = self
                .root
                .dir(path.as_bytes(), false)
                .map_err(|e| resolve_error(name, e))?
            else {
                continue;
            };
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rustix::fs::futimens(&dir, &times).map_err(|e| io_error(name, "set its mtime", e.into()))?;
        }
        Ok(self.entries)
    }

    fn whiteout(&mut self, path: &EntryPath, victim: &[u8], name: &str) -> Result<(), ApplyError> {
        if victim.is_empty() || victim == b"." || victim == b".." {
            let victim = String::from_utf8_lossy(victim).into_owned();
            return Err(refused(name, Refusal::BadWhiteout { name: victim }));
        }
        let parent = path.parent();
        let victim_path = EntryPath::parse(parent).expect("normalized").join(victim);
        if self.created.contains(victim_path.as_bytes()) {
            return Ok(()); // whiteouts only hide lower layers, never the layer's own entries
        }
        let Some(dir) = self.root.dir(parent, false).map_err(|e| resolve_error(name, e))? else {
            return Ok(()); // nothing there to hide
        };
        self.parent_cache = None;
        root::remove_all(&dir, victim).map_err(|e| io_error(name, "remove the path it whites out", e))
    }

    fn opaque(&mut self, path: &EntryPath, name: &str) -> Result<(), ApplyError> {
        let dir_path = EntryPath::parse(path.parent()).expect("normalized");
        let Some(dir) = self
            .root
            .dir(dir_path.as_bytes(), false)
            .map_err(|e| resolve_error(name, e))?
        else {
            return Ok(());
        };
        let children = root::list(&dir).map_err(|e| io_error(name, "list its directory", e))?;
        self.parent_cache = None;
        for child in children {
            if !self.created.contains(dir_path.join(child.as_bytes()).as_bytes()) {
                root::remove_all(&dir, child.as_bytes())
                    .map_err(|e| io_error(name, "empty its directory", e))?;
            }
        }
        Ok(())
    }

    fn create<R: Read>(
        &mut self,
        path: &EntryPath,
        entry: &Entry,
        tar: &mut TarReader<R>,
        name: &str,
    ) -> Result<(), ApplyError> {
        let kind = entry.kind;
        let parent = self.parent_dir(path.parent(), name)?;
        let file_name = path.file_name();
        let meta = Meta::of(entry, name)?;
        match kind {
            EntryType::Directory => {
                let kept = match rustix::fs::mkdirat(&parent, file_name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => false,
                    Err(Errno::EXIST) if Self::is_dir_at(&parent, file_name, name)? => true,
                    Err(Errno::EXIST) => {
                        self.remove_at(&parent, file_name, name)?;
                        rustix::fs::mkdirat(&parent, file_name, Mode::from_raw_mode(0o700))
                            .map_err(|e| io_error(name, "create the directory", e.into()))?;
                        false
                    }
                    Err(e) => return Err(io_error(name, "create the directory", e.into())),
                };
                let fd = rustix::fs::openat(
                    &parent,
                    file_name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_error(name, "open the directory", e.into()))?;
                if kept {
                    meta.drop_other_xattrs(&fd, name)?;
                }
                meta.set_on_fd(&fd, name, false)?;
                self.dirs.push((path.clone(), meta.mtime, name.to_owned()));
            }
            EntryType::Regular => {
                let create = || {
                    rustix::fs::openat(
                        &parent,
                        file_name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(meta.mode.as_raw_mode() & 0o777),
                    )
                };
                let fd = self.replacing(&parent, file_name, name, "create the file", create)?;
                self.file_writer()?
                    .file(fd, name, meta, entry.size)
                    .map_err(|_| writer_gone(name))?;
                self.copy_data(entry.size, tar, name)?;
            }
            EntryType::Symlink => {
                let create = || rustix::fs::symlinkat(entry.link.as_slice(), &parent, file_name);
                self.replacing(&parent, file_name, name, "create the symlink", create)?;
                meta.set_at(&parent, file_name, name, false)?;
            }
            EntryType::Link => self.hardlink(path, &parent, entry, name)?,
            _ => {
                let (file_type, dev) = match kind {
                    EntryType::Char => (
                        FileType::CharacterDevice,
                        rustix::fs::makedev(entry.device.0, entry.device.1),
                    ),
                    EntryType::Block => (
                        FileType::BlockDevice,
                        rustix::fs::makedev(entry.device.0, entry.device.1),
                    ),
                    _ => (FileType::Fifo, 0),
                };
                let create =
                    || rustix::fs::mknodat(&parent, file_name, file_type, Mode::from_raw_mode(0o600), dev);
                self.replacing(&parent, file_name, name, "create the node", create)?;
                meta.set_at(&parent, file_name, name, true)?;
            }
        }
        Ok(())
    }

    /// The directory that holds an entry, created when missing; from the cache when it is the last one.
    fn parent_dir(&mut self, dir: &[u8], name: &str) -> Result<DirFd<'r>, ApplyError> {
        if let Some((cached, fd)) = &self.parent_cache {
            if cached == dir {
                return Ok(DirFd::Shared(Arc::clone(fd)));
            }
        }
        match self.root.dir(dir, true).map_err(|e| resolve_error(name, e))? {
            Some(DirFd::Owned(fd)) => {
                let fd = Arc::new(fd);
                self.parent_cache = Some((dir.to_vec(), Arc::clone(&fd)));
                Ok(DirFd::Shared(fd))
            }
            Some(fd) => Ok(fd),
            None => unreachable!("Root::dir creates what is missing when asked to"),
        }
    }

    /// Runs `create`; if something is in the way, removes it (whatever it is, a symlink included, never
    /// followed) and runs `create` once more.
    fn replacing<T>(
        &mut self,
        parent: &DirFd<'_>,
        file_name: &[u8],
        name: &str,
        what: &str,
        create: impl Fn() -> Result<T, Errno>,
    ) -> Result<T, ApplyError> {
        match create() {
            Err(Errno::EXIST) => {
                self.remove_at(parent, file_name, name)?;
                create().map_err(|e| io_error(name, what, e.into()))
            }
            other => other.map_err(|e| io_error(name, what, e.into())),
        }
    }

    fn remove_at(&mut self, parent: &DirFd<'_>, file_name: &[u8], name: &str) -> Result<(), ApplyError> {
        self.parent_cache = None;
        root::remove_all(parent, file_name).map_err(|e| io_error(name, "replace what is at its path", e))
    }

    fn is_dir_at(parent: &DirFd<'_>, file_name: &[u8], name: &str) -> Result<bool, ApplyError> {
        let st = root::lstat_at(parent, file_name).map_err(|e| io_error(name, "look at its path", e))?;
        Ok(st.as_ref().is_some_and(root::is_dir))
    }

    fn file_writer(&mut self) -> Result<&mut FileWriter, ApplyError> {
        self.files.as_mut().ok_or_else(|| writer_gone(""))
    }

    /// Reads exactly the entry's declared size and queues it for the file just queued.
    fn copy_data<R: Read>(
        &mut self,
        size: u64,
        tar: &mut TarReader<R>,
        name: &str,
    ) -> Result<(), ApplyError> {
        let files = self.file_writer()?;
        let mut left = size;
        while left > 0 {
            let room = files.room().map_err(|_| writer_gone(name))?;
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(room.len());
            let n = match tar.read_data(&mut room[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ApplyError::Truncated {
                        entry: name.to_owned(),
                        expected: size,
                        read: size - left,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(name, "read its data from the layer", e)),
            };
            files.commit(n);
            left -= n as u64;
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        path: &EntryPath,
        parent: &DirFd<'_>,
        entry: &Entry,
        name: &str,
    ) -> Result<(), ApplyError> {
        let raw_target = &entry.link;
        let target_name = String::from_utf8_lossy(raw_target).into_owned();
        let refuse = |reason| ApplyError::RefusedLink {
            entry: name.to_owned(),
            target: target_name.clone(),
            reason,
        };
        let target = EntryPath::parse(raw_target).map_err(refuse)?;
        if target.is_root() || target == *path {
            return Err(refuse(Refusal::SelfOrRoot));
        }
        let target_dir = match self.root.dir(target.parent(), false) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Err(refuse(Refusal::Missing)),
            Err(ResolveError::Refused(reason)) => return Err(refuse(reason.into())),
            Err(ResolveError::Io(e)) => {
                return Err(io_error(name, "open the hardlink target's directory", e));
            }
        };
        match root::lstat_at(&target_dir, target.file_name()) {
            Ok(Some(st)) if root::is_dir(&st) => return Err(refuse(Refusal::Directory)),
            Ok(Some(_)) => {}
            Ok(None) => return Err(refuse(Refusal::Missing)),
            Err(e) => return Err(io_error(name, "look at the hardlink target", e)),
        }
        let link = || {
            rustix::fs::linkat(
                &target_dir,
                target.file_name(),
                parent,
                path.file_name(),
                AtFlags::empty(),
            )
        };
        self.replacing(parent, path.file_name(), name, "create the hardlink", link)
    }
}

impl Meta {
    fn of(entry: &Entry, name: &str) -> Result<Meta, ApplyError> {
        let id = |v: u64| {
            u32::try_from(v).map_err(|_| {
                io_error(
                    name,
                    "read its header",
                    io::Error::new(io::ErrorKind::InvalidData, "owner id over 32 bits"),
                )
            })
        };
        Ok(Meta {
            mode: Mode::from_raw_mode(entry.mode),
            uid: Uid::from_raw(id(entry.uid)?),
            gid: Gid::from_raw(id(entry.gid)?),
            mtime: entry.mtime,
            xattrs: entry
                .xattrs
                .iter()
                .filter(|(k, _)| !meta::is_overlay_xattr(k))
                .cloned()
                .collect(),
        })
    }

    /// Sets owner, then attributes, then mode (a chown clears setuid bits and file capabilities), then
    /// the mtime unless it is a directory's (set at the very end).
    ///
    /// A new file usually has the right owner and mode already (made by this process, with the entry's
    /// permission bits), so what is set is only what differs: each `fchown` or `fchmod` dirties the
    /// inode, and for a layer of small files that shows.
    pub(super) fn set_on_fd(&self, fd: &impl AsFd, name: &str, with_mtime: bool) -> Result<(), ApplyError> {
        let st = rustix::fs::fstat(fd).map_err(|e| io_error(name, "look at what it created", e.into()))?;
        let chown = st.st_uid != self.uid.as_raw() || st.st_gid != self.gid.as_raw();
        if chown {
            rustix::fs::fchown(fd, Some(self.uid), Some(self.gid))
                .map_err(|e| io_error(name, "set its owner", e.into()))?;
        }
        for (key, value) in &self.xattrs {
            rustix::fs::fsetxattr(fd, key.as_slice(), value, XattrFlags::empty()).map_err(|e| {
                io_error(
                    name,
                    &format!("set xattr {}", String::from_utf8_lossy(key)),
                    e.into(),
                )
            })?;
        }
        // An ACL among the xattrs may have moved the mode bits; a chown clears setuid and setgid.
        if chown || !self.xattrs.is_empty() || st.st_mode & 0o7777 != self.mode.as_raw_mode() {
            rustix::fs::fchmod(fd, self.mode).map_err(|e| io_error(name, "set its mode", e.into()))?;
        }
        if with_mtime {
            rustix::fs::futimens(fd, &self.times()).map_err(|e| io_error(name, "set its mtime", e.into()))?;
        }
        Ok(())
    }

    /// A directory the layer keeps takes the entry's attributes as a whole: those it had and the entry
    /// does not list are removed (save the ones layers never carry, which belong to the host).
    fn drop_other_xattrs(&self, fd: &impl AsFd, name: &str) -> Result<(), ApplyError> {
        let failed = |e: rustix::io::Errno| io_error(name, "replace its xattrs", e.into());
        let size = match rustix::fs::flistxattr_query(fd) {
            Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(()),
            Ok(size) => size,
            Err(e) => return Err(failed(e)),
        };
        let mut list = vec![0; size];
        let len = rustix::fs::flistxattr(fd, &mut list[..]).map_err(failed)?;
        for key in list[..len].split(|&b| b == 0).filter(|k| !k.is_empty()) {
            if meta::is_emitted_xattr(key) && !self.xattrs.iter().any(|(k, _)| k == key) {
                rustix::fs::fremovexattr(fd, key).map_err(failed)?;
            }
        }
        Ok(())
    }

    /// The same for what cannot be opened safely: symlinks (no mode on Linux) and device nodes or FIFOs
    /// (opening one may block or touch hardware).
    fn set_at(
        &self,
        dir: &impl AsFd,
        file_name: &[u8],
        name: &str,
        with_mode: bool,
    ) -> Result<(), ApplyError> {
        rustix::fs::chownat(
            dir,
            file_name,
            Some(self.uid),
            Some(self.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_error(name, "set its owner", e.into()))?;
        if !self.xattrs.is_empty() {
            let path = root::proc_path(dir, file_name);
            for (key, value) in &self.xattrs {
                rustix::fs::lsetxattr(path.as_c_str(), key.as_slice(), value, XattrFlags::empty()).map_err(
                    |e| {
                        io_error(
                            name,
                            &format!("set xattr {}", String::from_utf8_lossy(key)),
                            e.into(),
                        )
                    },
                )?;
            }
        }
        if with_mode {
            // We just made this node ourselves, so following a symlink here is not a risk.
            rustix::fs::chmodat(dir, file_name, self.mode, AtFlags::empty())
                .map_err(|e| io_error(name, "set its mode", e.into()))?;
        }
        rustix::fs::utimensat(dir, file_name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_error(name, "set its mtime", e.into()))
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

fn refused(name: &str, reason: Refusal) -> ApplyError {
    ApplyError::Refused {
        entry: name.to_owned(),
        reason,
    }
}

fn resolve_error(name: &str, e: ResolveError) -> ApplyError {
    match e {
        ResolveError::Refused(reason) => refused(name, reason.into()),
        ResolveError::Io(source) => io_error(name, "open its directory", source),
    }
}

/// Stands in for the writing thread's own error, which is the one reported (see `apply`).
fn writer_gone(name: &str) -> ApplyError {
    io_error(
        name,
        "hand its data to the thread writing files",
        io::Error::other("that thread stopped"),
    )
}

pub(super) fn io_error(name: &str, op: &str, source: io::Error) -> ApplyError {
    ApplyError::Io {
        entry: name.to_owned(),
        op: op.to_owned(),
        source,
    }
}
