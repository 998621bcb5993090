//! `ADD`'s archive extraction, as BuildKit's `unpack` does it: a local regular file whose content,
//! once decompressed (gzip, bzip2, xz and zstd are told apart by their magic bytes; anything else is
//! read as is), starts with a valid tar header is extracted into the destination directory instead of
//! copied.
//!
//! The destination directory is the extraction's root: entry names lose a leading `/`, a name that
//! climbs out with `..` is refused, and symlinks (from the archive or already there) are followed as
//! if that directory were `/`. Entries replace what is at their path unless both are directories.
//! Owners come from the headers, or all from `--chown`; directories the archive implies but does not
//! hold are created `0755` and owned by `0:0`. `.wh.` files are ordinary files here (an `ADD` is not a
//! layer). PAX xattrs are restored where the filesystem takes them. Device nodes and FIFOs are refused.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Gid, Mode as RawMode, OFlags, Timespec, Timestamps, Uid, XattrFlags};

use crate::fsroot::{self, Location, NewDir, Root, is_dir, lstat_at, proc_path};

use super::meta::{Info, chmod, is_overlay_xattr};
use super::source::clean;
use super::{CopyReport, FsopError, Owner};

/// A decompressed archive stream.
pub(crate) type ArchiveReader = Box<dyn Read>;

/// Opens a source entry as an archive: `None` when it is not a regular file, or not a tar once
/// decompressed. `open` opens the file (twice: a first look decides, then the real read).
pub(super) fn open(
    info: &Info,
    path: &str,
    open: impl Fn() -> Result<File, FsopError>,
) -> Result<Option<ArchiveReader>, FsopError> {
    if info.file_type() != FileType::RegularFile {
        return Ok(None);
    }
    let open = || -> Result<ArchiveReader, FsopError> {
        decompress(open()?).map_err(|e| FsopError::io("read", path, e))
    };
    // A first look decides; a failure to decompress or parse means "not an archive", as in BuildKit.
    let mut probe = tar::Archive::new(open()?);
    let is_tar = matches!(probe.entries().map(|mut e| e.next()), Ok(Some(Ok(_))));
    if !is_tar {
        return Ok(None);
    }
    open().map(Some)
}

/// Picks the decompressor from the first bytes (also used for a build context read from a stream).
pub(crate) fn decompress(input: impl Read + 'static) -> io::Result<ArchiveReader> {
    let mut reader = BufReader::new(input);
    let head = reader.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(reader))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

