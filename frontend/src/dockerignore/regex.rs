//! The regular expressions `.dockerignore` patterns compile to, with Go's RE2 syntax and semantics.
//!
//! Docker translates a pattern into a Go regular expression and hands parts of it through unchanged:
//! bracket expressions (`[a-z]`, `[[:alpha:]]`, `[^/]`) and backslash escapes (`\d`, `\b`, `\x41`,
//! `\Q...\E`). So what a pattern means is what Go's `regexp` makes of that string. This module parses
//! exactly the Go syntax such strings can contain and matches with a Thompson NFA (linear time, no
//! backtracking), which is all a yes/no path match needs.
//!
//! Go semantics kept: `.` does not match `\n` but a negated class does; `^`/`$` are the start/end of
//! the text; `\b` is an ASCII word boundary; `\d \s \w` and the POSIX classes are ASCII; stacked
//! repetition (`a**`) is an error. Unicode classes (`\pL`, `\p{Greek}`) are refused as unsupported
//! rather than approximated.

/// Why a regular expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RegexError {
    /// Go's regexp rejects it too.
    Syntax(&'static str),
    /// Go accepts it but kiln does not implement it.
    Unsupported(&'static str),
}

/// An inclusive range of code points. `u32` because escapes can name values no `char` holds.
type Range = (u32, u32);

const MAX_CODE_POINT: u32 = 0x10_ffff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    BeginText,
    EndText,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug)]
