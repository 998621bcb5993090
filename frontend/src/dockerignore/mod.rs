//! `.dockerignore` with Docker's semantics: which context paths `COPY`/`ADD` never see.
//!
//! The model, in the order a build meets it:
//!
//! * [`parse`] reads the file as Docker's `ignorefile.ReadAll` does (a `#` in column 0 starts a
//!   comment, lines are trimmed and path-cleaned, a leading `/` means nothing) and compiles every line
//!   into a [`Pattern`]. A bad line fails the whole build, as it does with Docker. [`Patterns::new`]
//!   compiles a plain list the same way minus the file reading (`COPY --exclude` uses that).
//! * Patterns are evaluated **in order, the last match wins**, and `!pattern` exceptions re-include.
//!   A pattern matches a path if it matches the path **or one of its ancestors**, always anchored at
//!   the context root: `*.md` matches `README.md` but not `docs/a.md` (that takes `**/*.md`).
//! * The context walker evaluates incrementally, like fsutil does: each directory keeps a
//!   [`MatchState`] (one bit per pattern: "matched me or an ancestor"), and its children are checked
//!   against it with [`Matcher::check`] without re-matching ancestors. That incremental rule is what
//!   BuildKit ships, and it differs from "match any ancestor" in one corner (SEMANTICS.md §5):
//!   `docs/a` then `!docs` keeps `docs/a` excluded.
//! * An excluded directory is skipped unless an exception could re-include something below it
//!   ([`Patterns::should_descend`]); a re-included file brings its excluded parents back.
//!
//! Patterns compile to Go regular expressions in Docker, and some of Go's regex syntax leaks through
//! (`[^a]` matches `/`, `\d` is a digit class); [`Pattern`] reproduces those quirks.
//!
//! ```
//! use kiln_frontend::dockerignore;
//!
//! let patterns = dockerignore::parse(b"# build output\ntarget\n**/*.log\n!keep.log\n").unwrap();
//! assert!(patterns.excludes("target/debug/kiln"));
//! assert!(patterns.excludes("logs/today.log"));
//! assert!(!patterns.excludes("keep.log"));
//! assert!(!patterns.excludes("src/main.rs"));
//!
//! // A walker keeps one state per directory instead of re-matching ancestors.
//! let matcher = patterns.matcher();
//! let target = matcher.check("target", &dockerignore::MatchState::root());
//! assert!(target.excluded && !patterns.should_descend("target"));
//! let src = matcher.check("src", &dockerignore::MatchState::root());
//! assert!(!matcher.check("src/main.rs", &src.state).excluded);
//! ```

mod pattern;
mod regex;

pub use pattern::Pattern;
use pattern::{Rejection, clean};

/// Why an ignore file (or exclude list) was rejected. `line` is the 1-based line of the file (or
/// position in the list) holding the bad pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line that is only `!` (or `!` plus spaces, or `!/`).
    #[error("line {line}: illegal exclusion pattern: \"!\"")]
    IllegalExclusion {
        /// Where the pattern is.
        line: usize,
    },
    /// A malformed pattern, such as an unterminated `[` or a trailing `\`.
    #[error("line {line}: syntax error in pattern {pattern:?}")]
    BadPattern {
        /// Where the pattern is.
        line: usize,
        /// The pattern as written.
        pattern: String,
    },
    /// A pattern Docker accepts whose regex feature kiln does not implement (e.g. `\pL`).
    #[error("line {line}: pattern {pattern:?} uses {feature}, which kiln does not support")]
    Unsupported {
        /// Where the pattern is.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// The unsupported feature.
        feature: &'static str,
    },
    /// A line longer than Docker's line reader accepts (64 KiB).
    #[error("line {line}: longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// Where the line is.
        line: usize,
    },
}

/// The longest line Go's `bufio.Scanner` (Docker's reader) returns without failing.
const MAX_LINE: usize = 64 * 1024 - 1;

/// Reads an ignore file's bytes as Docker does and compiles its patterns.
///
/// Bytes that are not UTF-8 are replaced (U+FFFD) before matching; paths are matched as `str`.
pub fn parse(text: &[u8]) -> Result<Patterns, Error> {
    let text = String::from_utf8_lossy(text);
    let mut entries = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        // Go's line scanner: the last line may lack a newline, a trailing CR is dropped, and the first
        // line loses a byte-order mark.
        let mut line = line.strip_suffix('\r').unwrap_or(line);
        if index == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.len() > MAX_LINE {
            return Err(Error::LineTooLong { line: line_no });
        }
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let exception = pattern.starts_with('!');
        if exception {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            // The context root is the only root: `/foo` is `foo` (but `/` stays `/`).
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if exception {
            cleaned.insert(0, '!');
        }
        entries.push((line_no, cleaned));
    }
    Patterns::from_entries(entries)
}

/// The compiled patterns of one ignore file or exclude list, in order.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    list: Vec<Pattern>,
    has_exceptions: bool,
    /// Every exception is a plain path once a trailing `/*` or `/**` is dropped, so the walker can
    /// tell which excluded directories may hold re-included paths.
    prefix_only_exceptions: bool,
}

