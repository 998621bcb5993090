//! Changes between a tree and its parent tree, for snapshots that are plain copies (no overlay).
//!
//! The two trees are walked side by side, each directory's names merged in sorted order. A path only in
//! the parent is deleted (one whiteout, even for a whole directory); a path only in the tree is added
//! with everything below it; a path in both is changed when its type, mode, owner, extended attributes,
//! link count, device number, symlink target, size or content differ. The mtime alone never marks a
//! change (a `touch` leaves the layer as it was), but any change that is found carries the new mtime.
//!
//! Hardlinks stay exact: when any name of a multiply-linked inode is in the layer, all its names are,
//! so applying the layer links them again (the tar writer turns every name after the first into a
//! hardlink entry).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::DiffError;
use super::changes::{self, Item};
use super::meta;

/// The items that turn `parent` into `tree` (everything in `tree` when there is no parent), in walk
/// order.
pub(crate) fn tree_changes(parent: Option<&Path>, tree: &Path) -> Result<Vec<Item>, DiffError> {
    let mut walk = Walk {
        tree,
        items: Vec::new(),
        links: HashMap::new(),
        track_links: parent.is_some(),
    };
    match parent {
        Some(parent) => walk.compare_dir(parent, &[])?,
        None => {
            for (name, file_type) in listing(tree)? {
                walk.add_subtree(&changes::join(&[], name.as_bytes()), file_type)?;
            }
        }
    }
    walk.close_link_groups();
    Ok(walk.items)
}

/// The names of one inode that has several, and whether any of them is already in the layer.
#[derive(Default)]
struct LinkGroup {
    names: Vec<(Vec<u8>, bool)>,
}

struct Walk<'a> {
    tree: &'a Path,
    items: Vec<Item>,
    links: HashMap<(u64, u64), LinkGroup>,
    /// Whether link groups matter: with no parent every name is in the layer anyway, so added
    /// subtrees need no `stat` of their files, the listing's types suffice.
    track_links: bool,
}

impl Walk<'_> {
    fn compare_dir(&mut self, parent: &Path, dir: &[u8]) -> Result<(), DiffError> {
        let new_names = listing(&self.tree.join(OsStr::from_bytes(dir)))?;
        let old_names = listing(&parent.join(OsStr::from_bytes(dir)))?;
        let (mut new_iter, mut old_iter) = (new_names.iter().peekable(), old_names.iter().peekable());
        loop {
            let order = match (new_iter.peek(), old_iter.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((n, _)), Some((o, _))) => n.as_bytes().cmp(o.as_bytes()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (name, file_type) = new_iter.next().expect("peeked");
                    self.add_subtree(&changes::join(dir, name.as_bytes()), *file_type)?;
                }
                std::cmp::Ordering::Greater => {
                    let (name, _) = old_iter.next().expect("peeked");
                    let rel = changes::join(dir, name.as_bytes());
                    if !lstat(&parent.join(OsStr::from_bytes(&rel)))?
                        .file_type()
                        .is_socket()
                    {
                        self.items.push(Item::Whiteout(rel));
                    }
                }
                std::cmp::Ordering::Equal => {
                    let (name, _) = new_iter.next().expect("peeked");
                    old_iter.next();
                    self.compare_entry(parent, &changes::join(dir, name.as_bytes()))?;
                }
            }
        }
        Ok(())
    }

    /// Compares a path present in both trees.
    fn compare_entry(&mut self, parent: &Path, rel: &[u8]) -> Result<(), DiffError> {
        let new_path = self.tree.join(OsStr::from_bytes(rel));
        let old_path = parent.join(OsStr::from_bytes(rel));
        let (new, old) = (lstat(&new_path)?, lstat(&old_path)?);
        check_name(&new_path, rel)?;
        let (new_type, old_type) = (new.file_type(), old.file_type());
        if new_type.is_socket() {
            if !old_type.is_socket() {
                self.items.push(Item::Whiteout(rel.to_vec()));
            }
            return Ok(());
        }
        if new_type.is_dir() && old_type.is_dir() {
            if differs(&new_path, &old_path, &new, &old)? {
                self.items.push(Item::Node(rel.to_vec()));
            }
            return self.compare_dir(parent, rel);
        }
        if new_type.is_dir() {
            // A file became a directory: the directory replaces it, with all it holds.
            return self.add_subtree(rel, new_type);
        }
        let changed = differs(&new_path, &old_path, &new, &old)?;
        if changed {
            self.items.push(Item::Node(rel.to_vec()));
        }
        self.note_link(&new, rel, changed);
        Ok(())
    }

    /// Adds `rel`, of type `file_type`, and, for a directory, everything below it.
    fn add_subtree(&mut self, rel: &[u8], file_type: FileType) -> Result<(), DiffError> {
        let path = self.tree.join(OsStr::from_bytes(rel));
        check_name(&path, rel)?;
        if file_type.is_socket() {
            return Ok(());
        }
        self.items.push(Item::Node(rel.to_vec()));
        if file_type.is_dir() {
            for (name, file_type) in listing(&path)? {
                self.add_subtree(&changes::join(rel, name.as_bytes()), file_type)?;
            }
        } else if self.track_links {
            let md = lstat(&path)?;
            self.note_link(&md, rel, true);
        }
        Ok(())
    }

    fn note_link(&mut self, md: &Metadata, rel: &[u8], in_layer: bool) {
        if md.nlink() > 1 {
            let group = self.links.entry((md.dev(), md.ino())).or_default();
            group.names.push((rel.to_vec(), in_layer));
        }
    }

    /// Puts every name of a linked inode into the layer as soon as one of them is.
    fn close_link_groups(&mut self) {
        let mut groups: Vec<LinkGroup> = self.links.drain().map(|(_, g)| g).collect();
        // Deterministic order of the added items (the final sort makes it moot, but keep walks stable).
        groups.sort_unstable_by(|a, b| a.names.cmp(&b.names));
        for group in groups {
            if group.names.iter().any(|(_, in_layer)| *in_layer) {
                for (name, in_layer) in group.names {
                    if !in_layer {
                        self.items.push(Item::Node(name));
                    }
                }
            }
        }
    }
}

