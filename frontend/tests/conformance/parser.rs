//! BuildKit's parser cases: golden dumps, failing inputs, line spans and heredoc bodies.
//!
//! Layout and format: `shared/conformance/parser/FORMAT.md`. Every test collects all failing
//! cases and reports them by name in one assertion.

use std::fs;
use std::path::Path;

use kiln_frontend::syntax::{Dockerfile, parse};
use serde_json::Value;

use crate::corpus;

/// Case directories under `dir`, sorted by name.
fn case_dirs(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut cases: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), path))
        .collect();
    cases.sort();
    cases
}

fn report(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn positive(sub: &str, expected_count: usize) {
    let Some(root) = corpus("parser") else { return };
    let cases = case_dirs(&root.join(sub));
    assert_eq!(cases.len(), expected_count, "case count in {sub}");
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let source = fs::read(dir.join("Dockerfile")).unwrap();
        let expected = fs::read_to_string(dir.join("result")).unwrap();
        match parse(&source) {
            Ok(df) if df.dump() + "\n" == expected => {}
            Ok(df) => failures.push(format!(
                "{name}: dump differs\n--- expected\n{expected}--- got\n{}\n",
                df.dump()
            )),
            Err(e) => failures.push(format!("{name}: failed to parse: {e} (line {:?})", e.line())),
        }
    }
    report(&format!("positive cases in {sub}"), cases.len(), &failures);
}

fn negative(sub: &str, expected_count: usize) {
    let Some(root) = corpus("parser") else { return };
    let cases = case_dirs(&root.join(sub));
    assert_eq!(cases.len(), expected_count, "case count in {sub}");
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let source = fs::read(dir.join("Dockerfile")).unwrap();
        let wanted = fs::read_to_string(dir.join("error")).ok();
        match (parse(&source), wanted) {
            (Ok(df), _) => failures.push(format!("{name}: parsed, but must fail; dump:\n{}", df.dump())),
            (Err(e), Some(wanted)) if !e.to_string().contains(wanted.trim()) => {
                failures.push(format!(
                    "{name}: error {:?} does not contain {:?}",
                    e.to_string(),
                    wanted.trim()
                ));
            }
            (Err(e), _) if e.line().is_none() && !source.is_empty() => {
                failures.push(format!("{name}: error {e:?} has no line"));
            }
            (Err(_), _) => {}
        }
    }
    report(&format!("negative cases in {sub}"), cases.len(), &failures);
}

#[test]
fn upstream_positive_cases() {
    positive("cases", 33);
}

#[test]
fn derived_positive_cases() {
    positive("derived/cases", 19);
}

#[test]
fn upstream_negative_cases() {
    negative("negative", 4);
}

#[test]
fn derived_negative_cases() {
    negative("derived/negative", 9);
}

fn num(v: &Value, key: &str) -> usize {
    usize::try_from(v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))).unwrap()
}

/// Compares each instruction's dump and span with `children` of a corpus record.
fn compare_children(df: &Dockerfile, children: &[Value], failures: &mut Vec<String>, case: &str) {
    if df.instructions.len() != children.len() {
        failures.push(format!(
            "{case}: {} instructions, expected {}",
            df.instructions.len(),
            children.len()
        ));
        return;
    }
    for (i, (node, want)) in df.instructions.iter().zip(children).enumerate() {
        let got = (node.dump(), node.span.start, node.span.end);
        let expected = (
            want["dump"].as_str().unwrap().to_owned(),
            num(want, "start_line"),
            num(want, "end_line"),
        );
        if got != expected {
            failures.push(format!(
                "{case}: instruction {i}: got {got:?}, expected {expected:?}"
            ));
        }
    }
}

#[test]
fn line_info() {
    let Some(root) = corpus("parser") else { return };
    let expected: Value =
        serde_json::from_str(&fs::read_to_string(root.join("line-info/expected.json")).unwrap()).unwrap();
    let df = parse(&fs::read(root.join(expected["file"].as_str().unwrap())).unwrap()).unwrap();
    let mut failures = Vec::new();
    compare_children(
        &df,
        expected["children"].as_array().unwrap(),
        &mut failures,
        "line-info",
    );
    let span = (
        df.instructions.first().map(|n| n.span.start),
        df.instructions.last().map(|n| n.span.end),
    );
    let want = (
        Some(num(&expected, "ast_start_line")),
        Some(num(&expected, "ast_end_line")),
    );
    if span != want {
        failures.push(format!("line-info: root spans {span:?}, expected {want:?}"));
    }
    report("line-info checks", 1, &failures);
}

/// BuildKit's `ChompHeredocContent`. The corpus records bodies as upstream's parser stores them
/// (tabs kept); kiln's `Heredoc::content` is documented as already chomped for `<<-`.
fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn compare_heredocs(df: &Dockerfile, children: &[Value], failures: &mut Vec<String>, case: &str) {
    for (i, (node, want)) in df.instructions.iter().zip(children).enumerate() {
        let expected: Vec<_> = want["heredocs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let chomped = h["chomp"].as_bool().unwrap();
                let content = h["content"].as_str().unwrap();
                (
                    h["name"].as_str().unwrap().to_owned(),
                    h["fd"].as_u64().unwrap(),
                    h["expand"].as_bool().unwrap(),
                    chomped,
                    if chomped {
                        chomp(content)
                    } else {
                        content.to_owned()
                    },
                )
            })
            .collect();
        let got: Vec<_> = node
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.fd, h.expand, h.chomp, h.content.clone()))
            .collect();
        if got != expected {
            failures.push(format!(
                "{case}: instruction {i} heredocs: got {got:?}, expected {expected:?}"
            ));
        }
    }
}

#[test]
fn heredocs() {
    let Some(root) = corpus("parser") else { return };
    let facts: Value =
        serde_json::from_str(&fs::read_to_string(root.join("heredocs.json")).unwrap()).unwrap();
    let positives = facts["positive"].as_array().unwrap();
    let negatives = facts["negative"].as_array().unwrap();
    assert_eq!((positives.len(), negatives.len()), (33, 1), "heredoc case counts");
    let mut failures = Vec::new();
    for case in positives {
        let name = case["name"].as_str().unwrap();
        match parse(case["dockerfile"].as_str().unwrap().as_bytes()) {
            Ok(df) => {
                let children = case["children"].as_array().unwrap();
                compare_children(&df, children, &mut failures, name);
                compare_heredocs(&df, children, &mut failures, name);
            }
            Err(e) => failures.push(format!("{name}: failed to parse: {e}")),
        }
    }
    for case in negatives {
        let name = case["name"].as_str().unwrap();
        let wanted = case["error_contains"].as_str().unwrap();
        match parse(case["dockerfile"].as_str().unwrap().as_bytes()) {
            Ok(_) => failures.push(format!("{name}: parsed, but must fail")),
            Err(e) if !e.to_string().contains(wanted) => {
                failures.push(format!("{name}: error {e} lacks {wanted:?}"));
            }
            Err(_) => {}
        }
    }
    report("heredoc cases", positives.len() + negatives.len(), &failures);
}
