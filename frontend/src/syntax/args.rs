//! From one logical line to a [`Node`]: keyword, flags, and the arguments shaped per keyword.
//!
//! The keyword is the first word (split on ASCII blanks only). Flags are the leading `--words`
//! of the rest, read byte by byte as upstream does. The remaining text goes to the keyword's
//! argument parser, which BuildKit picks from a fixed table:
//!
//! | keyword | arguments |
//! |---|---|
//! | FROM, EXPOSE | whitespace-separated list |
//! | COPY, ADD, VOLUME | JSON array, or whitespace-separated list |
//! | RUN, CMD, ENTRYPOINT, SHELL | JSON array, or the whole text as one string |
//! | ENV, LABEL | `key value` (legacy) or `key=value ...`, as key, value, separator triples |
//! | ARG | quote-aware words |
//! | USER, WORKDIR, MAINTAINER, STOPSIGNAL | the whole text |
//! | HEALTHCHECK | the type word, then JSON array or string |
//! | ONBUILD | a nested instruction |
//! | anything else | one empty argument (the instruction layer rejects it) |

use super::error::ErrorKind;
use super::json::{JsonArgs, parse_array};
use super::{Arg, Node, Span};
use crate::go::go_lower;

/// Upstream's `[\t\v\f\r ]+`: the only blanks that separate keyword and list words.
fn is_list_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Go's `unicode.IsSpace(rune(b))` for a single byte, as upstream's byte-wise loops call it:
/// besides ASCII blanks, the bytes 0x85 and 0xA0 count (they are Latin-1 NEL and NBSP).
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// Text from a byte range that upstream may cut inside a UTF-8 sequence (byte-wise loops that
/// take 0x85/0xA0 continuation bytes for blanks). Go keeps the broken bytes; a `String` cannot,
/// so they become U+FFFD. Valid cuts, the only ones real Dockerfiles produce, are unchanged.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How many ONBUILDs may wrap each other. Upstream has no limit, but the tree is recursive (drop,
/// clone and dump walk it on the stack), and the instruction layer rejects any nesting at all.
pub const MAX_ONBUILD_DEPTH: usize = 100;

/// Builds the node for one logical line (`line` as joined, before trimming). Comments, heredocs
/// and the span are filled in by the caller.
pub(super) fn node_from_line(line: &str, escape: char, span: Span) -> Result<Node, ErrorKind> {
    node_at_depth(line, escape, span, 0)
}

fn node_at_depth(line: &str, escape: char, span: Span, depth: usize) -> Result<Node, ErrorKind> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.find(is_list_blank) {
        Some(i) => (
            &trimmed[..i],
            Some(trimmed[i..].trim_start_matches(is_list_blank)),
        ),
        None => (trimmed, None),
    };
    let (flags, args) = match rest {
        Some(rest) => extract_flags(rest),
        None => (Vec::new(), String::new()),
    };
    let keyword = go_lower(word);
    let (args, json) = dispatch(&keyword, args.trim(), escape, span, depth)?;
    Ok(Node {
        keyword,
        flags,
        args,
        json,
        heredocs: Vec::new(),
        original: line.to_owned(),
        comments: Vec::new(),
        span,
    })
}

fn dispatch(
    keyword: &str,
    args: &str,
    escape: char,
    span: Span,
    depth: usize,
) -> Result<(Vec<Arg>, bool), ErrorKind> {
    let words = |v: Vec<String>| v.into_iter().map(Arg::Word).collect::<Vec<_>>();
    Ok(match keyword {
        "from" | "expose" => (words(list(args)), false),
        "copy" | "add" | "volume" => maybe_json_or_list(args)?,
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(args)?,
        "env" => (name_values(args, "ENV", escape)?, false),
        "label" => (name_values(args, "LABEL", escape)?, false),
        "arg" => (words(parse_words(args, escape)), false),
        "user" | "workdir" | "maintainer" | "stopsignal" | "onbuild" if args.is_empty() => {
            (Vec::new(), false)
        }
        "user" | "workdir" | "maintainer" | "stopsignal" => (vec![Arg::Word(args.to_owned())], false),
        "healthcheck" => healthcheck(args)?,
        "onbuild" if depth >= MAX_ONBUILD_DEPTH => return Err(ErrorKind::OnbuildTooDeep),
        "onbuild" => {
            let inner = node_at_depth(args, escape, span, depth + 1)?;
            (vec![Arg::Nested(Box::new(inner))], false)
        }
        _ => (vec![Arg::Word(String::new())], false),
    })
}

