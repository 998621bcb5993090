//! Reading a snapshot tree for the diff side: sorted directory listings and extended attributes, and
//! the rules for which attributes a layer carries.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One extended attribute: name and raw value.
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// The entries of `dir` with their types, sorted by name bytes. The types come from the directory
/// listing itself where the filesystem records them there (ext4, xfs, btrfs, tmpfs, overlay do), so
/// callers that need nothing more than the type save a `stat` per entry.
pub(crate) fn sorted_entries(dir: &Path) -> io::Result<Vec<(OsString, fs::FileType)>> {
    let mut entries = fs::read_dir(dir)?
        .map(|entry| entry.and_then(|e| Ok((e.file_name(), e.file_type()?))))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
}

/// Where extended attributes are read from: a path (not following a final symlink) or an open file.
#[derive(Clone, Copy)]
pub(crate) enum XattrSource<'a> {
    /// The path itself, a symlink included.
    Path(&'a Path),
    /// An open file: no path walk per call.
    Fd(BorrowedFd<'a>),
}

impl XattrSource<'_> {
    fn list_query(self) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Path(path) => rustix::fs::llistxattr_query(path),
            XattrSource::Fd(fd) => rustix::fs::flistxattr_query(fd),
        }
    }

    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Path(path) => rustix::fs::llistxattr(path, buf),
            XattrSource::Fd(fd) => rustix::fs::flistxattr(fd, buf),
        }
    }

    fn get_query(self, name: &OsStr) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Path(path) => rustix::fs::lgetxattr_query(path, name),
            XattrSource::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
        }
    }

    fn get(self, name: &OsStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Path(path) => rustix::fs::lgetxattr(path, name, buf),
            XattrSource::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
        }
    }
}

/// All extended attributes of `path` (not following a final symlink), sorted by name.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    read_xattrs_of(XattrSource::Path(path))
}

/// All extended attributes of what `source` names, sorted by name.
pub(crate) fn read_xattrs_of(source: XattrSource<'_>) -> io::Result<Vec<Xattr>> {
    let mut list = Vec::new();
    loop {
        let size = match source.list_query() {
            Ok(size) => size,
            Err(rustix::io::Errno::NOTSUP) => 0,
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        list.resize(size, 0);
        match source.list(&mut list[..]) {
            Ok(n) => {
                list.truncate(n);
                break;
            }
            // The list grew between the two calls: ask again.
            Err(rustix::io::Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut xattrs = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        // A name listed a moment ago may be gone already; it is then not part of the tree.
        if let Some(value) = get_xattr_of(source, name)? {
            xattrs.push((name.as_bytes().to_vec(), value));
        }
    }
    xattrs.sort_unstable();
    Ok(xattrs)
}

/// The value of one extended attribute, `None` when it is not set (or the filesystem has none).
pub(crate) fn get_xattr(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    get_xattr_of(XattrSource::Path(path), name)
}

fn get_xattr_of(source: XattrSource<'_>, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match source.get_query(name) {
            Ok(size) => size,
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0; size];
        match source.get(name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(rustix::io::Errno::RANGE) => {}
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Overlayfs keeps its own bookkeeping in `trusted.overlay.*` (or `user.overlay.*` on `userxattr`
/// mounts); it describes the snapshot's storage, never the image's content.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Whether a layer carries the attribute. Everything does except overlay's bookkeeping and
/// `security.selinux`, which is the build host's label (a runtime relabels the container's files) and
/// would make layers differ between hosts.
pub(crate) fn is_emitted_xattr(name: &[u8]) -> bool {
    !is_overlay_xattr(name) && name != b"security.selinux"
}

/// Overlay attributes that mean the upper dir alone does not describe the change: a directory renamed
/// from elsewhere in the lower layers, or a file whose data is still in a lower layer.
pub(crate) fn is_unrepresentable_overlay_xattr(name: &[u8]) -> bool {
    matches!(
        name,
        b"trusted.overlay.redirect"
            | b"user.overlay.redirect"
            | b"trusted.overlay.metacopy"
            | b"user.overlay.metacopy"
    )
}
