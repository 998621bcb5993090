//! Expansion errors, worded as BuildKit words them.

use std::fmt;

/// A word could not be expanded. Displays as BuildKit does: `failed to process "<word>": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", GoQuoted(word))]
pub struct Error {
    word: String,
    kind: ErrorKind,
}

impl Error {
    pub(super) fn new(word: &str, kind: ErrorKind) -> Error {
        Error {
            word: word.to_string(),
            kind,
        }
    }

    /// The word whose expansion failed, as it was given.
    pub fn word(&self) -> &str {
        &self.word
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `'` was never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` was never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// A `${` was never closed (or ended right after `${`).
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:...}` or `${{...}`: no variable name.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${name/pattern` without the `/` that starts the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// An operator BuildKit does not implement: `${v=w}`, `${v:=w}`, `${#v}`, `${v:1:2}`, `${v:#p}`...
    /// `modifier` is the text BuildKit quotes (U+FFFD stands for the end of the word).
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The operator text, e.g. `=` or `:1`.
        modifier: String,
    },
    /// `${name?message}` with `name` unset, or `${name:?message}` with `name` unset or empty.
    #[error("{name}: {message}")]
    Required {
        /// The variable that must be set.
        name: String,
        /// The expanded message, or BuildKit's default (`is not allowed to be unset`/`... empty`).
        message: String,
    },
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`, `\}` or `\/`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern {
        /// The pattern as matched (reversed for `%` and `%%`, as BuildKit reports it).
        pattern: String,
        /// The character after the backslash (U+FFFD when the pattern ends with it).
        escaped: char,
    },
    /// `${` nested deeper than kiln allows (BuildKit has no limit; kiln keeps its stack bounded).
    #[error("syntax error: substitutions nested deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
}

/// Formats a string as Go's `%q` verb (`strconv.Quote`) does, so messages match BuildKit's bytes.
pub(super) struct GoQuoted<'a>(pub(super) &'a str);

impl fmt::Display for GoQuoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::go::go_quote(self.0))
    }
}
