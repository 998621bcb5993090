//! The context walk: what `.dockerignore` leaves of the context directory, in BuildKit's order.
//!
//! The walk is depth-first with each directory's names sorted bytewise, so a directory's contents
//! come right after it (`a`, `a/b`, `a.txt`): the order of `Path`'s component-wise comparison, which
//! lets [`Context`](super::Context) find entries by binary search. It follows fsutil's rules
//! (SEMANTICS.md §5-6): each directory hands its [`MatchState`] to its children; an excluded
//! directory is entered only when an exception might re-include something inside
//! ([`Patterns::should_descend`]), and is emitted only if something inside is; the root is never
//! excluded. Symlinks are entries, never followed.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::OFlags;

use super::{ContextError, Entry, EntryKind, Metadata, beneath};

/// Walks the context below `root`, returning its entries in walk order, the root (`""`) first.
pub(crate) fn walk(root: BorrowedFd<'_>, patterns: &Patterns) -> Result<Vec<Entry>, ContextError> {
    let walk_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Walk { path, source }
    };
    let meta = beneath::stat_fd(root).map_err(walk_error(Path::new("")))?;
    let mut walker = Walker {
        root,
        patterns,
        entries: vec![Entry::new(PathBuf::new(), EntryKind::Dir, meta)],
        pending: Vec::new(),
    };
    walker.visit(Path::new(""), &MatchState::root())?;
    Ok(walker.entries)
}

struct Walker<'a> {
    root: BorrowedFd<'a>,
    patterns: &'a Patterns,
    entries: Vec<Entry>,
    /// Excluded directories being walked because an exception may re-include something inside,
    /// outermost first: emitted (in this order) when the first such thing turns up.
    pending: Vec<Entry>,
}

/// One name of a directory, stat-ed while the directory was open.
struct Child {
    rel: PathBuf,
    kind: EntryKind,
    meta: Metadata,
}

impl Walker<'_> {
    fn visit(&mut self, dir: &Path, state: &MatchState) -> Result<(), ContextError> {
        // Stat every child first and close the directory before descending, so the walk holds one
        // descriptor at a time however deep the tree is.
        let children = self.read_dir(dir).map_err(|source| ContextError::Walk {
            path: dir.to_path_buf(),
            source,
        })?;
        let matcher = self.patterns.matcher();
        for child in children {
            let (excluded, child_state) = if self.patterns.is_empty() {
                (false, MatchState::root())
            } else {
                let verdict = matcher.check(&child.rel.to_string_lossy(), state);
                (verdict.excluded, verdict.state)
            };
            let is_dir = matches!(child.kind, EntryKind::Dir);
            let entry = Entry::new(child.rel, child.kind, child.meta);
            if !excluded {
                // A re-included path brings its excluded parents, with their real metadata.
                self.entries.append(&mut self.pending);
                let rel = entry.path.clone();
                self.entries.push(entry);
                if is_dir {
                    self.visit(&rel, &child_state)?;
                }
            } else if is_dir && self.patterns.should_descend(&entry.path.to_string_lossy()) {
                let rel = entry.path.clone();
                let depth = self.pending.len();
                self.pending.push(entry);
                self.visit(&rel, &child_state)?;
                // Still pending: nothing inside was re-included, so the directory stays out.
                self.pending.truncate(depth);
            }
        }
        Ok(())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<Child>> {
        let owned;
        let fd = if dir.as_os_str().is_empty() {
            self.root
        } else {
            owned = beneath::open(self.root, dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
            owned.as_fd()
        };
        let mut children = Vec::new();
        for name in beneath::list(fd)? {
            let meta = match beneath::stat_at(fd, &name) {
                Ok(meta) => meta,
                // Deleted since the listing: it is simply not part of this build.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let kind = match EntryKind::from_mode(meta.mode) {
                Some(EntryKind::Symlink(_)) => match rustix::fs::readlinkat(fd, &name, Vec::new()) {
                    Ok(target) => EntryKind::Symlink(OsStr::from_bytes(target.as_bytes()).to_owned()),
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                },
                Some(kind) => kind,
                None => continue,
            };
            children.push(Child {
                rel: dir.join(&name),
                kind,
                meta,
            });
        }
        Ok(children)
    }
}
