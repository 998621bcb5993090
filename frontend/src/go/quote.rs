//! Go's `strconv.Quote` and `strings.ToLower`, which BuildKit's dumps and messages are made with.

use std::fmt::Write as _;

use super::unicode::is_print;

/// Go's `strconv.Quote`: `s` in double quotes, with `"` and `\` backslashed, the C escapes
/// (`\a \b \f \n \r \t \v`), other control bytes and DEL as `\xHH`, and other non-printable runes
/// as `\uHHHH` / `\UHHHHHHHH`. Printable runes (Go's rules: Unicode L, M, N, P, S and the ASCII
/// space) are written raw.
///
/// ```
/// use kiln_frontend::syntax::go_quote;
/// assert_eq!(go_quote("a\"b\u{a0}é\u{7f}"), r#""a\"b\u00a0é\x7f""#);
/// ```
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            _ if u32::from(c) < 0x1_0000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            _ => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Go's `strings.ToLower`: the simple (one rune to one rune) lowercase mapping. Rust's
/// `to_lowercase` uses the full mapping, which differs for U+0130 (`İ` becomes `i̇`, two runes)
/// and, for whole strings, for a final sigma.
pub(crate) fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            _ => c.to_lowercase().next().unwrap_or(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_like_go() {
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("plain text"), r#""plain text""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(go_quote("\0\u{1}\u{1b}\u{1f}"), r#""\x00\x01\x1b\x1f""#);
        assert_eq!(go_quote("\u{7f}"), r#""\x7f""#);
    }

    #[test]
    fn quote_unicode_like_go() {
        // Non-printable: NBSP, zero-width space, line separator, soft hyphen, private use, C1.
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
        assert_eq!(go_quote("\u{200b}\u{2028}\u{ad}"), r#""\u200b\u2028\u00ad""#);
        assert_eq!(go_quote("\u{e000}\u{85}\u{feff}"), r#""\ue000\u0085\ufeff""#);
        assert_eq!(go_quote("\u{f0000}\u{e0001}"), r#""\U000f0000\U000e0001""#);
        assert_eq!(go_quote("\u{10ffff}"), r#""\U0010ffff""#);
        // Printable: letters, marks, symbols, emoji, the replacement character.
        assert_eq!(
            go_quote("é日本♥☃😀\u{301}\u{fffd}"),
            "\"é日本♥☃😀\u{301}\u{fffd}\""
        );
        // Unassigned in Unicode 15 (Go's version) is not printable.
        assert_eq!(go_quote("\u{1fae9}"), r#""\U0001fae9""#);
    }

    #[test]
    fn lower_like_go() {
        assert_eq!(go_lower("FROM"), "from");
        assert_eq!(go_lower("İ"), "i");
        assert_eq!(go_lower("ΣΑΣ"), "σασ");
        assert_eq!(go_lower("RUN\u{a0}X"), "run\u{a0}x");
    }
}
