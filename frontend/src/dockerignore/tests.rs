//! Unit tests for ignore files: reading, errors, evaluation order, the walker rules and Docker quirks.

use super::*;

fn patterns(text: &str) -> Patterns {
    parse(text.as_bytes()).unwrap()
}

#[test]
fn reads_files_like_docker() {
    let p = patterns("\u{feff}# comment\n #not-comment\r\n\n  ./build/  \n! /dist/keep\n/\n");
    let texts: Vec<(&str, bool)> = p
        .patterns()
        .iter()
        .map(|p| (p.text(), p.is_exception()))
        .collect();
    assert_eq!(
        texts,
        [
            ("#not-comment", false),
            ("build", false),
            ("dist/keep", true),
            ("/", false)
        ]
    );
    assert!(p.has_exceptions());
    assert!(patterns("").is_empty() && patterns("# only\n\n").is_empty());
}

#[test]
fn errors_name_line_and_pattern() {
    assert_eq!(
        parse(b"ok\n!\n").unwrap_err(),
        Error::IllegalExclusion { line: 2 }
    );
    assert_eq!(parse(b"!/").unwrap_err(), Error::IllegalExclusion { line: 1 });
    let err = parse(b"# x\nsrc/[a-\n").unwrap_err();
    assert_eq!(
        err,
        Error::BadPattern {
            line: 2,
            pattern: "src/[a-".to_string()
        }
    );
    assert_eq!(err.to_string(), "line 2: syntax error in pattern \"src/[a-\"");
    // Accepted by filepath.Match, rejected by Go's regexp: Docker fails at matching time, kiln at once.
    assert!(matches!(parse(b"a\\q").unwrap_err(), Error::BadPattern { .. }));
    assert!(matches!(parse(b"a\\pL").unwrap_err(), Error::Unsupported { .. }));
    let long = vec![b'a'; 70_000];
    assert_eq!(parse(&long).unwrap_err(), Error::LineTooLong { line: 1 });
}

#[test]
fn last_match_wins_and_ancestors_count() {
    let p = patterns("*.md\n!README*.md\nREADME-secret.md\ndocs\n");
    assert!(p.excludes("CHANGES.md"));
    assert!(!p.excludes("README.md"));
    assert!(p.excludes("README-secret.md"));
    assert!(!p.excludes("sub/CHANGES.md"), "*.md is anchored at the root");
    assert!(p.excludes("docs/deep/file"));
    assert!(!p.excludes(""), "the root is never excluded");
}

#[test]
fn walker_state_differs_from_stateless_matching() {
    let p = patterns("docs/a\n!docs\n");
    assert!(p.excludes("docs/a"));
    assert!(!p.matches_or_parent_matches("docs/a"));
    // With no parent record, `check` falls back to trying the ancestors, like patternmatcher.
    assert!(!p.matcher().check("docs/a", &MatchState::root()).excluded);
}

#[test]
fn descends_only_where_exceptions_may_reach() {
    assert!(!patterns("build\n").should_descend("build"));
    let literal = patterns("build\n!build/keep/**\n");
    assert!(literal.should_descend("build") && literal.should_descend("build/keep"));
    assert!(!literal.should_descend("build/other"));
    assert!(patterns("*\n!src/*.rs\n").should_descend("anything"));
    // fsutil's quirk: `!d/*/**` counts as the literal `d`, so `d/x` is skipped although the exception
    // would match `d/x/y`.
    let quirk = patterns("**\n!d/*/**\n");
    assert!(quirk.should_descend("d") && !quirk.should_descend("d/x"));
    assert!(quirk.excludes("d/x/y"));
    assert!(
        !quirk
            .matcher()
            .check("d/x/y", &quirk.matcher().check("d/x", &MatchState::root()).state)
            .excluded
    );
}

#[test]
fn regex_quirks_are_kept() {
    let p = patterns("a[^b]c\n[!x]y\nf\\d\n");
    assert!(p.excludes("a/c"), "a negated class matches '/'");
    assert!(p.excludes("!y") && !p.excludes("zy"), "[!x] is not negation");
    assert!(p.excludes("f7") && !p.excludes("fd"));
}

#[test]
fn exclude_lists_keep_leading_slashes() {
    let list = Patterns::new(["/abs", "rel/*.o", ""]).unwrap();
    assert_eq!(list.patterns().len(), 2);
    assert!(!list.excludes("abs"));
    assert!(list.excludes("rel/x.o"));
    assert_eq!(
        Patterns::new(["ok", "["]).unwrap_err(),
        Error::BadPattern {
            line: 2,
            pattern: "[".to_string()
        }
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    fn ignore_file() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::string::string_regex(r"[ab/*?\[\]^\\!\-:.{}()$ é\n#dpQEx0-9]{0,48}")
                .unwrap()
                .prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..48),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics(text in ignore_file(), path in r"[ab/.é\n\-!\[\]]{0,16}") {
            let Ok(patterns) = parse(&text) else { return Ok(()) };
            let excluded = patterns.excludes(&path);
            let _ = patterns.matches_or_parent_matches(&path);
            let _ = patterns.should_descend(&path);
            let verdict = patterns.matcher().check(&path, &MatchState::root());
            if patterns.is_empty() {
                prop_assert!(!excluded && !verdict.excluded);
            }
        }
    }
}