/// Upstream's `extractBuilderFlags`: the leading `--flag` words, and the rest of the line from
/// the first word that is not one. Scanned byte by byte, so a non-ASCII byte inside a flag is
/// taken as a Latin-1 character (`--chown=é` becomes `--chown=Ã©`). Quotes group and are
/// removed; `\` (always backslash, whatever the escape directive) escapes the next byte; a lone
/// `--` ends the flags.
fn extract_flags(line: &str) -> (Vec<String>, String) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(u8),
    }
    let bytes = line.as_bytes();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos < bytes.len() {
        let b = bytes[pos];
        match phase {
            Phase::Spaces => {
                if is_space_byte(b) {
                    pos += 1;
                    continue;
                }
                if b != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                    return (flags, lossy(&bytes[pos..]));
                }
                phase = Phase::Word;
                continue;
            }
            Phase::Word if is_space_byte(b) => {
                if word == "--" {
                    return (flags, lossy(&bytes[pos..]));
                }
                if blank_ok || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                phase = Phase::Spaces;
            }
            Phase::Word if b == b'\'' || b == b'"' => {
                phase = Phase::Quote(b);
                blank_ok = true;
            }
            Phase::Quote(q) if b == q => phase = Phase::Word,
            Phase::Word | Phase::Quote(_) => {
                if b == b'\\' {
                    pos += 1;
                    match bytes.get(pos) {
                        Some(&next) => word.push(char::from(next)),
                        None => phase = Phase::Word, // a trailing lone `\` is dropped
                    }
                } else {
                    word.push(char::from(b));
                }
            }
        }
        pos += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(word);
    }
    (flags, String::new())
}

