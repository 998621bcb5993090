//! Selecting what a `COPY`/`ADD` source names, inside the context, as BuildKit resolves it.
//!
//! The rules are documented on [`Context::select`].

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_frontend::dockerignore::{MatchState, Patterns};

use super::{Context, ContextError, Entry, EntryKind};
use crate::glob::{self, Glob};

/// BuildKit's (and Linux's) bound on symlinks followed while resolving one path.
const MAX_SYMLINKS: usize = 255;

/// A `COPY`/`ADD` source: a path with optional wildcards, and what to exclude from it.
#[derive(Debug, Clone)]
pub struct Source {
    path: String,
    exclude: Patterns,
    allow_empty_wildcard: bool,
    follow_symlinks: bool,
    parents: bool,
}

impl Source {
    /// A source path relative to the context root (a leading `/` is allowed and means the same).
    pub fn new(path: impl Into<String>) -> Source {
        Source {
            path: path.into(),
            exclude: Patterns::default(),
            allow_empty_wildcard: false,
            follow_symlinks: true,
            parents: false,
        }
    }

    /// Whether a symlink the path (or a wildcard) names is followed, inside the context, to what it
    /// points at (`COPY` does: the default), or selected as the symlink itself.
    #[must_use]
    pub fn follow_symlinks(mut self, follow: bool) -> Source {
        self.follow_symlinks = follow;
        self
    }

    /// `COPY --parents`: the selection keeps each matched path's directories. The path may hold a
    /// `/./` pivot (`src/./app/*.go`): directories are kept from there down, from the context root
    /// without one. See [`Context::select`].
    #[must_use]
    pub fn parents(mut self, parents: bool) -> Source {
        self.parents = parents;
        self
    }

    /// Applies `--exclude` patterns (built with `Patterns::new`) to the selected paths.
    #[must_use]
    pub fn exclude(mut self, patterns: Patterns) -> Source {
        self.exclude = patterns;
        self
    }

    /// Whether a wildcard that matches nothing selects nothing (instead of failing with
    /// [`ContextError::NotFound`]). BuildKit's Dockerfile frontend sets this for `COPY` and `ADD`;
    /// the parent of the wildcard must exist either way.
    #[must_use]
    pub fn allow_empty_wildcard(mut self, allow: bool) -> Source {
        self.allow_empty_wildcard = allow;
        self
    }

    /// The path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the path holds wildcards.
    pub fn has_wildcards(&self) -> bool {
        glob::has_wildcards(&self.path)
    }
}

/// What one source selects: the paths it matched, each with the entries it brings.
#[derive(Debug)]
pub struct Selection<'a> {
    source: String,
    matches: Vec<Match<'a>>,
}

impl<'a> Selection<'a> {
    /// The source path this selection was made for, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The matched paths in walk order: one for a plain path, any number for a wildcard.
    pub fn matches(&self) -> &[Match<'a>] {
        &self.matches
    }

    /// Every selected entry, match by match.
    pub fn entries(&self) -> impl Iterator<Item = &Selected<'a>> {
        self.matches.iter().flat_map(|m| m.entries.iter())
    }
}

/// One path a source names, resolved.
#[derive(Debug)]
pub struct Match<'a> {
    path: PathBuf,
    root: &'a Entry,
    entries: Vec<Selected<'a>>,
}

impl<'a> Match<'a> {
    /// The path as the source names it, relative to the context root (symlinks not resolved): its
    /// last component is the name `COPY` gives a file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry the path resolves to (never a symlink).
    pub fn root(&self) -> &'a Entry {
        self.root
    }

    /// The entries this match brings, the root first (named `""`), then for a directory its
    /// contents in walk order, minus what `--exclude` drops.
    pub fn entries(&self) -> &[Selected<'a>] {
        &self.entries
    }
}

/// An entry of a [`Match`], named relative to the match's root.
#[derive(Debug, Clone)]
pub struct Selected<'a> {
    name: &'a Path,
    entry: &'a Entry,
}

impl<'a> Selected<'a> {
    /// The path relative to the match's root (`""` for the root itself).
    pub fn name(&self) -> &'a Path {
        self.name
    }

    /// The context entry.
    pub fn entry(&self) -> &'a Entry {
        self.entry
    }
}

