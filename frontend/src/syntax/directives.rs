//! Parser directives: `# syntax=`, `# escape=`, `# check=` in the leading comment block.
//!
//! The recogniser looks at lines from the top of the file until the first line that is not a
//! directive (a blank line, a plain comment, an unknown key, an instruction); from then on it is
//! off for good. A line is a directive when it reads `#` NAME `=` VALUE, with optional whitespace
//! around each part (upstream's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`), and NAME is one
//! of the three keys, case-insensitively. Repeating a key, or an escape other than `` ` `` or
//! `\`, is an error.

use super::error::ErrorKind;
use super::node::{Directives, Escape};

/// The directive recogniser's state while the leading block is read.
#[derive(Debug, Default)]
pub(super) struct DirectiveParser {
    done: bool,
    /// `Directives::escape` has a default, so whether `escape` was given is kept apart.
    escape_seen: bool,
    directives: Directives,
}

/// What the recogniser made of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// The line is a directive; it is not a comment of the next instruction.
    Directive,
    /// The line is not a directive (or the block has ended).
    Other,
}

impl DirectiveParser {
    /// The directives found.
    pub(super) fn into_directives(self) -> Directives {
        self.directives
    }

    /// The escape token in force.
    pub(super) fn escape(&self) -> char {
        self.directives.escape.as_char()
    }

    /// Offers one line (newline and leading whitespace already trimmed), numbered `line`.
    pub(super) fn offer(&mut self, text: &str, line: usize) -> Result<Seen, ErrorKind> {
        if self.done {
            return Ok(Seen::Other);
        }
        let Some((name, value)) = split_directive(text) else {
            self.done = true;
            return Ok(Seen::Other);
        };
        let name = name.to_ascii_lowercase();
        let seen = match name.as_str() {
            "syntax" => self.directives.syntax.is_some(),
            "check" => self.directives.check.is_some(),
            "escape" => self.escape_seen,
            _ => {
                self.done = true;
                return Ok(Seen::Other);
            }
        };
        if seen {
            return Err(ErrorKind::DuplicateDirective { name });
        }
        match name.as_str() {
            "escape" => {
                self.escape_seen = true;
                self.directives.escape = match value {
                    "\\" => Escape::Backslash,
                    "`" => Escape::Backtick,
                    _ => {
                        return Err(ErrorKind::InvalidEscape {
                            token: value.to_owned(),
                        });
                    }
                };
            }
            "syntax" => self.directives.syntax = Some((value.to_owned(), line)),
            _ => self.directives.check = Some((value.to_owned(), line)),
        }
        Ok(Seen::Directive)
    }
}

/// Go's regexp `\s`: ASCII space, tab, newline, form feed, carriage return (not `\v`).
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// Matches `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, returning NAME and VALUE.
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    // `\s*(.+?)\s*$`: the value is what remains without surrounding blanks, but it holds at least
    // one character, so an all-blank remainder yields its last character.
    let value = rest.trim_matches(is_re_space);
    if !value.is_empty() {
        return Some((name, value));
    }
    let last = rest.char_indices().last()?.0;
    Some((name, &rest[last..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_regex() {
        assert_eq!(split_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(split_directive("#escape = `  "), Some(("escape", "`")));
        assert_eq!(
            split_directive("# syntax = docker/dockerfile:1 x "),
            Some(("syntax", "docker/dockerfile:1 x"))
        );
        assert_eq!(split_directive("#check=skip=all"), Some(("check", "skip=all")));
        assert_eq!(split_directive("#a1 =\t"), Some(("a1", "\t")));
        assert_eq!(split_directive("#a="), None);
        assert_eq!(split_directive("# 1a=b"), None);
        assert_eq!(split_directive("#!/bin/sh"), None);
        assert_eq!(split_directive("# escape: x"), None);
        assert_eq!(split_directive("#\u{b}escape=x"), None);
    }

    #[test]
    fn block_ends_at_first_other_line() {
        let mut p = DirectiveParser::default();
        assert_eq!(p.offer("# ESCAPE=`", 1), Ok(Seen::Directive));
        assert_eq!(p.offer("# unknown=x", 2), Ok(Seen::Other));
        assert_eq!(p.offer("# syntax=x", 3), Ok(Seen::Other));
        let d = p.into_directives();
        assert_eq!(d.escape, Escape::Backtick);
        assert_eq!(d.syntax, None);
    }

    #[test]
    fn duplicates_and_bad_escapes_fail() {
        let mut p = DirectiveParser::default();
        p.offer("# escape=\\", 1).unwrap();
        let err = p.offer("# Escape=`", 2).unwrap_err();
        assert_eq!(err.to_string(), "only one escape parser directive can be used");
        let mut p = DirectiveParser::default();
        let err = p.offer("# escape=x", 1).unwrap_err();
        assert_eq!(err.to_string(), "invalid escape token 'x' does not match ` or \\");
        let mut p = DirectiveParser::default();
        p.offer("# check=a", 1).unwrap();
        assert_eq!(p.offer("#syntax=b", 2), Ok(Seen::Directive));
        assert!(p.offer("# CHECK=c", 3).is_err());
    }
}