/// Upstream's `parseWords` (ENV, LABEL, ARG): splits on Unicode whitespace outside quotes and
/// keeps every character of a word, quotes and escape tokens included. The escape token keeps
/// the next character in the word (but not inside single quotes); a trailing lone one is dropped.
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let at_end = chars.peek().is_none();
        match phase {
            Phase::Spaces if c.is_whitespace() => {}
            Phase::Spaces | Phase::Word if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                phase = Phase::Spaces;
            }
            Phase::Spaces | Phase::Word => {
                phase = Phase::Word;
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if at_end {
                        continue;
                    }
                    word.push(c);
                    word.extend(chars.next());
                } else {
                    word.push(c);
                }
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                }
                if c == escape && q != '\'' {
                    if at_end {
                        phase = Phase::Word;
                        continue;
                    }
                    word.push(c);
                    word.extend(chars.next());
                } else {
                    word.push(c);
                }
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Upstream's `reWhitespace.Split(rest, -1)` on trimmed text: the words between blank runs.
fn list(args: &str) -> Vec<String> {
    if args.is_empty() {
        return Vec::new();
    }
    args.split(is_list_blank)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn json_words(words: Vec<String>) -> (Vec<Arg>, bool) {
    (words.into_iter().map(Arg::Word).collect(), true)
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or the whole text as one argument.
fn maybe_json(args: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    if args.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_array(args.trim_start()) {
        JsonArgs::Strings(words) => Ok(json_words(words)),
        JsonArgs::NotStrings => Err(ErrorKind::JsonNotStrings),
        JsonArgs::NotJson => Ok((vec![Arg::Word(args.to_owned())], false)),
    }
}

/// COPY, ADD, VOLUME: a JSON array, or a whitespace-separated list.
fn maybe_json_or_list(args: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    match parse_array(args.trim_start()) {
        JsonArgs::Strings(words) => Ok(json_words(words)),
        JsonArgs::NotStrings => Err(ErrorKind::JsonNotStrings),
        JsonArgs::NotJson => Ok((list(args).into_iter().map(Arg::Word).collect(), false)),
    }
}

/// HEALTHCHECK: the first word (found byte-wise, as upstream does), then the rest as RUN/CMD.
fn healthcheck(args: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    let bytes = args.as_bytes();
    let sep = bytes
        .iter()
        .position(|&b| is_space_byte(b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = bytes[sep..]
        .iter()
        .position(|&b| !is_space_byte(b))
        .map_or(bytes.len(), |i| sep + i);
    let (mut cmd, json) = maybe_json(&lossy(&bytes[next..]))?;
    cmd.insert(0, Arg::Word(lossy(&bytes[..sep])));
    Ok((cmd, json))
}

/// ENV and LABEL: `name value` (legacy: one pair, the value is the raw rest, separator `""`) or
/// `name=value ...` (each word split at its first `=`, separator `"="`). Values keep their
/// quotes and escapes; the instruction layer removes them.
fn name_values(args: &str, keyword: &'static str, escape: char) -> Result<Vec<Arg>, ErrorKind> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let triple = |k: &str, v: &str, sep: &str| [k, v, sep].map(|s| Arg::Word(s.to_owned()));
    if !first.contains('=') {
        let Some(i) = args.find(is_list_blank) else {
            return Err(ErrorKind::MissingValue { keyword });
        };
        let value = args[i..].trim_start_matches(is_list_blank);
        return Ok(triple(&args[..i], value, "").into());
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals { word: word.clone() });
        };
        out.extend(triple(name, value, "="));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(line: &str) -> Result<String, ErrorKind> {
        node_from_line(line, '\\', Span { start: 1, end: 1 }).map(|n| n.dump())
    }

    #[test]
    fn flags_are_read_byte_wise() {
        assert_eq!(
            extract_flags("--a=\"x y\" --b='p q' --c=\\\"z src"),
            (
                vec!["--a=x y".into(), "--b=p q".into(), "--c=\"z".into()],
                "src".into()
            )
        );
        assert_eq!(extract_flags("--x -- a b"), (vec!["--x".into()], " a b".into()));
        assert_eq!(extract_flags("-x a"), (vec![], "-x a".into()));
        assert_eq!(
            extract_flags("--chown=é a"),
            (vec!["--chown=Ã©".into()], "a".into())
        );
        assert_eq!(
            extract_flags("--a --b"),
            (vec!["--a".into(), "--b".into()], String::new())
        );
        assert_eq!(extract_flags("--a\\"), (vec!["--a".into()], String::new()));
        assert_eq!(extract_flags("--"), (vec![], String::new()));
        assert_eq!(extract_flags("--a=''"), (vec!["--a=".into()], String::new()));
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"abc="123 456" def"#, '\\'),
            [r#"abc="123 456""#, "def"]
        );
        assert_eq!(parse_words(r"k=v\ w x\", '\\'), [r"k=v\ w", "x"]);
        assert_eq!(
            parse_words(r#"a="x\"y" b='p\'"#, '\\'),
            [r#"a="x\"y""#, r"b='p\'"]
        );
        assert_eq!(parse_words("'' \"\"", '\\'), ["''", "\"\""]);
        assert_eq!(parse_words("a\u{a0}b", '\\'), ["a", "b"]);
        assert_eq!(parse_words("a`\"b c", '`'), ["a`\"b", "c"]);
    }

    #[test]
    fn shapes_per_keyword() {
        assert_eq!(dump("FROM a AS b").unwrap(), r#"from "a" "AS" "b""#);
        assert_eq!(dump("COPY \"a b\" c").unwrap(), r#"copy "\"a" "b\"" "c""#);
        assert_eq!(dump("CMD []").unwrap(), "cmd");
        assert_eq!(dump("ENV a b  c").unwrap(), r#"env "a" "b  c" """#);
        assert_eq!(dump("LABEL a=b c=").unwrap(), r#"label "a" "b" "=" "c" "" "=""#);
        assert_eq!(dump("HEALTHCHECK CMD").unwrap(), r#"healthcheck "CMD""#);
        assert_eq!(
            dump("HEALTHCHECK --x=1 CMD [\"a\"]").unwrap(),
            r#"healthcheck ["--x=1"] "CMD" "a""#
        );
        assert_eq!(
            dump("ONBUILD ONBUILD RUN x").unwrap(),
            r#"onbuild (onbuild (run "x"))"#
        );
        assert_eq!(dump("WORKDIR   /a b  ").unwrap(), r#"workdir "/a b""#);
        assert_eq!(dump("Foo bar").unwrap(), r#"foo """#);
        assert_eq!(dump("").unwrap(), r#""""#);
        assert_eq!(dump("RUN\u{a0}x").unwrap(), "run\u{a0}x \"\"");
    }

    #[test]
    fn shape_errors() {
        assert_eq!(dump("ENV PATH"), Err(ErrorKind::MissingValue { keyword: "ENV" }));
        assert_eq!(
            dump("LABEL a\u{a0}b"),
            Err(ErrorKind::MissingValue { keyword: "LABEL" })
        );
        assert_eq!(
            dump("ENV x= y"),
            Err(ErrorKind::MissingEquals { word: "y".into() })
        );
        assert_eq!(dump("CMD [\"a\", 1]"), Err(ErrorKind::JsonNotStrings));
        assert_eq!(dump("ONBUILD VOLUME [1]"), Err(ErrorKind::JsonNotStrings));
        let deepest = format!("{}RUN x", "ONBUILD ".repeat(MAX_ONBUILD_DEPTH));
        assert!(
            dump(&deepest)
                .unwrap()
                .ends_with(&("(run \"x\")".to_owned() + &")".repeat(MAX_ONBUILD_DEPTH - 1)))
        );
        assert_eq!(
            dump(&format!("ONBUILD {deepest}")),
            Err(ErrorKind::OnbuildTooDeep)
        );
    }

    #[test]
    fn json_flag() {
        let node = |l| node_from_line(l, '\\', Span { start: 1, end: 1 }).unwrap();
        assert!(node("RUN [\"a\"]").json && !node("RUN a").json && node("CMD []").json);
        assert!(node("HEALTHCHECK CMD [\"a\"]").json && !node("ONBUILD RUN [\"a\"]").json);
    }
}
