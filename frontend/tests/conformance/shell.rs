//! BuildKit's shell-lexer tables (`envVarTest`, `wordsTest`) and our derived cases against
//! `kiln_frontend::shell`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use kiln_frontend::shell::{Expansion, Lexer};
use serde::Deserialize;

use crate::corpus;

/// Asserts that no case failed, listing every failure at once.
fn assert_no_failures(what: &str, ran: usize, failures: &[String]) {
    assert!(ran > 0, "{what}: no case ran");
    assert!(
        failures.is_empty(),
        "{what}: {} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Parses `NAME=VALUE` entries; an entry without `=` defines NAME as empty.
fn env_pairs<'a>(entries: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    entries
        .into_iter()
        .map(|entry| match entry.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (entry.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn env_var_test() {
    let Some(dir) = corpus("shell") else { return };
    let text = fs::read_to_string(dir.join("envVarTest")).unwrap();
    let env = env_pairs(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lexer = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.trim().split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "envVarTest line {line_no} is malformed: {raw:?}");
        let (platform, input, expected) = (fields[0], fields[1], fields[2]);
        if platform == "W" {
            continue;
        }
        ran += 1;
        match (lexer.process_word(input, &env), expected) {
            (Err(_), "error") => {}
            (Ok(got), want) if got == want => {}
            (got, want) => failures.push(format!("line {line_no}: {input:?}: want {want:?}, got {got:?}")),
        }
    }
    assert_eq!(ran, 228, "envVarTest should hold 228 Linux cases");
    assert_no_failures("envVarTest", ran, &failures);
}

#[test]
fn words_test() {
    let Some(dir) = corpus("shell") else { return };
    let text = fs::read_to_string(dir.join("wordsTest")).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    let lexer = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(entry) = line.strip_prefix("ENV") {
            env.extend(env_pairs([entry.trim_start_matches(' ')]));
            continue;
        }
        let (input, expected) = line.split_once('|').expect("a test line has one '|'");
        assert!(
            !expected.contains('|'),
            "wordsTest line {line_no} has more than one '|'"
        );
        let input = input.trim();
        let want: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        ran += 1;
        match (lexer.process_words(input, &env), want.as_slice()) {
            (Err(_), ["error"]) => {}
            (Ok(got), want) if got == want => {}
            (got, want) => failures.push(format!("line {line_no}: {input:?}: want {want:?}, got {got:?}")),
        }
    }
    assert_eq!(ran, 24, "wordsTest should hold 24 cases");
    assert_no_failures("wordsTest", ran, &failures);
}

/// One entry of derived-cases.json; the fields are the file's (FORMAT.md describes them).
#[expect(clippy::struct_excessive_bools)]
#[derive(Deserialize)]
struct DerivedCase {
    func: String,
    input: String,
    env: Vec<String>,
    escape: Option<char>,
    #[serde(default)]
    raw_quotes: bool,
    #[serde(default)]
    raw_escapes: bool,
    #[serde(default)]
    skip_unset_env: bool,
    #[serde(default)]
    skip_process_quotes: bool,
    result: Option<String>,
    words: Option<Vec<String>>,
    #[serde(default)]
    error: bool,
    error_message: Option<String>,
    matched: Option<Vec<String>>,
    unmatched: Option<Vec<String>>,
    note: Option<String>,
}

impl DerivedCase {
    fn lexer(&self) -> Lexer {
        Lexer::new(self.escape.unwrap_or('\\'))
            .raw_quotes(self.raw_quotes)
            .raw_escapes(self.raw_escapes)
            .skip_unset_env(self.skip_unset_env)
            .skip_process_quotes(self.skip_process_quotes)
    }

    /// What is wrong with the lexer's answer for this case, if anything.
    fn check(&self) -> Option<String> {
        let env = env_pairs(self.env.iter().map(String::as_str));
        let lexer = self.lexer();
        if self.func == "words" {
            let got = lexer.process_words(&self.input, &env);
            return match (&got, self.error) {
                (Err(_), true) => None,
                (Ok(words), false) if Some(words) == self.words.as_ref() => None,
                _ => Some(format!("want {:?}, got {got:?}", self.words)),
            };
        }
        assert_eq!(self.func, "word", "unknown func");
        match lexer.process_word_with_matches(&self.input, &env) {
            Err(err) if self.error => {
                let want = self
                    .error_message
                    .as_deref()
                    .expect("error cases carry the message");
                (err.to_string() != want).then(|| format!("want error {want:?}, got {:?}", err.to_string()))
            }
            Ok(expansion) if !self.error => self.check_expansion(&expansion),
            got => Some(format!(
                "want {:?} (error: {}), got {got:?}",
                self.result, self.error
            )),
        }
    }

    fn check_expansion(&self, got: &Expansion) -> Option<String> {
        let set = |names: &Option<Vec<String>>| names.iter().flatten().cloned().collect::<BTreeSet<_>>();
        let mut problems = Vec::new();
        if Some(&got.value) != self.result.as_ref() {
            problems.push(format!("want {:?}, got {:?}", self.result, got.value));
        }
        if got.matched != set(&self.matched) {
            problems.push(format!("matched: want {:?}, got {:?}", self.matched, got.matched));
        }
        if got.unmatched != set(&self.unmatched) {
            problems.push(format!(
                "unmatched: want {:?}, got {:?}",
                self.unmatched, got.unmatched
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

fn load_derived(dir: &Path) -> Vec<DerivedCase> {
    serde_json::from_str(&fs::read_to_string(dir.join("derived-cases.json")).unwrap()).unwrap()
}

#[test]
fn derived_cases() {
    let Some(dir) = corpus("shell") else { return };
    let cases = load_derived(&dir);
    assert_eq!(cases.len(), 113, "derived-cases.json should hold 113 cases");
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(index, case)| {
            let problem = case.check()?;
            let note = case.note.as_deref().unwrap_or("");
            Some(format!("case {index} ({:?}, {note}): {problem}", case.input))
        })
        .collect();
    assert_no_failures("derived-cases.json", cases.len(), &failures);
}