impl Context {
    /// Resolves `source` inside the context, as BuildKit resolves a `COPY`/`ADD` source.
    ///
    /// A source is a path relative to the context root, already variable-expanded. It is cleaned
    /// lexically (`.` and empty components dropped, `..` never climbing above the root), then resolved
    /// against the context's entries as BuildKit's contenthash does: a symlink met on the way is
    /// followed, but its target is resolved *inside* the context (an absolute target starts again at
    /// the context root, `..` stops there), so `ln -s /etc/passwd x` names the context's own
    /// `etc/passwd`, which is usually not there. The final component is followed too, as `COPY` does.
    ///
    /// With wildcards (`*`, `?`, `[...]`, Go's `path.Match`), the path splits at the first component that
    /// has one: the part before it is resolved as above, and every context path below it that the whole
    /// pattern matches is a [`Match`]. A matched directory brings its whole subtree; a matched symlink is
    /// followed. `--exclude` patterns ([`Source::exclude`]) then drop paths of each match, with the same
    /// rules as `.dockerignore` applied to paths relative to the match.
    ///
    /// A wildcard match is itself subject to `--exclude`, matched by its path below the wildcard's
    /// directory (`COPY --exclude=*.txt hom* /dir/` leaves `home.txt` out).
    ///
    /// With [`Source::parents`], the selection is one [`Match`] rooted at the pivot (the directory
    /// before `/./`, or the context root): it holds every matched path with the directories between
    /// the pivot and it, named relative to the pivot, so copying its contents recreates the paths.
    /// Below the pivot nothing is followed: a symlink on the way means "not found", a matched
    /// symlink is selected as itself. `--exclude` applies to paths relative to the pivot.
    ///
    /// A path that does not exist (or is ignored) fails with [`ContextError::NotFound`], reported as
    /// BuildKit does: `"/missing": not found`. So does a wildcard that matches nothing, unless the
    /// source allows it.
    pub fn select(&self, source: &Source) -> Result<Selection<'_>, ContextError> {
        if source.parents {
            return Ok(Selection {
                source: source.path.clone(),
                matches: vec![self.parents_match(source)?],
            });
        }
        let components = clean(&source.path);
        let not_found = || ContextError::NotFound {
            context: self.root.clone(),
            path: format!("/{}", components.join("/")),
        };
        let split = components.iter().position(|c| glob::has_wildcards(c));
        let matches = match split {
            None => {
                let index = self
                    .resolve(
                        components.iter().map(|c| c.as_bytes()),
                        source.follow_symlinks,
                        &source.path,
                    )?
                    .ok_or_else(not_found)?;
                let path: PathBuf = components.iter().collect();
                vec![self.collect(path, index, &source.exclude)]
            }
            Some(split) => {
                let (matches, matched_any) = self.wildcard_matches(&components, split, source)?;
                if !matched_any && !source.allow_empty_wildcard {
                    return Err(not_found());
                }
                matches
            }
        };
        Ok(Selection {
            source: source.path.clone(),
            matches,
        })
    }

    /// The matches of a wildcard source whose first wildcard is in `components[split]`, and whether
    /// the wildcard matched anything before `--exclude` left matches out (a source whose matches
    /// are all excluded selects nothing, but is not missing).
    fn wildcard_matches(
        &self,
        components: &[&str],
        split: usize,
        source: &Source,
    ) -> Result<(Vec<Match<'_>>, bool), ContextError> {
        let pattern = components.join("/");
        let glob = Glob::new(&pattern).map_err(|_| ContextError::BadPattern {
            pattern: source.path.clone(),
        })?;
        let prefix = &components[..split];
        let Some(base) = self.resolve(prefix.iter().map(|c| c.as_bytes()), true, &source.path)? else {
            // BuildKit fails here too (when copying: the wildcard's directory does not exist).
            return Err(ContextError::NotFound {
                context: self.root.clone(),
                path: format!("/{pattern}"),
            });
        };
        if !matches!(self.entries[base].kind, EntryKind::Dir) {
            return Ok((Vec::new(), false));
        }
        let prefix: PathBuf = prefix.iter().collect();
        let base_path = &self.entries[base].path;
        let mut matches = Vec::new();
        let mut matched_any = false;
        let mut index = base + 1;
        let end = self.subtree_end(base);
        while index < end {
            let entry = &self.entries[index];
            // Match against the path as the source spells it, not where its symlinks lead.
            let named = prefix.join(entry.path.strip_prefix(base_path).unwrap_or(&entry.path));
            if glob.matches(&named.to_string_lossy()) {
                let target = self
                    .resolve(
                        named.iter().map(OsStrExt::as_bytes),
                        source.follow_symlinks,
                        &source.path,
                    )?
                    .ok_or_else(|| ContextError::NotFound {
                        context: self.root.clone(),
                        path: format!("/{}", named.display()),
                    })?;
                matched_any = true;
                let below = named.strip_prefix(&prefix).unwrap_or(&named).to_string_lossy();
                let is_dir = matches!(self.entries[target].kind, EntryKind::Dir);
                if !excluded(&source.exclude, &below, is_dir) {
                    matches.push(self.collect(named, target, &source.exclude));
                }
                // A matched directory is taken whole; nothing inside is a match of its own.
                if matches!(entry.kind, EntryKind::Dir) {
                    index = self.subtree_end(index);
                    continue;
                }
            }
            index += 1;
        }
        Ok((matches, matched_any))
    }

    /// The one match of a `--parents` source: rooted at the pivot, holding the matched paths, their
    /// subtrees and the directories between the pivot and them.
    fn parents_match(&self, source: &Source) -> Result<Match<'_>, ContextError> {
        let (pivot, pattern) = source.path.split_once("/./").unwrap_or(("", &source.path));
        let (pivot, pattern) = (clean(pivot), clean(pattern));
        let not_found = || ContextError::NotFound {
            context: self.root.clone(),
            path: format!("/{}", [&pivot[..], &pattern[..]].concat().join("/")),
        };
        let base = self
            .resolve(pivot.iter().map(|c| c.as_bytes()), true, &source.path)?
            .filter(|&i| matches!(self.entries[i].kind, EntryKind::Dir))
            .ok_or_else(not_found)?;
        let base_path = &self.entries[base].path;
        let matched = if pattern.iter().any(|c| glob::has_wildcards(c)) {
            let glob =
                Glob::from_components(pattern.iter().copied()).map_err(|_| ContextError::BadPattern {
                    pattern: source.path.clone(),
                })?;
            let mut found = Vec::new();
            let (mut index, end) = (base + 1, self.subtree_end(base));
            while index < end {
                let entry = &self.entries[index];
                let below = entry.path.strip_prefix(base_path).unwrap_or(&entry.path);
                if glob.matches(&below.to_string_lossy()) {
                    found.push(index);
                    if matches!(entry.kind, EntryKind::Dir) {
                        index = self.subtree_end(index);
                        continue;
                    }
                }
                index += 1;
            }
            if found.is_empty() && !source.allow_empty_wildcard {
                return Err(not_found());
            }
            found
        } else {
            // Nothing below the pivot is followed: through a symlink, the path is not in the walk.
            let path: PathBuf = base_path.iter().chain(pattern.iter().map(OsStr::new)).collect();
            vec![self.index_of(&path).ok_or_else(not_found)?]
        };
        // Entry indices are walk order: a set of them lists the union in walk order.
        let mut kept = BTreeSet::new();
        for index in matched {
            let mut parent = self.entries[index].path.parent();
            while let Some(dir) = parent.filter(|dir| dir.starts_with(base_path) && dir != base_path) {
                kept.extend(self.index_of(dir));
                parent = dir.parent();
            }
            kept.extend(index..self.subtree_end(index));
        }
        // The pivot itself is the match's root, not an entry below it (`COPY --parents ./ /x/`).
        kept.remove(&base);
        let root = &self.entries[base];
        let mut entries = vec![Selected {
            name: Path::new(""),
            entry: root,
        }];
        entries.extend(excluding(
            kept.into_iter().map(|i| &self.entries[i]),
            base_path,
            &source.exclude,
        ));
        Ok(Match {
            path: pivot.iter().collect(),
            root,
            entries,
        })
    }

    /// The match rooted at `index`: the entry, and for a directory its subtree minus `exclude`.
    fn collect(&self, path: PathBuf, index: usize, exclude: &Patterns) -> Match<'_> {
        let root = &self.entries[index];
        let mut entries = vec![Selected {
            name: Path::new(""),
            entry: root,
        }];
        if matches!(root.kind, EntryKind::Dir) {
            let inside = &self.entries[index + 1..self.subtree_end(index)];
            entries.extend(excluding(inside, &root.path, exclude));
        }
        Match { path, root, entries }
    }

    /// Resolves `components` (cleaned) to an entry, following symlinks inside the context as
    /// BuildKit's `getFollowLinks` does; `follow_last` also follows a final symlink. A missing
    /// component does not stop the walk (a later `..` may come back), only the final lookup.
    fn resolve<'c>(
        &self,
        components: impl IntoIterator<Item = &'c [u8]>,
        follow_last: bool,
        source: &str,
    ) -> Result<Option<usize>, ContextError> {
        let mut remaining: VecDeque<Vec<u8>> = components.into_iter().map(<[u8]>::to_vec).collect();
        let mut current = PathBuf::new();
        let mut links = 0;
        while let Some(part) = remaining.pop_front() {
            match part.as_slice() {
                b"" | b"." => continue,
                // At the root, `..` stays at the root: nothing above it exists for a build.
                b".." => {
                    current.pop();
                    continue;
                }
                _ => current.push(OsStr::from_bytes(&part)),
            }
            let Some(index) = self.index_of(&current) else {
                continue;
            };
            let EntryKind::Symlink(target) = &self.entries[index].kind else {
                continue;
            };
            if remaining.is_empty() && !follow_last {
                break;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ContextError::TooManyLinks {
                    path: source.to_owned(),
                });
            }
            current.pop();
            let target = target.as_bytes();
            if target.starts_with(b"/") {
                current = PathBuf::new();
            }
            for part in target.split(|&b| b == b'/').rev() {
                remaining.push_front(part.to_vec());
            }
        }
        Ok(self.index_of(&current))
    }
}

