//! Files inside the rootfs, reached without ever leaving it, and the mount points a run creates there.
//!
//! The rootfs comes from an image: any path in it may be a symlink, absolute or full of `..`, pointing
//! anywhere on the host if followed naively. Every lookup here goes through `openat2` with
//! `RESOLVE_IN_ROOT`, which resolves symlinks as if the rootfs were `/`, and every change is made
//! relative to a directory descriptor found that way.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps, fstat, futimens, mkdirat, openat,
    openat2, readlinkat, statat, unlinkat,
};
use rustix::io::Errno;

/// An open rootfs directory.
#[derive(Debug)]
pub(super) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens the rootfs at `path` (made absolute, symlinks resolved: it is the caller's, not the image's).
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let path = path.canonicalize()?;
        let fd = openat2(
            rustix::fs::CWD,
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::empty(),
        )?;
        Ok(Self { fd, path })
    }

    /// The rootfs's absolute host path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens directory `rel` (relative to the rootfs, `""` for the rootfs itself) for reading.
    pub(super) fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?)
    }

    /// Reads file `rel`; `None` when it does not exist.
    pub(super) fn read_file(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        match openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        ) {
            Ok(fd) => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)?;
                Ok(Some(bytes))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// `mkdir -p rel`: missing directories are created root-owned, mode 0755.
    pub(super) fn mkdir_all(&self, rel: &Path) -> io::Result<()> {
        let resolved = self.resolve(rel)?;
        let names = components(&resolved);
        for depth in 1..=names.len() {
            let parent = self.open_dir(&names[..depth - 1].iter().collect::<PathBuf>())?;
            let name = names[depth - 1];
            match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(err) => return Err(err.into()),
            }
            mkdirat(&parent, name, Mode::from_raw_mode(0o755))?;
            // The umask must not decide the mode of a directory that ends up in the image.
            rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(0o755), AtFlags::empty())?;
        }
        Ok(())
    }

    /// Resolves the symlinks of `rel` as the kernel would with the rootfs as `/`, giving a path whose
    /// existing components are real directories (the tail that does not exist yet is kept as written,
    /// `..` applied). Creating what is missing along it is then safe, and is where a later
    /// `openat2(RESOLVE_IN_ROOT)` of `rel` ends up (a dangling symlink to `/x/y` gets `x/y` created).
    pub(super) fn resolve(&self, rel: &Path) -> io::Result<PathBuf> {
        const MAX_LINKS: usize = 40;
        let mut pending: VecDeque<OsString> = rel.iter().map(OsStr::to_os_string).collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let (mut links, mut missing) = (0, false);
        while let Some(name) = pending.pop_front() {
            match name.as_bytes() {
                b"/" | b"." | b"" => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ if missing => {
                    resolved.push(name);
                    continue;
                }
                _ => {}
            }
            let parent = self.open_dir(&resolved.iter().collect::<PathBuf>())?;
            match statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = PathBuf::from(OsString::from_vec(
                        readlinkat(&parent, &name, Vec::new())?.into_bytes(),
                    ));
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    for part in target.iter().rev() {
                        pending.push_front(part.to_os_string());
                    }
                }
                Ok(_) => resolved.push(name),
                Err(Errno::NOENT) => {
                    missing = true;
                    resolved.push(name);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(resolved.iter().collect())
    }
}

/// The normal components of `rel`: `/a/./b/` gives `a`, `b`. Callers pass cleaned paths (no `..`).
pub(super) fn components(rel: &Path) -> Vec<&OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect()
}

/// What a missing mount point is created as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StubKind {
    /// An empty regular file (for a file mounted over it).
    File,
    /// An empty directory.
    Dir,
}

/// Mount points created in the rootfs for one run; removed by [`Stubs::remove`] (or on drop).
#[derive(Debug)]
pub(super) struct Stubs<'r> {
    root: &'r Root,
    created: Vec<Stub>,
}

#[derive(Debug)]
struct Stub {
    rel: PathBuf,
    kind: StubKind,
    /// The parent's timestamps before the stub was created, restored when it is removed...
    parent_before: Timestamps,
    /// ...if the parent's mtime is still what creating the stub left (the step did not touch it).
    parent_mtime_after: (i64, u64),
}

impl<'r> Stubs<'r> {
    pub(super) fn new(root: &'r Root) -> Self {
        Self {
            root,
            created: Vec::new(),
        }
    }

