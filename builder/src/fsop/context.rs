//! `COPY`/`ADD` from the build context: [`ContextCopy`] copies exactly what the context's
//! selections hold, reading through the [`Context`]; the selection side is a [`SourceTree`] the
//! copier reads like any other.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kiln_frontend::dockerignore::{MatchState, Patterns};
use rustix::fs::Timespec;

use crate::content::Digest;
use crate::context::{Context, ContextError, EntryKind, Match, Selected, Selection, Source};

use super::copy::{Dest, Top, copier, dest_dir, open_root, place, unpack};
use super::meta::{Info, Xattrs};
use super::tree::SourceTree;
use super::{Archives, CopyReport, CopySpec, FsopError, Ownership};

impl CopySpec {
    /// The build-context sources this spec names: one per [`sources`](CopySpec::sources) entry, each
    /// with the spec's `--exclude` patterns, `allow_empty_wildcard`, `follow_symlinks` and
    /// `--parents`. The one conversion from a spec to what [`Context::select`] resolves;
    /// [`ContextCopy::select`] uses it.
    pub fn context_sources(&self) -> Result<Vec<Source>, FsopError> {
        let exclude = Patterns::new(&self.excludes).map_err(FsopError::Exclude)?;
        Ok(self
            .sources
            .iter()
            .map(|source| {
                Source::new(source.clone())
                    .exclude(exclude.clone())
                    .allow_empty_wildcard(self.allow_empty_wildcard)
                    .follow_symlinks(self.follow_symlinks)
                    .parents(self.parents)
            })
            .collect())
    }
}

/// One `COPY`/`ADD` from the build context, selected: the spec, and one [`Selection`] per source.
///
/// The context's walk decides what a build may see (`.dockerignore`, or `<Dockerfile>.dockerignore`),
/// and [`Context::select`] what one source names in it: wildcards, symlinks resolved inside the
/// context and only through entries the walk kept, `--exclude`, `--parents`. That selection is also
/// what [`Context::checksum`] hashes for the cache key. So a context copy never looks at the context
/// directory on its own: it copies the selection's entries, with their metadata as the walk saw
/// them, reading files through [`Context::open_file`] (beneath the context root, refused if the file
/// is no longer the one the walk saw) and checking each read was the whole of that version.
///
/// What follows: an ignored file reaches no layer, since it is in no selection; a source that
/// names one, or a symlink to one, is "not found"; a symlink inside a copied directory is copied as
/// the symlink it is, dangling if its target is ignored. Context entries land owned by `0:0` (or
/// `--chown`), never by their owner on disk, which is why the checksum leaves owners out.
///
/// A `ContextCopy` holds a spec, its selections and the copy, so the cache key and the layer come
/// from one value and cannot disagree:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kiln_builder::context::{Context, IgnoreSource};
/// use kiln_builder::fsop::{ContextCopy, CopySpec};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join(".dockerignore"), "*.key\n")?;
/// std::fs::write(dir.path().join("app.py"), "print('hi')\n")?;
/// std::fs::write(dir.path().join("tls.key"), "secret\n")?;
/// let context = Context::builder(dir.path()).ignore(IgnoreSource::ContextRoot).open()?;
///
/// // COPY . /app/
/// let copy = ContextCopy::select(&context, &CopySpec::new(["."], "/app/"))?;
/// let key = copy.checksums()?; // what the cache key hashes...
/// let rootfs = tempfile::tempdir()?;
/// copy.copy(rootfs.path())?; // ...is what the layer gets
/// assert!(rootfs.path().join("app/app.py").exists());
/// assert!(!rootfs.path().join("app/tls.key").exists());
///
/// // COPY tls.key /x: ignored files do not exist for the build.
/// let err = ContextCopy::select(&context, &CopySpec::new(["tls.key"], "/x")).unwrap_err();
/// assert!(err.to_string().ends_with("\"/tls.key\": not found"));
/// # let _ = key;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ContextCopy<'c> {
    context: &'c Context,
    spec: CopySpec,
    selections: Vec<Selection<'c>>,
}

