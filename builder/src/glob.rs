//! The wildcards a `COPY`/`ADD` source may hold: Go's `path.Match` syntax, matched one path
//! component at a time. Shared by the two places that resolve sources, so they cannot disagree:
//! the build context's selection (`context::Context::select`, whose result is checksummed for the
//! cache key) and the copy from a stage or image rootfs (`fsop::copy`).
//!
//! `*` matches any run of characters, `?` one character, `[...]` one character of a class (`[^...]`
//! negates; `a-z` ranges; `\` escapes inside too), and `\x` is `x` literally. None of them matches
//! `/`: a pattern matches the paths with exactly as many components as it has, each component
//! matching its own part of the pattern in full. That is Go's `path.Match` except for one corner:
//! Go lets a negated class such as `[^a]` match a `/`, which no source pattern relies on and which
//! would make a one-component pattern match a two-component path.
//!
//! A malformed pattern (an unterminated class, an empty one such as `[]`, a range with no end, a
//! trailing `\`) is an error, which Go reports lazily and kiln up front: BuildKit tries the pattern
//! on every path below the wildcard's directory, so on any real tree both fail alike.

/// The pattern is malformed (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// One element of a compiled component pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// `[...]`: one character in (or, negated, not in) the inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A character that must appear as is.
    Literal(char),
}

/// A compiled multi-component pattern (`src/*/x-?.txt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    components: Vec<Vec<Token>>,
}

/// Whether `name` (one path component, or a whole path) holds an unescaped `*`, `?` or `[`, as
/// BuildKit's `containsWildcards` decides.
pub(crate) fn has_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

impl Glob {
    /// Compiles a `/`-separated pattern.
    pub(crate) fn new(pattern: &str) -> Result<Glob, BadPattern> {
        Glob::from_components(pattern.split('/'))
    }

    /// Compiles a pattern already split into components.
    pub(crate) fn from_components<'a>(
        components: impl IntoIterator<Item = &'a str>,
    ) -> Result<Glob, BadPattern> {
        Ok(Glob {
            components: components.into_iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    /// How many components a matching path has.
    pub(crate) fn depth(&self) -> usize {
        self.components.len()
    }

    /// Whether component `index` of a path may be `name` (for walks that prune as they go).
    pub(crate) fn matches_at(&self, index: usize, name: &str) -> bool {
        self.components
            .get(index)
            .is_some_and(|tokens| matches(tokens, name))
    }

    /// Whether the whole `/`-separated `path` matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        self.components
            .iter()
            .all(|tokens| parts.next().is_some_and(|part| matches(tokens, part)))
            && parts.next().is_none()
    }
}

/// Compiles one component's pattern, rejecting what Go's `path.Match` rejects.
fn compile(pattern: &str) -> Result<Vec<Token>, BadPattern> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => Token::Literal(chars.next().ok_or(BadPattern)?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    // `]` closes the class only after at least one range: `[]a]` is an error.
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                Token::Class { negated, ranges }
            }
            c => Token::Literal(c),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// One character (possibly `\`-escaped) of a class; `-` and `]` cannot start a range, and the class
/// must not end there.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, BadPattern> {
    let c = match chars.next() {
        None | Some('-' | ']') => return Err(BadPattern),
        Some('\\') => chars.next().ok_or(BadPattern)?,
        Some(c) => c,
    };
    if chars.peek().is_none() {
        return Err(BadPattern);
    }
    Ok(c)
}

/// Whether the whole of `name` (one component) matches `tokens`.
fn matches(tokens: &[Token], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    // reach[j]: the tokens seen so far can match exactly name[..j]. One row per token keeps this
    // linear in the pattern and the name, however many stars there are.
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; name.len() + 1];
        if *token == Token::Star {
            for j in 0..=name.len() {
                next[j] = reach[j] || (j > 0 && next[j - 1]);
            }
        } else {
            for j in 1..=name.len() {
                next[j] = reach[j - 1] && single(token, name[j - 1]);
            }
        }
        reach = next;
    }
    reach[name.len()]
}