/// Extracts the archive `reader` (from `archive`, for messages) into the directory `into` (also used
/// to unpack a build context read from a stream).
pub(crate) fn extract(
    reader: ArchiveReader,
    into: OwnedFd,
    archive: &str,
    chown: Option<Owner>,
    report: &mut CopyReport,
) -> Result<(), FsopError> {
    let root = Root::from_fd(into);
    let read_err = |source: io::Error| FsopError::ArchiveRead {
        archive: archive.to_owned(),
        source,
    };
    let mut tar = tar::Archive::new(reader);
    let mut dirs: Vec<(OwnedFd, CString, u64)> = Vec::new();
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = entry_name(&raw, archive)? else {
            continue;
        };
        let header = entry.header();
        let kind = header.entry_type();
        let owner = match chown {
            Some(owner) => owner,
            // Go's tar reader reads an empty numeric field as 0; so does kiln.
            None => Owner::new(
                header
                    .uid()
                    .ok()
                    .and_then(|id| u32::try_from(id).ok())
                    .unwrap_or(0),
                header
                    .gid()
                    .ok()
                    .and_then(|id| u32::try_from(id).ok())
                    .unwrap_or(0),
            ),
        };
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let xattrs = pax_xattrs(&mut entry);
        let shown = &format!("{archive}:{raw}");
        let io_err = |op: &'static str| move |e: io::Error| FsopError::io(op, shown, e);

        let mut implied = |fd: &OwnedFd| -> io::Result<()> {
            Ok(rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(0)),
                Some(Gid::from_raw(0)),
            )?)
        };
        let location = root
            .walk(name.as_bytes(), kind.is_dir(), Some(&mut implied as NewDir<'_>))
            .map_err(|e| FsopError::ArchiveEntry {
                archive: archive.to_owned(),
                entry: raw.clone(),
                reason: e.to_string(),
            })?;
        let Location::Entry {
            parent, name: leaf, ..
        } = location
        else {
            continue; // The entry resolved to the extraction root itself: its metadata is not ours.
        };
        let parent = parent.into_owned().map_err(io_err("open directory"))?;
        if let Some(existing) = lstat_at(&parent, &leaf).map_err(io_err("stat"))? {
            if !(is_dir(&existing) && kind.is_dir()) {
                fsroot::remove_all(&parent, &leaf).map_err(io_err("remove"))?;
            }
        }
        let unsupported = |reason: &str| FsopError::ArchiveEntry {
            archive: archive.to_owned(),
            entry: raw.clone(),
            reason: reason.to_owned(),
        };
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, &leaf, RawMode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err("create directory")(e.into())),
                }
                set_owner(&parent, &leaf, owner).map_err(io_err("chown"))?;
                let fd = rustix::fs::openat(&parent, &leaf, fsroot::DIR_NOFOLLOW, RawMode::empty())
                    .map_err(|e| io_err("open directory")(e.into()))?;
                rustix::fs::fchmod(&fd, RawMode::from_raw_mode(mode))
                    .map_err(|e| io_err("chmod")(e.into()))?;
                set_xattrs(&parent, &leaf, &xattrs);
                dirs.push((parent, leaf, mtime));
                report.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    &leaf,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    RawMode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err("create")(e.into()))?;
                let mut file = File::from(fd);
                report.bytes += io::copy(&mut entry, &mut file).map_err(read_err)?;
                set_owner(&parent, &leaf, owner).map_err(io_err("chown"))?;
                chmod(parent.as_fd(), &leaf, Some(file.as_fd()), mode).map_err(io_err("chmod"))?;
                set_xattrs(&parent, &leaf, &xattrs);
                set_mtime(&parent, &leaf, mtime).map_err(io_err("set times of"))?;
                report.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = link.ok_or_else(|| unsupported("symlink without a target"))?;
                rustix::fs::symlinkat(target.as_str(), &parent, &leaf)
                    .map_err(|e| io_err("create symlink")(e.into()))?;
                set_owner(&parent, &leaf, owner).map_err(io_err("chown"))?;
                set_xattrs(&parent, &leaf, &xattrs);
                set_mtime(&parent, &leaf, mtime).map_err(io_err("set times of"))?;
                report.symlinks += 1;
            }
            tar::EntryType::Link => {
                let target = link.ok_or_else(|| unsupported("hardlink without a target"))?;
                let Some(target) = entry_name(&target, archive)? else {
                    return Err(unsupported("hardlink to the extraction root"));
                };
                let Ok(Location::Entry {
                    parent: at,
                    name: target_name,
                    ..
                }) = root.walk(target.as_bytes(), false, None)
                else {
                    return Err(unsupported("hardlink to a missing entry"));
                };
                rustix::fs::linkat(&at, &target_name, &parent, &leaf, AtFlags::empty())
                    .map_err(|e| io_err("create hard link")(e.into()))?;
                set_owner(&parent, &leaf, owner).map_err(io_err("chown"))?;
                let st = lstat_at(&parent, &leaf).map_err(io_err("stat"))?;
                if st.is_some_and(|st| FileType::from_raw_mode(st.st_mode) != FileType::Symlink) {
                    chmod(parent.as_fd(), &leaf, None, mode).map_err(io_err("chmod"))?;
                    set_mtime(&parent, &leaf, mtime).map_err(io_err("set times of"))?;
                }
                report.hardlinks += 1;
            }
            other => return Err(unsupported(&format!("type {:?}", other.as_byte() as char))),
        }
    }
    // Directory times last (in reverse, children before parents), once nothing more lands in them.
    for (parent, name, mtime) in dirs.iter().rev() {
        set_mtime(parent, name, *mtime).map_err(|e| FsopError::io("set times of", archive, e))?;
    }
    Ok(())
}

/// An entry's name made relative to the extraction root (`None` for the root itself); `..` that
/// would climb out is refused.
fn entry_name(raw: &str, archive: &str) -> Result<Option<String>, FsopError> {
    let mut depth: usize = 0;
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                depth = depth.checked_sub(1).ok_or_else(|| FsopError::ArchiveEscape {
                    archive: archive.to_owned(),
                    entry: raw.to_owned(),
                })?;
            }
            _ => depth += 1,
        }
    }
    let cleaned = clean(raw).join("/");
    Ok((!cleaned.is_empty()).then_some(cleaned))
}

fn set_owner(dir: &impl AsFd, name: &CStr, owner: Owner) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(owner.uid)),
        Some(Gid::from_raw(owner.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets atime and mtime to `mtime` (BuildKit clamps times before the epoch to it; `u64` already is).
fn set_mtime(dir: &impl AsFd, name: &CStr, mtime: u64) -> io::Result<()> {
    let at = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at,
        last_modification: at,
    };
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// The `SCHILY.xattr.*` PAX records of an entry.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else {
        return Vec::new();
    };
    extensions
        .filter_map(Result::ok)
        .filter_map(|ext| {
            let key = ext.key_bytes().strip_prefix(b"SCHILY.xattr.")?.to_vec();
            Some((key, ext.value_bytes().to_vec()))
        })
        .filter(|(key, _)| !is_overlay_xattr(key))
        .collect()
}

/// Best effort, as BuildKit: a filesystem or namespace that refuses an xattr is not an error.
fn set_xattrs(dir: &impl AsFd, name: &CStr, xattrs: &[(Vec<u8>, Vec<u8>)]) {
    if xattrs.is_empty() {
        return;
    }
    let path = proc_path(dir, name.to_bytes());
    for (key, value) in xattrs {
        if let Ok(key) = CString::new(key.clone()) {
            let _ = rustix::fs::lsetxattr(&*path, &*key, value, XattrFlags::empty());
        }
    }
}
