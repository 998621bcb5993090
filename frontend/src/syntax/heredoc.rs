//! Heredoc detection: which words of a RUN/COPY/ADD line open a heredoc, and how its delimiter
//! reads.
//!
//! BuildKit splits the logical line with its shell lexer (quotes and escapes kept raw, unset
//! variables kept as written, and the blanks after an unquoted `<<` kept in its word) and tests
//! each word against `^(\d*)<<(-?)\s*([^<]*)$`. The part after
//! `<<` is lexed twice more, without and with raw quotes: it must be one word, that word (quotes
//! removed) is the delimiter, and any quoting turns variable expansion off. The lexer here is a
//! faithful copy of the parts of BuildKit's `shell.Lex` that this uses, quirks included (a
//! `${x:-...}` drops the word text before it), because whether a line has heredocs decides where
//! the next instruction starts.

use super::error::{ErrorKind, WordError};
use crate::go::{is_digit, is_letter};

/// The shell lexer's escape character: BuildKit hard-codes `\` here, whatever `# escape=` says.
const ESCAPE: char = '\\';

/// How deep `${a:-${b:-...}}` may nest before the lexer gives up (it recurses).
const MAX_NESTING: usize = 200;

/// A heredoc opener found on an instruction line (its body is read later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Opener {
    pub(super) name: String,
    pub(super) fd: u64,
    pub(super) expand: bool,
    pub(super) chomp: bool,
}

/// The heredoc openers of a logical line, in word order. A line the lexer cannot split (an
/// unbalanced quote) has none: BuildKit ignores that error.
pub(super) fn openers(line: &str) -> Result<Vec<Opener>, ErrorKind> {
    let Ok(words) = Lexer::new(line, true, true).words() else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for word in &words {
        if let Some(opener) = opener(word)? {
            found.push(opener);
        }
    }
    Ok(found)
}

/// BuildKit's `ChompHeredocContent`: removes the leading tabs of every line.
pub(super) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Matches one word against `^(\d*)<<(-?)\s*([^<]*)$` and reads its delimiter.
fn opener(word: &str) -> Result<Option<Opener>, ErrorKind> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    // Go's regexp `\s`: ASCII blanks without `\v`.
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\u{c}', '\r']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    // Go's ParseUint saturates on overflow, and BuildKit ignores the error.
    let fd = word[..digits].bytes().fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX)
    });
    let fail = |reason| ErrorKind::HeredocWord {
        word: rest.to_owned(),
        reason,
    };
    let words = Lexer::new(rest, false, false).words().map_err(fail)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = Lexer::new(rest, true, false).words().map_err(fail)?;
    if raw.len() != words.len() {
        return Err(ErrorKind::HeredocInconsistent {
            word: rest.to_owned(),
        });
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = quotes(name) == quotes(&raw[0]);
    Ok(Some(Opener {
        name: name.clone(),
        fd,
        expand,
        chomp,
    }))
}

/// BuildKit's `shell.Lex` in word-splitting mode, with an empty environment and unset variables
/// kept as written (`SkipUnsetEnv`), so `$` forms come out textually.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// How many `${...}` scans are open.
    depth: usize,
    /// The word being built. Upstream shares one buffer between nested `${...}` scans and resets
    /// it on entry, which loses the outer word's text: kept, because it changes the words.
    buf: String,
}

