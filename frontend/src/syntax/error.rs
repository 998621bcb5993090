//! Why a Dockerfile could not be parsed, and where.
//!
//! An [`Error`] is an [`ErrorKind`] plus the 1-based line it concerns. Its `Display` is the message
//! alone, worded exactly as BuildKit words it, so a caller can print `<file>:<line>: <message>` and a
//! user who knows `docker build` recognises it.

use crate::go::go_quote;

/// A parse failure: what went wrong ([`Error::kind`]) and on which line ([`Error::line`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct Error {
    kind: ErrorKind,
    line: Option<usize>,
}

impl Error {
    pub(super) fn new(kind: ErrorKind, line: usize) -> Self {
        Error {
            kind,
            line: (line > 0).then_some(line),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The 1-based line the error concerns: the first line of the offending instruction, the line
    /// of a bad directive or byte, or the last line for "file with no instructions". `None` only
    /// when the input has no lines at all.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// The kinds of parse failure. Each one displays as BuildKit's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input has no instruction (empty, or only comments, directives and blank lines).
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line is longer than BuildKit's scanner accepts (65536 bytes with its newline).
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// The input is not UTF-8. (BuildKit reads bytes; kiln's tree holds text, so it refuses.)
    #[error("invalid UTF-8: byte 0x{byte:02x} at column {column}")]
    InvalidUtf8 {
        /// The first byte that does not start (or continue) a valid sequence.
        byte: u8,
        /// Its 1-based byte column.
        column: usize,
    },
    /// A parser directive (`syntax`, `escape`, `check`) appears twice.
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective {
        /// The directive, lowercased.
        name: String,
    },
    /// `# escape=` names something other than `` ` `` or `\`.
    #[error("invalid escape token '{token}' does not match ` or \\")]
    InvalidEscape {
        /// The value given.
        token: String,
    },
    /// Legacy `ENV name value` / `LABEL name value` without a value.
    #[error("{keyword} must have two arguments")]
    MissingValue {
        /// `ENV` or `LABEL`.
        keyword: &'static str,
    },
    /// A word of `ENV a=b ...` / `LABEL a=b ...` without `=`.
    #[error(
        "Syntax error - can't find = in {}. Must be of the form: name=value",
        go_quote(word)
    )]
    MissingEquals {
        /// The word without `=`.
        word: String,
    },
    /// A JSON array (exec form) with an element that is not a string.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// More than [`MAX_ONBUILD_DEPTH`](super::MAX_ONBUILD_DEPTH) ONBUILDs wrapping each other.
    /// (kiln's own limit: BuildKit parses any depth, then refuses `ONBUILD ONBUILD` later.)
    #[error("ONBUILD nested more than {} levels deep", super::MAX_ONBUILD_DEPTH)]
    OnbuildTooDeep,
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    /// A heredoc delimiter that BuildKit's shell lexer rejects (e.g. `<<${x:-'}`).
    #[error("failed to process {}: {reason}", go_quote(word))]
    HeredocWord {
        /// The delimiter text after `<<`.
        word: String,
        /// The lexer's complaint.
        reason: WordError,
    },
    /// A heredoc delimiter that lexes to a different number of words with and without quotes.
    #[error("internal lexing of heredoc produced inconsistent results: {word}")]
    HeredocInconsistent {
        /// The delimiter text after `<<`.
        word: String,
    },
}

/// Why BuildKit's shell lexer rejected a word (only heredoc delimiters are lexed by the parser).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WordError {
    /// `'` without its closing quote.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// `"` without its closing quote.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// A `${...}` part that never finds the character that ends it.
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    /// `${` without `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${x/pattern` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{`, `${:`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${...}` nested deeper than kiln follows (BuildKit's goroutine stack has no such limit;
    /// kiln stops before its own stack would overflow).
    #[error("substitutions nested more than {0} levels deep")]
    TooDeep(usize),
    /// `${x?...}`-style modifiers BuildKit does not know, or `${x:#}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_buildkit() {
        let e = Error::new(ErrorKind::MissingEquals { word: "y".into() }, 2);
        assert_eq!(
            e.to_string(),
            r#"Syntax error - can't find = in "y". Must be of the form: name=value"#
        );
        assert_eq!(e.line(), Some(2));
        let e = ErrorKind::InvalidEscape { token: "x".into() };
        assert_eq!(e.to_string(), "invalid escape token 'x' does not match ` or \\");
        assert_eq!(WordError::MissingBrace.to_string(), "syntax error: missing '}'");
        assert_eq!(
            WordError::MissingSlash.to_string(),
            "syntax error: missing '/' in ${}"
        );
        let e = ErrorKind::HeredocWord {
            word: "${x:-'}".into(),
            reason: WordError::MissingBrace,
        };
        assert_eq!(
            e.to_string(),
            r#"failed to process "${x:-'}": syntax error: missing '}'"#
        );
        assert_eq!(Error::new(ErrorKind::NoInstructions, 0).line(), None);
    }
}
