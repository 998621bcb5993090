//! One pattern: cleaning, validation and compilation as moby/patternmatcher does them.

use super::regex::{Regex, RegexError};

/// One compiled pattern of an ignore file (or of `COPY --exclude`).
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern without its `!`.
    text: String,
    exception: bool,
    kind: Kind,
}

/// How a pattern matches; Docker picks the cheapest form that gives the regex's answer.
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: string equality.
    Exact,
    /// Only a trailing `**`: the path starts with these bytes.
    Prefix(Vec<u8>),
    /// A leading `**` and no other wildcard: the path ends with these bytes (or is them minus a `/`).
    Suffix(Vec<u8>),
    Regex(Regex),
}

/// Why one pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rejection {
    /// A lone `!`.
    LoneBang,
    /// Not a valid pattern for Go's `filepath.Match`, or its regex does not compile.
    Syntax,
    /// Valid for Docker, but uses a regex feature kiln does not implement.
    Unsupported(&'static str),
}

impl Pattern {
    /// Builds a pattern from one entry as `patternmatcher.New` does: trim, clean, `!`, validate,
    /// compile. `None` for an entry that is empty after trimming.
    pub(super) fn new(entry: &str) -> Result<Option<Pattern>, Rejection> {
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let cleaned = clean(trimmed);
        let (exception, text) = match cleaned.strip_prefix('!') {
            Some("") => return Err(Rejection::LoneBang),
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned),
        };
        if !glob_is_valid(&text) {
            return Err(Rejection::Syntax);
        }
        let kind = compile(&text)?;
        Ok(Some(Pattern {
            text,
            exception,
            kind,
        }))
    }

    /// The cleaned pattern text, without the `!` of an exception.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// Whether the pattern matches `path` itself (no ancestor rule). `path` is slash-separated and
    /// relative to the context root.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.as_bytes().starts_with(prefix),
            Kind::Suffix(suffix) => {
                let path = path.as_bytes();
                // `**/foo` also matches `foo` itself.
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Regex(regex) => regex.is_match(path),
        }
    }

    /// The pattern without a trailing `/**` or `/*`, as fsutil's walker compares exceptions.
    pub(super) fn without_trailing_glob(&self) -> &str {
        let text = self.text.strip_suffix("/**").unwrap_or(&self.text);
        text.strip_suffix("/*").unwrap_or(text)
    }
}

/// Translates a cleaned pattern the way patternmatcher's `compile` does and picks the match kind.
fn compile(text: &str) -> Result<Kind, Rejection> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    // Go's text/scanner, which patternmatcher reads the pattern with, skips a leading byte-order mark.
    let chars: Vec<char> = text.strip_prefix('\u{feff}').unwrap_or(text).chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut pos = 0;
    let mut first = true;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                // `**/` is `**`: the slash is eaten.
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            // The escaped character goes to the regex engine as `\x`: `\*` is a literal star, but
            // `\d` is a digit class and `\b` a word boundary (a Docker quirk kept on purpose).
            '\\' => {
                re.push('\\');
                if let Some(&escaped) = chars.get(pos) {
                    re.push(escaped);
                    pos += 1;
                    detected = Detected::Regex;
                }
            }
            // Brackets go through verbatim, so a class is a regex class (`[^/]` matches `/`...).
            '[' | ']' => {
                re.push(ch);
                detected = Detected::Regex;
            }
            other => re.push(other),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(text.as_bytes()[..text.len() - 2].to_vec()),
        Detected::Suffix => Kind::Suffix(text.as_bytes()[2.min(text.len())..].to_vec()),
        Detected::Regex => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|err| match err {
                RegexError::Syntax(_) => Rejection::Syntax,
                RegexError::Unsupported(what) => Rejection::Unsupported(what),
            })?)
        }
    })
}

/// Go's `filepath.Clean` for slash-separated paths: drop empty and `.` segments, resolve `..`
/// lexically (never above a leading `/`), no trailing slash, `.` for nothing.
pub(super) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Whether Go's `filepath.Match` accepts `pattern` (patternmatcher validates with it). Go checks
/// every `*`-separated chunk: brackets must close and hold at least one item, `-` and `]` must be
/// escaped where they would be ambiguous, and a backslash needs a character after it.
fn glob_is_valid(pattern: &str) -> bool {
    let mut rest = pattern.as_bytes();
    while !rest.is_empty() {
        let (chunk, after) = scan_chunk(rest);
        if !chunk_is_valid(chunk) {
            return false;
        }
        rest = after;
    }
    true
}