/// Whether `--exclude` leaves out a path (relative to where the source's wildcard was resolved)
/// outright: an excluded directory stays when an exception may re-include something inside.
fn excluded(exclude: &Patterns, path: &str, is_dir: bool) -> bool {
    !exclude.is_empty()
        && exclude.matcher().check(path, &MatchState::root()).excluded
        && !(is_dir && exclude.should_descend(path))
}

/// The entries of `inside` (below `root`, in walk order) that `exclude` keeps, named relative to
/// `root`. The walker's rules: excluded directories are entered only if an exception may re-include
/// something, and appear only if something inside does.
fn excluding<'a>(
    inside: impl IntoIterator<Item = &'a Entry>,
    root: &Path,
    exclude: &Patterns,
) -> Vec<Selected<'a>> {
    // Every entry is inside `root`: its name is what follows `root/` (plain byte slicing; walks
    // never produce `.` or empty components).
    let skip = match root.as_os_str().len() {
        0 => 0,
        len => len + 1,
    };
    let name_of = |entry: &'a Entry| Path::new(OsStr::from_bytes(&entry.path.as_os_str().as_bytes()[skip..]));
    if exclude.is_empty() {
        return inside
            .into_iter()
            .map(|entry| Selected {
                name: name_of(entry),
                entry,
            })
            .collect();
    }
    let matcher = exclude.matcher();
    let mut stack: Vec<OpenDir<'a>> = Vec::new();
    let mut kept = Vec::new();
    for entry in inside {
        let name = name_of(entry);
        while stack.last().is_some_and(|dir| !name.starts_with(dir.name)) {
            stack.pop();
        }
        if stack.last().is_some_and(|dir| !dir.entered) {
            continue;
        }
        let parent = stack
            .last()
            .map_or_else(MatchState::root, |dir| dir.state.clone());
        let text = name.to_string_lossy();
        let verdict = matcher.check(&text, &parent);
        let selected = Selected { name, entry };
        let is_dir = matches!(entry.kind, EntryKind::Dir);
        if verdict.excluded {
            if is_dir {
                stack.push(OpenDir {
                    entered: exclude.should_descend(&text),
                    name,
                    state: verdict.state,
                    pending: Some(selected),
                });
            }
            continue;
        }
        kept.extend(stack.iter_mut().filter_map(|dir| dir.pending.take()));
        kept.push(selected);
        if is_dir {
            stack.push(OpenDir {
                name,
                state: verdict.state,
                entered: true,
                pending: None,
            });
        }
    }
    kept
}

/// A directory of the `--exclude` walk that may still hold selected paths.
struct OpenDir<'a> {
    name: &'a Path,
    state: MatchState,
    /// Whether the walk enters this directory at all.
    entered: bool,
    /// Excluded and not yet brought back by a re-included descendant.
    pending: Option<Selected<'a>>,
}

/// The components of a source path, cleaned lexically as Go's `path.Clean("/" + p)`: no empty or
/// `.` components, `..` resolved and never above the root.
fn clean(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    out
}
