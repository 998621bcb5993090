//! One `COPY`/`ADD` from a source root into a destination root: the rules fsutil's `Copy` applies
//! to each resolved source (directory contents merge into the destination; a file lands inside a
//! directory destination, or *as* a file destination), `--parents`, and `ADD`'s archive extraction.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::{Gid, Mode as RawMode, Uid};

use crate::fsroot::{DIR_NOFOLLOW, Location, NewDir, ResolveError, Root, is_dir, lstat_at};

use super::meta::Metadata;
use super::source::{self, Source, SourceAt, absolute, clean};
use super::tree::{Copier, DstDir, SrcEntry, join};
use super::{Archives, CopyReport, CopySpec, FsopError, Owner, archive};
use crate::glob::{Glob, has_wildcards};

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
}

pub(super) fn run(
    src_root: &Path,
    dst_root: &Path,
    spec: &CopySpec,
    wildcards: Wildcards,
) -> Result<CopyReport, FsopError> {
    let dest = Dest::parse(&spec.dest);
    if spec.sources.len() > 1 && !dest.dir_form {
        return Err(FsopError::DestNotDirectory {
            dest: spec.dest.clone(),
        });
    }
    let excludes = if spec.excludes.is_empty() {
        None
    } else {
        Some(Patterns::new(&spec.excludes).map_err(FsopError::Exclude)?)
    };
    let src = open_root(src_root, "open source root")?;
    let dst = open_root(dst_root, "open destination root")?;
    let meta = Metadata {
        owner: spec.ownership.entry_owner(),
        chmod: spec.chmod.as_ref(),
    };
    let mut copier = Copier::new(meta, spec.ownership.chown(), excludes.as_ref());
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
            if spec.archives == Archives::Extract && unpack(&dst, &dest, &item, &mut copier)? {
                continue;
            }
            place(&dst, &dest, &item, &mut copier)?;
        }
    }
    Ok(copier.report)
}

fn open_root(path: &Path, op: &'static str) -> Result<Root, FsopError> {
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

/// Copies one resolved source to the destination.
fn place(dst: &Root, dest: &Dest, item: &Source, copier: &mut Copier<'_>) -> Result<(), FsopError> {
    let owner = copier.chown();
    if dest.dir_form || item.is_dir() {
        // A directory source merges its contents into `dest` (created if missing, followed if a
        // symlink); anything goes inside a `dest/`.
        let dir = dest_dir(dst, &dest.path, owner)?;
        return into_dir(&dir, item, copier);
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
            into_dir(&DstDir::new(fd, dest.path.clone()), item, copier)
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
                    into_dir(&DstDir::new(fd, path), item, copier)
                }
                _ => copy_top(item, &parent, &name, copier),
            }
        }
    }
}

/// Copies `item` into the directory `dir`: a directory's contents, anything else under its name.
fn into_dir(dir: &DstDir, item: &Source, copier: &mut Copier<'_>) -> Result<(), FsopError> {
    if item.is_dir() {
        let src_dir = item.open_dir()?;
        return copier.copy_children(&src_dir, &item.path, dir, "", &MatchState::root());
    }
    copy_top(item, dir, &item.base, copier)
}

/// Copies a non-directory source to `name` in `dir`.
fn copy_top(item: &Source, dir: &DstDir, name: &CString, copier: &mut Copier<'_>) -> Result<(), FsopError> {
    let SourceAt::Entry {
        parent,
        name: src_name,
    } = &item.at
    else {
        unreachable!("only a directory is a source without a name");
    };
    let entry = SrcEntry {
        dir: parent.as_fd(),
        name: src_name,
        st: item.st,
        path: item.path.clone(),
    };
    copier.copy_entry(&entry, dir, name, "", &MatchState::root(), true)
}

/// `ADD`: extracts `item` into `dest` if it is an archive. Returns whether it was one.
fn unpack(dst: &Root, dest: &Dest, item: &Source, copier: &mut Copier<'_>) -> Result<bool, FsopError> {
    let SourceAt::Entry { parent, name } = &item.at else {
        return Ok(false);
    };
    let Some(reader) = archive::open(parent.as_fd(), name, &item.st, &item.path)? else {
        return Ok(false);
    };
    let into = dest_dir(dst, &dest.path, copier.chown())?;
    let into_fd = into
        .fd
        .try_clone()
        .map_err(|e| FsopError::io("open directory", &dest.path, e))?;
    archive::extract(reader, into_fd, &item.path, copier.chown(), &mut copier.report)?;
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
        let glob = Glob::from_components(pattern.iter().map(String::as_str)).map_err(|_| FsopError::BadPattern {
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
    for path in matches {
        let mut src_dir = base
            .try_clone()
            .map_err(|e| FsopError::io("open directory", &absolute(&pivot), e))?;
        let mut dst_dir = top.clone();
        let mut state = MatchState::root();
        for (i, component) in path.iter().enumerate() {
            let name = CString::new(component.as_str()).map_err(|_| not_found())?;
            let rel = path[..=i].join("/");
            let shown = absolute(&[pivot.clone(), path[..=i].to_vec()].concat());
            let st = lstat_at(&src_dir, &name)
                .map_err(|e| FsopError::io("stat", &shown, e))?
                .ok_or_else(|| FsopError::SourceNotFound {
                    path: absolute(&[pivot.clone(), path.clone()].concat()),
                })?;
            let Some(next_state) = copier.included(&rel, is_dir(&st), &state) else {
                break;
            };
            if i + 1 == path.len() {
                let entry = SrcEntry {
                    dir: src_dir.as_fd(),
                    name: &name,
                    st,
                    path: shown,
                };
                copier.copy_entry(&entry, &dst_dir, &name, &rel, &next_state, false)?;
                break;
            }
            if !is_dir(&st) {
                return Err(FsopError::SourceNotFound {
                    path: absolute(&full),
                });
            }
            let sub = rustix::fs::openat(&src_dir, &name, DIR_NOFOLLOW, RawMode::empty())
                .map_err(|e| FsopError::io("open directory", &shown, e))?;
            dst_dir = parent_dir(&dst_dir, &name, &st, &sub, copier, &mut created)?;
            src_dir = sub;
            state = next_state;
        }
    }
    Copier::restore_dir_times(&created)
}

/// The directory `name` in `dst`, created with the metadata of the source directory `st` (found
/// as `src`) if missing; times are set later, once it is filled.
fn parent_dir(
    dst: &DstDir,
    name: &CString,
    st: &rustix::fs::Stat,
    src: &OwnedFd,
    copier: &Copier<'_>,
    created: &mut Vec<(DstDir, CString, rustix::fs::Stat)>,
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
                    st,
                    Some((src.as_fd(), c".")),
                )
                .map_err(|e| FsopError::io("set metadata of", &path, e))?;
            created.push((dst.clone(), name.clone(), *st));
            return Ok(DstDir::new(fd, path));
        }
    }
    let fd = rustix::fs::openat(dst.fd.as_fd(), name, DIR_NOFOLLOW, RawMode::empty())
        .map_err(|e| FsopError::io("open directory", &path, e))?;
    Ok(DstDir::new(fd, path))
}