impl<'c> ContextCopy<'c> {
    /// Selects the sources of `spec` in `context` ([`CopySpec::context_sources`], then
    /// [`Context::select`] for each). A source that names nothing the build may see fails here, as
    /// BuildKit's cache-key step does: `"/secret.txt": not found`.
    ///
    /// Context entries are never copied with their owner on disk: [`Ownership::Preserve`] in `spec`
    /// is taken as [`Ownership::Root`].
    pub fn select(context: &'c Context, spec: &CopySpec) -> Result<ContextCopy<'c>, FsopError> {
        let selections = spec
            .context_sources()?
            .iter()
            .map(|source| context.select(source))
            .collect::<Result<Vec<_>, _>>()?;
        let mut spec = spec.clone();
        if spec.ownership == Ownership::Preserve {
            spec.ownership = Ownership::Root;
        }
        Ok(ContextCopy {
            context,
            spec,
            selections,
        })
    }

    /// The spec this copy runs.
    pub fn spec(&self) -> &CopySpec {
        &self.spec
    }

    /// One selection per source, in the spec's order: exactly what [`copy`](ContextCopy::copy)
    /// writes.
    pub fn selections(&self) -> &[Selection<'c>] {
        &self.selections
    }

    /// [`Context::checksum`] of each selection, in the spec's order: the content part of the
    /// cache key.
    pub fn checksums(&self) -> Result<Vec<Digest>, ContextError> {
        self.selections
            .iter()
            .map(|selection| self.context.checksum(selection))
            .collect()
    }

    /// Copies the selections to `spec.dest` in `dst_root`, with the same destination rules as
    /// [`copy`](super::copy) (see [`CopySpec`]). On error, what was already copied stays: the
    /// caller works in an active snapshot it discards.
    pub fn copy(&self, dst_root: &Path) -> Result<CopyReport, FsopError> {
        let spec = &self.spec;
        let dest = Dest::for_spec(spec)?;
        let dst = open_root(dst_root, "open destination root")?;
        // `--exclude` is in the selections already: applying it again could only disagree.
        let mut copier = copier(spec, None);
        for selection in &self.selections {
            for m in selection.matches() {
                let tree = SelectionTree::new(self.context, m);
                if spec.parents {
                    // The match is rooted at the pivot and holds the paths to recreate below `dest`.
                    let into = dest_dir(&dst, dest.path(), copier.chown())?;
                    copier.copy_children(&tree, &0, &into, "", &MatchState::root())?;
                    continue;
                }
                let name = m.path().file_name().map_or(&[][..], OsStrExt::as_bytes);
                let top = Top {
                    node: 0,
                    base: CString::new(name).map_err(|_| FsopError::SourceNotFound {
                        path: format!("/{}", m.path().display()),
                    })?,
                };
                if spec.archives == Archives::Extract && unpack(&dst, &dest, &tree, &top, &mut copier)? {
                    continue;
                }
                place(&dst, &dest, &tree, &top, &mut copier)?;
            }
        }
        Ok(copier.report)
    }
}

/// One match of a selection as a copy's source tree. Nodes are indices into the match's entries
/// (`0` is its root); a directory's children are the entries named directly below it.
struct SelectionTree<'s, 'c> {
    context: &'c Context,
    entries: &'s [Selected<'c>],
    children: Vec<Vec<usize>>,
}

impl<'s, 'c> SelectionTree<'s, 'c> {
    fn new(context: &'c Context, m: &'s Match<'c>) -> SelectionTree<'s, 'c> {
        let entries = m.entries();
        let mut children = vec![Vec::new(); entries.len()];
        // Entries come in walk order, every one after its directory (a selection keeps the
        // directories of what it keeps): the innermost open directory holding a name is its parent.
        let mut open: Vec<usize> = vec![0];
        for (index, selected) in entries.iter().enumerate().skip(1) {
            let name = selected.name();
            while let Some(&dir) = open.last() {
                if dir == 0 || name.starts_with(entries[dir].name()) {
                    break;
                }
                open.pop();
            }
            let parent = open.last().copied().unwrap_or(0);
            debug_assert_eq!(name.parent(), Some(entries[parent].name()));
            children[parent].push(index);
            if *selected.entry().kind() == EntryKind::Dir {
                open.push(index);
            }
        }
        SelectionTree {
            context,
            entries,
            children,
        }
    }
}

impl SourceTree for SelectionTree<'_, '_> {
    type Node = usize;

    // `tv_nsec` is narrower than `i64` on some targets.
    #[allow(clippy::useless_conversion)]
    fn info(&self, node: &usize) -> Info {
        let meta = self.entries[*node].entry().metadata();
        let mtime = Timespec {
            tv_sec: meta.mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: meta.mtime_ns.rem_euclid(1_000_000_000).try_into().unwrap_or(0),
        };
        Info {
            mode: meta.mode,
            // Context files have no owner of their own (BuildKit's client sends them as 0:0).
            uid: 0,
            gid: 0,
            rdev: meta.rdev,
            size: meta.size,
            dev: meta.dev,
            ino: meta.ino,
            nlink: meta.nlink,
            // The transferred context has no access times: BuildKit's receiver sets both to mtime.
            atime: mtime,
            mtime,
        }
    }

    fn path(&self, node: &usize) -> String {
        format!("/{}", self.entries[*node].entry().path().display())
    }

    fn children(&self, dir: &usize) -> Result<Vec<(CString, usize)>, FsopError> {
        self.children[*dir]
            .iter()
            .map(|&child| {
                let name = self.entries[child]
                    .name()
                    .file_name()
                    .map_or(&[][..], OsStrExt::as_bytes);
                CString::new(name)
                    .map(|name| (name, child))
                    .map_err(|_| FsopError::SourceNotFound {
                        path: self.path(&child),
                    })
            })
            .collect()
    }

    fn open_file(&self, node: &usize) -> Result<File, FsopError> {
        Ok(self.context.open_file(self.entries[*node].entry())?)
    }

    fn check_read(&self, node: &usize, file: &File, bytes: u64) -> Result<(), FsopError> {
        Ok(self
            .context
            .check_read(self.entries[*node].entry(), file, bytes)?)
    }

    fn read_link(&self, node: &usize) -> Result<Vec<u8>, FsopError> {
        match self.entries[*node].entry().kind() {
            // The target the walk read: the one the checksum covered.
            EntryKind::Symlink(target) => Ok(target.as_bytes().to_vec()),
            _ => Err(FsopError::io(
                "read link",
                &self.path(node),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )),
        }
    }

    fn xattrs(&self, node: &usize) -> Result<Xattrs, FsopError> {
        let xattrs = self.context.xattrs(self.entries[*node].entry())?;
        Ok(xattrs
            .into_iter()
            .filter_map(|(name, value)| Some((CString::new(name).ok()?, value)))
            .collect())
    }
}