enum Node {
    Lit(u32),
    Class(Vec<Range>),
    AnyNotNewline,
    Look(Look),
    Concat(Vec<Node>),
    Alternate(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min_one: bool,
        max_one: bool,
    },
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(super) struct Regex {
    program: Vec<Inst>,
    /// The expression starts with `^`: a match can only start at the beginning of the text.
    anchored: bool,
    /// Literal text every match starts with (after a leading `^`) and ends with (before a trailing
    /// `$`): checked before running the automaton, which most paths then never reach (`**/*.log`
    /// needs `.log` at the end).
    prefix: String,
    suffix: String,
}

#[derive(Debug, Clone)]
enum Inst {
    Char(u32),
    Class(Vec<Range>),
    AnyNotNewline,
    Look(Look),
    Split(usize, usize),
    Jump(usize),
    Match,
}

impl Regex {
    /// Compiles `pattern` with Go's `regexp.Compile` syntax (Perl flags).
    pub(super) fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let node = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            return Err(RegexError::Syntax("unexpected )"));
        }
        let (anchored, prefix, suffix) = literal_ends(&node);
        let mut program = Vec::new();
        emit(&node, &mut program);
        program.push(Inst::Match);
        Ok(Regex {
            program,
            anchored,
            prefix,
            suffix,
        })
    }

    /// Whether the expression matches anywhere in `text` (Go's `MatchString`).
    pub(super) fn is_match(&self, text: &str) -> bool {
        if !text.starts_with(&self.prefix) || !text.ends_with(&self.suffix) {
            return false;
        }
        let chars: Vec<char> = text.chars().collect();
        let mut current = Threads::new(self.program.len());
        let mut next = Threads::new(self.program.len());
        // One work stack for every `add`: the context walk matches each path, so this loop is hot.
        let mut stack = Vec::new();
        for at in 0..=chars.len() {
            // Unanchored search: a new thread starts at every position (an anchored one would die
            // on its `^` anywhere but at 0).
            if at == 0 || !self.anchored {
                self.add(&mut current, 0, at, &chars, &mut stack);
            }
            if current.contains_match(&self.program) {
                return true;
            }
            if self.anchored && current.list.is_empty() {
                return false;
            }
            let Some(&ch) = chars.get(at) else { break };
            next.clear();
            for &pc in &current.list {
                let step = match &self.program[pc] {
                    Inst::Char(c) => *c == u32::from(ch),
                    Inst::Class(ranges) => in_ranges(ranges, u32::from(ch)),
                    Inst::AnyNotNewline => ch != '\n',
                    _ => false,
                };
                if step {
                    self.add(&mut next, pc + 1, at + 1, &chars, &mut stack);
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        false
    }

    /// Adds the thread at `pc` and everything reachable from it without consuming input at `at`.
    fn add(&self, threads: &mut Threads, pc: usize, at: usize, chars: &[char], stack: &mut Vec<usize>) {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !threads.insert(pc) {
                continue;
            }
            match &self.program[pc] {
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Jump(to) => stack.push(*to),
                Inst::Look(look) if look_holds(*look, at, chars) => stack.push(pc + 1),
                _ => {}
            }
        }
    }
}

/// The threads alive at one position: a set of program counters, in insertion order.
struct Threads {
    seen: Vec<bool>,
    list: Vec<usize>,
}

impl Threads {
    fn new(len: usize) -> Threads {
        Threads {
            seen: vec![false; len],
            list: Vec::new(),
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        if self.seen[pc] {
            return false;
        }
        self.seen[pc] = true;
        self.list.push(pc);
        true
    }

    fn clear(&mut self) {
        for &pc in &self.list {
            self.seen[pc] = false;
        }
        self.list.clear();
    }

    fn contains_match(&self, program: &[Inst]) -> bool {
        self.list.iter().any(|&pc| matches!(program[pc], Inst::Match))
    }
}

fn look_holds(look: Look, at: usize, chars: &[char]) -> bool {
    let is_word = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_');
    let boundary = || is_word(at.checked_sub(1).and_then(|i| chars.get(i))) != is_word(chars.get(at));
    match look {
        Look::BeginText => at == 0,
        Look::EndText => at == chars.len(),
        Look::WordBoundary => boundary(),
        Look::NotWordBoundary => !boundary(),
    }
}

fn in_ranges(ranges: &[Range], c: u32) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// What the top level of `node` fixes: whether it starts with `^`, the literal characters right after
/// that `^`, and those right before a final `$`. Every match has them, so a text without them can be
/// turned down before the automaton runs.
fn literal_ends(node: &Node) -> (bool, String, String) {
    let Node::Concat(items) = node else {
        return (false, String::new(), String::new());
    };
    let literals = |items: &mut dyn Iterator<Item = &Node>| -> Vec<char> {
        items
            .map_while(|item| match item {
                Node::Lit(c) => char::from_u32(*c),
                _ => None,
            })
            .collect()
    };
    let anchored = matches!(items.first(), Some(Node::Look(Look::BeginText)));
    let prefix = if anchored {
        literals(&mut items.iter().skip(1)).into_iter().collect()
    } else {
        String::new()
    };
    let suffix = if matches!(items.last(), Some(Node::Look(Look::EndText))) {
        literals(&mut items.iter().rev().skip(1))
            .into_iter()
            .rev()
            .collect()
    } else {
        String::new()
    };
    (anchored, prefix, suffix)
}

/// Appends the instructions for `node` (Thompson's construction).
fn emit(node: &Node, program: &mut Vec<Inst>) {
    match node {
        Node::Lit(c) => program.push(Inst::Char(*c)),
        Node::Class(ranges) => program.push(Inst::Class(ranges.clone())),
        Node::AnyNotNewline => program.push(Inst::AnyNotNewline),
        Node::Look(look) => program.push(Inst::Look(*look)),
        Node::Concat(items) => items.iter().for_each(|item| emit(item, program)),
        Node::Alternate(branches) => {
            let mut jumps = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                let split = program.len();
                if i + 1 < branches.len() {
                    program.push(Inst::Split(split + 1, usize::MAX));
                }
                emit(branch, program);
                if i + 1 < branches.len() {
                    jumps.push(program.len());
                    program.push(Inst::Jump(usize::MAX));
                    let after = program.len();
                    program[split] = Inst::Split(split + 1, after);
                }
            }
            let end = program.len();
            for jump in jumps {
                program[jump] = Inst::Jump(end);
            }
        }
        Node::Repeat {
            node,
            min_one,
            max_one,
        } => {
            let start = program.len();
            if !min_one {
                program.push(Inst::Split(start + 1, usize::MAX));
            }
            emit(node, program);
            if !max_one {
                let body = if *min_one { start } else { start + 1 };
                program.push(Inst::Split(body, program.len() + 1));
            }
            if !min_one {
                program[start] = Inst::Split(start + 1, program.len());
            }
        }
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn eat(&mut self, ch: char) -> bool {
        let found = self.peek() == Some(ch);
        self.pos += usize::from(found);
        found
    }

    fn rest_starts_with(&self, prefix: &str) -> bool {
        prefix
            .chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concatenation()?];
        while self.eat('|') {
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one branch")
        } else {
            Node::Alternate(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        let mut after_repeat = false;
        while let Some(ch) = self.peek() {
            if matches!(ch, '|' | ')') {
                break;
            }
            self.pos += 1;
            let repeated = matches!(ch, '*' | '+' | '?');
            match ch {
                '*' | '+' | '?' => {
                    if after_repeat {
                        return Err(RegexError::Syntax("invalid nested repetition operator"));
                    }
                    let node = items
                        .pop()
                        .ok_or(RegexError::Syntax("missing argument to repetition operator"))?;
                    // A trailing `?` only makes the repetition lazy, which a yes/no match cannot see.
                    self.eat('?');
                    items.push(Node::Repeat {
                        node: Box::new(node),
                        min_one: ch == '+',
                        max_one: ch == '?',
                    });
                }
                '(' => {
                    if self.peek() == Some('?') {
                        return Err(RegexError::Unsupported("a regexp group with flags"));
                    }
                    let inner = self.alternation()?;
                    if !self.eat(')') {
                        return Err(RegexError::Syntax("missing closing )"));
                    }
                    items.push(inner);
                }
                '{' if self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    return Err(RegexError::Unsupported("a counted repetition"));
                }
                '^' => items.push(Node::Look(Look::BeginText)),
                '$' => items.push(Node::Look(Look::EndText)),
                '.' => items.push(Node::AnyNotNewline),
                '[' => items.push(Node::Class(self.class()?)),
                '\\' => self.escape_outside_class(&mut items)?,
                other => items.push(Node::Lit(u32::from(other))),
            }
            after_repeat = repeated;
        }
        Ok(Node::Concat(items))
    }

    /// An escape outside brackets; the `\` was consumed.
    fn escape_outside_class(&mut self, items: &mut Vec<Node>) -> Result<(), RegexError> {
        let look = match self.peek() {
            Some('A') => Some(Look::BeginText),
            Some('z') => Some(Look::EndText),
            Some('b') => Some(Look::WordBoundary),
            Some('B') => Some(Look::NotWordBoundary),
            Some('C') => return Err(RegexError::Syntax("invalid escape sequence")),
            Some('p' | 'P') => return Err(RegexError::Unsupported("a Unicode class escape (\\p)")),
            Some('Q') => {
                // `\Q...\E` quotes everything up to `\E` or the end of the expression.
                self.pos += 1;
                while self.pos < self.chars.len() && !self.rest_starts_with("\\E") {
                    items.push(Node::Lit(u32::from(self.chars[self.pos])));
                    self.pos += 1;
                }
                self.pos = (self.pos + 2).min(self.chars.len());
                return Ok(());
            }
            _ => None,
        };
        if let Some(look) = look {
            self.pos += 1;
            items.push(Node::Look(look));
        } else if let Some(ranges) = self.perl_class() {
            items.push(Node::Class(ranges));
        } else {
            items.push(Node::Lit(self.escaped_char()?));
        }
        Ok(())
    }

    /// A bracket expression; the `[` was consumed.
    fn class(&mut self) -> Result<Vec<Range>, RegexError> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(RegexError::Syntax("missing closing ]")),
                Some(']') if !first => {
                    self.pos += 1;
                    break;
                }
                _ => {}
            }
            first = false;
            if self.rest_starts_with("[:")
                && let Some(named) = self.posix_class()?
            {
                ranges.extend(named);
                continue;
            }
            if self.rest_starts_with("\\p") || self.rest_starts_with("\\P") {
                return Err(RegexError::Unsupported("a Unicode class escape (\\p)"));
            }
            if self.peek() == Some('\\') {
                self.pos += 1;
                if let Some(perl) = self.perl_class() {
                    ranges.extend(perl);
                    continue;
                }
                self.pos -= 1;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                hi = self.class_char()?;
                if hi < lo {
                    return Err(RegexError::Syntax("invalid character class range"));
                }
            }
            ranges.push((lo, hi));
        }
        Ok(if negated { complement(&ranges) } else { ranges })
    }

    fn class_char(&mut self) -> Result<u32, RegexError> {
        match self.peek() {
            None => Err(RegexError::Syntax("missing closing ]")),
            Some('\\') => {
                self.pos += 1;
                self.escaped_char()
            }
            Some(c) => {
                self.pos += 1;
                Ok(u32::from(c))
            }
        }
    }

    /// `[:name:]` at the cursor. Like Go, the closing `:]` is searched in the whole rest of the
    /// expression; without one, `[` is an ordinary character (`None`).
    fn posix_class(&mut self) -> Result<Option<Vec<Range>>, RegexError> {
        let rest: String = self.chars[self.pos + 2..].iter().collect();
        let Some(end) = rest.find(":]") else {
            return Ok(None);
        };
        let name = &rest[..end];
        let (negated, name) = match name.strip_prefix('^') {
            Some(name) => (true, name),
            None => (false, name),
        };
        let ranges = posix_ranges(name).ok_or(RegexError::Syntax("invalid character class range"))?;
        self.pos += 2 + rest[..end].chars().count() + 2;
        Ok(Some(if negated {
            complement(ranges)
        } else {
            ranges.to_vec()
        }))
    }

    /// `\d \D \s \S \w \W` after a consumed `\`.
    fn perl_class(&mut self) -> Option<Vec<Range>> {
        let ch = self.peek()?;
        let ranges: &[Range] = match ch.to_ascii_lowercase() {
            'd' => &[(0x30, 0x39)],
            's' => &[(0x09, 0x0a), (0x0c, 0x0d), (0x20, 0x20)],
            'w' => &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)],
            _ => return None,
        };
        self.pos += 1;
        Some(if ch.is_ascii_uppercase() {
            complement(ranges)
        } else {
            ranges.to_vec()
        })
    }

    /// The character a single-character escape stands for, after a consumed `\` (Go's `parseEscape`).
    fn escaped_char(&mut self) -> Result<u32, RegexError> {
        const INVALID: RegexError = RegexError::Syntax("invalid escape sequence");
        let c = self
            .peek()
            .ok_or(RegexError::Syntax("trailing backslash at end of expression"))?;
        self.pos += 1;
        let octal = |c: Option<char>| c.and_then(|c| c.to_digit(8));
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(u32::from(c)),
            // `\1`..`\7` alone would be a backreference, which RE2 lacks; followed by an octal digit
            // they start an octal escape, as `\0` always does.
            '1'..='7' if octal(self.peek()).is_none() => Err(INVALID),
            '0'..='7' => {
                let mut value = c.to_digit(8).expect("octal digit");
                for _ in 0..2 {
                    let Some(digit) = octal(self.peek()) else { break };
                    value = value * 8 + digit;
                    self.pos += 1;
                }
                Ok(value)
            }
            'x' => self.hex_escape().ok_or(INVALID),
            'a' => Ok(0x07),
            'f' => Ok(0x0c),
            'n' => Ok(0x0a),
            'r' => Ok(0x0d),
            't' => Ok(0x09),
            'v' => Ok(0x0b),
            _ => Err(INVALID),
        }
    }

    /// `\xHH` or `\x{H...}` after a consumed `\x`.
    fn hex_escape(&mut self) -> Option<u32> {
        if self.eat('{') {
            let mut value: u32 = 0;
            let mut digits = 0;
            loop {
                let c = self.peek()?;
                self.pos += 1;
                if c == '}' {
                    break;
                }
                value = value.checked_mul(16)? + c.to_digit(16)?;
                if value > MAX_CODE_POINT {
                    return None;
                }
                digits += 1;
            }
            return (digits > 0).then_some(value);
        }
        let hi = self.peek()?.to_digit(16);
        self.pos += 1;
        let lo = self.peek().and_then(|c| c.to_digit(16));
        self.pos += 1;
        Some(hi? * 16 + lo?)
    }
}