/// Go's `scanChunk`: skip leading stars, then read up to the next `*` outside brackets.
fn scan_chunk(pattern: &[u8]) -> (&[u8], &[u8]) {
    let start = pattern.iter().take_while(|&&b| b == b'*').count();
    let pattern = &pattern[start..];
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    pattern.split_at(i)
}

/// The syntax half of Go's `matchChunk`.
fn chunk_is_valid(mut chunk: &[u8]) -> bool {
    while let Some(&first) = chunk.first() {
        chunk = &chunk[1..];
        match first {
            b'[' => {
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut items = 0;
                loop {
                    if chunk.first() == Some(&b']') && items > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some(rest) = class_char(chunk) else {
                        return false;
                    };
                    chunk = rest;
                    if chunk[0] == b'-' {
                        let Some(rest) = class_char(&chunk[1..]) else {
                            return false;
                        };
                        chunk = rest;
                    }
                    items += 1;
                }
            }
            b'\\' => {
                let Some((_, rest)) = chunk.split_first() else {
                    return false;
                };
                chunk = rest;
            }
            _ => {}
        }
    }
    true
}

/// Go's `getEsc`: one possibly escaped character of a bracket expression, which must be followed by
/// more of the pattern. Returns what follows it.
fn class_char(chunk: &[u8]) -> Option<&[u8]> {
    let mut chunk = chunk;
    match chunk.first()? {
        b'-' | b']' => return None,
        b'\\' => chunk = &chunk[1..],
        _ => {}
    }
    let len = match *chunk.first()? {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    let rest = chunk.get(len..)?;
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./a/", "a"),
            ("a//b/./c/..", "a/b"),
            ("a/../..", ".."),
            ("../../x", "../../x"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("!./foo", "!./foo"),
            ("!/", "!"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn validation_matches_filepath_match() {
        for good in [
            "abc",
            "a*b?c",
            "[a-z]",
            "[^a]",
            "[\\]a]",
            "[x\\-]",
            "a]",
            "[*]",
            "[[:alpha:]]",
            "\\*",
        ] {
            assert!(glob_is_valid(good), "{good} should be valid");
        }
        for bad in [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "\\", "foo\\", "[\\",
        ] {
            assert!(!glob_is_valid(bad), "{bad} should be invalid");
        }
    }

    fn kind(text: &str) -> String {
        format!("{:?}", Pattern::new(text).unwrap().unwrap().kind)
            .split('(')
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn picks_docker_match_kinds() {
        assert_eq!(kind("a.b"), "Exact");
        assert_eq!(kind("dir/**"), "Prefix");
        assert_eq!(kind("**/foo"), "Suffix");
        assert_eq!(kind("**"), "Suffix");
        assert_eq!(kind("**/*.txt"), "Regex");
        assert_eq!(kind("a**b"), "Regex");
    }

    #[test]
    fn fast_paths_agree_with_docker() {
        let prefix = Pattern::new("foo**").unwrap().unwrap();
        assert!(prefix.matches("foobar") && prefix.matches("foo/x") && !prefix.matches("fo"));
        let suffix = Pattern::new("**/foo").unwrap().unwrap();
        assert!(suffix.matches("foo") && suffix.matches("a/foo") && !suffix.matches("afoo"));
        let bom = Pattern::new("\u{feff}**x").unwrap().unwrap();
        assert!(
            !bom.matches("x"),
            "Go slices the BOM's bytes; nothing sensible matches"
        );
    }

    #[test]
    fn trailing_glob_is_trimmed_once_each() {
        let p = Pattern::new("!d/*/**").unwrap().unwrap();
        assert_eq!(p.without_trailing_glob(), "d");
        assert!(p.is_exception());
        assert_eq!(Pattern::new("   ").unwrap().map(|p| p.text().to_string()), None);
        assert_eq!(Pattern::new("!").unwrap_err(), Rejection::LoneBang);
    }
}