    /// Makes sure `rel` exists, creating it (as `kind`) and any missing parent directories.
    /// Returns the resolved path (see [`Root::resolve`]), which is what the child mounts onto.
    pub(super) fn ensure(&mut self, rel: &Path, kind: StubKind) -> io::Result<PathBuf> {
        let resolved = self.root.resolve(rel)?;
        let names = components(&resolved);
        for depth in 1..=names.len() {
            let parent_rel: PathBuf = names[..depth - 1].iter().collect();
            let name = names[depth - 1];
            let parent = self.root.open_dir(&parent_rel)?;
            match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(err) => return Err(err.into()),
            }
            let before = fstat(&parent)?;
            if depth < names.len() || kind == StubKind::Dir {
                mkdirat(&parent, name, Mode::from_raw_mode(0o755))?;
            } else {
                let flags =
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                openat(&parent, name, flags, Mode::from_raw_mode(0o644))?;
            }
            let after = fstat(&parent)?;
            self.created.push(Stub {
                rel: parent_rel.join(name),
                kind: if depth < names.len() { StubKind::Dir } else { kind },
                parent_before: times(&before),
                parent_mtime_after: mtime(&after),
            });
        }
        Ok(resolved)
    }

    /// Removes the stubs, newest first, that are still empty (a directory the step wrote into stays),
    /// and restores their parents' timestamps. Returns the first failure after trying them all.
    pub(super) fn remove(mut self) -> Result<(), (PathBuf, io::Error)> {
        self.remove_all()
    }

    fn remove_all(&mut self) -> Result<(), (PathBuf, io::Error)> {
        let mut first_error = None;
        while let Some(stub) = self.created.pop() {
            if let Err(err) = self.remove_one(&stub) {
                first_error.get_or_insert((self.root.path().join(&stub.rel), err));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_one(&self, stub: &Stub) -> io::Result<()> {
        let parent = self.root.open_dir(stub.rel.parent().unwrap_or(Path::new("")))?;
        let name = stub.rel.file_name().unwrap_or_default();
        let parent_now = fstat(&parent)?;
        let st = match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let file_type = FileType::from_raw_mode(st.st_mode);
        match stub.kind {
            StubKind::File if file_type == FileType::RegularFile && st.st_size == 0 => {
                unlinkat(&parent, name, AtFlags::empty())?;
            }
            StubKind::Dir if file_type == FileType::Directory => {
                match unlinkat(&parent, name, AtFlags::REMOVEDIR) {
                    Ok(()) => {}
                    Err(Errno::NOTEMPTY | Errno::EXIST) => return Ok(()),
                    Err(err) => return Err(err.into()),
                }
            }
            _ => return Ok(()),
        }
        let restore = if mtime(&parent_now) == stub.parent_mtime_after {
            stub.parent_before.clone()
        } else {
            times(&parent_now)
        };
        futimens(&parent, &restore)?;
        Ok(())
    }
}

impl Drop for Stubs<'_> {
    fn drop(&mut self) {
        // Best effort on error paths; the normal path calls `remove` and reports failures.
        let _ = self.remove_all();
    }
}

fn mtime(st: &Stat) -> (i64, u64) {
    (st.st_mtime, st.st_mtime_nsec)
}

fn times(st: &Stat) -> Timestamps {
    let ts = |sec, nsec| rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec.try_into().unwrap_or(0)),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec.try_into().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn exec_stubs_stay_inside_the_root_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (rootfs, outside) = (dir.path().join("rootfs"), dir.path().join("outside"));
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::create_dir(&outside).unwrap();
        // An image whose /run escapes to the host if followed naively.
        symlink(&outside, rootfs.join("run")).unwrap();
        let root = Root::open(&rootfs).unwrap();
        let mut stubs = Stubs::new(&root);
        stubs.ensure(Path::new("etc/hosts"), StubKind::File).unwrap();
        stubs
            .ensure(Path::new("run/secrets/token"), StubKind::File)
            .unwrap();
        stubs.ensure(Path::new("proc"), StubKind::Dir).unwrap();
        assert!(rootfs.join("etc/hosts").is_file());
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "nothing created outside the root"
        );
        assert!(
            rootfs
                .join(outside.strip_prefix("/").unwrap())
                .join("secrets/token")
                .is_file()
        );
        stubs.remove().unwrap();
        assert!(!rootfs.join("etc/hosts").exists() && !rootfs.join("proc").exists());
        let first = outside.components().nth(1).unwrap();
        assert!(
            !rootfs.join(first).exists(),
            "the directories made for the dangling link are gone"
        );
        assert!(rootfs.join("run").is_symlink());
    }

    #[test]
    fn exec_stubs_keep_what_the_step_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut stubs = Stubs::new(&root);
        stubs.ensure(Path::new("run/cache"), StubKind::Dir).unwrap();
        fs::write(dir.path().join("run/output"), "kept").unwrap();
        stubs.remove().unwrap();
        assert!(!dir.path().join("run/cache").exists());
        assert_eq!(fs::read_to_string(dir.path().join("run/output")).unwrap(), "kept");
    }

    #[test]
    fn exec_mkdir_all_resolves_in_root() {
        let dir = tempfile::tempdir().unwrap();
        let (rootfs, outside) = (dir.path().join("rootfs"), dir.path().join("outside"));
        fs::create_dir_all(&rootfs).unwrap();
        fs::create_dir(&outside).unwrap();
        symlink("../../../..", rootfs.join("up")).unwrap();
        let root = Root::open(&rootfs).unwrap();
        root.mkdir_all(Path::new("up/work/dir")).unwrap();
        assert!(rootfs.join("work/dir").is_dir(), "`..` stops at the rootfs");
        assert_eq!(root.read_file(Path::new("up/missing")).unwrap(), None);
    }
}
