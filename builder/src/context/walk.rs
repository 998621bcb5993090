//! The context walk: what `.dockerignore` leaves of the context directory, in BuildKit's order.
//!
//! The walk is depth-first with each directory's names sorted bytewise, so a directory's contents
//! come right after it (`a`, `a/b`, `a.txt`): the order of `Path`'s component-wise comparison, which
//! lets [`Context`](super::Context) find entries by binary search. It follows fsutil's rules
//! (SEMANTICS.md §5-6): each directory hands its [`MatchState`] to its children; an excluded
//! directory is entered only when an exception might re-include something inside
//! ([`Patterns::should_descend`]), and is emitted only if something inside is; the root is never
//! excluded. Symlinks are entries, never followed.
//!
//! It runs in two phases. Listing (a few threads): each directory to enter is read, its children
//! matched against the patterns and stat-ed (except what is excluded and not entered: the listing's
//! file types tell directories apart), and the directories among them to enter are queued; this is
//! where the time goes (an `lstat` per path, which no cache can skip: a file's own stat data is the
//! only sign its contents changed). Assembly (one thread): the listings are put in depth-first
//! order, applying the "re-included paths bring their excluded parents" rule, which needs that
//! order.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::{FileType, OFlags};

use super::{ContextError, Entry, EntryKind, Metadata, beneath};

/// The most threads that list directories.
const MAX_WORKERS: usize = 4;

/// Walks the context below `root`, returning its entries in walk order, the root (`""`) first.
pub(crate) fn walk(root: BorrowedFd<'_>, patterns: &Patterns) -> Result<Vec<Entry>, ContextError> {
    let meta = beneath::stat_fd(root).map_err(|source| ContextError::Walk {
        path: PathBuf::new(),
        source,
    })?;
    let mut listings = list_all(root, patterns)?;
    let mut entries = Vec::with_capacity(1 + listings.values().map(Vec::len).sum::<usize>());
    entries.push(Entry::new(PathBuf::new(), EntryKind::Dir, meta));
    let mut assembly = Assembly {
        listings: &mut listings,
        entries,
        pending: Vec::new(),
    };
    assembly.visit(Path::new(""));
    Ok(assembly.entries)
}

/// One name of a directory: stat-ed, matched, and whether the walk enters it.
struct Child {
    rel: PathBuf,
    kind: EntryKind,
    meta: Metadata,
    excluded: bool,
    /// A directory the walk enters (its listing exists).
    entered: bool,
}

/// A directory to list, and the match state its children are checked against.
type Subdir = (PathBuf, MatchState);

/// The directories to list, shared by the listing threads.
struct Queue {
    todo: Vec<Subdir>,
    /// Directories being listed (which may queue more).
    busy: usize,
    failed: Option<ContextError>,
}

/// Lists every directory the walk enters, on a few threads: directory path -> its children.
fn list_all(root: BorrowedFd<'_>, patterns: &Patterns) -> Result<HashMap<PathBuf, Vec<Child>>, ContextError> {
    let queue = Mutex::new(Queue {
        todo: vec![(PathBuf::new(), MatchState::root())],
        busy: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let listings = Mutex::new(HashMap::new());
    let work = || {
        let mut mine = Vec::new();
        loop {
            let (dir, state) = {
                let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if q.failed.is_some() || (q.todo.is_empty() && q.busy == 0) {
                        wake.notify_all();
                        listings
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .extend(mine);
                        return;
                    }
                    if let Some(next) = q.todo.pop() {
                        q.busy += 1;
                        break next;
                    }
                    q = wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let listed = list(root, &dir, &state, patterns);
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.busy -= 1;
            match listed {
                Ok((children, subdirs)) => {
                    q.todo.extend(subdirs);
                    mine.push((dir, children));
                }
                Err(source) => {
                    q.failed.get_or_insert(ContextError::Walk { path: dir, source });
                }
            }
            wake.notify_all();
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_WORKERS);
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    if let Some(e) = queue.into_inner().unwrap_or_else(PoisonError::into_inner).failed {
        return Err(e);
    }
    Ok(listings.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// Reads, matches and stats the children of `dir`; returns them and the subdirectories to enter.
fn list(
    root: BorrowedFd<'_>,
    dir: &Path,
    state: &MatchState,
    patterns: &Patterns,
) -> io::Result<(Vec<Child>, Vec<Subdir>)> {
    // A descriptor of our own even for the root: the listing reads from the descriptor's position.
    let fd = beneath::open(root, dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let fd = fd.as_fd();
    let names = beneath::list(fd)?;
    let matcher = patterns.matcher();
    let mut children = Vec::with_capacity(names.len());
    let mut subdirs = Vec::new();
    for (name, listed) in names.iter() {
        let rel = child_path(dir, name.to_bytes());
        let (excluded, child_state) = if patterns.is_empty() {
            (false, MatchState::root())
        } else {
            let verdict = matcher.check(&rel.to_string_lossy(), state);
            (verdict.excluded, verdict.state)
        };
        // What is excluded and not entered is no part of the context: it needs no `lstat`. The
        // listing tells directories apart where the filesystem records types.
        let may_enter = || patterns.should_descend(&rel.to_string_lossy());
        if excluded && listed != FileType::Unknown && (listed != FileType::Directory || !may_enter()) {
            continue;
        }
        let meta = match beneath::stat_at(fd, name) {
            Ok(meta) => meta,
            // Deleted since the listing: it is simply not part of this build.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let kind = match EntryKind::from_mode(meta.mode) {
            Some(EntryKind::Symlink(_)) => match rustix::fs::readlinkat(fd, name, Vec::new()) {
                Ok(target) => EntryKind::Symlink(OsString::from_vec(target.into_bytes())),
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            },
            Some(kind) => kind,
            None => continue,
        };
        let entered = kind == EntryKind::Dir && (!excluded || may_enter());
        if excluded && !entered {
            continue;
        }
        if entered {
            subdirs.push((rel.clone(), child_state));
        }
        children.push(Child {
            rel,
            kind,
            meta,
            excluded,
            entered,
        });
    }
    Ok((children, subdirs))
}

/// `dir/name` (or `name` at the root), allocated once.
fn child_path(dir: &Path, name: &[u8]) -> PathBuf {
    let dir = dir.as_os_str().as_bytes();
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.extend_from_slice(dir);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    PathBuf::from(OsString::from_vec(path))
}

/// Puts the listings in walk order.
struct Assembly<'a> {
    listings: &'a mut HashMap<PathBuf, Vec<Child>>,
    entries: Vec<Entry>,
    /// Excluded directories being walked because an exception may re-include something inside,
    /// outermost first: emitted (in this order) when the first such thing turns up.
    pending: Vec<Entry>,
}

impl Assembly<'_> {
    fn visit(&mut self, dir: &Path) {
        let Some(children) = self.listings.remove(dir) else {
            return;
        };
        for child in children {
            let entry = Entry::new(child.rel, child.kind, child.meta);
            if !child.excluded {
                // A re-included path brings its excluded parents, with their real metadata.
                self.entries.append(&mut self.pending);
                let rel = child.entered.then(|| entry.path.clone());
                self.entries.push(entry);
                if let Some(rel) = rel {
                    self.visit(&rel);
                }
            } else if child.entered {
                let rel = entry.path.clone();
                let depth = self.pending.len();
                self.pending.push(entry);
                self.visit(&rel);
                // Still pending: nothing inside was re-included, so the directory stays out.
                self.pending.truncate(depth);
            }
        }
    }
}
