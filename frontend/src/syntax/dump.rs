//! BuildKit's s-expression dump of a parsed Dockerfile, byte for byte.
//!
//! `(keyword ["--flag" ...] "arg" ...)`: the keyword lowercased, the flags in Go's `%q` slice
//! syntax, then each argument Go-quoted, or dumped in parentheses when it is ONBUILD's nested
//! instruction. The root dump is the instruction dumps joined by `\n`. Strings are quoted with
//! [`go_quote`], a reimplementation of Go's `strconv.Quote` (its printability rules differ from
//! Rust's `escape_debug`).

use super::{Arg, Dockerfile, Node};
use crate::go::go_quote;

impl Node {
    /// BuildKit's s-expression for this instruction, without the surrounding parentheses the root
    /// adds: `from "alpine" "AS" "build"`, `copy ["--from=build"] "/a" "/b"`,
    /// `onbuild (run "make")`.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.clone();
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&go_quote(flag));
            }
            out.push(']');
        }
        for arg in &self.args {
            out.push(' ');
            match arg {
                Arg::Word(word) => out.push_str(&go_quote(word)),
                Arg::Nested(node) => {
                    out.push('(');
                    out.push_str(&node.dump());
                    out.push(')');
                }
            }
        }
        // Upstream trims the whole string; only an empty keyword (a lone continuation line) leaves
        // whitespace to trim.
        out.trim().to_owned()
    }
}

impl Dockerfile {
    /// BuildKit's dump of the whole file: one `(instruction)` per line, joined by `\n` (no final
    /// newline; BuildKit's golden `result` files hold this plus `\n`).
    ///
    /// ```
    /// let df = kiln_frontend::syntax::parse(b"FROM alpine\nRUN [\"echo\", \"hi\"]\n").unwrap();
    /// assert_eq!(df.dump(), "(from \"alpine\")\n(run \"echo\" \"hi\")");
    /// ```
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.instructions.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push('(');
            out.push_str(&node.dump());
            out.push(')');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_shapes() {
        let node = Node {
            keyword: "onbuild".into(),
            flags: vec!["--foo".into()],
            args: vec![Arg::Nested(Box::new(Node {
                keyword: "run".into(),
                flags: vec![],
                args: vec![Arg::Word("x".into())],
                json: false,
                heredocs: vec![],
                original: "RUN x".into(),
                comments: vec![],
                span: super::super::Span { start: 1, end: 1 },
            }))],
            json: false,
            heredocs: vec![],
            original: "ONBUILD --foo RUN x".into(),
            comments: vec![],
            span: super::super::Span { start: 1, end: 1 },
        };
        assert_eq!(node.dump(), r#"onbuild ["--foo"] (run "x")"#);
    }
}