impl Patterns {
    /// Compiles a list of patterns as `patternmatcher.New` does: each entry is trimmed and cleaned,
    /// `!` marks an exception, empty entries are skipped. Unlike [`parse`], a leading `/` is kept
    /// (it then matches nothing), as with `COPY --exclude` values.
    pub fn new<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Patterns, Error> {
        Patterns::from_entries(
            entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| (i + 1, entry.as_ref().to_string()))
                .collect(),
        )
    }

    fn from_entries(entries: Vec<(usize, String)>) -> Result<Patterns, Error> {
        let mut patterns = Vec::new();
        for (line, entry) in entries {
            match Pattern::new(&entry) {
                Ok(Some(pattern)) => patterns.push(pattern),
                Ok(None) => {}
                Err(Rejection::LoneBang) => return Err(Error::IllegalExclusion { line }),
                Err(Rejection::Syntax) => return Err(Error::BadPattern { line, pattern: entry }),
                Err(Rejection::Unsupported(feature)) => {
                    return Err(Error::Unsupported {
                        line,
                        pattern: entry,
                        feature,
                    });
                }
            }
        }
        let exceptions = || patterns.iter().filter(|p| p.is_exception());
        let has_exceptions = exceptions().next().is_some();
        let prefix_only_exceptions = exceptions().all(|p| {
            !p.without_trailing_glob()
                .contains(['*', '[', ']', '?', '^', '\\'])
        });
        Ok(Patterns {
            list: patterns,
            has_exceptions,
            prefix_only_exceptions,
        })
    }

    /// Whether there are no patterns (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The patterns, in evaluation order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.list
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn has_exceptions(&self) -> bool {
        self.has_exceptions
    }

    /// The incremental evaluator a context walker uses.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher { patterns: self }
    }

    /// Whether the walk leaves `path` out of the context: the path is excluded, or an excluded
    /// ancestor is never entered. `path` is relative to the context root and slash-separated, without
    /// `./` or a trailing `/`; the root itself (`""`) is never excluded.
    ///
    /// An excluded directory can still appear in the context as the parent of a re-included path;
    /// only a walk over the real tree knows that.
    pub fn excludes(&self, path: &str) -> bool {
        if path.is_empty() || self.is_empty() {
            return false;
        }
        let matcher = self.matcher();
        let mut state = MatchState::root();
        for (end, _) in path.match_indices('/') {
            let ancestor = &path[..end];
            let verdict = matcher.check(ancestor, &state);
            if verdict.excluded && !self.should_descend(ancestor) {
                return true;
            }
            state = verdict.state;
        }
        matcher.check(path, &state).excluded
    }

    /// fsutil's rule for an excluded directory: enter it only if an exception might re-include
    /// something below it. Without exceptions, never; if any exception has a wildcard (besides a
    /// trailing `/*` or `/**`), always; otherwise only when an exception names a path inside it.
    pub fn should_descend(&self, excluded_dir: &str) -> bool {
        if !self.has_exceptions {
            return false;
        }
        if !self.prefix_only_exceptions {
            return true;
        }
        let dir = format!("{excluded_dir}/");
        self.list
            .iter()
            .filter(|p| p.is_exception())
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir))
    }

    /// patternmatcher's stateless `MatchesOrParentMatches`: each pattern is tried on `path` and each
    /// ancestor. The walker does not use it (see [`Matcher::check`]); it is here for exact
    /// compatibility checks.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let ancestors = ancestors_of(path);
        let mut excluded = false;
        for pattern in &self.list {
            if pattern.is_exception() != excluded {
                continue;
            }
            if pattern.matches(path) || ancestors.iter().any(|a| pattern.matches(a)) {
                excluded = !pattern.is_exception();
            }
        }
        excluded
    }
}

/// The ancestors of `path` that patternmatcher tries, shortest first: the prefixes of Go's
/// `filepath.Dir(path)` (none when that is `.`).
fn ancestors_of(path: &str) -> Vec<String> {
    let parent = clean(path.rfind('/').map_or("", |i| &path[..=i]));
    if parent == "." {
        return Vec::new();
    }
    let parts: Vec<&str> = parent.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// A directory's per-pattern record, "pattern `i` matched this directory or an ancestor", which its
/// children are evaluated against (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchState {
    /// Empty means "no record": the root, or a caller that knows nothing about the parent.
    matched: Vec<bool>,
}

impl MatchState {
    /// The state to check top-level entries against.
    pub fn root() -> MatchState {
        MatchState::default()
    }
}

/// The evaluator a context walker uses: one [`Matcher::check`] per entry, with the parent's state.
#[derive(Debug, Clone, Copy)]
pub struct Matcher<'a> {
    patterns: &'a Patterns,
}

/// The outcome of checking one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the path itself is excluded (left out unless a descendant is re-included).
    pub excluded: bool,
    /// The state to check this path's children against (meaningful for directories).
    pub state: MatchState,
}

impl Matcher<'_> {
    /// Checks `path` given its parent directory's state (`MatchState::root()` at the top level), as
    /// patternmatcher's `MatchesUsingParentResults` does.
    ///
    /// A pattern that matched the parent counts as matching without being tried again. A pattern that
    /// cannot change the outcome at its turn (an exclude while already excluded, an exception while not
    /// excluded) is not tried and recorded as "no match", which is why `docs/a` then `!docs` keeps
    /// `docs/a` excluded. With an empty parent state every pattern falls back to trying the ancestors.
    pub fn check(&self, path: &str, parent: &MatchState) -> Verdict {
        let patterns = &self.patterns.list;
        let known = parent.matched.len() == patterns.len();
        let ancestors = if known { Vec::new() } else { ancestors_of(path) };
        let mut excluded = false;
        let mut matched = vec![false; patterns.len()];
        for (i, pattern) in patterns.iter().enumerate() {
            let mut hit = known && parent.matched[i];
            if !hit {
                if pattern.is_exception() != excluded {
                    continue;
                }
                hit = pattern.matches(path) || ancestors.iter().any(|a| pattern.matches(a));
            }
            matched[i] = hit;
            if hit {
                excluded = !pattern.is_exception();
            }
        }
        Verdict {
            excluded,
            state: MatchState { matched },
        }
    }
}

#[cfg(test)]
mod tests;
