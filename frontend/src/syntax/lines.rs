//! Physical lines, and the rules that join them into logical lines.
//!
//! BuildKit reads a Dockerfile with a `bufio.Scanner` that splits after each `\n` and keeps the
//! line ending. Its buffer caps a line at 65536 bytes (with the `\n`); a longer line stops the
//! scan, and the lines before it are still parsed. [`PhysicalLines`] reproduces that, and also
//! checks that each line is UTF-8 as it is read (kiln's tree holds text).
//!
//! A logical line is a first line plus the continuation lines its escape token pulls in. The
//! helpers here decide, for one physical line, whether it is a comment, blank, or ends with a
//! continuation (see [`trim_continuation`]).

use super::error::{Error, ErrorKind};

/// The longest token BuildKit's scanner accepts: `bufio.MaxScanTokenSize`.
const MAX_TOKEN: usize = 64 * 1024;

/// One physical line: its 1-based number and its text, line ending included.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) number: usize,
    pub(super) text: &'a str,
}

/// Splits input into physical lines the way BuildKit's scanner does.
#[derive(Debug)]
pub(super) struct PhysicalLines<'a> {
    src: &'a [u8],
    pos: usize,
    number: usize,
    /// Set once a too-long line has stopped the scan; reported after parsing.
    too_long: bool,
}

impl<'a> PhysicalLines<'a> {
    pub(super) fn new(src: &'a [u8]) -> Self {
        PhysicalLines {
            src,
            pos: 0,
            number: 0,
            too_long: false,
        }
    }

    /// The number of the last line read (0 before the first).
    pub(super) fn number(&self) -> usize {
        self.number
    }

    /// Whether the scan stopped at a line over the size limit; that line's number if so.
    pub(super) fn too_long_at(&self) -> Option<usize> {
        self.too_long.then_some(self.number + 1)
    }

    /// The next line, `Ok(None)` at the end of input or after a too-long line, or an error when
    /// the line is not UTF-8.
    pub(super) fn next_line(&mut self) -> Result<Option<Line<'a>>, Error> {
        if self.too_long || self.pos >= self.src.len() {
            return Ok(None);
        }
        let rest = &self.src[self.pos..];
        let (len, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (rest.len(), false),
        };
        // With a newline the whole token must fit the buffer; without one (the last line) the
        // scanner needs one spare byte to learn that the input has ended.
        if len > MAX_TOKEN || (!terminated && len == MAX_TOKEN) {
            self.too_long = true;
            return Ok(None);
        }
        let bytes = &rest[..len];
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let kind = ErrorKind::InvalidUtf8 {
                byte: bytes[at],
                column: at + 1,
            };
            Error::new(kind, self.number + 1)
        })?;
        self.pos += len;
        self.number += 1;
        Ok(Some(Line {
            number: self.number,
            text,
        }))
    }
}

/// `line` without every trailing `\r` and `\n`.
pub(super) fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Whether `line` is a comment: its first non-whitespace character is `#`.
pub(super) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Whether `line` holds only whitespace (an "empty continuation line").
pub(super) fn is_blank(line: &str) -> bool {
    line.trim_start().is_empty()
}

/// Applies BuildKit's continuation rule to one (newline-trimmed) line: it continues when it ends
/// with the escape token followed only by spaces and tabs, and that token is either the first
/// character or not itself preceded by the escape token. Returns the line with the token and the
/// blanks after it removed, and `true` when the line ends the instruction (does not continue).
///
/// Upstream uses the regular expression `([^E])E[ \t]*$|^E[ \t]*$`, so `x \\\` (an escaped escape
/// then a continuation) does not continue; that limitation is kept.
pub(super) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, false)
    } else {
        (line, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(src: &[u8]) -> Vec<String> {
        let mut lines = PhysicalLines::new(src);
        let mut out = vec![];
        while let Some(line) = lines.next_line().unwrap() {
            out.push(line.text.to_owned());
        }
        out
    }

    #[test]
    fn splits_after_newlines_keeping_endings() {
        assert_eq!(all_lines(b"a\r\nb\n\nc"), ["a\r\n", "b\n", "\n", "c"]);
        assert!(all_lines(b"").is_empty());
    }

    #[test]
    fn size_limit_matches_bufio_scanner() {
        let ok = [vec![b'a'; MAX_TOKEN - 1], b"\n".to_vec()].concat();
        assert_eq!(all_lines(&ok).len(), 1);
        let long = [vec![b'a'; MAX_TOKEN], b"\nx\n".to_vec()].concat();
        let mut lines = PhysicalLines::new(&long);
        assert!(lines.next_line().unwrap().is_none());
        assert_eq!(lines.too_long_at(), Some(1));
        // Unterminated last line: one byte less is allowed.
        assert_eq!(all_lines(&vec![b'a'; MAX_TOKEN - 1]).len(), 1);
        let exact = vec![b'a'; MAX_TOKEN];
        let mut lines = PhysicalLines::new(&exact);
        assert!(lines.next_line().unwrap().is_none());
        assert!(lines.too_long_at().is_some());
    }

    #[test]
    fn invalid_utf8_is_located() {
        let mut lines = PhysicalLines::new(b"FROM a\nRUN \xff\n");
        assert!(lines.next_line().unwrap().is_some());
        let err = lines.next_line().unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.to_string(), "invalid UTF-8: byte 0xff at column 5");
    }

    #[test]
    fn continuation_rule() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\ \t", '\\'), ("a", false));
        assert_eq!(trim_continuation("\\  ", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("x \\\\\\", '\\'), ("x \\\\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
        assert_eq!(trim_continuation("a \\ x", '\\'), ("a \\ x", true));
    }
}
