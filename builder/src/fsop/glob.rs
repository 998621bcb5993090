//! Source wildcards with Go's `filepath.Match` syntax, as BuildKit resolves `COPY` sources: `*` (any
//! run of characters), `?` (one character), `[a-z]`, `[^0-9]` (classes), `\x` (a literal `x`). None of
//! them matches `/`: a pattern matches paths with as many components as it has.

/// A malformed pattern: an unterminated or empty class, a bad range, a trailing backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Literal(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One path component's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

/// Whether `s` holds an unescaped `*`, `?` or `[` (BuildKit's `containsWildcards`).
pub(crate) fn has_wildcards(s: &str) -> bool {
    let mut chars = s.chars();
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
    /// Compiles one component's pattern.
    pub(crate) fn new(pattern: &str) -> Result<Glob, BadPattern> {
        let mut chars = pattern.chars().peekable();
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => Token::Literal(chars.next().ok_or(BadPattern)?),
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if chars.peek() == Some(&']') && !ranges.is_empty() {
                            chars.next();
                            break;
                        }
                        let lo = class_char(&mut chars)?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(&mut chars)?
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(BadPattern);
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            });
        }
        Ok(Glob { tokens })
    }

    /// Whether the component `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        match_tokens(&self.tokens, &name)
    }
}

/// A class member: any character but `-` and `]`, unless escaped.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, BadPattern> {
    match chars.next().ok_or(BadPattern)? {
        '\\' => chars.next().ok_or(BadPattern),
        '-' | ']' => Err(BadPattern),
        c => Ok(c),
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match first {
        Token::Star => (0..=name.len()).any(|skip| match_tokens(rest, &name[skip..])),
        token => match name.split_first() {
            Some((c, name_rest)) => one(token, *c) && match_tokens(rest, name_rest),
            None => false,
        },
    }
}

fn one(token: &Token, c: char) -> bool {
    match token {
        Token::Star | Token::Any => true,
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

/// A multi-component pattern (`src/*/x-?.txt`), matched component by component.
#[derive(Debug, Clone)]
pub(crate) struct PathGlob {
    components: Vec<Glob>,
}

impl PathGlob {
    /// Compiles the components of `pattern` (already split on `/`).
    pub(crate) fn new<'a>(components: impl IntoIterator<Item = &'a str>) -> Result<PathGlob, BadPattern> {
        Ok(PathGlob {
            components: components.into_iter().map(Glob::new).collect::<Result<_, _>>()?,
        })
    }

    /// How many components a matching path has.
    pub(crate) fn depth(&self) -> usize {
        self.components.len()
    }

    /// Whether component `index` of a path may be `name`.
    pub(crate) fn matches_at(&self, index: usize, name: &str) -> bool {
        self.components.get(index).is_some_and(|glob| glob.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn go_filepath_match_cases() {
        assert!(m("abc", "abc"));
        assert!(m("*", "abc"));
        assert!(m("*c", "abc"));
        assert!(!m("a*", "b"));
        assert!(m("a*b*c*d*e*", "axbxcxdxe"));
        assert!(m("ab[c]", "abc"));
        assert!(m("ab[b-d]", "abc"));
        assert!(!m("ab[e-g]", "abc"));
        assert!(!m("ab[^c]", "abc"));
        assert!(m("ab[^e-g]", "abc"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "ab"));
        assert!(m("a?b", "a☺b"));
        assert!(m("[\\]a]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[x\\-]", "x"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("[ab].txt", "b.txt"));
        assert!(m("", ""));
    }

    #[test]
    fn bad_patterns() {
        for bad in ["[", "[^", "[]a]", "[a-]", "a\\", "[z-a]", "[-]"] {
            assert_eq!(Glob::new(bad), Err(BadPattern), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcards("a/*.txt"));
        assert!(has_wildcards("[ab]"));
        assert!(!has_wildcards("a\\*b"));
        assert!(!has_wildcards("plain/path"));
    }
}
