//! The exec-form test: is an argument string a JSON array of strings, as Go's `encoding/json`
//! decides?
//!
//! BuildKit unmarshals the arguments into `[]interface{}`. What it accepts, and what falls back
//! to shell form, follows Go's decoder, which differs from other JSON parsers in corners that
//! show in a Dockerfile: lone UTF-16 surrogates decode to U+FFFD instead of failing, nesting is
//! limited to 10000 levels, and a number too large for a float64 makes the whole decode fail
//! (shell form) while any other non-string element is an error. This module validates and decodes
//! with exactly those rules.

/// What the arguments are, seen as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JsonArgs {
    /// A JSON array whose elements are all strings, decoded.
    Strings(Vec<String>),
    /// A valid JSON array with an element that is not a string: an error in a Dockerfile.
    NotStrings,
    /// Not a JSON array (or not valid JSON): the arguments are shell or list form.
    NotJson,
}

/// Go's `encoding/json` nesting limit.
const MAX_DEPTH: usize = 10_000;

/// Classifies `text` (already left-trimmed, so it must start with `[` to be JSON).
pub(super) fn parse_array(text: &str) -> JsonArgs {
    if !text.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        overflow: false,
    };
    let Some(elements) = p.top_level_array() else {
        return JsonArgs::NotJson;
    };
    p.skip_ws();
    if p.pos != p.s.len() || p.overflow {
        return JsonArgs::NotJson;
    }
    elements
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map_or(JsonArgs::NotStrings, JsonArgs::Strings)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    /// A number somewhere did not fit a float64 (Go's decoder then fails the whole value).
    overflow: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    /// The top-level array: one entry per element, `Some(text)` for strings.
    fn top_level_array(&mut self) -> Option<Vec<Option<String>>> {
        self.pos += 1; // `[`
        let mut elements = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Some(elements);
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b'"') {
                elements.push(Some(self.string()?));
            } else {
                self.nested_value()?;
                elements.push(None);
            }
            self.skip_ws();
            if self.eat(b']') {
                return Some(elements);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Validates one value below the top level, iteratively (the depth limit is far beyond a
    /// comfortable recursion depth).
    fn nested_value(&mut self) -> Option<()> {
        // Open containers; the top-level array counts as one level.
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // Expect a value.
            self.skip_ws();
            match self.peek()? {
                open @ (b'[' | b'{') => {
                    self.pos += 1;
                    stack.push(open);
                    if stack.len() + 1 > MAX_DEPTH {
                        return None;
                    }
                    self.skip_ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.eat(close) {
                        stack.pop();
                    } else {
                        if open == b'{' {
                            self.object_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&open) = stack.last() else {
                    return Some(());
                };
                self.skip_ws();
                let close = if open == b'[' { b']' } else { b'}' };
                if self.eat(close) {
                    stack.pop();
                    continue;
                }
                if !self.eat(b',') {
                    return None;
                }
                if open == b'{' {
                    self.skip_ws();
                    self.object_key()?;
                }
                break;
            }
        }
    }

    /// `"key" :` inside an object.
    fn object_key(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.skip_ws();
        self.eat(b':').then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.s.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, noting float64 overflow.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            self.require_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.require_digits()?;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        if text.parse::<f64>().is_ok_and(f64::is_infinite) {
            self.overflow = true;
        }
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn require_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let h = std::str::from_utf8(h).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    }

    /// A string starting at `"`, decoded as Go decodes it.
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.pos..];
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            // The input is valid UTF-8 and the run ends at an ASCII byte.
            out.push_str(std::str::from_utf8(&rest[..run]).ok()?);
            self.pos += run;
            match self.s[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => self.escape(&mut out)?,
                _ => return None, // a raw control character
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Option<()> {
        let c = *self.s.get(self.pos + 1)?;
        self.pos += 2;
        let decoded = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4(self.pos)?;
                self.pos += 4;
                self.utf16_unit(unit)
            }
            _ => return None,
        };
        out.push(decoded);
        Some(())
    }

    /// One `\uXXXX` unit: a high surrogate followed by `\u` + a low one makes a pair; any other
    /// surrogate is U+FFFD and the next escape is left for the next round.
    fn utf16_unit(&mut self, unit: u32) -> char {
        if !(0xD800..0xE000).contains(&unit) {
            return char::from_u32(unit).unwrap_or('\u{fffd}');
        }
        let low = (self.s.get(self.pos..self.pos + 2) == Some(b"\\u"))
            .then(|| self.hex4(self.pos + 2))
            .flatten();
        match low {
            Some(low @ 0xDC00..0xE000) if (0xD800..0xDC00).contains(&unit) => {
                self.pos += 6;
                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).unwrap_or('\u{fffd}')
            }
            _ => '\u{fffd}',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> JsonArgs {
        JsonArgs::Strings(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(parse_array("[]"), strings(&[]));
        assert_eq!(parse_array("[ \"a\" ,\t\"b\" ]  "), strings(&["a", "b"]));
        assert_eq!(
            parse_array(r#"["\" \\ \/ \b \f \n \r \t \u0000"]"#),
            strings(&["\" \\ / \u{8} \u{c} \n \r \t \0"])
        );
        assert_eq!(
            parse_array(r#"["\ud83d\ude00", "\ud83d", "\ude00x", "\ud83d\u0041"]"#),
            strings(&["😀", "\u{fffd}", "\u{fffd}x", "\u{fffd}A"])
        );
        assert_eq!(parse_array("[\"é日\"]"), strings(&["é日"]));
    }

    #[test]
    fn not_json_falls_back() {
        for text in [
            "[\"a\"] extra",
            "[\"x\",]",
            "['a']",
            "[\"a\"",
            "[",
            "[\"a\u{b}\"]",
            "[\"\t\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[01]",
            "[1.]",
            "[-]",
            "[1e]",
            "[tru]",
            "[{\"a\" 1}]",
            "[1e400]",
            "[[-1e999]]",
            "[\"a\"]\u{b}",
            "x[]",
            "[\"a\"\u{a0}]",
        ] {
            assert_eq!(parse_array(text), JsonArgs::NotJson, "{text:?}");
        }
    }

    #[test]
    fn non_string_elements_are_errors() {
        for text in [
            "[1]",
            "[\"a\", 1]",
            "[[\"nested\"]]",
            "[null]",
            "[true, false]",
            "[{}]",
            "[{\"a\":[1,{\"b\":null}]}]",
            "[-0.5e-3]",
            "[1e-400]",
        ] {
            assert_eq!(parse_array(text), JsonArgs::NotStrings, "{text:?}");
        }
    }

    #[test]
    fn depth_limit_is_go_s() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse_array(&ok), JsonArgs::NotStrings);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse_array(&deep), JsonArgs::NotJson);
    }
}
