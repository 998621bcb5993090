//! Go's string and Unicode rules, which BuildKit's observable bytes depend on.
//!
//! BuildKit is written in Go, so its dumps and messages quote with `strconv.Quote`, lowercase with
//! `strings.ToLower`, and its lexers end names where `unicode.IsLetter` / `unicode.IsDigit` say.
//! Rust's own definitions differ (other printability rules, another Unicode version), so the one copy
//! of Go's rules lives here and every layer of the frontend uses it.

mod quote;
mod unicode;

pub(crate) use quote::go_lower;
pub use quote::go_quote;
pub(crate) use unicode::{is_digit, is_letter};
