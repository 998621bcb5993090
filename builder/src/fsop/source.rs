//! Finding what a source path names in the source root: lexical cleaning (`..` stops at the root),
//! wildcards resolved as fsutil's `ResolveWildcards` does (the part before the first wildcard
//! component is a directory walked for matches, symlinks not followed on the way), and the named
//! entry itself followed when it is a symlink and the copy says so, always inside the root.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{FileType, Mode as RawMode, OFlags};

use crate::fsroot::{DIR_NOFOLLOW, DirFd, Location, ResolveError, Root, is_dir, list, lstat_at};
use crate::glob::{Glob, has_wildcards};

use super::FsopError;
use super::meta::{Info, Xattrs, read_xattrs};
use super::tree::{SourceTree, join};

/// A directory on disk as a copy's source (another stage's or an image's rootfs, or a staging
/// directory): every read is relative to a directory fd and never follows the entry it reads.
pub(super) struct DirTree;

/// An entry of a [`DirTree`]: `name` in the directory `parent`, as `lstat` saw it.
pub(super) struct DirNode {
    parent: Rc<OwnedFd>,
    name: CString,
    info: Info,
    /// In-root path, for messages.
    path: String,
}

impl DirNode {
    /// `name` in `parent`, if it (still) exists.
    pub(super) fn at(parent: Rc<OwnedFd>, name: CString, path: String) -> Result<Option<DirNode>, FsopError> {
        let Some(st) = lstat_at(&*parent, &name).map_err(|e| FsopError::io("stat", &path, e))? else {
            return Ok(None);
        };
        Ok(Some(DirNode {
            parent,
            name,
            info: Info::from_stat(&st),
            path,
        }))
    }

    /// A directory known by its fd only (the source root, a `--parents` pivot).
    pub(super) fn dir(fd: OwnedFd, path: String) -> Result<DirNode, FsopError> {
        let st = rustix::fs::fstat(&fd).map_err(|e| FsopError::io("stat", &path, e))?;
        Ok(DirNode {
            parent: Rc::new(fd),
            name: c".".to_owned(),
            info: Info::from_stat(&st),
            path,
        })
    }

    pub(super) fn info(&self) -> &Info {
        &self.info
    }

    /// An fd of the directory this node is.
    pub(super) fn open_dir(&self) -> Result<OwnedFd, FsopError> {
        rustix::fs::openat(&*self.parent, &self.name, DIR_NOFOLLOW, RawMode::empty())
            .map_err(|e| FsopError::io("open directory", &self.path, e))
    }
}

impl SourceTree for DirTree {
    type Node = DirNode;

    fn info(&self, node: &DirNode) -> Info {
        node.info
    }

    fn path(&self, node: &DirNode) -> String {
        node.path.clone()
    }

    fn children(&self, dir: &DirNode) -> Result<Vec<(CString, DirNode)>, FsopError> {
        let fd = Rc::new(dir.open_dir()?);
        let mut out = Vec::new();
        for name in list(&*fd).map_err(|e| FsopError::io("read directory", &dir.path, e))? {
            let path = join(&dir.path, &name);
            // Gone since the listing: not part of the copy.
            if let Some(node) = DirNode::at(Rc::clone(&fd), name.clone(), path)? {
                out.push((name, node));
            }
        }
        Ok(out)
    }

    fn open_file(&self, node: &DirNode) -> Result<File, FsopError> {
        let fd = rustix::fs::openat(
            &*node.parent,
            &node.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            RawMode::empty(),
        )
        .map_err(|e| FsopError::io("open", &node.path, e))?;
        // What was opened must be what was looked at: a swap in between is refused, not followed.
        let st = Info::from_stat(&rustix::fs::fstat(&fd).map_err(|e| FsopError::io("stat", &node.path, e))?);
        if (st.dev, st.ino) != (node.info.dev, node.info.ino) || st.file_type() != FileType::RegularFile {
            return Err(changed(&node.path));
        }
        Ok(File::from(fd))
    }

    fn check_read(&self, node: &DirNode, file: &File, bytes: u64) -> Result<(), FsopError> {
        let st = rustix::fs::fstat(file).map_err(|e| FsopError::io("stat", &node.path, e))?;
        if Info::from_stat(&st).size != bytes {
            return Err(changed(&node.path));
        }
        Ok(())
    }

    fn read_link(&self, node: &DirNode) -> Result<Vec<u8>, FsopError> {
        rustix::fs::readlinkat(&*node.parent, &node.name, Vec::new())
            .map(CString::into_bytes)
            .map_err(|e| FsopError::io("read link", &node.path, e))
    }

    fn xattrs(&self, node: &DirNode) -> Result<Xattrs, FsopError> {
        Ok(read_xattrs(node.parent.as_fd(), &node.name))
    }
}

fn changed(path: &str) -> FsopError {
    FsopError::io(
        "copy",
        path,
        std::io::Error::other("source changed during the copy"),
    )
}

/// One resolved source entry.
pub(super) struct Source {
    pub(super) node: DirNode,
    /// The name the entry takes inside a directory destination: the last component of the source as
    /// written or matched (a followed symlink keeps its own name).
    pub(super) base: CString,
    /// For a wildcard match, its path relative to the directory the wildcard was resolved in: the
    /// match itself is subject to `--exclude`. `None` for a source named outright.
    pub(super) matched: Option<String>,
}

impl Source {
    pub(super) fn is_dir(&self) -> bool {
        self.node.info.is_dir()
    }
}

