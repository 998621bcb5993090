//! Character classes as Go's `unicode` package defines them.
//!
//! BuildKit decides what a variable name is with `unicode.IsLetter` (general category L) and
//! `unicode.IsDigit` (category Nd); [`crate::go`] holds Go's table, shared with the parser.

pub(super) use crate::go::{is_digit, is_letter};

/// A character that may continue a variable name: letter, decimal digit or `_`.
pub(super) fn is_name_char(ch: char) -> bool {
    is_letter(ch) || is_digit(ch) || ch == '_'
}
