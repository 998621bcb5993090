//! One `COPY`/`ADD` from a source root into a destination root: the rules fsutil's `Copy` applies
//! to each resolved source (directory contents merge into the destination; a file lands inside a
//! directory destination, or *as* a file destination), `--parents`, and `ADD`'s archive extraction.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::{Gid, Mode as RawMode, Uid};

use crate::fsroot::{DIR_NOFOLLOW, Location, NewDir, ResolveError, Root, is_dir, lstat_at};
use crate::glob::{Glob, has_wildcards};

use super::meta::{Info, Metadata, read_xattrs};
use super::source::{self, DirNode, DirTree, absolute, clean};
use super::tree::{Copier, DstDir, SourceTree, join};
use super::{Archives, CopyReport, CopySpec, FsopError, Owner, archive};

/// Whether source paths may hold wildcards (`COPY`/`ADD`) or are taken literally (a downloaded or
/// heredoc file, whose name is whatever it is).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wildcards {
    Allowed,
    Literal,
}

/// The destination as written: its cleaned in-root path, and whether it names a directory (ends in
/// `/` or `/.`, or is `.`).
pub(super) struct Dest {
    path: String,
    dir_form: bool,
}

impl Dest {
    pub(super) fn parse(dest: &str) -> Dest {
        let dir_form = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
        Dest {
            path: absolute(&clean(dest)),
            dir_form,
        }
    }

    /// `spec.dest`, which must name a directory when there are several sources.
    pub(super) fn for_spec(spec: &CopySpec) -> Result<Dest, FsopError> {
        let dest = Dest::parse(&spec.dest);
        if spec.sources.len() > 1 && !dest.dir_form {
            return Err(FsopError::DestNotDirectory {
                dest: spec.dest.clone(),
            });
        }
        Ok(dest)
    }

    /// The cleaned in-root path.
    pub(super) fn path(&self) -> &str {
        &self.path
    }
}

/// A source as a copy places it: a node of its tree, and the name it takes inside a directory
/// destination.
pub(super) struct Top<N> {
    pub(super) node: N,
    pub(super) base: CString,
}

pub(super) fn run(
    src_root: &Path,
    dst_root: &Path,
    spec: &CopySpec,
    wildcards: Wildcards,
) -> Result<CopyReport, FsopError> {
    let dest = Dest::for_spec(spec)?;
    let excludes = if spec.excludes.is_empty() {
        None
    } else {
        Some(Patterns::new(&spec.excludes).map_err(FsopError::Exclude)?)
    };
    let src = open_root(src_root, "open source root")?;
    let dst = open_root(dst_root, "open destination root")?;
    let mut copier = copier(spec, excludes.as_ref());
    for source in &spec.sources {
        if spec.parents {
            copy_parents(&src, &dst, &dest, source, spec, &mut copier)?;
            continue;
        }
        let literal = wildcards == Wildcards::Literal;
        let items = source::resolve(
            &src,
            source,
            spec.follow_symlinks,
            spec.allow_empty_wildcard,
            literal,
        )?;
        for item in items {
            if let Some(matched) = &item.matched {
                if copier
                    .included(matched, item.is_dir(), &MatchState::root())
                    .is_none()
                {
                    continue;
                }
            }
            let top = Top {
                node: item.node,
                base: item.base,
            };
            if spec.archives == Archives::Extract && unpack(&dst, &dest, &DirTree, &top, &mut copier)? {
                continue;
            }
            place(&dst, &dest, &DirTree, &top, &mut copier)?;
        }
    }
    Ok(copier.report)
}

/// The copier for `spec` (`excludes`: when the source does not apply them itself).
pub(super) fn copier<'a>(spec: &'a CopySpec, excludes: Option<&'a Patterns>) -> Copier<'a> {
    let meta = Metadata {
        owner: spec.ownership.entry_owner(),
        chmod: spec.chmod.as_ref(),
    };
    Copier::new(meta, spec.ownership.chown(), excludes)
}

pub(super) fn open_root(path: &Path, op: &'static str) -> Result<Root, FsopError> {
    Root::open(path).map_err(|e| FsopError::io(op, &path.display().to_string(), e))
}

/// Gives a directory the copy creates on its own its owner.
fn chown_new_dir(owner: Option<Owner>) -> impl FnMut(&OwnedFd) -> std::io::Result<()> {
    move |fd| match owner {
        Some(owner) => Ok(rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )?),
        None => Ok(()),
    }
}

