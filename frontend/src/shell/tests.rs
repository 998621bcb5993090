//! Unit tests for word expansion: env kinds, modes, errors, names, limits, and a no-panic property.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

fn env() -> Vec<(&'static str, &'static str)> {
    vec![("a", "1"), ("empty", ""), ("spaced", "x  y"), ("a", "2")]
}

#[test]
fn every_env_kind_answers_the_same() {
    let pairs = env();
    let hash: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let tree: BTreeMap<String, String> = hash.clone().into_iter().collect();
    let lexer = Lexer::default();
    for env in [&pairs as &dyn Env, &hash, &tree, &pairs.as_slice()] {
        assert_eq!(
            lexer.process_word("$a-${empty:-d}-${empty-d}", env).unwrap(),
            "2-d-"
        );
    }
}

#[test]
fn last_duplicate_wins_in_lists() {
    let list = [
        ("k".to_string(), "old".to_string()),
        ("k".to_string(), "new".to_string()),
    ];
    assert_eq!(Lexer::default().process_word("$k", &list).unwrap(), "new");
}

#[test]
fn reports_used_names_including_unused_defaults() {
    let expansion = Lexer::default()
        .process_word_with_matches("${a:-$b}$1${c}", &env())
        .unwrap();
    assert_eq!(expansion.value, "2");
    assert_eq!(expansion.matched.iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(expansion.unmatched.iter().collect::<Vec<_>>(), ["1", "b", "c"]);
    assert_eq!(expansion.used_names().len(), 4);
}

#[test]
fn splits_unquoted_expansions_only() {
    let lexer = Lexer::default();
    assert_eq!(
        lexer.process_words("p$spaced \"$spaced\" ''", &env()).unwrap(),
        ["px", "y", "x  y"]
    );
    assert_eq!(lexer.process_words("a\\ b", &env()).unwrap(), ["a b"]);
}

#[test]
fn backtick_escape_leaves_backslashes_alone() {
    let lexer = Lexer::new('`');
    assert_eq!(lexer.escape(), '`');
    assert_eq!(
        lexer.process_word(r"C:\dir\$a `$a", &env()).unwrap(),
        r"C:\dir\2 $a"
    );
}

#[test]
fn heredoc_mode_ignores_quotes() {
    let lexer = Lexer::default().skip_process_quotes(true);
    assert_eq!(
        lexer.process_word("'$a' \"$a\" \\$a\n", &env()).unwrap(),
        "'2' \"2\" $a\n"
    );
    assert_eq!(lexer.process_word("it's", &env()).unwrap(), "it's");
}

#[test]
fn raw_modes_and_skip_unset() {
    let raw = Lexer::default().raw_quotes(true).raw_escapes(true);
    assert_eq!(
        raw.process_word(r#"'a' "\$a" \x"#, &env()).unwrap(),
        r#"'a' "\$a" \x"#
    );
    let skip = Lexer::default().skip_unset_env(true);
    assert_eq!(
        skip.process_word("$u ${u} ${u:-d} ${u/x/y} $a", &env()).unwrap(),
        "$u ${u} ${u:-d} ${u/x/y} 2"
    );
}

#[test]
fn errors_read_like_buildkit() {
    let lexer = Lexer::default();
    let err = lexer.process_word("${empty:?}", &env()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to process "${empty:?}": empty: is not allowed to be empty"#
    );
    assert_eq!(err.word(), "${empty:?}");
    assert!(matches!(err.kind(), ErrorKind::Required { name, .. } if name == "empty"));
    let err = lexer.process_word("\"tab\there\u{1}é", &env()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to process \"\\\"tab\\there\\x01é\": \
         unexpected end of statement while looking for matching double-quote"
    );
    let err = lexer.process_word("${a/x", &env()).unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::MissingSlash);
}

#[test]
fn error_inside_a_closed_brace_is_kept_but_at_the_end_it_becomes_missing_brace() {
    let lexer = Lexer::default();
    let inner = lexer.process_word("${a:-${u:?gone}}", &env()).unwrap_err();
    assert!(matches!(inner.kind(), ErrorKind::Required { .. }));
    let at_end = lexer.process_word("${a:-${u:?gone}", &env()).unwrap_err();
    assert_eq!(*at_end.kind(), ErrorKind::MissingBrace);
}

#[test]
fn names_follow_go_unicode_categories() {
    let env = [("é", "e"), ("x", "X")];
    let lexer = Lexer::default();
    assert_eq!(lexer.process_word("$é.", &env).unwrap(), "e.");
    // U+00B2 (superscript two) is a number but not a decimal digit: not part of a name.
    assert_eq!(lexer.process_word("$x²", &env).unwrap(), "X²");
    assert_eq!(lexer.process_word("$²", &env).unwrap(), "$²");
}

#[test]
fn leading_byte_order_mark_is_skipped_like_go_scanner() {
    assert_eq!(Lexer::default().process_word("\u{feff}$a", &env()).unwrap(), "2");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let word = "${a:-".repeat(10_000);
    let err = Lexer::default().process_word(&word, &env()).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TooDeep { .. } | ErrorKind::MissingBrace),
        "{err}"
    );
    let ok = format!("{}x{}", "${u:-".repeat(100), "}".repeat(100));
    assert_eq!(Lexer::default().process_word(&ok, &env()).unwrap(), "x");
}

fn shellish() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(r#"[\\`$\{\}:\-+?#%/'" ab0é\n*]{0,48}"#).unwrap(),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics(word in shellish(), escape in prop_oneof![Just('\\'), Just('`')], modes in 0u8..16) {
        let lexer = Lexer::new(escape)
            .skip_process_quotes(modes & 1 != 0)
            .raw_quotes(modes & 2 != 0)
            .raw_escapes(modes & 4 != 0)
            .skip_unset_env(modes & 8 != 0);
        let env = [("a", "a*b?c"), ("b", ""), ("c", "x y\nz")];
        let word_result = lexer.process_word(&word, &env);
        let words_result = lexer.process_words(&word, &env);
        prop_assert_eq!(word_result.is_ok(), words_result.is_ok());
        if let Err(err) = word_result {
            prop_assert!(err.to_string().starts_with("failed to process \""));
        }
    }
}
