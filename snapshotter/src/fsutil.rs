//! Locked directories and files: how handles and processes sharing a root tell in-flight work from leftovers.
//!
//! Every directory the snapshotter is busy with (a staging directory being filled, a snapshot directory
//! being removed) is held under an exclusive `flock`. The kernel drops the lock when its holder exits, even
//! by crash, so "I can take the lock" means "nobody is working on this". Because a sweeper may have renamed
//! or removed the path between our `open` and our `flock`, every lock is followed by a check that the path
//! still names the inode we locked ([`Locked::try_lock`]).
//!
//! The same trick makes handle leases: each handle holds a lock on its own file under `<root>/leases/` for
//! its whole life; a lease file whose lock can be taken belongs to a handle that is gone.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::snapshot::Usage;

/// Prefix of staging directories, renamed to `<id>` once their snapshot is recorded.
pub(crate) const STAGING_PREFIX: &str = "new-";
/// Prefix of directories being deleted.
pub(crate) const TRASH_PREFIX: &str = "rm-";

/// A name no other handle or process will pick: pid, clock and a per-process counter.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{count}", std::process::id())
}

/// A file or directory this process holds an exclusive `flock` on.
#[derive(Debug)]
pub(crate) struct Locked {
    path: PathBuf,
    /// Closing it releases the lock.
    _fd: OwnedFd,
}

impl Locked {
    /// Creates the directory `path` (which must not exist) and locks it. Fails with `EEXIST` if it exists,
    /// and with `ENOENT` if a sweeper removed it before we locked it.
    pub(crate) fn create_dir(path: &Path) -> io::Result<Locked> {
        fs::create_dir(path)?;
        Self::lock(path)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Creates the file `path` (which must not exist) and locks it, like [`Locked::create_dir`].
    pub(crate) fn create_file(path: &Path) -> io::Result<Locked> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC;
        drop(rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))?);
        Self::lock(path)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Locks `path`, waiting for the current holder. `None` if the path is gone or was replaced meanwhile.
    pub(crate) fn lock(path: &Path) -> io::Result<Option<Locked>> {
        Self::acquire(path, FlockOperation::LockExclusive)
    }

    /// Locks `path` if nobody holds it. `None` if it is held, gone, or was replaced meanwhile.
    pub(crate) fn try_lock(path: &Path) -> io::Result<Option<Locked>> {
        Self::acquire(path, FlockOperation::NonBlockingLockExclusive)
    }

    fn acquire(path: &Path, operation: FlockOperation) -> io::Result<Option<Locked>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::flock(&fd, operation) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // The path may have been renamed away or removed between open and flock: then we hold the lock
        // of an inode nobody will look for, which protects nothing.
        let held = rustix::fs::fstat(&fd)?;
        match fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.st_dev && now.ino() == held.st_ino => Ok(Some(Locked {
                path: path.to_owned(),
                _fd: fd,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The path this lock is for (it follows [`Locked::rename`]).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the locked entry; the lock stays with it.
    pub(crate) fn rename(&mut self, to: &Path) -> io::Result<()> {
        fs::rename(&self.path, to)?;
        to.clone_into(&mut self.path);
        Ok(())
    }

    /// Deletes a locked directory: first renamed to a trash name beside it (so it no longer looks like a
    /// snapshot), then removed recursively, still under the lock so no sweeper works on it at once.
    pub(crate) fn remove_dir(mut self) -> io::Result<()> {
        let is_trash = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TRASH_PREFIX));
        if !is_trash {
            let trash = self
                .path
                .with_file_name(format!("{TRASH_PREFIX}{}", unique_suffix()));
            self.rename(&trash)?;
        }
        fs::remove_dir_all(&self.path)
    }

    /// Deletes a locked file.
    pub(crate) fn remove_file(self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}

/// A directory being filled before it is renamed into place; removed on drop unless [`Staging::keep`] is
/// called. Its lock keeps sweepers off while it is being filled and until the metadata naming it commits.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: Option<Locked>,
}

impl Staging {
    /// Creates `<parent>/new-<unique>`, locked.
    pub(crate) fn create(parent: &Path) -> io::Result<Staging> {
        loop {
            let path = parent.join(format!("{STAGING_PREFIX}{}", unique_suffix()));
            match Locked::create_dir(&path) {
                Ok(dir) => return Ok(Staging { dir: Some(dir) }),
                // A sweeper took it between mkdir and flock (it looked abandoned): try another name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the directory is now.
    pub(crate) fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(Locked::path)
            .expect("staging dir present until kept or dropped")
    }

    /// Renames the directory (to its final name); it stays locked and still removed on drop.
    pub(crate) fn rename(&mut self, to: &Path) -> io::Result<()> {
        self.dir
            .as_mut()
            .expect("staging dir present until kept or dropped")
            .rename(to)
    }

    /// The directory is now named by committed metadata: release the lock and keep it.
    pub(crate) fn keep(mut self) {
        self.dir = None;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if let Err(error) = dir.remove_dir() {
                // Left for `cleanup`, which sweeps unlocked staging and trash directories.
                tracing::warn!(path = %path.display(), %error, "could not remove staging directory");
            }
        }
    }
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(&fd)?;
    Ok(())
}

/// Disk usage of the tree at `root`: allocated bytes and distinct inodes, hard links counted once.
pub(crate) fn disk_usage(root: &Path) -> io::Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(usage)
}