/// A path cleaned as Go's `path.Clean("/" + p)`: its components, `..` applied and stopped at the root.
pub(super) fn clean(path: &str) -> Vec<String> {
    crate::fsroot::clean_components(path)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

pub(super) fn absolute(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

/// Resolves one source (as written) to the entries it names. A missing source, or a wildcard that
/// matches nothing unless `allow_empty`, is an error. A `literal` source holds no wildcards.
pub(super) fn resolve(
    root: &Root,
    source: &str,
    follow: bool,
    allow_empty: bool,
    literal: bool,
) -> Result<Vec<Source>, FsopError> {
    let components = clean(source);
    let first_wild = if literal {
        None
    } else {
        components.iter().position(|c| has_wildcards(c))
    };
    let Some(first_wild) = first_wild else {
        return Ok(vec![named(root, &components, follow)?]);
    };
    let (base, pattern) = components.split_at(first_wild);
    let glob =
        Glob::from_components(pattern.iter().map(String::as_str)).map_err(|_| FsopError::BadPattern {
            pattern: source.to_owned(),
        })?;
    let mut found = Vec::new();
    if let Some(dir) = base_dir(root, base, follow)? {
        find_matches(&dir, &glob, &mut Vec::new(), &mut found, &absolute(base))?;
    }
    if found.is_empty() && !allow_empty {
        return Err(FsopError::NoSourceFiles {
            pattern: absolute(&components),
        });
    }
    found
        .into_iter()
        .map(|rel| {
            let mut full = base.to_vec();
            full.extend(rel.iter().cloned());
            let mut source = named(root, &full, follow)?;
            source.matched = Some(rel.join("/"));
            Ok(source)
        })
        .collect()
}

/// The directory a wildcard is resolved in, `None` if it is not one.
fn base_dir(root: &Root, base: &[String], follow: bool) -> Result<Option<OwnedFd>, FsopError> {
    let path = absolute(base);
    match root.walk(path.as_bytes(), follow, None) {
        Ok(Location::Dir(fd)) => fd
            .into_owned()
            .map(Some)
            .map_err(|e| FsopError::io("open directory", &path, e)),
        Ok(Location::Entry { parent, name, .. }) => {
            match lstat_at(&parent, &name).map_err(|e| FsopError::io("stat", &path, e))? {
                Some(st) if is_dir(&st) => rustix::fs::openat(&parent, &name, DIR_NOFOLLOW, RawMode::empty())
                    .map(Some)
                    .map_err(|e| FsopError::io("open directory", &path, e)),
                _ => Ok(None),
            }
        }
        Err(ResolveError::NotFound { .. } | ResolveError::NotADirectory { .. }) => Ok(None),
        Err(e) => Err(resolve_error(&path, e)),
    }
}

/// The paths below `dir` whose components match `glob`, in name order.
pub(super) fn matches_in(dir: &OwnedFd, glob: &Glob, shown: &str) -> Result<Vec<Vec<String>>, FsopError> {
    let mut found = Vec::new();
    find_matches(dir, glob, &mut Vec::new(), &mut found, shown)?;
    Ok(found)
}

/// Collects, in name order, the paths below `dir` whose components match `glob` (directories that
/// match are not entered, symlinks are never entered).
fn find_matches(
    dir: &OwnedFd,
    glob: &Glob,
    prefix: &mut Vec<String>,
    found: &mut Vec<Vec<String>>,
    shown: &str,
) -> Result<(), FsopError> {
    let depth = prefix.len();
    for name in list(dir).map_err(|e| FsopError::io("read directory", shown, e))? {
        let text = String::from_utf8_lossy(name.to_bytes()).into_owned();
        if !glob.matches_at(depth, &text) {
            continue;
        }
        if depth + 1 == glob.depth() {
            let mut path = prefix.clone();
            path.push(text);
            found.push(path);
            continue;
        }
        let Ok(Some(st)) = lstat_at(dir, &name) else {
            continue;
        };
        if !is_dir(&st) {
            continue;
        }
        let Ok(sub) = rustix::fs::openat(dir, &name, DIR_NOFOLLOW, RawMode::empty()) else {
            continue;
        };
        prefix.push(text);
        find_matches(&sub, glob, prefix, found, shown)?;
        prefix.pop();
    }
    Ok(())
}

/// The entry a wildcard-free path names.
fn named(root: &Root, components: &[String], follow: bool) -> Result<Source, FsopError> {
    let path = absolute(components);
    let not_found = || FsopError::SourceNotFound { path: path.clone() };
    let base = CString::new(components.last().map_or("/", String::as_str)).map_err(|_| not_found())?;
    let location = match root.walk(path.as_bytes(), follow, None) {
        Ok(location) => location,
        Err(ResolveError::NotFound { .. } | ResolveError::NotADirectory { .. }) => return Err(not_found()),
        Err(e) => return Err(resolve_error(&path, e)),
    };
    let node = match location {
        Location::Dir(fd) => {
            let fd = fd
                .into_owned()
                .map_err(|e| FsopError::io("open directory", &path, e))?;
            DirNode::dir(fd, path.clone())?
        }
        Location::Entry { parent, name, .. } => {
            let parent = DirFd::into_owned(parent).map_err(|e| FsopError::io("open directory", &path, e))?;
            DirNode::at(Rc::new(parent), name, path.clone())?.ok_or_else(not_found)?
        }
    };
    Ok(Source {
        node,
        base,
        matched: None,
    })
}

pub(super) fn resolve_error(path: &str, e: ResolveError) -> FsopError {
    match e {
        ResolveError::Io { path: at, source } => FsopError::Io {
            op: "resolve",
            path: at,
            source,
        },
        e => FsopError::Resolve {
            root: "source",
            path: path.to_owned(),
            reason: e.to_string(),
        },
    }
}
