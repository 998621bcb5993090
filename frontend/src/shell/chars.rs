//! Character classes as Go's `unicode` package defines them.
//!
//! BuildKit decides what a variable name is with `unicode.IsLetter` (general category L) and
//! `unicode.IsDigit` (category Nd). Rust's `char::is_alphabetic`/`is_numeric` use wider Unicode
//! properties (they accept combining vowel signs, `²`, `Ⅻ`...), which would end names in different
//! places, so the general category is asked directly.

use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Go's `unicode.IsLetter`: general category L (Lu, Ll, Lt, Lm, Lo).
pub(super) fn is_letter(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphabetic();
    }
    ch.general_category_group() == GeneralCategoryGroup::Letter
}

/// Go's `unicode.IsDigit`: general category Nd.
pub(super) fn is_digit(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_digit();
    }
    ch.general_category() == GeneralCategory::DecimalNumber
}

/// A character that may continue a variable name: letter, decimal digit or `_`.
pub(super) fn is_name_char(ch: char) -> bool {
    is_letter(ch) || is_digit(ch) || ch == '_'
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
pub(super) fn is_print(ch: char) -> bool {
    if ch == ' ' {
        return true;
    }
    matches!(
        ch.general_category_group(),
        GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Mark
            | GeneralCategoryGroup::Number
            | GeneralCategoryGroup::Punctuation
            | GeneralCategoryGroup::Symbol
    )
}