pub(super) fn dest_error(dest: &str, e: ResolveError) -> FsopError {
    match e {
        ResolveError::Io { path, source } => FsopError::Io {
            op: "resolve",
            path,
            source,
        },
        ResolveError::NotADirectory { path } => FsopError::CopyToNonDirectory { path },
        e => FsopError::Resolve {
            root: "destination",
            path: dest.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Opens (creating it and its parents, owned as the copy says) the directory `dest` names.
pub(super) fn dest_dir(dst: &Root, dest: &str, owner: Option<Owner>) -> Result<DstDir, FsopError> {
    let mut hook = chown_new_dir(owner);
    let fd = dst
        .open_dir(dest.as_bytes(), Some(&mut hook as NewDir<'_>))
        .map_err(|e| dest_error(dest, e))?;
    let fd = fd
        .into_owned()
        .map_err(|e| FsopError::io("open directory", dest, e))?;
    Ok(DstDir::new(fd, dest.to_owned()))
}

/// Copies one source to the destination.
pub(super) fn place<T: SourceTree>(
    dst: &Root,
    dest: &Dest,
    tree: &T,
    top: &Top<T::Node>,
    copier: &mut Copier<'_>,
) -> Result<(), FsopError> {
    let owner = copier.chown();
    if dest.dir_form || tree.info(&top.node).is_dir() {
        // A directory source merges its contents into `dest` (created if missing, followed if a
        // symlink); anything goes inside a `dest/`.
        let dir = dest_dir(dst, &dest.path, owner)?;
        return into_dir(&dir, tree, top, copier);
    }
    let mut hook = chown_new_dir(owner);
    let location = dst
        .walk(dest.path.as_bytes(), true, Some(&mut hook as NewDir<'_>))
        .map_err(|e| dest_error(&dest.path, e))?;
    match location {
        Location::Dir(fd) => {
            let fd = fd
                .into_owned()
                .map_err(|e| FsopError::io("open directory", &dest.path, e))?;
            into_dir(&DstDir::new(fd, dest.path.clone()), tree, top, copier)
        }
        Location::Entry { parent, name, path } => {
            let parent_path = path
                .rsplit_once('/')
                .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
            let parent = DstDir::new(
                parent
                    .into_owned()
                    .map_err(|e| FsopError::io("open directory", parent_path, e))?,
                parent_path.to_owned(),
            );
            match lstat_at(&parent.fd.as_fd(), &name).map_err(|e| FsopError::io("stat", &path, e))? {
                Some(st) if is_dir(&st) => {
                    let fd = rustix::fs::openat(parent.fd.as_fd(), &name, DIR_NOFOLLOW, RawMode::empty())
                        .map_err(|e| FsopError::io("open directory", &path, e))?;
                    into_dir(&DstDir::new(fd, path), tree, top, copier)
                }
                _ => copy_top(tree, &top.node, &parent, &name, copier),
            }
        }
    }
}

/// Copies `top` into the directory `dir`: a directory's contents, anything else under its name.
fn into_dir<T: SourceTree>(
    dir: &DstDir,
    tree: &T,
    top: &Top<T::Node>,
    copier: &mut Copier<'_>,
) -> Result<(), FsopError> {
    if tree.info(&top.node).is_dir() {
        return copier.copy_children(tree, &top.node, dir, "", &MatchState::root());
    }
    copy_top(tree, &top.node, dir, &top.base, copier)
}

/// Copies a non-directory source to `name` in `dir`.
fn copy_top<T: SourceTree>(
    tree: &T,
    node: &T::Node,
    dir: &DstDir,
    name: &CStr,
    copier: &mut Copier<'_>,
) -> Result<(), FsopError> {
    copier.copy_entry(tree, node, dir, name, "", &MatchState::root(), true)
}

/// `ADD`: extracts `top` into `dest` if it is an archive. Returns whether it was one.
pub(super) fn unpack<T: SourceTree>(
    dst: &Root,
    dest: &Dest,
    tree: &T,
    top: &Top<T::Node>,
    copier: &mut Copier<'_>,
) -> Result<bool, FsopError> {
    let path = tree.path(&top.node);
    let Some(reader) = archive::open(&tree.info(&top.node), &path, || tree.open_file(&top.node))? else {
        return Ok(false);
    };
    let into = dest_dir(dst, &dest.path, copier.chown())?;
    let into_fd = into
        .fd
        .try_clone()
        .map_err(|e| FsopError::io("open directory", &dest.path, e))?;
    archive::extract(reader, into_fd, &path, copier.chown(), &mut copier.report)?;
    copier.report.archives += 1;
    Ok(true)
}

/// `--parents`: the matched paths keep their directories (from the source root, or from the `/./`
/// pivot in the source) under `dest`. Directories on the way are created with their source's
/// metadata; matched entries are copied as they are (a symlink stays a symlink).
fn copy_parents(
    src: &Root,
    dst: &Root,
    dest: &Dest,
    source: &str,
    spec: &CopySpec,
    copier: &mut Copier<'_>,
) -> Result<(), FsopError> {
    let (pivot, pattern) = source.split_once("/./").unwrap_or(("/", source));
    let (pivot, pattern) = (clean(pivot), clean(pattern));
    let mut full = pivot.clone();
    full.extend(pattern.iter().cloned());
    let not_found = || FsopError::SourceNotFound {
        path: absolute(&full),
    };
    let base = match src.open_dir(absolute(&pivot).as_bytes(), None) {
        Ok(fd) => fd
            .into_owned()
            .map_err(|e| FsopError::io("open directory", &absolute(&pivot), e))?,
        Err(ResolveError::NotFound { .. } | ResolveError::NotADirectory { .. }) => return Err(not_found()),
        Err(e) => return Err(source::resolve_error(&absolute(&pivot), e)),
    };
    let matches = if pattern.iter().any(|c| has_wildcards(c)) {
        let glob =
            Glob::from_components(pattern.iter().map(String::as_str)).map_err(|_| FsopError::BadPattern {
                pattern: source.to_owned(),
            })?;
        let found = source::matches_in(&base, &glob, &absolute(&pivot))?;
        if found.is_empty() && !spec.allow_empty_wildcard {
            return Err(FsopError::NoSourceFiles {
                pattern: absolute(&full),
            });
        }
        found
    } else {
        vec![pattern]
    };
    let top = dest_dir(dst, &dest.path, copier.chown())?;
    let mut created = Vec::new();
    let base = Rc::new(base);
    for path in matches {
        let mut src_dir = Rc::clone(&base);
        let mut dst_dir = top.clone();
        let mut state = MatchState::root();
        for (i, component) in path.iter().enumerate() {
            let name = CString::new(component.as_str()).map_err(|_| not_found())?;
            let rel = path[..=i].join("/");
            let shown = absolute(&[pivot.clone(), path[..=i].to_vec()].concat());
            let node = DirNode::at(Rc::clone(&src_dir), name.clone(), shown)?.ok_or_else(|| {
                FsopError::SourceNotFound {
                    path: absolute(&[pivot.clone(), path.clone()].concat()),
                }
            })?;
            let info = *node.info();
            let Some(next_state) = copier.included(&rel, info.is_dir(), &state) else {
                break;
            };
            if i + 1 == path.len() {
                copier.copy_entry(&DirTree, &node, &dst_dir, &name, &rel, &next_state, false)?;
                break;
            }
            if !info.is_dir() {
                return Err(not_found());
            }
            let sub = node.open_dir()?;
            dst_dir = parent_dir(&dst_dir, &name, &info, &sub, copier, &mut created)?;
            src_dir = Rc::new(sub);
            state = next_state;
        }
    }
    Copier::restore_dir_times(&created)
}

/// The directory `name` in `dst`, created with the metadata of the source directory `info` (open
/// as `src`) if missing; times are set later, once it is filled.
fn parent_dir(
    dst: &DstDir,
    name: &CString,
    info: &Info,
    src: &OwnedFd,
    copier: &Copier<'_>,
    created: &mut Vec<(DstDir, CString, Info)>,
) -> Result<DstDir, FsopError> {
    let path = join(&dst.path, name);
    match lstat_at(&dst.fd.as_fd(), name).map_err(|e| FsopError::io("stat", &path, e))? {
        Some(existing) if is_dir(&existing) => {}
        Some(_) => return Err(FsopError::CopyToNonDirectory { path }),
        None => {
            rustix::fs::mkdirat(dst.fd.as_fd(), name, RawMode::from_raw_mode(0o700))
                .map_err(|e| FsopError::io("create directory", &path, e))?;
            let fd = rustix::fs::openat(dst.fd.as_fd(), name, DIR_NOFOLLOW, RawMode::empty())
                .map_err(|e| FsopError::io("open directory", &path, e))?;
            copier
                .meta
                .apply(
                    dst.fd.as_fd(),
                    name,
                    Some(fd.as_fd()),
                    info,
                    &read_xattrs(src.as_fd(), c"."),
                )
                .map_err(|e| FsopError::io("set metadata of", &path, e))?;
            created.push((dst.clone(), name.clone(), *info));
            return Ok(DstDir::new(fd, path));
        }
    }
    let fd = rustix::fs::openat(dst.fd.as_fd(), name, DIR_NOFOLLOW, RawMode::empty())
        .map_err(|e| FsopError::io("open directory", &path, e))?;
    Ok(DstDir::new(fd, path))
}
