//! Properties of [`parse`] on generated input: it never panics or hangs, every error is located,
//! and a parsed file rebuilt from its own instructions parses to the same dump.

use proptest::prelude::*;

use super::{Escape, go_quote, parse};
use crate::syntax::{Arg, Dockerfile};

/// Rebuilds a Dockerfile from a parse: the escape directive, then each instruction's logical line
/// followed by its heredoc bodies and terminators. A blank first line keeps line 1 (and its BOM
/// stripping) away from the instructions.
fn render(df: &Dockerfile) -> String {
    let mut out = String::from(match df.directives.escape {
        Escape::Backtick => "# escape=`\n",
        Escape::Backslash => "\n",
    });
    for node in &df.instructions {
        out.push_str(&node.original);
        out.push('\n');
        for heredoc in &node.heredocs {
            out.push_str(&heredoc.content);
            out.push_str(&heredoc.name);
            out.push('\n');
        }
    }
    out
}

/// Fragments that exercise the parser's corners when glued into lines.
const FRAGMENTS: &[&str] = &[
    "FROM",
    "from",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "LABEL",
    "ARG",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "HEALTHCHECK",
    "ONBUILD",
    "VOLUME",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "STOPSIGNAL",
    "MAINTAINER",
    "FOO",
    " ",
    "  ",
    "\t",
    "\u{b}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}",
    "\r",
    "\\",
    "`",
    "\\\\",
    "#",
    "# escape=`",
    "# escape=\\",
    "# syntax=x",
    "# check=a",
    "--from=a",
    "--mount=type=cache",
    "--",
    "-x",
    "=",
    "a=b",
    "k=\"v w\"",
    "'q'",
    "\"",
    "'",
    "[",
    "]",
    "[\"a\", \"b\"]",
    "[1]",
    "[\"\\u00e9\"]",
    ",",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "3<<X",
    "<< EOF",
    "<<<",
    "EOF",
    "\tEOF",
    "X",
    "$A",
    "${A:-b}",
    "${",
    "é",
    "日本",
    "😀",
    "\u{0}",
    "\u{7f}",
    "CMD",
    "NONE",
    "AS",
    "x",
];

fn soup_line() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..5).prop_map(|parts| parts.concat())
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(soup_line(), 0..12), any::<bool>()).prop_map(|(lines, crlf)| {
        let sep = if crlf { "\r\n" } else { "\n" };
        lines.join(sep).into_bytes()
    })
}

fn check_located(source: &[u8]) {
    match parse(source) {
        Ok(df) => assert!(!df.instructions.is_empty()),
        Err(e) => assert!(e.line().is_some() || source.is_empty(), "unlocated error {e:?}"),
    }
}

/// Re-parsing the rendered file gives the same dump and the same heredocs.
fn check_round_trip(source: &[u8]) -> Result<(), TestCaseError> {
    let Ok(df) = parse(source) else {
        return Ok(());
    };
    // A logical line that is only blanks (a lone continuation) cannot be written on one line.
    prop_assume!(df.instructions.iter().all(|n| !n.original.trim().is_empty()));
    let rendered = render(&df);
    let again =
        parse(rendered.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e} in {rendered:?}")))?;
    prop_assert_eq!(again.dump(), df.dump(), "rendered: {:?}", rendered);
    let heredocs = |d: &Dockerfile| {
        d.instructions
            .iter()
            .map(|n| n.heredocs.clone())
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(heredocs(&again), heredocs(&df));
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(source in prop::collection::vec(any::<u8>(), 0..400)) {
        check_located(&source);
    }

    #[test]
    fn line_soup_never_panics(source in soup()) {
        check_located(&source);
    }

    #[test]
    fn line_soup_round_trips(source in soup()) {
        check_round_trip(&source)?;
    }

    #[test]
    fn json_exec_form_round_trips(words in prop::collection::vec(any::<String>(), 0..5)) {
        let json = serde_json::to_string(&words).unwrap();
        let df = parse(format!("CMD {json}\n").as_bytes()).unwrap();
        let node = &df.instructions[0];
        prop_assert!(node.json);
        let args: Vec<Arg> = words.iter().cloned().map(Arg::Word).collect();
        prop_assert_eq!(&node.args, &args);
        let quoted: String = words.iter().flat_map(|w| [" ".to_owned(), go_quote(w)]).collect();
        prop_assert_eq!(df.dump(), format!("(cmd{quoted})"));
    }
}
