//! The patterns of `${v#pat}`, `${v%pat}` and `${v/pat/repl}`.
//!
//! BuildKit turns such a pattern into a Go regular expression (`*` becomes `.*` or `.*?`, `?` becomes
//! `.`, everything else is literal) and lets the regexp package pick the match. So the match is Go's
//! *leftmost-first* match: the leftmost start, and at that start the alternative a backtracking engine
//! tries first (longest for a greedy `*`, shortest for a lazy one). Like Go's `.`, neither `*` nor `?`
//! matches a newline.
//!
//! Patterns are tiny, so instead of a regex engine this module fills one table, "can tokens `i..` match
//! starting at char `j`", and then walks it, taking at every `*` the first extent backtracking would
//! take. That yields exactly the leftmost-first match in O(tokens x chars), with no backtracking blow-up.

use super::ErrorKind;
use super::chars::is_name_char;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// One literal character.
    Lit(char),
    /// `?`: one character other than a newline.
    Any,
    /// `*`: a run of characters without a newline.
    Star,
}

/// A compiled pattern.
struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `text` as BuildKit's `convertShellPatternToRegex` does. `\*`, `\?` and `\\` are
    /// literals; a backslash before `}` or `/` is dropped (it only kept the delimiter out of `${}`); any
    /// other escape is an error.
    fn parse(text: &str) -> Result<Pattern, ErrorKind> {
        // Go's text/scanner skips a byte-order mark at the very start.
        let mut chars = text.strip_prefix('\u{feff}').unwrap_or(text).chars().peekable();
        let mut tokens = Vec::new();
        while let Some(ch) = chars.next() {
            let token = match ch {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => {
                    if matches!(chars.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(escaped @ ('*' | '?' | '\\')) => Token::Lit(escaped),
                        other => {
                            return Err(ErrorKind::InvalidPattern {
                                pattern: text.to_string(),
                                escaped: other.unwrap_or('\u{fffd}'),
                            });
                        }
                    }
                }
                other => Token::Lit(other),
            };
            tokens.push(token);
        }
        Ok(Pattern { tokens })
    }
}

/// One pattern prepared against one haystack: the reachability table and how stars behave.
struct Search<'a> {
    tokens: &'a [Token],
    hay: &'a [char],
    greedy: bool,
    /// `reach[i * (n + 1) + j]`: tokens `i..` match some text starting at char `j`.
    reach: Vec<bool>,
}

impl<'a> Search<'a> {
    fn new(pattern: &'a Pattern, hay: &'a [char], greedy: bool) -> Search<'a> {
        let tokens = pattern.tokens.as_slice();
        let n = hay.len();
        let width = n + 1;
        let mut reach = vec![false; (tokens.len() + 1) * width];
        // The pattern is not anchored at the end: once every token matched, any rest is fine.
        reach[tokens.len() * width..].fill(true);
        for (i, token) in tokens.iter().enumerate().rev() {
            for j in (0..=n).rev() {
                let next = |j: usize| reach[(i + 1) * width + j];
                reach[i * width + j] = match *token {
                    Token::Lit(c) => j < n && hay[j] == c && next(j + 1),
                    Token::Any => j < n && hay[j] != '\n' && next(j + 1),
                    Token::Star => next(j) || (j < n && hay[j] != '\n' && reach[i * width + j + 1]),
                };
            }
        }
        Search {
            tokens,
            hay,
            greedy,
            reach,
        }
    }

    fn reachable(&self, token: usize, at: usize) -> bool {
        self.reach[token * (self.hay.len() + 1) + at]
    }

    /// The leftmost-first match starting at or after `from` (only at `from` when `anchored`), as a
    /// range of char indices.
    fn find(&self, from: usize, anchored: bool) -> Option<(usize, usize)> {
        let last = if anchored { from } else { self.hay.len() };
        let start = (from..=last.min(self.hay.len())).find(|&s| self.reachable(0, s))?;
        let mut at = start;
        for (i, token) in self.tokens.iter().enumerate() {
            at = match token {
                Token::Lit(_) | Token::Any => at + 1,
                Token::Star => {
                    let run = self.hay[at..].iter().take_while(|&&c| c != '\n').count();
                    let mut ends = at..=at + run;
                    let fits = |&e: &usize| self.reachable(i + 1, e);
                    let end = if self.greedy {
                        ends.rev().find(fits)
                    } else {
                        ends.find(fits)
                    };
                    end.expect("the table promised a match")
                }
            };
        }
        Some((start, at))
    }
}

