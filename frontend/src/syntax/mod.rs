//! Bytes to a tree of [`Node`]s with line spans, as BuildKit's `parser` package reads them.
//!
//! [`parse`] walks the physical lines once, top to bottom:
//!
//! 1. The leading block of `# name=value` lines sets the [`Directives`] (`syntax`, `escape`,
//!    `check`); the escape token (`\` or `` ` ``) then governs the rest.
//! 2. Blank and comment lines are skipped; the comments right above an instruction are kept as
//!    its [`Node::comments`].
//! 3. An instruction's first line pulls in continuation lines while a line ends with the escape
//!    token (comment and blank lines in between are dropped, blank ones with a [`Warning`]), and
//!    the joined logical line becomes a [`Node`]: keyword, `--flags`, arguments shaped per
//!    keyword, and whether they were a JSON array ([`Node::json`]).
//! 4. RUN, COPY and ADD in shell form (and ONBUILD around them) then read the bodies of their
//!    heredocs (`<<EOF`) from the lines that follow.
//!
//! The result dumps back to BuildKit's s-expression form with [`Dockerfile::dump`], byte for byte;
//! errors carry BuildKit's wording and the line they concern. Nothing here expands variables,
//! removes quotes or validates flags: that is the instruction layer's job.
//!
//! ```
//! use kiln_frontend::syntax::{parse, Arg};
//!
//! let df = parse(b"# escape=`\nFROM alpine AS build\nRUN echo `\n    hi\n").unwrap();
//! assert_eq!(df.directives.escape.as_char(), '`');
//! let run = &df.instructions[1];
//! assert_eq!(run.keyword, "run");
//! assert_eq!(run.args, [Arg::Word("echo     hi".to_owned())]);
//! assert_eq!((run.span.start, run.span.end), (3, 4));
//! assert_eq!(df.dump(), "(from \"alpine\" \"AS\" \"build\")\n(run \"echo     hi\")");
//! ```
//!
//! Known departures from upstream, all on inputs no real Dockerfile has: kiln refuses input that
//! is not UTF-8 (BuildKit parses bytes), so byte-wise cuts that upstream makes inside a UTF-8
//! sequence come out as U+FFFD; error lines name the offending line itself where upstream is
//! off by one for directive and line-length errors; and ONBUILD may wrap ONBUILD at most
//! [`MAX_ONBUILD_DEPTH`] times (the tree is recursive; upstream has no limit).

mod args;
mod directives;
mod dump;
mod error;
mod heredoc;
mod json;
mod lines;
mod node;
#[cfg(test)]
mod proptests;

pub use crate::go::go_quote;
pub use args::MAX_ONBUILD_DEPTH;
pub use error::{Error, ErrorKind, WordError};
pub use node::{Arg, Directives, Dockerfile, Escape, Heredoc, Node, Span, Warning};

use directives::{DirectiveParser, Seen};
use lines::{Line, PhysicalLines, is_blank, is_comment, trim_continuation, trim_newline};

/// Parses a Dockerfile.
///
/// Fails with BuildKit's message when a directive is repeated or invalid, an instruction's
/// arguments are malformed (`ENV` without a value, a JSON array with a non-string), a heredoc is
/// not terminated, a line is longer than 65535 bytes, the input is not UTF-8, or there is no
/// instruction at all. Unknown instructions parse (the instruction layer rejects them).
pub fn parse(source: &[u8]) -> Result<Dockerfile, Error> {
    Parser::new(source).run()
}

/// The state of one parse.
struct Parser<'a> {
    lines: PhysicalLines<'a>,
    directives: DirectiveParser,
    /// Comments seen since the last instruction (BuildKit's `PrevComment`).
    comments: Vec<String>,
    instructions: Vec<Node>,
    warnings: Vec<Warning>,
}

