//! Changes from an overlay upper dir: everything in it is new or changed, a `0:0` character device is
//! a whiteout and a directory marked `overlay.opaque=y` hides the lower layers below it.
//!
//! Only the upper dir is read, so the cost follows the size of the change, not of the image. This holds
//! only when the upper dir describes the change on its own: the snapshot must be mounted with
//! `redirect_dir=off`, `metacopy=off` and `index=off` (the writer refuses redirect and metacopy
//! attributes when it meets them).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::DiffError;
use super::changes::{self, Item};
use super::meta;

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
const WHITEOUT_XATTRS: [&str; 2] = ["trusted.overlay.whiteout", "user.overlay.whiteout"];

/// What an `overlay.opaque` attribute says about a directory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opacity {
    /// Lower layers show through.
    Transparent,
    /// `y`: nothing below shows through.
    Opaque,
    /// `x`: transparent, but may hold xattr whiteouts (empty files carrying `overlay.whiteout`).
    XWhiteouts,
}

/// The items of the upper dir `upper`, in walk order (not yet in layer order).
pub(crate) fn upper_changes(upper: &Path) -> Result<Vec<Item>, DiffError> {
    let mut items = Vec::new();
    let opacity = opacity_of(upper)?;
    if opacity == Opacity::Opaque {
        items.push(Item::Opaque(Vec::new()));
    }
    walk(upper, &[], opacity, &mut items)?;
    Ok(items)
}

fn walk(upper: &Path, dir: &[u8], opacity: Opacity, items: &mut Vec<Item>) -> Result<(), DiffError> {
    let dir_path = upper.join(OsStr::from_bytes(dir));
    let entries = meta::sorted_entries(&dir_path).map_err(|source| DiffError::Read {
        path: dir_path.clone(),
        source,
    })?;
    for (name, file_type) in entries {
        let rel = changes::join(dir, name.as_bytes());
        let path = dir_path.join(&name);
        // The listing gives the type; only a possible whiteout needs a closer look.
        let might_be_whiteout =
            file_type.is_char_device() || (opacity == Opacity::XWhiteouts && file_type.is_file());
        if might_be_whiteout && is_whiteout(&path, opacity)? {
            items.push(Item::Whiteout(rel));
            continue;
        }
        if changes::is_reserved_name(name.as_bytes()) {
            return Err(DiffError::ReservedName { path });
        }
        // Sockets belong to a running process; no layer format carries them.
        if file_type.is_socket() {
            continue;
        }
        items.push(Item::Node(rel.clone()));
        if file_type.is_dir() {
            let child_opacity = opacity_of(&path)?;
            if child_opacity == Opacity::Opaque {
                items.push(Item::Opaque(rel.clone()));
            }
            walk(upper, &rel, child_opacity, items)?;
        }
    }
    Ok(())
}

/// Whether `path` is a whiteout: a `0:0` character device, or in a directory marked `overlay.opaque=x`
/// an empty file with an `overlay.whiteout` attribute.
fn is_whiteout(path: &Path, opacity: Opacity) -> Result<bool, DiffError> {
    let md = fs::symlink_metadata(path).map_err(|source| DiffError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file_type = md.file_type();
    if file_type.is_char_device() {
        return Ok(md.rdev() == 0);
    }
    Ok(opacity == Opacity::XWhiteouts
        && file_type.is_file()
        && md.len() == 0
        && has_any_xattr(path, &WHITEOUT_XATTRS)?)
}

fn opacity_of(path: &Path) -> Result<Opacity, DiffError> {
    for name in OPAQUE_XATTRS {
        let value = meta::get_xattr(path, OsStr::new(name)).map_err(|source| DiffError::Read {
            path: path.to_owned(),
            source,
        })?;
        match value.as_deref() {
            Some(b"y") => return Ok(Opacity::Opaque),
            Some(b"x") => return Ok(Opacity::XWhiteouts),
            _ => {}
        }
    }
    Ok(Opacity::Transparent)
}

fn has_any_xattr(path: &Path, names: &[&str]) -> Result<bool, DiffError> {
    for name in names {
        let value = meta::get_xattr(path, OsStr::new(name)).map_err(|source| DiffError::Read {
            path: path.to_owned(),
            source,
        })?;
        if value.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