/// Whether two same-typed paths differ in anything a layer records, mtime excepted.
fn differs(new_path: &Path, old_path: &Path, new: &Metadata, old: &Metadata) -> Result<bool, DiffError> {
    if new.dev() == old.dev() && new.ino() == old.ino() {
        return Ok(false);
    }
    let file_type = new.file_type();
    if new.mode() != old.mode() || new.uid() != old.uid() || new.gid() != old.gid() {
        return Ok(true);
    }
    if !file_type.is_dir() && new.nlink() != old.nlink() {
        return Ok(true);
    }
    if (file_type.is_char_device() || file_type.is_block_device()) && new.rdev() != old.rdev() {
        return Ok(true);
    }
    if file_type.is_file() && new.len() != old.len() {
        return Ok(true);
    }
    if file_type.is_symlink() && read_link(new_path)? != read_link(old_path)? {
        return Ok(true);
    }
    if emitted_xattrs(new_path)? != emitted_xattrs(old_path)? {
        return Ok(true);
    }
    if file_type.is_file() && new.len() > 0 {
        return Ok(!same_content(new_path, old_path)?);
    }
    Ok(false)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, DiffError> {
    const CHUNK: usize = 64 * 1024;
    let mut fa = File::open(a).map_err(read_error(a))?;
    let mut fb = File::open(b).map_err(read_error(b))?;
    let (mut ba, mut bb) = (vec![0; CHUNK], vec![0; CHUNK]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(read_error(a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(read_error(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na < CHUNK {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn emitted_xattrs(path: &Path) -> Result<Vec<meta::Xattr>, DiffError> {
    let mut xattrs = meta::read_xattrs(path).map_err(read_error(path))?;
    xattrs.retain(|(name, _)| meta::is_emitted_xattr(name));
    Ok(xattrs)
}

fn check_name(path: &Path, rel: &[u8]) -> Result<(), DiffError> {
    if changes::is_reserved_name(changes::split_last(rel).1) {
        return Err(DiffError::ReservedName {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn listing(dir: &Path) -> Result<Vec<(std::ffi::OsString, FileType)>, DiffError> {
    meta::sorted_entries(dir).map_err(read_error(dir))
}

fn lstat(path: &Path) -> Result<Metadata, DiffError> {
    fs::symlink_metadata(path).map_err(read_error(path))
}

fn read_link(path: &Path) -> Result<PathBuf, DiffError> {
    fs::read_link(path).map_err(read_error(path))
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError::Read {
        path: path.to_owned(),
        source,
    }
}