impl<'a> Parser<'a> {
    fn new(source: &'a [u8]) -> Self {
        Parser {
            lines: PhysicalLines::new(source),
            directives: DirectiveParser::default(),
            comments: Vec::new(),
            instructions: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Dockerfile, Error> {
        while let Some(line) = self.lines.next_line()? {
            self.line(line)?;
        }
        if self.instructions.is_empty() {
            return Err(Error::new(ErrorKind::NoInstructions, self.lines.number()));
        }
        // Upstream stops reading at an over-long line but still reports the instructions
        // before it as "no instructions" first; otherwise the scanner's error wins.
        if let Some(line) = self.lines.too_long_at() {
            return Err(Error::new(ErrorKind::LineTooLong, line));
        }
        Ok(Dockerfile {
            directives: self.directives.into_directives(),
            instructions: self.instructions,
            warnings: self.warnings,
        })
    }

    /// Handles a line met between instructions: a directive, comment or blank line, or the
    /// first line of an instruction.
    fn line(&mut self, line: Line<'a>) -> Result<(), Error> {
        let mut raw = line.text;
        if line.number == 1 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        if is_comment(raw) {
            self.note_comment(raw);
        }
        let text = trim_newline(raw).trim_start();
        let seen = self
            .directives
            .offer(text, line.number)
            .map_err(|kind| Error::new(kind, line.number))?;
        if seen == Seen::Directive {
            self.comments.pop();
        }
        let text = if is_comment(text) { "" } else { text };
        let (first, ends) = trim_continuation(text, self.directives.escape());
        if ends && first.is_empty() {
            return Ok(());
        }
        let logical = self.join_continuations(first, ends)?;
        self.instruction(&logical, line.number)
    }

    /// Upstream's `PrevComment` bookkeeping. It drops the line's first byte (not its `#`, when
    /// the comment is indented) and trims; an empty comment clears the ones collected so far.
    fn note_comment(&mut self, raw: &str) {
        let comment = String::from_utf8_lossy(&raw.as_bytes()[1..]).trim().to_owned();
        if comment.is_empty() {
            self.comments.clear();
        } else {
            self.comments.push(comment);
        }
    }

    /// Reads the continuation lines of an instruction whose first line is `first`.
    fn join_continuations(&mut self, first: &str, mut ends: bool) -> Result<String, Error> {
        let escape = self.directives.escape();
        let mut logical = first.to_owned();
        let mut had_blank = false;
        while !ends {
            let Some(line) = self.lines.next_line()? else {
                break; // an open continuation at the end of input just ends the instruction
            };
            if is_comment(line.text) {
                continue;
            }
            let text = trim_newline(line.text);
            if is_blank(text) {
                had_blank = true;
                continue;
            }
            let (part, end) = trim_continuation(text, escape);
            logical.push_str(part);
            ends = end;
        }
        if had_blank {
            self.warnings.push(Warning {
                line: self.lines.number(),
                message: format!("Empty continuation line found in: {logical}"),
            });
        }
        Ok(logical)
    }

    /// Builds the node for a logical line starting at line `start`, reads its heredoc bodies,
    /// and records it.
    fn instruction(&mut self, logical: &str, start: usize) -> Result<(), Error> {
        let escape = self.directives.escape();
        let span = Span {
            start,
            end: self.lines.number(),
        };
        let mut node = args::node_from_line(logical, escape, span).map_err(|kind| Error::new(kind, start))?;
        node.comments = std::mem::take(&mut self.comments);
        if can_contain_heredoc(&node) && logical.contains("<<") {
            let openers = heredoc::openers(logical).map_err(|kind| Error::new(kind, start))?;
            for opener in openers {
                let content = self.heredoc_body(&opener.name, opener.chomp, start)?;
                node.heredocs.push(Heredoc {
                    content: if opener.chomp {
                        heredoc::chomp(&content)
                    } else {
                        content
                    },
                    name: opener.name,
                    expand: opener.expand,
                    chomp: opener.chomp,
                    fd: opener.fd,
                });
            }
        }
        set_end(&mut node, self.lines.number());
        self.instructions.push(node);
        Ok(())
    }

    /// The raw lines (endings included) up to the terminator line `name`, compared without its
    /// line ending and, with `<<-`, without leading tabs.
    fn heredoc_body(&mut self, name: &str, chomp: bool, start: usize) -> Result<String, Error> {
        let mut content = String::new();
        while let Some(line) = self.lines.next_line()? {
            let mut candidate = trim_newline(line.text);
            if chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == name {
                return Ok(content);
            }
            content.push_str(line.text);
        }
        Err(Error::new(ErrorKind::UnterminatedHeredoc, start))
    }
}

/// Whether upstream looks for heredocs: RUN, COPY, ADD (or ONBUILD wrapping one) in shell form.
fn can_contain_heredoc(node: &Node) -> bool {
    let inner = match (node.keyword.as_str(), node.args.first()) {
        ("onbuild", Some(Arg::Nested(inner))) => inner,
        _ => node,
    };
    matches!(inner.keyword.as_str(), "run" | "copy" | "add") && !inner.json
}

/// Sets the last line of `node` and of the instruction nested in it (ONBUILD), which upstream
/// leaves unset and kiln gives the span of the line that holds it.
fn set_end(node: &mut Node, end: usize) {
    node.span.end = end;
    for arg in &mut node.args {
        if let Arg::Nested(inner) = arg {
            set_end(inner, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src.as_bytes()).unwrap().dump()
    }

    fn err(src: &[u8]) -> (String, Option<usize>) {
        let e = parse(src).unwrap_err();
        (e.to_string(), e.line())
    }

    #[test]
    fn comments_attach_like_prev_comment() {
        let df = parse(
            b"# syntax=x\n# about base\n\n#  the base  \nFROM a\n  # indented\n#\n# build stage\nFROM b\n",
        )
        .unwrap();
        assert_eq!(df.instructions[0].comments, ["about base", "the base"]);
        assert_eq!(df.instructions[1].comments, ["build stage"]);
        let df = parse(b"  # indented\nFROM a\n").unwrap();
        assert_eq!(df.instructions[0].comments, ["# indented"]);
    }

    #[test]
    fn empty_continuation_warns() {
        let df = parse(b"FROM a\nRUN a \\\n\n  b\n").unwrap();
        assert_eq!(
            df.warnings,
            [Warning {
                line: 4,
                message: "Empty continuation line found in: RUN a   b".into()
            }]
        );
        assert!(
            parse(b"FROM a\nRUN a \\\n# c\n  b\n")
                .unwrap()
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn spans_and_heredocs() {
        let df = parse(b"FROM a\nONBUILD RUN <<EOF\n\tx\nEOF\nCOPY <<-A <<B /d\n\t\ta\n\tA\nb\nB\n").unwrap();
        let onbuild = &df.instructions[1];
        assert_eq!((onbuild.span.start, onbuild.span.end), (2, 4));
        assert_eq!(onbuild.heredocs[0].content, "\tx\n");
        let Arg::Nested(inner) = &onbuild.args[0] else {
            panic!("not nested")
        };
        assert_eq!(inner.span, onbuild.span);
        let copy = &df.instructions[2];
        assert_eq!((copy.span.start, copy.span.end), (5, 9));
        assert_eq!(
            copy.heredocs
                .iter()
                .map(|h| h.content.as_str())
                .collect::<Vec<_>>(),
            ["a\n", "b\n"]
        );
        assert!(copy.heredocs[0].chomp && !copy.heredocs[1].chomp);
    }

    #[test]
    fn directives_are_recorded() {
        let df = parse(b"\xef\xbb\xbf# syntax=docker/dockerfile:1\n#check=skip=all\n# escape=`\nFROM a\n")
            .unwrap();
        assert_eq!(df.directives.syntax, Some(("docker/dockerfile:1".into(), 1)));
        assert_eq!(df.directives.check, Some(("skip=all".into(), 2)));
        assert_eq!(df.directives.escape, Escape::Backtick);
        assert!(df.instructions[0].comments.is_empty());
    }

    #[test]
    fn located_errors() {
        assert_eq!(err(b""), ("file with no instructions".into(), None));
        assert_eq!(err(b"# a\n\n"), ("file with no instructions".into(), Some(2)));
        assert_eq!(
            err(b"# escape=\\\n# escape=`\n"),
            ("only one escape parser directive can be used".into(), Some(2))
        );
        assert_eq!(
            err(b"FROM a\nENV x\n"),
            ("ENV must have two arguments".into(), Some(2))
        );
        assert_eq!(
            err(b"FROM a\nRUN <<EOF\nx\n"),
            ("unterminated heredoc".into(), Some(2))
        );
        assert_eq!(
            err(b"FROM a\nRUN \xc3\x28\n"),
            ("invalid UTF-8: byte 0xc3 at column 5".into(), Some(2))
        );
        let long = [b"FROM a\n".as_slice(), &vec![b'a'; 70_000]].concat();
        assert_eq!(
            err(&long),
            (
                "dockerfile line greater than max allowed size of 65535".into(),
                Some(2)
            )
        );
        let long_first = [&vec![b'a'; 70_000][..], b"\nFROM a\n"].concat();
        assert_eq!(err(&long_first), ("file with no instructions".into(), None));
    }

    #[test]
    fn pathological_nesting_fails_cleanly() {
        let onbuilds = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8000));
        assert_eq!(
            err(onbuilds.as_bytes()),
            ("ONBUILD nested more than 100 levels deep".into(), Some(2))
        );
        // The first lexing pass swallows the error (no heredoc), as upstream swallows its errors.
        let substs = format!("FROM a\nRUN <<EOF {}x\nEOF\n", "${a:-\"".repeat(8000));
        assert_eq!(parse(substs.as_bytes()).unwrap().instructions.len(), 3);
    }

    #[test]
    fn odd_lines() {
        assert_eq!(dump("FROM a\n\\\n"), "(from \"a\")\n(\"\")");
        assert_eq!(dump("FROM a \\\n  # c\n  AS b"), "(from \"a\" \"AS\" \"b\")");
        assert_eq!(
            dump("FROM a\nRUN <<'EOF\nEOF\n"),
            "(from \"a\")\n(run \"<<'EOF\")\n(eof \"\")"
        );
    }
}