fn posix_ranges(name: &str) -> Option<&'static [Range]> {
    Some(match name {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5a), (0x61, 0x7a)],
        "alpha" => &[(0x41, 0x5a), (0x61, 0x7a)],
        "ascii" => &[(0x00, 0x7f)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1f), (0x7f, 0x7f)],
        "digit" => &[(0x30, 0x39)],
        "graph" => &[(0x21, 0x7e)],
        "lower" => &[(0x61, 0x7a)],
        "print" => &[(0x20, 0x7e)],
        "punct" => &[(0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e)],
        "space" => &[(0x09, 0x0d), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5a)],
        "word" => &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)],
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    })
}

/// Every code point not in `ranges`.
fn complement(ranges: &[Range]) -> Vec<Range> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut next = 0;
    for (lo, hi) in sorted {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = next.max(hi.saturating_add(1));
    }
    if next <= MAX_CODE_POINT {
        out.push((next, MAX_CODE_POINT));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(re: &str, text: &str) -> bool {
        Regex::new(re).unwrap().is_match(text)
    }

    #[test]
    fn docker_shapes() {
        assert!(matches("^(.*/)?dir2/[^/]*$", "dir/dir2/file"));
        assert!(matches("^(.*/)?dir2/[^/]*$", "dir2/file"));
        assert!(!matches("^(.*/)?dir2/[^/]*$", "dir/dir2/file/x"));
        assert!(matches("^a[^b]c$", "a/c"));
        assert!(matches("^abc\\.def$", "abc.def") && !matches("^abc\\.def$", "abcxdef"));
        assert!(!matches("^a.*$", "a\nb"));
        assert!(matches("^a[^x]b$", "a\nb"));
    }

    #[test]
    fn escapes_and_classes() {
        assert!(matches("^a\\b$", "a") && !matches("^a\\b$", "ab"));
        assert!(matches("^file\\d$", "file1") && !matches("^file\\d$", "filed"));
        assert!(matches("^[[:alpha:]]+$", "abcXYZ") && !matches("^[[:alpha:]]$", "1"));
        assert!(matches("^[[:^digit:]]$", "x") && !matches("^[[:^digit:]]$", "7"));
        assert!(matches("^\\x41\\x{263a}\\101\\0$", "A☺A\0"));
        assert!(matches("^[\\-x]$", "-") && matches("^[a-]$", "-"));
        assert!(matches("^[]a]$", "]"));
        assert!(matches("^[x[^/][^/]*y]$", "x^^y]"));
        assert!(matches("^a\\Q*.\\E+$", "a*..") && !matches("^a\\Q*.\\E+$", "a*.+"));
        assert!(matches("^a\\Q*.\\E\\+$", "a*.+"));
        assert!(matches("^a\\Q$", "a$") && matches("^a\\Q$", "a$tail"));
    }

    #[test]
    fn go_rejects_what_go_rejects() {
        for bad in [
            "a**",
            "*a",
            "(a",
            "a)",
            "[a",
            "[z-a]",
            "\\q",
            "\\1",
            "\\8",
            "[[:nope:]]",
            "\\x{110000}",
        ] {
            assert!(Regex::new(bad).is_err(), "{bad} should not compile");
        }
        assert_eq!(
            Regex::new("\\pL").unwrap_err(),
            RegexError::Unsupported("a Unicode class escape (\\p)")
        );
    }

    #[test]
    fn literal_ends_are_what_every_match_has() {
        let re = Regex::new("^(.*/)?[^/]*\\.log$").unwrap();
        assert!(re.anchored);
        assert_eq!((re.prefix.as_str(), re.suffix.as_str()), ("", ".log"));
        assert!(re.is_match("a/b.log") && re.is_match(".log") && !re.is_match("a.logs"));
        let re = Regex::new("^docs/[^/]*\\.md$").unwrap();
        assert_eq!((re.prefix.as_str(), re.suffix.as_str()), ("docs/", ".md"));
        assert!(re.is_match("docs/a.md") && !re.is_match("doc/a.md") && !re.is_match("docs/a/b.md"));
        // `\Q` without `\E` quotes the `$`: nothing is fixed at the end.
        let re = Regex::new("^a\\Q$").unwrap();
        assert_eq!((re.prefix.as_str(), re.suffix.as_str()), ("a$", ""));
        assert!(re.is_match("a$tail"));
        // A top-level alternation fixes nothing.
        let re = Regex::new("^a|b$").unwrap();
        assert!(!re.anchored && re.is_match("xb") && re.is_match("ax"));
        // Not anchored: matches may start anywhere.
        assert!(Regex::new("b\\d$").unwrap().is_match("aab1"));
    }

    #[test]
    fn nested_empty_loops_terminate() {
        assert!(matches("^(a*)*$", "aaa"));
        assert!(matches("^(^)*x$", "x"));
    }
}