/// `${v#pat}` (shortest) and `${v##pat}` (`greedy`): `value` without the prefix `pattern` matches.
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ErrorKind> {
    let compiled = Pattern::parse(pattern)?;
    let hay: Vec<char> = value.chars().collect();
    let search = Search::new(&compiled, &hay, greedy);
    Ok(match search.find(0, true) {
        Some((_, end)) => hay[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%pat}` and `${v%%pat}`: like BuildKit, reverses pattern and value and trims a prefix, because
/// a leftmost engine cannot find the shortest rightmost match directly.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ErrorKind> {
    let reversed = trim_prefix(
        &reverse_pattern(pattern),
        &value.chars().rev().collect::<String>(),
        greedy,
    )?;
    Ok(reversed.chars().rev().collect())
}

/// Reverses a pattern while keeping each `\x` pair in order (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    // Pair escapes walking forward, as BuildKit does, then emit the units backwards.
    let mut units: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        units.push(&chars[i..i + len]);
        i += len;
    }
    units.iter().rev().flat_map(|unit| unit.iter()).collect()
}

/// `${v/pat/repl}` (first match) and `${v//pat/repl}` (`all`). `*` is greedy here.
///
/// Replacing all goes through Go's `ReplaceAllString`, which expands `$0`/`${0}` in the replacement to
/// the matched text, `$$` to `$`, and any other `$name` to nothing; BuildKit inherits that, so does this.
pub(super) fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> Result<String, ErrorKind> {
    let compiled = Pattern::parse(pattern)?;
    let hay: Vec<char> = value.chars().collect();
    let search = Search::new(&compiled, &hay, true);
    if !all {
        return Ok(match search.find(0, false) {
            Some((start, end)) => {
                let mut out: String = hay[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&hay[end..]);
                out
            }
            None => value.to_string(),
        });
    }
    // Go's replaceAll loop: an empty match right after a match is not replaced, and the search always
    // advances by at least one character.
    let n = hay.len();
    let mut out = String::new();
    let (mut last_end, mut from) = (0, 0);
    while from <= n {
        let Some((start, end)) = search.find(from, false) else {
            break;
        };
        out.extend(&hay[last_end..start]);
        if end > last_end || start == 0 {
            let matched: String = hay[start..end].iter().collect();
            expand_template(replacement, &matched, &mut out);
        }
        last_end = end;
        let width = usize::from(from < n);
        from = if from + width > end {
            from + width
        } else if from + 1 > end {
            from + 1
        } else {
            end
        };
    }
    out.extend(&hay[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`, `$0`/`${0}` the match, any
/// other well-formed `$name`/`${name}` nothing, and a malformed `$` itself.
fn expand_template(template: &str, matched: &str, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_reference(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The name of a template reference at the start of `s` (`name` or `{name}`) and the text after it.
fn template_reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        return after.strip_prefix('}').map(|after| (name, after));
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Plain backtracking in the order Go's leftmost-first semantics prescribe: the reference the
    /// table walk must agree with.
    fn backtrack(tokens: &[Token], hay: &[char], at: usize, greedy: bool) -> Option<usize> {
        let Some((token, rest)) = tokens.split_first() else {
            return Some(at);
        };
        match *token {
            Token::Lit(c) => (hay.get(at) == Some(&c)).then(|| backtrack(rest, hay, at + 1, greedy))?,
            Token::Any => hay
                .get(at)
                .filter(|&&c| c != '\n')
                .and_then(|_| backtrack(rest, hay, at + 1, greedy)),
            Token::Star => {
                let run = hay[at..].iter().take_while(|&&c| c != '\n').count();
                let mut ends: Vec<usize> = (at..=at + run).collect();
                if greedy {
                    ends.reverse();
                }
                ends.into_iter().find_map(|end| backtrack(rest, hay, end, greedy))
            }
        }
    }

    proptest! {
        #[test]
        fn table_walk_equals_backtracking(
            pattern in "[ab*?]{0,6}",
            hay in "[ab\n]{0,10}",
            greedy: bool,
            anchored: bool,
        ) {
            let compiled = Pattern::parse(&pattern).unwrap();
            let hay: Vec<char> = hay.chars().collect();
            let search = Search::new(&compiled, &hay, greedy);
            for from in 0..=hay.len() {
                let last = if anchored { from } else { hay.len() };
                let want = (from..=last)
                    .find_map(|s| backtrack(&compiled.tokens, &hay, s, greedy).map(|e| (s, e)));
                prop_assert_eq!(search.find(from, anchored), want);
            }
        }
    }

    #[test]
    fn shortest_and_longest_prefix() {
        assert_eq!(trim_prefix("*x*y", "xxyy", false).unwrap(), "y");
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_prefix("*", "abc", false).unwrap(), "abc");
        assert_eq!(trim_prefix("*", "abc", true).unwrap(), "");
    }

    #[test]
    fn suffixes_reverse_escapes_as_pairs() {
        assert_eq!(reverse_pattern(r"a\*c"), r"c\*a");
        assert_eq!(trim_suffix(r"\**\*", "a***yy*", true).unwrap(), "a");
        assert_eq!(trim_suffix(".*", "file.tar.gz", false).unwrap(), "file.tar");
        assert_eq!(trim_suffix(".*", "file.tar.gz", true).unwrap(), "file");
    }

    #[test]
    fn stars_and_questions_stop_at_newlines() {
        assert_eq!(trim_prefix("*", "a\nb", true).unwrap(), "\nb");
        assert_eq!(trim_prefix("a?b", "a\nb", true).unwrap(), "a\nb");
    }

    #[test]
    fn bad_escapes_name_the_pattern() {
        let err = trim_prefix(r"a\d", "x", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            r"invalid pattern (a\d) in substitution: invalid escape '\d'"
        );
        let err = trim_suffix(r"a\d", "x", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            r"invalid pattern (\da) in substitution: invalid escape '\d'"
        );
        let err = trim_prefix("a\\", "x", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid pattern (a\\) in substitution: invalid escape '\\\u{fffd}'"
        );
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(
            replace(r"\*/", "/foo*/*/*.txt", ".", false).unwrap(),
            "/foo.*/*.txt"
        );
        assert_eq!(
            replace(r"\*/", "/foo*/*/*.txt", ".", true).unwrap(),
            "/foo..*.txt"
        );
        assert_eq!(replace("", "xxyy", "ww", false).unwrap(), "wwxxyy");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
        assert_eq!(replace("x*", "axxbx", "-", true).unwrap(), "a-");
        assert_eq!(replace("x?", "axxbxy", "-", true).unwrap(), "a-b-");
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace("b", "abc", "[$0]", true).unwrap(), "a[b]c");
        assert_eq!(
            replace("b", "abc", "[${0}|$1|$x|$$|$]", true).unwrap(),
            "a[b|||$|$]c"
        );
        assert_eq!(replace("b", "abc", "[$0]", false).unwrap(), "a[$0]c");
    }
}