/// Whether a single-character token accepts `c`.
fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Star | Token::Any => true,
        Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
        Token::Literal(l) => *l == c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> Result<bool, BadPattern> {
        Glob::new(pattern).map(|g| g.matches(name))
    }

    /// Go's own `path.Match` table (path/match_test.go), as (pattern, name, match, error).
    #[test]
    fn gos_match_table() {
        let cases: &[(&str, &str, bool, bool)] = &[
            ("abc", "abc", true, false),
            ("*", "abc", true, false),
            ("*c", "abc", true, false),
            ("a*", "a", true, false),
            ("a*", "abc", true, false),
            ("a*", "ab/c", false, false),
            ("a*/b", "abc/b", true, false),
            ("a*/b", "a/c/b", false, false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
            ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
            ("ab[c]", "abc", true, false),
            ("ab[b-d]", "abc", true, false),
            ("ab[e-g]", "abc", false, false),
            ("ab[^c]", "abc", false, false),
            ("ab[^b-d]", "abc", false, false),
            ("ab[^e-g]", "abc", true, false),
            ("a\\*b", "a*b", true, false),
            ("a\\*b", "ab", false, false),
            ("a?b", "a☺b", true, false),
            ("a[^a]b", "a☺b", true, false),
            ("a???b", "a☺b", false, false),
            ("a[^a][^a][^a]b", "a☺b", false, false),
            ("[a-ζ]*", "α", true, false),
            ("*[a-ζ]", "A", false, false),
            ("a?b", "a/b", false, false),
            ("a*b", "a/b", false, false),
            ("[\\]a]", "]", true, false),
            ("[\\-]", "-", true, false),
            ("[x\\-]", "x", true, false),
            ("[x\\-]", "-", true, false),
            ("[x\\-]", "z", false, false),
            ("[\\-x]", "x", true, false),
            ("[\\-x]", "-", true, false),
            ("[\\-x]", "a", false, false),
            ("[]a]", "]", false, true),
            ("[-]", "-", false, true),
            ("[x-]", "x", false, true),
            ("[x-]", "-", false, true),
            ("[x-]", "z", false, true),
            ("[-x]", "x", false, true),
            ("[-x]", "-", false, true),
            ("[-x]", "a", false, true),
            ("\\", "a", false, true),
            ("[a-b-c]", "a", false, true),
            ("[", "a", false, true),
            ("[^", "a", false, true),
            ("[^bc", "a", false, true),
            ("a[", "a", false, true),
            ("a[", "ab", false, true),
            ("a[", "x", false, true),
            ("a/b[", "x", false, true),
            ("*x", "xxx", true, false),
        ];
        for &(pattern, name, want, error) in cases {
            let got = m(pattern, name);
            if error {
                assert_eq!(got, Err(BadPattern), "{pattern:?} on {name:?}");
            } else {
                assert_eq!(got, Ok(want), "{pattern:?} on {name:?}");
            }
        }
    }

    #[test]
    fn a_pattern_matches_paths_of_its_own_depth_only() {
        let glob = Glob::new("src/*/*.rs").unwrap();
        assert_eq!(glob.depth(), 3);
        assert!(glob.matches("src/x/one.rs"));
        assert!(!glob.matches("src/x/y/one.rs"));
        assert!(!glob.matches("src/one.rs"));
        assert!(glob.matches_at(1, "anything"));
        assert!(!glob.matches_at(2, "one.go"));
        assert!(!glob.matches_at(3, "one.rs"));
        // A negated class never matches the separator (Go's would).
        assert!(!Glob::new("a[^x]b").unwrap().matches("a/b"));
        assert_eq!(Glob::from_components(["*", "[ab].txt"]), Glob::new("*/[ab].txt"));
    }

    #[test]
    fn wildcard_detection_honours_escapes() {
        assert!(has_wildcards("*.txt"));
        assert!(has_wildcards("a[bc]"));
        assert!(has_wildcards("file?"));
        assert!(has_wildcards("a/*.txt"));
        assert!(!has_wildcards("plain/name.txt"));
        assert!(!has_wildcards("a\\*b"));
    }
}