/// Word boundaries of one scan (upstream's `wordsStruct`); the text lives in `Lexer::buf`.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, c: char) {
        if c.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, c);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl Lexer {
    fn new(text: &str, raw_quotes: bool, raw_escapes: bool) -> Self {
        // Go's text/scanner skips a byte order mark at the very start.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            raw_quotes,
            raw_escapes,
            depth: 0,
            buf: String::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    fn words(mut self) -> Result<Vec<String>, WordError> {
        let raw_escapes = self.raw_escapes;
        Ok(self.scan(None, raw_escapes)?.1)
    }

    /// Upstream's `processStopOn`: scans to `stop` (or the end), with escapes kept raw or not
    /// for the duration.
    fn scan(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), WordError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.scan_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn scan_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), WordError> {
        let mut result = String::new();
        self.buf.clear();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.pos += 1;
                return Ok((result, words.finish(&mut self.buf)));
            }
            if matches!(c, '$' | '<' | '\'' | '"') {
                let text = match c {
                    '$' => self.dollar()?,
                    '<' => self.possible_heredoc(),
                    '\'' => self.single_quoted()?,
                    _ => self.double_quoted()?,
                };
                result.push_str(&text);
                if c == '$' {
                    words.add_string(&mut self.buf, &text);
                } else {
                    words.add_raw_string(&mut self.buf, &text);
                }
                continue;
            }
            let mut c = self.next().unwrap_or(c);
            if c == ESCAPE {
                if self.raw_escapes {
                    words.add_raw_char(&mut self.buf, c);
                    result.push(c);
                }
                let Some(escaped) = self.next() else { break };
                c = escaped;
                words.add_raw_char(&mut self.buf, c);
            } else {
                words.add_char(&mut self.buf, c);
            }
            result.push(c);
        }
        if let Some(stop) = stop {
            return Err(WordError::UnexpectedEnd(stop));
        }
        Ok((result, words.finish(&mut self.buf)))
    }

    /// `<` alone, or `<<` with the spaces, tabs and CRs after it, so that `<<  EOF` stays one
    /// word.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.pos += 1;
        let mut out = "<<".to_owned();
        while let Some(c) = self.peek().filter(|c| matches!(c, ' ' | '\t' | '\r')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn single_quoted(&mut self) -> Result<String, WordError> {
        let mut out = String::new();
        let open = self.next().unwrap_or('\'');
        if self.raw_quotes {
            out.push(open);
        }
        loop {
            match self.next() {
                None => return Err(WordError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, WordError> {
        let mut out = String::new();
        let open = self.next().unwrap_or('"');
        if self.raw_quotes {
            out.push(open);
        }
        loop {
            match self.peek() {
                None => return Err(WordError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let text = self.dollar()?;
                    out.push_str(&text);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == ESCAPE {
                        // Upstream writes the raw escape, then the escaped character, or (when
                        // nothing escapable follows) the escape a second time.
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n @ ('"' | '$' | ESCAPE)) => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$name`, `${name}`, `${name<modifier>word}`, `${name/pattern/replacement}`, all unset, so
    /// each comes back as written (`$` alone when no name follows).
    fn dollar(&mut self) -> Result<String, WordError> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(WordError::MissingBrace),
            Some('{' | '}' | ':') => return Err(WordError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        // Go turns "no character" into U+FFFD when it prints the modifier.
        let mut c = self.next().unwrap_or('\u{fffd}');
        let mut modifier = c.to_string();
        let mut null_is_unset = false;
        match c {
            '}' => Ok(format!("${{{name}}}")),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if c == ':' {
                    null_is_unset = true;
                    c = self.next().unwrap_or('\u{fffd}');
                    modifier.push(c);
                }
                let raw = c == '#' || c == '%';
                if null_is_unset && raw {
                    return Err(WordError::UnsupportedModifier(modifier));
                }
                let word = self.nested(Some('}'), raw, WordError::MissingBrace)?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            '/' => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let pattern = self.nested(Some('/'), true, WordError::MissingSlash)?;
                let replacement = self.nested(Some('}'), true, WordError::MissingBrace)?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(WordError::UnsupportedModifier(modifier)),
        }
    }

    /// A nested scan inside `${...}`; an error at the end of input becomes `at_end`.
    fn nested(&mut self, stop: Option<char>, raw: bool, at_end: WordError) -> Result<String, WordError> {
        if self.depth >= MAX_NESTING {
            return Err(WordError::TooDeep(MAX_NESTING));
        }
        self.depth += 1;
        let scanned = self.scan(stop, raw);
        self.depth -= 1;
        match scanned {
            Ok((text, _)) => Ok(text),
            Err(_) if self.peek().is_none() => Err(at_end),
            Err(e) => Err(e),
        }
    }

    /// Upstream's `processName`: a digit run, one special parameter, or letters/digits/`_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Result<Vec<String>, WordError> {
        Lexer::new(line, true, true).words()
    }

    fn one(word: &str) -> Opener {
        opener(word).unwrap().unwrap()
    }

    #[test]
    fn line_words_keep_quotes_and_escapes() {
        assert_eq!(words("RUN <<EOF cat").unwrap(), ["RUN", "<<EOF", "cat"]);
        assert_eq!(
            words(r#"RUN "<<EOF" 'a b'"#).unwrap(),
            ["RUN", "\"<<EOF\"", "'a b'"]
        );
        assert_eq!(words(r"a\ b \x").unwrap(), [r"a\ b", r"\x"]);
        assert_eq!(words(r#""a\x" "a\"""#).unwrap(), [r#""a\\x""#, r#""a\"""#]);
        assert_eq!(
            words("$A ${B} ${C:-x y} $").unwrap(),
            ["$A", "${B}", "${C:-x", "y}", "$"]
        );
        assert_eq!(words("abc${x:-y}").unwrap(), ["${x:-y}"]);
        assert_eq!(words("${x/a/b} ${x//a/b}").unwrap(), ["${x/a/b}", "${x/a/b}"]);
        assert_eq!(words("'' x").unwrap(), ["''", "x"]);
        assert_eq!(words("a <<  EOF <b").unwrap(), ["a", "<<  EOF", "<b"]);
    }

    #[test]
    fn lexer_errors() {
        assert_eq!(words("<<'EOF"), Err(WordError::UnterminatedSingleQuote));
        assert_eq!(words("\"x"), Err(WordError::UnterminatedDoubleQuote));
        assert_eq!(words("${"), Err(WordError::MissingBrace));
        assert_eq!(words("${}"), Err(WordError::BadSubstitution));
        assert_eq!(
            words("${a"),
            Err(WordError::UnsupportedModifier("\u{fffd}".into()))
        );
        assert_eq!(words("${a:#x}"), Err(WordError::UnsupportedModifier(":#".into())));
        assert_eq!(words("${a:-x"), Err(WordError::MissingBrace));
        assert_eq!(words("${a/x"), Err(WordError::MissingSlash));
        assert_eq!(words("${a:-${}}"), Err(WordError::BadSubstitution));
        assert_eq!(words("${é}").unwrap(), ["${é}"]);
        assert_eq!(words("${a:x}").unwrap(), ["${a:x}"]);
        let deep = |n| format!("{}x{}", "${a:-\"".repeat(n), "\"}".repeat(n));
        assert_eq!(words(&deep(MAX_NESTING)).unwrap().len(), 1);
        assert_eq!(
            words(&deep(MAX_NESTING + 1)),
            Err(WordError::TooDeep(MAX_NESTING))
        );
    }

    #[test]
    fn openers_from_words() {
        assert_eq!(
            one("<<EOF"),
            Opener {
                name: "EOF".into(),
                fd: 0,
                expand: true,
                chomp: false
            }
        );
        assert_eq!(
            one("3<<-X"),
            Opener {
                name: "X".into(),
                fd: 3,
                expand: true,
                chomp: true
            }
        );
        assert!(!one("<<'EOF'").expand);
        assert_eq!(one("<<eo'f'").name, "eof");
        assert_eq!(
            one(r"<<eo\'f"),
            Opener {
                name: "eo'f".into(),
                fd: 0,
                expand: true,
                chomp: false
            }
        );
        assert_eq!(one("<<'one two'").name, "one two");
        assert_eq!(one("<<$EOF").name, "$EOF");
        assert_eq!(one("99999999999999999999<<X").fd, u64::MAX);
        for not in ["<<", "<<-", "<<<EOF", "\"<<EOF\"", "x<<EOF", "<<a<b"] {
            assert_eq!(opener(not).unwrap(), None, "{not:?}");
        }
        let err = opener("<<${x:-'}").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"failed to process "${x:-'}": syntax error: missing '}'"#
        );
    }

    #[test]
    fn openers_of_lines() {
        let names = |line| {
            openers(line)
                .unwrap()
                .into_iter()
                .map(|o| o.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("COPY <<A <<B /d"), ["A", "B"]);
        assert_eq!(names("RUN <<  EOF  > foo"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN cat <<<EOF a<b"), Vec::<String>::new());
        assert_eq!(names("RUN <<'EOF"), Vec::<String>::new());
        assert_eq!(names("RUN --mount=x <<M"), ["M"]);
    }

    #[test]
    fn chomp_strips_leading_tabs_per_line() {
        assert_eq!(chomp("\tbaz\n\t\tquux\r\n x\t\n"), "baz\nquux\r\n x\t\n");
    }
}
