//! The expander: one pass over a word, the way BuildKit's `shellWord` scans it.
//!
//! The structure follows BuildKit's on purpose, because the observable behaviour lives in its details:
//! the terminator of a nested word (`}` or `/`) is checked before quotes and `$`, nested words are
//! expanded eagerly (so `${a:-$b}` looks up `b` even when `a` is set), and an error that happens at the
//! end of the input is reported as the missing `}` or `/` instead.

use std::collections::BTreeSet;

use super::chars::{is_digit, is_name_char};
use super::pattern::{replace, trim_prefix, trim_suffix};
use super::{Env, ErrorKind, Expansion, Lexer};

/// How deeply `${...}` may nest. BuildKit has no limit; real words nest a handful of levels, and the
/// limit keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 128;

/// The text BuildKit shows for "end of input" where it expects an operator (Go's `string(EOF)`).
const EOF_TEXT: char = '\u{fffd}';

/// Expands `word` against `env` with the switches of `lexer`.
pub(super) fn expand(lexer: &Lexer, word: &str, env: &dyn Env) -> Result<Expansion, ErrorKind> {
    let mut expander = Expander {
        lexer,
        env,
        // Go's text/scanner, which BuildKit reads the word with, skips a leading byte-order mark.
        src: word.strip_prefix('\u{feff}').unwrap_or(word),
        pos: 0,
        raw_escapes: lexer.raw_escapes,
        depth: 0,
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    let (value, words) = expander.word_until(None, lexer.raw_escapes)?;
    Ok(Expansion {
        value,
        words,
        matched: expander.matched,
        unmatched: expander.unmatched,
    })
}

struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    src: &'a str,
    /// Byte offset of the next character in `src`.
    pos: usize,
    /// Whether escape tokens are kept; on inside `#`, `%` and `/` patterns, which see them.
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl Expander<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    /// Expands up to `stop` (consumed) or to the end of the input when `stop` is `None`. Returns the
    /// expanded text and its split into words. Running out of input before `stop` is an error (which
    /// callers report as the delimiter they were missing).
    fn word_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ErrorKind> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.word_until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn word_until_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ErrorKind> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let quotes = !self.lexer.skip_process_quotes;
            let expanded = match ch {
                '$' => Some(self.dollar()?),
                '\'' if quotes => Some(self.single_quote()?),
                '"' if quotes => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(text) = expanded {
                result.push_str(&text);
                // Expansions are split into words; quoted text never is.
                if ch == '$' {
                    words.add_str(&text);
                } else {
                    words.add_raw_str(&text);
                }
                continue;
            }
            let mut ch = self.next().expect("peeked");
            if ch == self.lexer.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // An escape token at the very end is dropped.
                let Some(escaped) = self.next() else { break };
                ch = escaped;
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if stop.is_some() {
            // Only reachable at the end of the input; every caller rewords it.
            return Err(ErrorKind::MissingBrace);
        }
        Ok((result, words.finish()))
    }

    /// `'...'`: everything literal up to the next `'`; there is no way to escape a `'`.
    fn single_quote(&mut self) -> Result<String, ErrorKind> {
        let mut result = String::new();
        let open = self.next().expect("peeked");
        if self.lexer.raw_quotes {
            result.push(open);
        }
        loop {
            match self.next() {
                None => return Err(ErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    /// `"..."`: `$` expands; the escape token only escapes `"`, `$` and itself and is kept otherwise.
    fn double_quote(&mut self) -> Result<String, ErrorKind> {
        let mut result = String::new();
        let open = self.next().expect("peeked");
        if self.lexer.raw_quotes {
            result.push(open);
        }
        loop {
            match self.peek() {
                None => return Err(ErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().expect("peeked");
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is dropped; the loop then reports the open quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                                ch = self.next().expect("peeked");
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// A `$` reference: `$name` or `${...}`. The `$` is next in the input.
    fn dollar(&mut self) -> Result<String, ErrorKind> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(ErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ErrorKind::BadSubstitution),
            Some(_) => {}
        }
        if self.depth == MAX_DEPTH {
            return Err(ErrorKind::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        let result = self.braced();
        self.depth -= 1;
        result
    }

    /// The inside of `${...}`, after the `{`.
    fn braced(&mut self) -> Result<String, ErrorKind> {
        let name = self.name();
        let op = self.next();
        let mut modifier = String::from(op.unwrap_or(EOF_TEXT));
        match op {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.next();
                modifier.push(op.unwrap_or(EOF_TEXT));
                self.modifier(&name, op, &modifier, true)
            }
            Some('+' | '-' | '?' | '#' | '%') => self.modifier(&name, op, &modifier, false),
            Some('/') => self.substitution(&name),
            _ => Err(ErrorKind::UnsupportedModifier { modifier }),
        }
    }

    /// `${name<op>word}` for the operators `-`, `+`, `?`, `#`, `%` (and, with `null_is_unset`, their
    /// `:` forms). `op` was read as `modifier` (e.g. `:-`).
    fn modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        modifier: &str,
        null_is_unset: bool,
    ) -> Result<String, ErrorKind> {
        // Patterns keep their escapes so the pattern compiler can tell `\*` from `*`.
        let raw_escapes = matches!(op, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            // `${v:#p}` and `${v:%p}` exist in no shell; BuildKit rejects them before reading `p`.
            return Err(ErrorKind::UnsupportedModifier {
                modifier: modifier.to_string(),
            });
        }
        let word = self.nested_word('}', raw_escapes, ErrorKind::MissingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
        match op {
            Some('-') => Ok(if unset { word } else { value.unwrap_or_default() }),
            Some('+') => Ok(if unset { String::new() } else { word }),
            Some('?') => match value {
                Some(value) if !unset => Ok(value),
                _ => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_string()
                    } else {
                        "is not allowed to be empty".to_string()
                    };
                    Err(ErrorKind::Required {
                        name: name.to_string(),
                        message,
                    })
                }
            },
            Some(op @ ('#' | '%')) => {
                // A doubled operator (`##`, `%%`) asks for the longest match.
                let (pattern, greedy) = match word.strip_prefix(op) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                let value = value.unwrap_or_default();
                if op == '%' {
                    trim_suffix(pattern, &value, greedy)
                } else {
                    trim_prefix(pattern, &value, greedy)
                }
            }
            _ => Err(ErrorKind::UnsupportedModifier {
                modifier: modifier.to_string(),
            }),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`; the first `/` was read.
    fn substitution(&mut self, name: &str) -> Result<String, ErrorKind> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = self.nested_word('/', true, ErrorKind::MissingSlash)?;
        let replacement = self.nested_word('}', true, ErrorKind::MissingBrace)?;
        match self.lookup(name) {
            None if self.lexer.skip_unset_env => Ok(format!("${{{name}/{pattern}/{replacement}}}")),
            value => replace(&pattern, &value.unwrap_or_default(), &replacement, all),
        }
    }

    /// Expands a nested word up to `stop`. Any failure that leaves the input exhausted is reported as
    /// `at_end` (the missing delimiter), as BuildKit does.
    fn nested_word(&mut self, stop: char, raw_escapes: bool, at_end: ErrorKind) -> Result<String, ErrorKind> {
        match self.word_until(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(at_end),
            Err(err) => Err(err),
        }
    }

    /// A name after `$` or `${`: a run of letters, digits and `_`; or a run of digits (a positional
    /// parameter); or one special-parameter character. Empty when none of these follows.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(digit) = self.peek().filter(|&c| is_digit(c)) {
                    self.next();
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                name.push(ch);
                return name;
            }
            if !is_name_char(ch) {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    /// Looks `name` up and records whether it was set.
    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.get(name).map(str::to_string);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        seen.insert(name.to_string());
        value
    }
}

/// Word splitting as BuildKit does it alongside expansion.
///
/// Each nested word has its own splitter. (Recent BuildKit shares one buffer between nested words, so
/// `EXPOSE 80${P:-0}` there loses the `80` before a `${...:-...}`; kiln keeps the text, as earlier BuildKit
/// releases did. No conformance case covers it.)
#[derive(Default)]
struct Words {
    current: String,
    done: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, ch: char) {
        if !ch.is_whitespace() {
            self.add_raw_char(ch);
        } else if self.in_word && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
            self.in_word = false;
        }
    }

    /// A quoted or escaped character: always part of the word.
    fn add_raw_char(&mut self, ch: char) {
        self.current.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, text: &str) {
        text.chars().for_each(|ch| self.add_char(ch));
    }

    fn add_raw_str(&mut self, text: &str) {
        self.current.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}
